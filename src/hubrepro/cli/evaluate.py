"""``hubrepro evaluate``: retrieval and hubness metrics of a similarity matrix.

Examples
--------
::

    hubrepro evaluate --sims sims.npy
    hubrepro evaluate --sims sims.pt --query-to-gallery gt.npy --k 10 --json
    hubrepro evaluate --sims bundle.safetensors --key sims --ties optimistic

The matrix has one row per query and one column per gallery item. Without
``--query-to-gallery`` it must be square (query ``i`` matches gallery ``i``).
The table (or the JSON object with ``--json``) holds R@1/5/10, MdR, MnR in both
directions, Rsum (the sum of the six R@K) and the hubness of the queries' top-k
lists (:func:`hubrepro.hubness.hubness_report`). Gallery items that no query
matches are left out of the gallery→query metrics; their number is reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hubrepro._validation import check_index_vector, check_int, check_matrix, fail
from hubrepro.hubness import hubness_report
from hubrepro.io import load_array
from hubrepro.retrieval import TIES, evaluate_retrieval


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``evaluate`` sub-command."""
    p = subparsers.add_parser(
        "evaluate",
        help="R@K, MdR, MnR, Rsum and hubness of a similarity matrix",
        description=__doc__.split("\n\n")[0] + " Inputs: .npy, .pt, .safetensors.",
    )
    p.add_argument(
        "--sims",
        required=True,
        metavar="S",
        help="similarity matrix (n_query, n_gallery)",
    )
    p.add_argument(
        "--query-to-gallery",
        metavar="GT",
        default=None,
        help="integer vector (n_query,): the gallery index each query matches; "
        "omit for a square matrix matched on the diagonal",
    )
    p.add_argument(
        "--k",
        type=int,
        default=10,
        help="neighbourhood size of the hubness statistics (default 10)",
    )
    p.add_argument(
        "--ties",
        choices=TIES,
        default="average",
        help="tie policy of the ranks (default average)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="query rows per block (memory bound)",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )
    p.add_argument(
        "--key", default=None, help="entry to read from a file holding several arrays"
    )
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="accept pickled inputs (only for files you trust: unpickling can run code)",
    )
    return p


def evaluate_files(args: argparse.Namespace) -> dict[str, Any]:
    """Load the inputs named in ``args`` and compute the report as a dict."""
    func = "evaluate"
    sims = load_array(args.sims, allow_pickle=args.allow_pickle, key=args.key)
    gt = None
    if args.query_to_gallery is not None:
        gt = load_array(args.query_to_gallery, allow_pickle=args.allow_pickle)
    # cheap checks first, in the order a user fixes them, before any O(n^2) work
    sims = check_matrix(sims, f"--sims {args.sims}", func)
    n_query, n_gallery = sims.shape
    if gt is None and n_query != n_gallery:
        fail(
            func,
            "--query-to-gallery",
            "given when the matrix is not square",
            f"nothing, with --sims of shape {tuple(sims.shape)}",
            "Pass the gallery index of each query (an integer vector of length n_query).",
        )
    if gt is not None:
        check_index_vector(
            gt,
            f"--query-to-gallery {args.query_to_gallery}",
            func,
            length=n_query,
            upper=n_gallery,
        )
    k = check_int(args.k, "--k", func, low=1)
    if k > n_gallery:
        fail(
            func,
            "--k",
            f"at most the number of gallery items ({n_gallery})",
            k,
            "Pass a smaller --k.",
        )
    retrieval = evaluate_retrieval(sims, gt, ties=args.ties, chunk_size=args.chunk_size)
    hub = hubness_report(sims, k=k, chunk_size=args.chunk_size)
    return {
        "query_to_gallery": retrieval["query_to_gallery"],
        "gallery_to_query": retrieval["gallery_to_query"],
        "Rsum": retrieval["Rsum"],
        "n_unmatched_gallery": retrieval["n_unmatched_gallery"],
        "hubness": hub,
        "shape": list(sims.shape),
        "ties": args.ties,
    }


def format_report(report: dict[str, Any]) -> str:
    """Render the report as a plain-text table (2 decimals; the JSON is unrounded)."""
    n_q, n_g = report["shape"]
    cols = list(report["query_to_gallery"])
    lines = [
        f"{n_q} queries x {n_g} gallery items, ties: {report['ties']}",
        "",
        f"{'direction':<18}" + "".join(f"{c:>9}" for c in cols),
    ]
    for d in ("query_to_gallery", "gallery_to_query"):
        lines.append(f"{d:<18}" + "".join(f"{report[d][c]:>9.2f}" for c in cols))
    lines.append(f"{'Rsum':<18}{report['Rsum']:>9.2f}")
    if report["n_unmatched_gallery"]:
        lines.append(
            f"({report['n_unmatched_gallery']} gallery item(s) without a matching query "
            "are left out of gallery_to_query)"
        )
    hub = report["hubness"]
    lines += [
        "",
        f"hubness of the top-{hub['k']} lists (queries retrieve gallery items)",
    ]
    labels = {
        "skewness": "skewness of N_k (all items)",
        "skewness_nonzero": "skewness (retrieved items only)",
        "robin_hood": "Robin Hood index",
        "hub_occupancy": "hub occupancy (N_k >= 2 mean)",
        "antihub_rate": "anti-hub rate (N_k = 0)",
        "gini": "Gini of N_k",
        "max_occurrence": "max N_k",
    }
    for key, label in labels.items():
        value = hub[key]
        text = f"{value:d}" if isinstance(value, int) else f"{value:.4f}"
        lines.append(f"  {label:<34}{text:>10}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``hubrepro evaluate``; return the exit status."""
    report = evaluate_files(args)
    if args.json:
        payload = {k: v for k, v in report.items() if k not in ("shape", "ties")}
        json.dump(payload, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(format_report(report))
    return 0
