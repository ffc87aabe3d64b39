"""Training-step cost with the encoders in the loop: NeighborRetr vs symmetric InfoNCE.

Times what users run: :meth:`hubrepro.training.Trainer.step` (the text and image towers
of :mod:`hubrepro.encoders` forward, the objective against the memory bank, backward,
gradient clipping, AdamW, the scheduler, the batch pushed into the FIFO bank) on a
``shapes-world`` batch, one :class:`~hubrepro.training.Trainer` per objective built from
``configs/shapes_world.yaml`` (its world, encoders, bank of ``mb_batch`` batches). Also
times the objective alone (forward and backward of ``Trainer.criterion`` on fixed
features of the same model, against the same bank). Prints, in one run, each cost
relative to InfoNCE's; issue 14's targets: a full NeighborRetr step <= 1.15 x an
InfoNCE step, the loss alone <= 1.5 x.

Timing: process CPU time of each call on CPU (one thread by default: on a shared
machine other jobs inflate wall time at random, one thread's CPU time measures the
work), wall time with synchronisation on CUDA; the objectives interleaved call by call
(round robin), so that a change of machine load hits them alike; the median of all
repeats is reported (and the minimum). Each result is one run: its ratios compare
calls measured side by side. Writes ``benchmarks/results/bench_encoders.json``.

Why the loss alone stays well above 1.5 x on the CPU at these sizes: InfoNCE is two
log-softmaxes of a B x B matrix, while the released objective adds one of (G, G^T)
(L_Opt), two more of (S, S^T) and (G, G^T) with their gradients (L_KL), 50 exact
Sinkhorn iterations per plan (one plan, or two under ``compat="official"``), an exact
top-k of both directions and the bank centrality (L_Nbi); the rows "without L_..."
show each term's share. Matching the released values and gradients rules out the
shortcuts (fewer iterations, one direction, an approximate top-k); the step ratio
holds because the encoders dominate a step.

    .venv/bin/python benchmarks/bench_encoders.py [--batch 64 128] [--threads 1]
        [--repeats 60] [--device cpu] [--out benchmarks/results/bench_encoders.json]

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import yaml

from hubrepro.config import from_params
from hubrepro.datasets import make_shapes_world
from hubrepro.io import atomic_write
from hubrepro.training import TrainConfig, Trainer, make_world_train_data

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "shapes_world.yaml"

#: name -> TrainConfig overrides of each objective; the first is the baseline.
OBJECTIVES: dict[str, dict] = {
    "InfoNCE": {"loss": "infonce"},
    "NeighborRetr (fixed)": {"loss": "neighborretr", "compat": "fixed"},
    "NeighborRetr (official)": {"loss": "neighborretr", "compat": "official"},
}
#: the loss alone of fixed NeighborRetr without each extra term (where its cost goes)
TERMS: dict[str, dict] = {
    "NeighborRetr (fixed) without L_Opt": {"loss": "neighborretr", "w_uniform": 0.0},
    "NeighborRetr (fixed) without L_Nbi": {"loss": "neighborretr", "w_neighbor": 0.0},
    "NeighborRetr (fixed) without L_KL": {"loss": "neighborretr", "w_kl": 0.0},
}
TARGET_STEP, TARGET_LOSS = 1.15, 1.5


def _config(path: Path, batch: int, device: str, **over) -> TrainConfig:
    params = yaml.safe_load(path.read_text())
    params.pop("run_dir", None)
    params.update(batch_size=batch, device=device, progress=False, **over)
    return from_params(TrainConfig, params)


class _Clock:
    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __call__(self, fn) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            return time.perf_counter() - t
        t = time.process_time()
        fn()
        return time.process_time() - t


def _loss_only(trainer: Trainer):
    # forward + backward of the trainer's objective on fixed features of its model
    with torch.no_grad():
        idx = trainer.batch(0)
        q, g = trainer._inputs(*trainer.pairs.rows(idx, trainer.epoch))
        feats = {k: v.detach().float() for k, v in trainer.model(q, g).items()}
    bq, bg = trainer._bank_view()
    scale = float(trainer.model.logit_scale())

    def run() -> None:
        x = {k: v.clone().requires_grad_(True) for k, v in feats.items()}
        trainer.criterion(
            x["query_local"], x["gallery_local"], x["query_global"], x["gallery_global"],
            scale, bank_query_local=bq, bank_gallery_local=bg,
        ).backward()  # fmt: skip

    return run


def _step(trainer: Trainer):
    def run() -> None:
        if trainer.pos >= trainer.n_batches:  # past the last batch: start over
            trainer.pos = 0
        trainer.step(trainer.batch(trainer.pos))

    return run


def bench_batch(
    args, batch: int, objectives: dict[str, dict], terms: dict[str, dict]
) -> dict:
    """Median (and minimum) step and loss times of every objective at one batch size.

    ``terms``: further objectives whose loss alone is timed (no step).
    """
    base = _config(args.config, batch, args.device)
    opts = {**base.dataset_options, "n_val": 0, "n_test": 2}
    world = make_shapes_world(seed=base.data_seed, **opts)
    data = make_world_train_data(world)
    trainers = {}
    for name, over in {**objectives, **terms}.items():
        cfg = _config(args.config, batch, args.device, n_val=0, **over)
        tr = Trainer(cfg, data)
        tr.begin_epoch()  # fills the bank with mb_batch batches
        trainers[name] = tr
    clock = _Clock(next(iter(trainers.values())).device)
    runs = {
        name: {"loss": _loss_only(tr)}
        if name in terms
        else {"step": _step(tr), "loss": _loss_only(tr)}
        for name, tr in trainers.items()
    }
    times = {name: {kind: [] for kind in fns} for name, fns in runs.items()}
    for fns in runs.values():
        for fn in fns.values():
            fn()  # warm-up
            fn()
    # round robin: every timed call of an objective sits between calls of the others,
    # so that a change of machine load hits them alike
    for _ in range(args.repeats):
        for name, fns in runs.items():
            for kind, fn in fns.items():
                times[name][kind].append(clock(fn))
    out = {}
    base_name = next(iter(objectives))
    for name in runs:
        row = {}
        for kind in times[name]:
            med = statistics.median(times[name][kind])
            row[f"{kind}_ms"] = 1e3 * med
            row[f"{kind}_min_ms"] = 1e3 * min(times[name][kind])
            row[f"{kind}_ratio"] = med / statistics.median(times[base_name][kind])
        out[name] = row
    bank = len(next(iter(trainers.values())).bank)
    return {"batch": batch, "bank_rows": bank, "objectives": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=CONFIG)
    ap.add_argument("--batch", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=60, help="timed calls per objective")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/bench_encoders.json"
    )
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument(
        "--no-terms", action="store_true", help="skip the loss without each term"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    terms = {} if args.no_terms else TERMS
    results = [bench_batch(args, b, OBJECTIVES, terms) for b in args.batch]
    enc = _config(args.config, args.batch[0], args.device).encoder
    print(
        f"Trainer.step on shapes-world, encoder {enc}, {args.threads} thread(s), "
        f"device {args.device}; median of {args.repeats} (min in brackets)"
    )
    for res in results:
        print(f"\nbatch {res['batch']}, bank {res['bank_rows']} rows")
        print(
            f"{'objective':42s} {'step ms':>15s} {'x':>5s} {'loss ms':>13s} {'x':>5s}"
        )
        for name, r in res["objectives"].items():
            step = (
                f"{r['step_ms']:7.2f} ({r['step_min_ms']:5.2f}) {r['step_ratio']:5.2f}"
                if "step_ms" in r
                else f"{'':21s}"
            )
            print(
                f"{name:42s} {step} {r['loss_ms']:5.2f} ({r['loss_min_ms']:5.2f}) "
                f"{r['loss_ratio']:5.2f}"
            )
        rows = res["objectives"]
        if terms:
            full = rows["NeighborRetr (fixed)"]["loss_ratio"]
            parts = ", ".join(
                f"{name.rsplit(' ', 1)[-1]} {full - rows[name]['loss_ratio']:.2f}"
                for name in terms
            )
            print(f"cost of each term of the fixed loss, in InfoNCE losses: {parts}")
        for name in ("NeighborRetr (fixed)", "NeighborRetr (official)"):
            st, lo = rows[name]["step_ratio"], rows[name]["loss_ratio"]
            print(
                f"{name}: step {st:.2f} x (target <= {TARGET_STEP}: "
                f"{'met' if st <= TARGET_STEP else 'MISSED'}), loss {lo:.2f} x "
                f"(target <= {TARGET_LOSS}: {'met' if lo <= TARGET_LOSS else 'MISSED'})"
            )
    if args.no_write:
        return
    record = {
        "benchmark": "bench_encoders",
        "targets": {"step_ratio": TARGET_STEP, "loss_ratio": TARGET_LOSS},
        "config": {
            "config": str(args.config.relative_to(ROOT))
            if args.config.is_relative_to(ROOT)
            else str(args.config),
            "encoder": enc,
            "threads": args.threads,
            "repeats": args.repeats,
            "interleaving": "round robin, one call of each objective and kind at a time",
            "device": args.device,
            "objectives": OBJECTIVES,
            "terms": terms,
        },
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "load_before": os.getloadavg()[0],
        },
        "results": results,
    }
    text = (json.dumps(record, indent=1) + "\n").encode()
    atomic_write(args.out, lambda fh: fh.write(text), overwrite=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
