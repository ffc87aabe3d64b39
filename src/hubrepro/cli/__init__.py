"""The ``hubrepro`` command line (also ``python -m hubrepro``).

Each sub-command lives in a module of this package that defines
``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``.
Only the chosen sub-command's module is imported (``hubrepro index search`` never
imports what ``hubrepro train`` needs); ``hubrepro --help`` lists every command
from the one-line summaries below without importing any.
Errors the user can fix (bad files, shapes, values) are printed as one line on
standard error with a non-zero exit status, never as a traceback; pass
``--traceback`` to see the full trace when reporting a bug.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hubrepro import __version__

# sub-command name -> (module in this package, one-line summary for the top-level help)
COMMANDS = {
    "evaluate": ("evaluate", "R@K, MdR, MnR, Rsum and hubness of a similarity matrix"),
    "normalize": (
        "normalize",
        "post-hoc hubness reduction; fit statistics once and apply them many times",
    ),
    "index": ("index", "serve normalised retrieval from a FAISS index (build, search)"),
    "data": (
        "data",
        "list, build and verify datasets; embed your images with open_clip",
    ),
    "train": ("train", "train NeighborRetr / InfoNCE projection heads (resumable)"),
    "classroom": ("classroom", "build student assignments and grade submissions"),
    "dbnorm": (
        "dbnorm",
        "DBNorm main table: every normaliser, both directions, tuned on the bank",
    ),
}

EXIT_USAGE = 2


def _chosen(argv: Sequence[str]) -> str | None:
    """The sub-command named on the command line (the first non-option word), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser; only the sub-command chosen in ``argv`` is imported.

    ``argv=None`` builds the full parser (every sub-command imported), for tools
    that inspect it.
    """
    parser = argparse.ArgumentParser(
        prog="hubrepro",
        description="Hubness in cross-modal retrieval: evaluate, normalise, serve, build data, train.",
    )
    parser.add_argument(
        "--version", action="version", version=f"hubrepro {__version__}"
    )
    parser.add_argument(
        "--traceback", action="store_true", help="show full tracebacks on error"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = None if argv is None else _chosen(argv)
    for name, (module, summary) in COMMANDS.items():
        if argv is not None and name != chosen:
            sub.add_parser(name, help=summary, add_help=False)  # listed, not imported
            continue
        try:
            mod = importlib.import_module(f"hubrepro.cli.{module}")
        except ModuleNotFoundError as err:
            if err.name == f"hubrepro.cli.{module}":
                continue  # sub-command not part of this installation
            raise
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args._run(args) or 0)
    except (
        ValueError,
        TypeError,
        FileNotFoundError,
        FileExistsError,
        KeyError,
        ImportError,
    ) as err:
        if args.traceback:
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"hubrepro {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
