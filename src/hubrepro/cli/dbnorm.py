"""``hubrepro dbnorm``: the DBNorm main table on the embedded data or on your own folder.

Examples
--------
::

    hubrepro dbnorm --data-dir /path/to/msrvtt
    hubrepro dbnorm --data-dir DIR --methods none is dis dualis dualdis --out table.csv
    hubrepro dbnorm --data-dir DIR --beta-query 20 --beta-gallery 5
    hubrepro dbnorm --dataset synthetic --directions query_to_gallery --json

Runs :func:`hubrepro.experiments.dbnorm.main.run_many` (notebook 40): every method in
each direction and prints R@1/5/10, MdR, MnR, R@1+5+10 (the sum of the three recalls of
that direction) and the skewness of N_k per method.
``--out`` writes the tidy table (every column) as CSV. A beta (or NNN's alpha) left
unset is tuned on a validation split carved from the bank (embeddings with a gallery
bank), or takes the driver's fallback (20) on precomputed similarity matrices; a value
given on the command line is used as given and never tuned. An option that could not
take effect (a grid next to a fixed value, a validation size on similarity matrices, a
hyperparameter no selected method uses, a method or direction the data cannot run) is
refused with a one-line error instead of being ignored.

The CSV is written atomically, and an existing ``--out`` is refused before the run
unless ``--overwrite`` is given (the rule of every command).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hubrepro.cli import device_arg
from hubrepro.experiments import dbnorm
from hubrepro.io import atomic_write, check_out

_DEFAULTS = dbnorm.DBNormConfig()

# option -> the methods that use it (for refusing an option no selected method uses)
_USERS = {
    "k": ("dis", "dis-g", "dualdis", "dualdis-faithful"),
    "beta_query": tuple(
        m
        for m in dbnorm.METHOD_KEYS
        if "beta_query" in dbnorm.method_spec(m, _DEFAULTS)[2]
    ),
    "beta_gallery": tuple(
        m
        for m in dbnorm.METHOD_KEYS
        if "beta_gallery" in dbnorm.method_spec(m, _DEFAULTS)[2]
    ),
}


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
        default=None,
        choices=("embedded", "stdlib-code", "synthetic"),
        help="shipped data to use without --data-dir (default: embedded)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        choices=dbnorm.METHOD_KEYS,
        metavar="M",
        help=f"method keys (default: {' '.join(_DEFAULTS.methods)}; those the data "
        "cannot run are skipped unless named here)",
    )
    p.add_argument(
        "--directions",
        nargs="+",
        default=None,
        choices=dbnorm.DIRECTIONS,
        help="default: both (similarity matrices: query_to_gallery only)",
    )
    for side, name in (("query", "beta_q"), ("gallery", "beta_g")):
        grid = getattr(_DEFAULTS, f"beta_{side}_grid")
        p.add_argument(
            f"--beta-{side}-grid",
            nargs="+",
            type=float,
            default=None,
            help=f"{name} values tried on the validation split (default: "
            f"{' '.join(f'{v:g}' for v in grid)})",
        )
        p.add_argument(
            f"--beta-{side}",
            type=float,
            default=None,
            help=f"fixed {name}, used as given (default: tuned on the validation "
            f"split; {dbnorm.FALLBACK[f'beta_{side}']:g} without one)",
        )
    p.add_argument(
        "--n-val",
        type=int,
        default=None,
        help=f"bank items carved out for validation (default {_DEFAULTS.n_val}; "
        "the gallery bank must be larger)",
    )
    p.add_argument(
        "--k",
        type=int,
        default=None,
        help=f"activation-set size of DIS / DualDIS (default {_DEFAULTS.k})",
    )
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or auto")
    p.add_argument("--out", default=None, help="write the tidy table as CSV")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument(
        "--json", action="store_true", help="print JSON records instead of a table"
    )
    return p


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_options(args: argparse.Namespace, methods: tuple[str, ...]) -> None:
    if args.data_dir and args.dataset:
        raise ValueError(
            f"--dataset {args.dataset} and --data-dir both name the data; give one of them."
        )
    for side in ("query", "gallery"):
        fixed, grid = f"beta_{side}", f"beta_{side}_grid"
        if getattr(args, fixed) is not None and getattr(args, grid) is not None:
            raise ValueError(
                f"{_flag(fixed)} fixes the value that {_flag(grid)} would tune; give one of them."
            )
    for name, users in _USERS.items():
        for opt in (name, f"{name}_grid"):
            if getattr(args, opt, None) is not None and not set(users) & set(methods):
                raise ValueError(
                    f"{_flag(opt)} is used by none of --methods {' '.join(methods)} "
                    f"(it applies to {', '.join(users)}); drop it or add such a method."
                )


def _check_data(
    args: argparse.Namespace, datasets: dict[str, Any], cfg: dbnorm.DBNormConfig
) -> list[str]:
    """Refuse explicit options the data cannot honour; return notes on skipped defaults."""
    notes = []
    for label, data in datasets.items():
        where = args.data_dir or label
        paired = hasattr(data, "split_bank")
        if not paired:
            for opt in ("n_val", "beta_query_grid", "beta_gallery_grid"):
                if getattr(args, opt) is not None:
                    raise ValueError(
                        f"{_flag(opt)} needs a validation split, and {where} holds "
                        "precomputed similarity matrices (no split is possible); fix the "
                        "betas with --beta-query/--beta-gallery instead."
                    )
        for direction in cfg.directions:
            if not paired and direction == "gallery_to_query":
                if args.directions is not None:
                    raise ValueError(
                        f"--directions gallery_to_query needs embeddings; {where} holds "
                        "similarity matrices of the query_to_gallery direction only."
                    )
                continue
            for key in cfg.methods:
                missing = dbnorm.missing_banks(key, data, direction, cfg)
                if not missing:
                    continue
                what = " and ".join(f"{b} bank" for b in missing)
                if args.methods is not None:
                    raise ValueError(
                        f"--methods {key} needs the {what} ({direction}), which {where} "
                        "does not have; drop the method or add the bank."
                    )
                notes.append(f"{key} ({direction}: no {what})")
    return notes


def run(args: argparse.Namespace) -> int:
    """Run the sub-command; ``ValueError``/``TypeError`` become one-line errors upstream."""
    methods = tuple(args.methods) if args.methods is not None else _DEFAULTS.methods
    _check_options(args, methods)
    if args.out:  # refused before the work, not after it
        check_out(args.out, overwrite=args.overwrite, suffixes=(".csv",), name="--out",
                  func="dbnorm")  # fmt: skip
    given = {
        name: getattr(args, name)
        for name in ("beta_query", "beta_gallery", "n_val", "k")
        if getattr(args, name) is not None
    }
    for name in ("beta_query_grid", "beta_gallery_grid", "directions"):
        if getattr(args, name) is not None:
            given[name] = tuple(getattr(args, name))
    cfg = dbnorm.DBNormConfig(
        dataset="user" if args.data_dir else (args.dataset or _DEFAULTS.dataset),
        data_dir=args.data_dir,
        methods=methods,
        seed=args.seed,
        device=args.device,
        **given,
    )
    datasets = dbnorm.load_data(cfg)
    notes = _check_data(args, datasets, cfg)
    if notes:
        print(
            f"hubrepro dbnorm: note: skipped {'; '.join(dict.fromkeys(notes))}",
            file=sys.stderr,
        )
    result = dbnorm.run_many(datasets, cfg)
    if args.out:
        csv = result.table.to_csv(index=False).encode("utf-8")
        atomic_write(args.out, lambda fh: fh.write(csv), overwrite=args.overwrite)
    if args.json:
        json.dump(
            result.table.to_dict(orient="records"), sys.stdout, indent=1, default=str
        )
        sys.stdout.write("\n")
    else:
        sys.stdout.write(dbnorm.main_table(result).to_string() + "\n")
    return 0
