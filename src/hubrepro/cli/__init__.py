"""The ``hubrepro`` command line (also ``python -m hubrepro``).

Each sub-command lives in a module of this package that defines
``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``.
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

# sub-command name -> module in this package
COMMANDS = {
    "evaluate": "evaluate",
    "normalize": "normalize",
    "data": "data",
    "train": "train",
    "classroom": "classroom",
    "dbnorm": "dbnorm",
}

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="hubrepro",
        description="Hubness in cross-modal retrieval: evaluate, normalise, build data, train.",
    )
    parser.add_argument(
        "--version", action="version", version=f"hubrepro {__version__}"
    )
    parser.add_argument(
        "--traceback", action="store_true", help="show full tracebacks on error"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, module in COMMANDS.items():
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, KeyError) as err:
        if args.traceback:
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"hubrepro {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
