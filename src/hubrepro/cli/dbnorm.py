"""``hubrepro dbnorm``: the DBNorm main table on the embedded data or on your own folder.

Examples
--------
::

    hubrepro dbnorm --data-dir /path/to/msrvtt
    hubrepro dbnorm --data-dir DIR --methods none is dis dualis dualdis --out table.csv
    hubrepro dbnorm --dataset synthetic --directions query_to_gallery --json

Runs :func:`hubrepro.experiments.dbnorm.run_many` (notebook 40): every method in each
direction, with betas tuned on a validation split carved from the bank (embeddings)
or the fixed ``--beta-query``/``--beta-gallery`` (precomputed similarity matrices), and
prints R@1/5/10, MdR, MnR, Rsum and the skewness of N_k per method. ``--out`` writes the
tidy table (every column) as CSV.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hubrepro.experiments import dbnorm

_DEFAULTS = dbnorm.DBNormConfig()


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``dbnorm`` sub-command."""
    p = subparsers.add_parser(
        "dbnorm",
        help="DBNorm main table: every normaliser, both directions, tuned on the bank",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--data-dir", default=None, help="your folder (layout: the data chapter)"
    )
    p.add_argument(
        "--dataset",
        default="embedded",
        choices=("embedded", "stdlib-code", "synthetic", "user"),
        help="shipped data to use without --data-dir (default: embedded)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(_DEFAULTS.methods),
        choices=dbnorm.METHOD_KEYS,
        metavar="M",
    )
    p.add_argument(
        "--directions",
        nargs="+",
        default=list(_DEFAULTS.directions),
        choices=dbnorm.DIRECTIONS,
    )
    p.add_argument(
        "--beta-query-grid",
        nargs="+",
        type=float,
        default=list(_DEFAULTS.beta_query_grid),
    )
    p.add_argument(
        "--beta-gallery-grid",
        nargs="+",
        type=float,
        default=list(_DEFAULTS.beta_gallery_grid),
    )
    p.add_argument(
        "--beta-query",
        type=float,
        default=_DEFAULTS.beta_query,
        help="without a bank split",
    )
    p.add_argument(
        "--beta-gallery",
        type=float,
        default=_DEFAULTS.beta_gallery,
        help="without a bank split",
    )
    p.add_argument(
        "--n-val",
        type=int,
        default=_DEFAULTS.n_val,
        help="bank items carved out for validation",
    )
    p.add_argument(
        "--k",
        type=int,
        default=_DEFAULTS.k,
        help="activation-set size of DIS / DualDIS",
    )
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--out", default=None, help="write the tidy table as CSV")
    p.add_argument(
        "--json", action="store_true", help="print JSON records instead of a table"
    )
    return p


def run(args: argparse.Namespace) -> int:
    """Run the sub-command; ``ValueError``/``TypeError`` become one-line errors upstream."""
    cfg = dbnorm.DBNormConfig(
        dataset="user" if args.data_dir else args.dataset,
        data_dir=args.data_dir,
        methods=tuple(args.methods),
        directions=tuple(args.directions),
        beta_query_grid=tuple(args.beta_query_grid),
        beta_gallery_grid=tuple(args.beta_gallery_grid),
        beta_query=args.beta_query,
        beta_gallery=args.beta_gallery,
        n_val=args.n_val,
        k=args.k,
        seed=args.seed,
        device=args.device,
    )
    result = dbnorm.run_many(dbnorm.load_data(cfg), cfg)
    if args.out:
        result.table.to_csv(args.out, index=False)
    if args.json:
        json.dump(
            result.table.to_dict(orient="records"), sys.stdout, indent=1, default=str
        )
        sys.stdout.write("\n")
    else:
        sys.stdout.write(dbnorm.main_table(result).to_string() + "\n")
    return 0
