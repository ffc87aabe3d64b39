"""Streamed metrics vs naive full-matrix versions: time and peak memory.

Not a test: prints the wall time and peak extra memory of each variant and their
ratios, and checks that both give identical results.

- ``--problem ranks`` (default): query->gallery and gallery->query ranks (optimistic
  ties) of an MSR-VTT-like score matrix, default 180k captions x 1k videos, by
  :func:`hubrepro.retrieval.query_ranks` / :func:`~hubrepro.retrieval.gallery_ranks`
  against a full ``argsort`` of both directions (what many evaluators do).
- ``--problem knn``: the k-occurrence within one set of embeddings (the theory
  simulations), default 20k points in 512 dimensions, k = 10, by
  :func:`hubrepro.hubness.k_occurrence_from_embeddings` against the full similarity
  matrix followed by ``topk``.

Peak memory is the growth of the process's resident-set high-water mark
(``resource.getrusage``) during the step, beyond the inputs. That mark cannot be
reset, so each variant runs in a fresh child process and reports its own peak.

Usage::

    python benchmarks/bench_metrics.py [--problem ranks] [--n-query 180000] [--n-gallery 1000]
    python benchmarks/bench_metrics.py --problem knn [--n 20000] [--dim 512]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def ranks_problem(args):
    g = torch.Generator().manual_seed(0)
    gt = torch.arange(args.n_query) % args.n_gallery
    sims = torch.randn(args.n_query, args.n_gallery, generator=g)
    sims[torch.arange(args.n_query), gt] += 2.0  # a signal, so ranks are spread
    return sims, gt


def ranks_naive(sims, gt, args):
    order = torch.argsort(sims, dim=1, descending=True, stable=True)  # (n_q, n_g)
    q_rank = (order == gt[:, None]).float().argmax(1)
    order_t = torch.argsort(sims.T, dim=1, descending=True, stable=True)  # (n_g, n_q)
    g_rank = (gt[order_t] == torch.arange(sims.shape[1])[:, None]).float().argmax(1)
    return q_rank.double(), g_rank.double()


def ranks_streamed(sims, gt, args):
    from hubrepro.retrieval import gallery_ranks, query_ranks

    q = query_ranks(sims, gt, ties="optimistic", chunk_size=args.chunk_size)
    g = gallery_ranks(sims, gt, ties="optimistic", chunk_size=args.chunk_size)
    return q, g


def knn_problem(args):
    g = torch.Generator().manual_seed(0)
    return torch.randn(args.n, args.dim, generator=g), None


def knn_naive(x, _, args):
    xn = x / x.norm(dim=1, keepdim=True)
    sims = xn @ xn.T  # the full (n, n) matrix
    sims.fill_diagonal_(float("-inf"))
    idx = torch.topk(sims, args.k, dim=1).indices
    return (torch.bincount(idx.reshape(-1), minlength=x.shape[0]),)


def knn_streamed(x, _, args):
    from hubrepro.hubness import k_occurrence_from_embeddings

    return (k_occurrence_from_embeddings(x, k=args.k, chunk_size=args.chunk_size),)


PROBLEMS = {
    "ranks": (ranks_problem, ranks_naive, ranks_streamed),
    "knn": (knn_problem, knn_naive, knn_streamed),
}


def child(args) -> None:
    torch.set_num_threads(args.threads)
    make, naive, streamed = PROBLEMS[args.problem]
    a, b = make(args)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    result = (naive if args.child == "naive" else streamed)(a, b, args)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base  # KiB on Linux
    torch.save(list(result), Path(args.out) / f"{args.child}.pt")
    print(json.dumps({"seconds": dt, "peak_extra_mib": peak / 1024}))


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--problem", choices=sorted(PROBLEMS), default="ranks")
    ap.add_argument("--n-query", type=int, default=180_000, help="ranks: queries")
    ap.add_argument("--n-gallery", type=int, default=1_000, help="ranks: gallery items")
    ap.add_argument("--n", type=int, default=20_000, help="knn: points")
    ap.add_argument("--dim", type=int, default=512, help="knn: dimension")
    ap.add_argument("--k", type=int, default=10, help="knn: neighbourhood size")
    ap.add_argument("--chunk-size", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", choices=["naive", "streamed"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    res = {}
    with tempfile.TemporaryDirectory() as out:
        for kind in ("naive", "streamed"):
            cmd = [
                sys.executable,
                __file__,
                *sys.argv[1:],
                "--child",
                kind,
                "--out",
                out,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            res[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
        a = torch.load(Path(out) / "naive.pt")
        b = torch.load(Path(out) / "streamed.pt")
    same = all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    if args.problem == "ranks":
        what = f"ranks of {args.n_query} queries x {args.n_gallery} gallery items"
    else:
        what = f"N_{args.k} within {args.n} points in {args.dim} dimensions"
    print(f"{what}, float32, {args.threads} thread(s), chunk {args.chunk_size}")
    for kind in ("naive", "streamed"):
        r = res[kind]
        print(
            f"{kind:<9}: {r['seconds']:9.2f} s   peak extra {r['peak_extra_mib']:8.1f} MiB"
        )
    n, s = res["naive"], res["streamed"]
    print(f"time ratio naive/streamed   : {n['seconds'] / s['seconds']:.2f}x")
    mem = n["peak_extra_mib"] / max(s["peak_extra_mib"], 1e-9)
    print(f"memory ratio naive/streamed : {mem:.1f}x")
    print(f"results identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
