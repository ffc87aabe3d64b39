"""Streamed retrieval metrics vs a naive full-matrix (argsort) evaluator.

Not a test: prints the wall time and peak extra memory of each, and their ratios,
for one MSR-VTT-like problem (default 180k captions x 1k videos, several captions
per video), in one process. Both compute query->gallery and gallery->query ranks
with optimistic ties and must agree exactly (checked).

Peak memory is the growth of the process's resident-set high-water mark
(``resource.getrusage``) during the step, beyond the input matrix. That mark cannot
be reset, so each variant runs in a fresh child process and reports its own peak.

Usage::

    python benchmarks/bench_metrics.py [--n-query 180000] [--n-gallery 1000] [--chunk-size 4096]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def make_problem(n_query: int, n_gallery: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    gt = torch.arange(n_query) % n_gallery
    sims = torch.randn(n_query, n_gallery, generator=g)
    sims[torch.arange(n_query), gt] += 2.0  # a signal, so ranks are spread
    return sims, gt


def naive(sims: torch.Tensor, gt: torch.Tensor):
    """Full argsort of both directions (what many evaluators do)."""
    order = torch.argsort(sims, dim=1, descending=True, stable=True)  # (n_q, n_g) int64
    q_rank = (order == gt[:, None]).float().argmax(1)
    order_t = torch.argsort(
        sims.T, dim=1, descending=True, stable=True
    )  # (n_g, n_q) int64
    match = gt[order_t] == torch.arange(sims.shape[1])[:, None]
    g_rank = match.float().argmax(1)
    return q_rank.double(), g_rank.double()


def streamed(sims: torch.Tensor, gt: torch.Tensor, chunk: int):
    from hubrepro.retrieval import gallery_ranks, query_ranks

    q = query_ranks(sims, gt, ties="optimistic", chunk_size=chunk)
    g = gallery_ranks(sims, gt, ties="optimistic", chunk_size=chunk)
    return q, g


def child(kind: str, n_query: int, n_gallery: int, chunk: int) -> None:
    torch.set_num_threads(1)
    sims, gt = make_problem(n_query, n_gallery)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    q, g = naive(sims, gt) if kind == "naive" else streamed(sims, gt, chunk)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base  # KiB on Linux
    torch.save({"q": q, "g": g}, f"/tmp/bench_metrics_{kind}.pt")
    print(json.dumps({"seconds": dt, "peak_extra_mib": peak / 1024}))


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n-query", type=int, default=180_000)
    ap.add_argument("--n-gallery", type=int, default=1_000)
    ap.add_argument("--chunk-size", type=int, default=4096)
    ap.add_argument("--child", choices=["naive", "streamed"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.n_query, args.n_gallery, args.chunk_size)
        return 0
    res = {}
    for kind in ("naive", "streamed"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                kind,
                "--n-query",
                str(args.n_query),
                "--n-gallery",
                str(args.n_gallery),
                "--chunk-size",
                str(args.chunk_size),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        res[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    a = torch.load("/tmp/bench_metrics_naive.pt")
    b = torch.load("/tmp/bench_metrics_streamed.pt")
    same = torch.equal(a["q"], b["q"]) and torch.equal(a["g"], b["g"])
    n, s = res["naive"], res["streamed"]
    print(
        f"problem: {args.n_query} queries x {args.n_gallery} gallery, float32, 1 thread, chunk {args.chunk_size}"
    )
    print(
        f"naive argsort : {n['seconds']:8.2f} s   peak extra {n['peak_extra_mib']:8.1f} MiB"
    )
    print(
        f"streamed      : {s['seconds']:8.2f} s   peak extra {s['peak_extra_mib']:8.1f} MiB"
    )
    print(f"time ratio naive/streamed   : {n['seconds'] / s['seconds']:.2f}x")
    print(
        f"memory ratio naive/streamed : {n['peak_extra_mib'] / max(s['peak_extra_mib'], 1e-9):.1f}x"
    )
    print(f"ranks identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
