"""Training-step cost with the encoders in the loop: NeighborRetr vs symmetric InfoNCE.

One full optimiser step of the small dual encoders of ``hubrepro.encoders`` on a
``shapes-world`` batch (text and image towers forward, the loss, backward, gradient
clipping, AdamW, and for NeighborRetr the push of the batch into the FIFO memory bank),
with each objective; prints each step's cost relative to InfoNCE's (issue 14 target:
a full NeighborRetr step <= 1.15x) and the same ratio for the loss alone (forward and
backward on fixed features).

    .venv/bin/python benchmarks/bench_encoders.py [--batch 64] [--threads 1] [--repeats 30]

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

import argparse
import time

import torch

from hubrepro.datasets import make_shapes_world
from hubrepro.encoders import build_dual_encoder
from hubrepro.losses import NeighborRetrLoss
from hubrepro.memory_bank import FIFOBank


def _time(fn, repeats: int) -> float:
    # process CPU time, best of `repeats`: on shared machines other jobs inflate wall
    # time at random, while one thread's CPU time measures the work itself
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=24)
    ap.add_argument("--channels", default="16,32,64", help="CNN stage widths")
    ap.add_argument("--text-width", type=int, default=32)
    ap.add_argument("--text-layers", type=int, default=0)
    ap.add_argument("--embed-dim", type=int, default=64)
    ap.add_argument("--mb-batch", type=int, default=15, help="bank = mb_batch x batch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    world = make_shapes_world(
        seed=0,
        n_train=a.batch,
        n_bank=0,
        n_val=0,
        n_test=2,
        image_size=a.image_size,
        captions_per_image=1,
    )
    ids, images = world.train.tokens, world.train.images
    torch.manual_seed(0)
    model = build_dual_encoder(
        vocab_size=len(world.vocab),
        max_len=world.meta["max_len"],
        image_size=a.image_size,
        channels=tuple(int(c) for c in a.channels.split(",")),
        text_width=a.text_width,
        text_layers=a.text_layers,
        embed_dim=a.embed_dim,
        learn_logit_scale=False,
        logit_scale_init=100.0,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    bank = FIFOBank(a.mb_batch * a.batch)
    gen = torch.Generator().manual_seed(1)
    rows = a.mb_batch * a.batch
    bank.push_front(
        {
            "query": torch.randn(rows, a.embed_dim, generator=gen),
            "gallery": torch.randn(rows, a.embed_dim, generator=gen),
        }
    )
    objectives = {
        "InfoNCE": NeighborRetrLoss(kappa=0.0, w_uniform=0.0, w_neighbor=0.0, w_kl=0.0),
        "NeighborRetr (fixed)": NeighborRetrLoss(),
        "NeighborRetr (official)": NeighborRetrLoss(compat="official"),
    }

    def step(crit: NeighborRetrLoss, with_bank: bool) -> None:
        out = model(ids, images)
        loss = crit(
            out["query_local"], out["gallery_local"], out["query_global"], out["gallery_global"],
            model.logit_scale(), bank_query_local=bank.get("query"),
            bank_gallery_local=bank.get("gallery"),
        )  # fmt: skip
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if with_bank:
            bank.push_front(
                {
                    "query": out["query_local"].detach(),
                    "gallery": out["gallery_local"].detach(),
                }
            )

    with torch.no_grad():
        feats = {k: v.detach() for k, v in model(ids, images).items()}

    def loss_only(crit: NeighborRetrLoss) -> None:
        x = {k: v.clone().requires_grad_(True) for k, v in feats.items()}
        crit(
            x["query_local"], x["gallery_local"], x["query_global"], x["gallery_global"],
            100.0, bank_query_local=bank.get("query"),
            bank_gallery_local=bank.get("gallery"),
        ).backward()  # fmt: skip

    # interleave the objectives, so that a change of machine load hits them alike
    best_step = dict.fromkeys(objectives, float("inf"))
    best_loss = dict.fromkeys(objectives, float("inf"))
    for _ in range(3):
        for name, crit in objectives.items():
            with_bank = name != "InfoNCE"
            best_step[name] = min(
                best_step[name],
                _time(lambda c=crit, b=with_bank: step(c, b), a.repeats // 3),
            )
            best_loss[name] = min(
                best_loss[name], _time(lambda c=crit: loss_only(c), a.repeats // 3)
            )
    base_s, base_l = best_step["InfoNCE"], best_loss["InfoNCE"]
    print(
        f"batch {a.batch}, images {a.image_size}px, channels {a.channels}, "
        f"text width {a.text_width} x {a.text_layers} layers, embed {a.embed_dim}, "
        f"bank {rows} rows, {a.threads} thread(s); CPU time, best of {a.repeats}"
    )
    print(
        f"{'objective':26s} {'step ms':>8s} {'x InfoNCE':>10s} {'loss ms':>8s} {'x':>6s}"
    )
    for name in objectives:
        print(
            f"{name:26s} {1e3 * best_step[name]:8.2f} {best_step[name] / base_s:10.2f} "
            f"{1e3 * best_loss[name]:8.2f} {best_loss[name] / base_l:6.2f}"
        )


if __name__ == "__main__":
    main()
