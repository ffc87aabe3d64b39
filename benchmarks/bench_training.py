"""Training-step cost: the full NeighborRetr objective vs symmetric InfoNCE.

Prints the ratio of one optimiser step (heads forward + loss + backward + AdamW) with
every NeighborRetr term to the same step with InfoNCE, at batch 256 on CPU (target:
<= 1.5x), the share of each term, and the Sinkhorn cost against the batch size.

    .venv/bin/python benchmarks/bench_training.py [--batch 256] [--threads 1] [--repeats 20]

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

import argparse
import time

import torch

from hubrepro.heads import DualEncoderHeads
from hubrepro.losses import NeighborRetrLoss, sinkhorn_plan


def _time(fn, repeats: int) -> float:
    # process CPU time, not wall time: on shared machines other jobs inflate wall time
    # at random, while one thread's CPU time measures the work itself
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def step_time(
    crit: NeighborRetrLoss, batch: int, dim: int, bank: int, repeats: int
) -> float:
    gen = torch.Generator().manual_seed(0)
    q, g = (
        torch.randn(batch, dim, generator=gen),
        torch.randn(batch, dim, generator=gen),
    )
    bq, bg = (
        torch.randn(bank, 128, generator=gen),
        torch.randn(bank, 128, generator=gen),
    )
    torch.manual_seed(0)
    model = DualEncoderHeads(dim, dim)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        out = model(q, g)
        loss = crit(
            out["query_local"], out["gallery_local"], out["query_global"], out["gallery_global"],
            model.logit_scale(), bank_query_local=bq, bank_gallery_local=bg,
        )  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()

    return _time(step, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--dim", type=int, default=256, help="input embedding size")
    ap.add_argument(
        "--mb-batch", type=int, default=15, help="bank = mb_batch x batch rows"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bank = a.mb_batch * a.batch
    infonce = NeighborRetrLoss(kappa=0.0, w_uniform=0.0, w_neighbor=0.0, w_kl=0.0)
    t_base = step_time(infonce, a.batch, a.dim, bank, a.repeats)
    rows = [("InfoNCE", t_base)]
    for name, kw in [
        ("NeighborRetr (all terms)", {}),
        ("NeighborRetr official", {"compat": "official"}),
        ("  - L_Opt (no Sinkhorn)", {"w_uniform": 0.0}),
        ("  - L_Nbi", {"w_neighbor": 0.0}),
        ("  - L_KL", {"w_kl": 0.0}),
        ("  kappa = 0", {"kappa": 0.0}),
    ]:
        rows.append(
            (name, step_time(NeighborRetrLoss(**kw), a.batch, a.dim, bank, a.repeats))
        )
    print(
        f"training step, batch {a.batch}, bank {bank}, {a.threads} thread(s), best of {a.repeats}"
    )
    for name, t in rows:
        print(f"  {name:28s} {1e3 * t:8.2f} ms   ratio {t / t_base:5.2f}x")
    full = rows[1][1] / t_base
    print(
        f"RATIO full/InfoNCE = {full:.2f}x (target <= 1.5x): {'OK' if full <= 1.5 else 'OVER'}"
    )
    print("Sinkhorn plan (50 iterations, eps 1, no grad) vs batch size")
    for b in (64, 128, 256, 512, 1024):
        g = torch.randn(b, b) * 6.6
        print(
            f"  B={b:5d} {1e3 * _time(lambda g=g: sinkhorn_plan(g), max(3, a.repeats // 4)):8.2f} ms"
        )


if __name__ == "__main__":
    main()
