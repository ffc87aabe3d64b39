"""``hubrepro index``: serve hubness-corrected retrieval from a FAISS index.

Build an index over the gallery that ranks by a fitted normaliser's score
(statistics from ``hubrepro normalize fit``), then search it::

    hubrepro index build --stats STATS.safetensors --gallery G.npy --out IDX
    hubrepro index search IDX --queries Q.npy -k 10 --out RESULTS.npz

``RESULTS.npz`` holds ``ids`` (int64, best first, ``-1`` where an approximate
index found fewer than ``k``) and ``scores`` (float32). Without ``--stats`` the
index is raw (the baseline). Per-gallery-bias methods (IS, DualIS, NNN, CSLS, SN,
DBSN; DIS and principled DualDIS through their gates) are searched exactly on a
flat index; GC, faithful DualDIS and sum-aggregated methods with unequal betas
use a shortlist from the raw scores re-ranked by the exact normaliser
(``--shortlist``). Needs the optional extra: ``pip install hubrepro[index]``.

Book: :ref:`sec-normalisation`, section "Serving from a vector index".
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``index`` on the top-level sub-command parser."""
    p = subparsers.add_parser(
        "index",
        help="serve normalised retrieval from a FAISS index (build, search)",
        description=(
            "A FAISS index whose inner product is the normalised score: gallery "
            "vectors carry their per-gallery bias as extra coordinates. Needs "
            "`pip install hubrepro[index]`."
        ),
        epilog=(
            "examples:\n"
            "  hubrepro normalize fit dualis --gallery G.npy --query-bank BQ.npy \\\n"
            "      --gallery-bank BG.npy --beta-query 20 --beta-gallery 20 --save STATS.safetensors\n"
            "  hubrepro index build --stats STATS.safetensors --gallery G.npy --out IDX\n"
            "  hubrepro index search IDX --queries Q.npy -k 10 --out top10.npz\n"
            "Book: chapter 4, section 'Serving from a vector index'."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="action", metavar="{build,search}")
    sub.required = True
    b = sub.add_parser(
        "build",
        help="build an index folder from a gallery and fitted statistics",
        description=(
            "Build an index over --gallery (the one the statistics were fitted on: "
            "checked by hash) ranking by the method in --stats. .npy galleries are "
            "memory-mapped and added in chunks."
        ),
    )
    b.add_argument(
        "--stats", type=Path, help="statistics from `normalize fit` (omit: raw index)"
    )
    b.add_argument(
        "--gallery", type=Path, required=True, help="gallery embeddings (.npy), n x d"
    )
    b.add_argument(
        "--kind",
        choices=["flat", "ivf", "hnsw"],
        default="flat",
        help="flat: exact; ivf, hnsw: approximate (default flat)",
    )
    b.add_argument(
        "--metric",
        choices=["cosine", "dot"],
        help="default: the metric of the fit, else cosine",
    )
    b.add_argument("--nlist", type=int, help="IVF lists (default 4 sqrt(n))")
    b.add_argument("--nprobe", type=int, default=16, help="IVF lists searched")
    b.add_argument("--hnsw-m", type=int, default=32, help="HNSW links per node")
    b.add_argument("--ef-search", type=int, default=64, help="HNSW search breadth")
    b.add_argument("--seed", type=int, default=0, help="IVF k-means seed")
    b.add_argument("--out", type=Path, required=True, help="index folder to write")
    b.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    s = sub.add_parser(
        "search",
        help="top-k gallery items of each query",
        description="Search an index folder; writes ids and scores to --out (.npz).",
    )
    s.add_argument("index", type=Path, help="index folder from `index build`")
    s.add_argument(
        "--queries", type=Path, required=True, help="query embeddings, n x d"
    )
    s.add_argument("-k", "--k", type=int, default=10, help="results per query")
    s.add_argument("--nprobe", type=int, help="IVF lists searched (IVF only)")
    s.add_argument("--ef-search", type=int, help="HNSW search breadth (HNSW only)")
    s.add_argument(
        "--shortlist",
        type=int,
        help="two-stage methods: raw candidates per query (default max(10k, 100))",
    )
    s.add_argument(
        "--no-refine",
        action="store_true",
        help="return FAISS's float32 order without the exact re-scoring",
    )
    s.add_argument("--out", type=Path, required=True, help="results file (.npz)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p


def run(args: argparse.Namespace) -> int:
    """Execute ``hubrepro index``; return the exit status."""
    from hubrepro.index import build_index, load_index
    from hubrepro.io import load_array, open_rows

    if args.action == "build":
        if args.out.exists() and not args.overwrite:
            raise FileExistsError(
                f"--out {str(args.out)!r} already exists; pass --overwrite to replace it."
            )
        gallery = (
            open_rows(args.gallery)
            if args.gallery.suffix.lower() == ".npy"
            else load_array(args.gallery)
        )
        est = None
        if args.stats is not None:
            from hubrepro.normalize import load_normalizer

            est = load_normalizer(args.stats)
        idx = build_index(
            gallery,
            est,
            kind=args.kind,
            metric=args.metric,
            nlist=args.nlist,
            nprobe=args.nprobe,
            hnsw_m=args.hnsw_m,
            ef_search=args.ef_search,
            seed=args.seed,
        )
        path = idx.save(args.out, overwrite=args.overwrite)
        print(f"hubrepro index build: wrote {idx!r} to {path}")
        return 0
    from hubrepro.io import check_out

    check_out(args.out, overwrite=args.overwrite, suffixes=(".npz",), name="--out",
              func="index search")  # fmt: skip
    idx = load_index(args.index)
    scores, ids = idx.search(
        load_array(args.queries),
        args.k,
        nprobe=args.nprobe,
        ef_search=args.ef_search,
        shortlist=args.shortlist,
        refine=not args.no_refine,
    )
    import numpy as np

    from hubrepro.io import atomic_write

    atomic_write(
        args.out,
        lambda fh: np.savez(fh, ids=ids.numpy(), scores=scores.float().numpy()),
        overwrite=args.overwrite,
    )
    print(
        f"hubrepro index search: wrote the top-{ids.shape[1]} of {ids.shape[0]} queries "
        f"to {args.out}"
    )
    return 0
