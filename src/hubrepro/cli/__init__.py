"""The ``hubrepro`` command line (also ``python -m hubrepro``).

Each sub-command lives in a module of this package that defines
``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``.
Only the chosen sub-command's module is imported (``hubrepro index search`` never
imports what ``hubrepro train`` needs); ``hubrepro --help`` lists every command
from the one-line summaries below without importing any.
No input prints a traceback: every error is caught here, in :func:`main`, and
printed as one line on standard error naming the file and what to do, with exit
status 2 (1 for an error the library did not expect: a bug to report). ``--traceback``
(anywhere on the line) shows the full trace instead. A closed output pipe
(``hubrepro evaluate --json | head -c 80``) ends the command quietly with status 141,
as for a program stopped by ``SIGPIPE``; Ctrl-C ends it with status 130.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
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
EXIT_BUG = 1
EXIT_INTERRUPTED = 130
# 128 + SIGPIPE: what a shell reports for a program that SIGPIPE stops
EXIT_BROKEN_PIPE = 141


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


def device_arg(text: str) -> str:
    """``--device`` values: ``auto`` or a device torch knows (``cpu``, ``cuda``, ``cuda:1``, ...).

    For ``type=`` of an argparse option, so a typo is a usage error, not a crash.
    Whether the device is present is checked when it is used.
    """
    if text == "auto":
        return text
    import torch

    try:
        torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"invalid device {text!r}: use auto, cpu, cuda, cuda:N or mps"
        ) from None
    return text


#: errors the user can fix: one line, exit 2 (others are bugs: exit 1)
_USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OSError,
    EOFError,
    ImportError,
    MemoryError,
    RuntimeError,
)

#: modules whose exceptions (not subclasses of the above) mean a bad input file
_USER_ERROR_MODULES = ("safetensors", "yaml", "zipfile", "pickle", "_pickle", "_csv")


def _is_user_error(err: BaseException) -> bool:
    module = type(err).__module__.split(".")[0]
    return isinstance(err, _USER_ERRORS) or module in _USER_ERROR_MODULES


_OS_HINTS = {
    errno.EACCES: "check the permissions of the file and of its folder, or choose another path",
    errno.EPERM: "check the permissions of the file and of its folder, or choose another path",
    errno.EROFS: "the file system is read-only: choose a path elsewhere",
    errno.EISDIR: "it is a folder: name a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder: fix the path",
    errno.ENOENT: "check the path",
    errno.ENOSPC: "the disk is full: free space or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded: free space or write elsewhere",
    errno.ENAMETOOLONG: "choose a shorter name",
    errno.ELOOP: "a symbolic link in the path loops: fix the link",
}


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def error_message(err: BaseException) -> str:
    """One line saying what went wrong (and, for file errors, which file and what to do)."""
    if isinstance(err, KeyError) and err.args:
        return _one_line(err.args[0])
    if isinstance(err, OSError) and err.errno is not None and err.strerror:
        hint = _OS_HINTS.get(err.errno, "")
        files = [f for f in (err.filename, err.filename2) if f is not None]
        where = " -> ".join(repr(os.fsdecode(f)) for f in files)
        text = f"{err.strerror}{': ' + where if where else ''}"
        return _one_line(f"{text}; {hint}." if hint else f"{text}.")
    msg = _one_line(err) or type(err).__name__
    if not _is_user_error(err):
        return (
            f"unexpected {type(err).__name__}: {msg} (if your inputs are valid this is "
            "a bug: rerun with --traceback and report it)"
        )
    if isinstance(err, MemoryError):
        what = "" if msg == "MemoryError" else f": {msg}"
        return (
            f"out of memory{what}; use smaller inputs, or a smaller --chunk-size where "
            "the command has one."
        )
    return msg


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (errors never escape as tracebacks)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # --traceback is accepted anywhere on the line (before a `--`), not only first
    end = argv.index("--") if "--" in argv else len(argv)
    show_trace = "--traceback" in argv[:end]
    argv = [a for i, a in enumerate(argv) if i >= end or a != "--traceback"]
    command = _chosen(argv) or "hubrepro"
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        args.traceback = show_trace
        status = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return status
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        if show_trace:
            raise
        _print_error(f"hubrepro {command}: interrupted")
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the one boundary of the command line
        if show_trace:
            raise
        _print_error(f"hubrepro {command}: error: {error_message(err)}")
        return EXIT_USAGE if _is_user_error(err) else EXIT_BUG


def _print_error(line: str) -> None:
    try:
        print(line, file=sys.stderr)
    except (OSError, ValueError):
        pass  # no stderr to report to


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
