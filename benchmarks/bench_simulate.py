#!/usr/bin/env python3
"""Benchmark the chunked k-occurrence of the theory simulations (not a test).

Measures the within-set k-occurrence (self excluded) of ``n`` Gaussian points in
``d`` dimensions, the core of every simulation of the theory chapter, with the
streamed kNN of :func:`hubrepro.hubness.knn` (never an n x n matrix), and compares
it at a smaller ``--naive-n`` with a naive reference that builds the full distance
matrix (``torch.cdist`` + ``topk``). Prints the times, the ratio and whether the two
agree.

Usage::

    python benchmarks/bench_simulate.py                      # n=100000, d=512, k=10
    python benchmarks/bench_simulate.py --n 20000 --device cuda --metric cosine
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from hubrepro import hubness, simulate
from hubrepro._compat import resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def chunked(x: torch.Tensor, k: int, metric: str, chunk_size: int) -> torch.Tensor:
    idx, _ = hubness.knn(x, k=k, metric=metric, chunk_size=chunk_size)
    return hubness.k_occurrence_from_indices(idx, x.shape[0])


def naive(x: torch.Tensor, k: int, metric: str) -> torch.Tensor:
    """Full-matrix reference: O(n^2) memory."""
    if metric == "euclidean":
        score = -torch.cdist(x, x)
    else:
        xn = x / x.norm(dim=1, keepdim=True)
        score = xn @ xn.T
    score.fill_diagonal_(-math.inf)
    idx = torch.topk(score, k, dim=1).indices
    return torch.bincount(idx.reshape(-1), minlength=x.shape[0])


def timed(fn, device, repeats=1):
    best = math.inf
    out = None
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=100_000, help="points of the large run")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--metric", default="euclidean", choices=simulate.METRICS)
    ap.add_argument(
        "--naive-n",
        type=int,
        default=8000,
        help="size at which the naive reference runs",
    )
    ap.add_argument("--chunk-size", type=int, default=2048)
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(
        f"device={device} threads={torch.get_num_threads()} metric={args.metric} d={args.d} k={args.k} chunk={args.chunk_size}"
    )

    x = simulate.sample("gaussian", args.naive_n, args.d, seed=args.seed, device=device)
    chunked(x[:256], args.k, args.metric, args.chunk_size)  # warm-up
    t_naive, ref = timed(lambda: naive(x, args.k, args.metric), device, repeats=2)
    t_chunk, got = timed(
        lambda: chunked(x, args.k, args.metric, args.chunk_size), device, repeats=2
    )
    # exact ties aside, the counts agree; float rounding may swap a few near-equal neighbours
    agree = float((ref == got).double().mean())
    print(
        f"n={args.naive_n}: naive full matrix {t_naive:.2f} s, chunked {t_chunk:.2f} s, "
        f"ratio chunked/naive {t_chunk / t_naive:.2f}, identical counts for {100 * agree:.2f}% of points"
    )
    del x
    x = simulate.sample("gaussian", args.n, args.d, seed=args.seed, device=device)
    t_big, n_k = timed(lambda: chunked(x, args.k, args.metric, args.chunk_size), device)
    gb = args.n**2 * 4 / 1e9
    print(
        f"n={args.n}: chunked {t_big:.1f} s (naive would need a {gb:.1f} GB float32 matrix); "
        f"skewness of N_{args.k} = {hubness.skewness(n_k):.2f}; "
        f"time ratio to n={args.naive_n} chunked: {t_big / t_chunk:.1f} (n^2 ratio {(args.n / args.naive_n) ** 2:.1f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
