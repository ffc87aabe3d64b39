"""``hubrepro classroom``: build student versions of the assignments and grade submissions.

::

    hubrepro classroom list
    hubrepro classroom build [--src assignments] [--out _build/assignments] [NAME ...]
    hubrepro classroom grade ASSIGNMENT SUBMISSION.ipynb|.py [--student-id ID] [--json]
                             [--timeout S] [--memory MB] [--sandbox auto|bwrap|none]
                             [--salt SECRET]

``grade`` runs the submission in a sandboxed child process that only answers the
grader's requests; the grader decides every point (``grade --help`` says what the
sandbox does and does not protect against).

``grade`` exits with status 0 when every check passes, 1 when some fail (the score and
per-check feedback are printed), 2 on usage errors. Book: :ref:`sec-classroom`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

_GRADE_HELP = """\
Grade one submission. It runs in a child process that only answers the grader's
requests (call a function on hidden inputs, send back a variable); the grader
computes the reference itself and decides every point, so nothing the submission
prints, writes or patches reaches the report. The child starts in a fresh temporary
folder, with a scrubbed environment, limits on CPU time, memory, file size and
processes, and without the hubrepro library (only hubrepro.classroom.student_data);
everything it starts is killed at --timeout.

With bubblewrap (bwrap) it also sees none of your files and has no network. Without
it (--sandbox none, or auto where bwrap cannot run) it runs as you and could read your
files by absolute path: grade there only in a container or as a user who owns nothing
secret. Exit status: 0 all checks passed, 1 some failed, 2 usage error or no sandbox.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``classroom`` and its actions on ``subparsers``."""
    p = subparsers.add_parser(
        "classroom",
        help="build student assignments and grade submissions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_actions(p)
    return p


def _add_actions(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="list the graded assignments and their checks")
    b = sub.add_parser(
        "build", help="write student and solution notebooks and manifest.json"
    )
    b.add_argument("names", nargs="*", help="assignment names (default: all in --src)")
    b.add_argument(
        "--src",
        default="assignments",
        help="folder of authored assignments (default: assignments)",
    )
    b.add_argument(
        "--out",
        default="_build/assignments",
        help="output folder (default: _build/assignments)",
    )
    g = sub.add_parser(
        "grade",
        help="grade a submitted notebook or module",
        description=_GRADE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument("assignment", help="assignment name (see `list`)")
    g.add_argument("submission", help="the student's .ipynb, .py or jupytext .md file")
    g.add_argument(
        "--student-id",
        default=None,
        help="roster id whose data the answers are checked on (default: the submission's STUDENT_ID)",
    )
    g.add_argument(
        "--json", action="store_true", help="print the report as one JSON line"
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds the submission may run, cells and checks together (default 300; must be positive)",
    )
    g.add_argument(
        "--memory",
        type=int,
        default=4096,
        metavar="MB",
        help="address space the submission may add to the libraries it loads (default 4096)",
    )
    g.add_argument(
        "--sandbox",
        choices=["auto", "bwrap", "none"],
        default="auto",
        help="OS isolation: bwrap (bubblewrap; an error where it cannot run), none "
        "(limits only: the submission could read your files by absolute path), "
        "auto (bwrap where it runs, else none; the default)",
    )
    g.add_argument(
        "--salt",
        default="",
        metavar="SECRET",
        help="a secret mixed into the seeds of the hidden inputs, so that students "
        "cannot compute them in advance (default: none)",
    )


def run(args: argparse.Namespace) -> int:
    """Execute the parsed ``classroom`` action; return the exit status."""
    from hubrepro import classroom

    if args.action == "list":
        from hubrepro.classroom.core import ID_CHECK

        for name, spec in classroom.ASSIGNMENTS.items():
            print(
                f"{name}: {spec.title} ({spec.max_score:g} points; implement {', '.join(spec.functions)}; report {', '.join(spec.answers)})"
            )
            print(f"    1  {ID_CHECK} -- the submission's STUDENT_ID")
            for c in spec.checks:
                print(f"    {c.points:g}  {c.name} -- {c.description}")
        return 0
    if args.action == "build":
        written = classroom.build_assignments(
            args.src, args.out, names=args.names or None
        )
        for name, files in written.items():
            print(f"{name}: {files['student']}  (solution: {files['solution']})")
        print(f"manifest: {args.out}/manifest.json")
        return 0
    try:
        report = classroom.grade(
            args.assignment,
            args.submission,
            student_id=args.student_id,
            timeout=args.timeout,
            memory_mb=args.memory,
            sandbox=args.sandbox,
            salt=args.salt,
        )
    except (
        RuntimeError
    ) as err:  # the sandbox could not start: the machine, not the student
        if getattr(args, "traceback", False):
            raise
        print(f"hubrepro classroom: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict()) if args.json else report.to_text())
    return 0 if report.passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m hubrepro.classroom``."""
    parser = argparse.ArgumentParser(
        prog="python -m hubrepro.classroom",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--traceback", action="store_true", help="show full tracebacks on error"
    )
    _add_actions(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        if args.traceback:
            raise
        print(f"hubrepro classroom: error: {err}", file=sys.stderr)
        return 2
