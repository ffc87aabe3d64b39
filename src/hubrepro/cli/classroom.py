"""``hubrepro classroom``: build student versions of the assignments and grade submissions.

::

    hubrepro classroom list
    hubrepro classroom build [--src assignments] [--out _build/assignments] [NAME ...]
    hubrepro classroom grade ASSIGNMENT SUBMISSION.ipynb|.py [--student-id ID] [--json]

``grade`` exits with status 0 when every check passes, 1 when some fail (the score and
per-check feedback are printed), 2 on usage errors. Book: :ref:`sec-classroom`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


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
    g = sub.add_parser("grade", help="grade a submitted notebook or module")
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
        help="seconds allowed to run the submission (default 300)",
    )
    g.add_argument(
        "--in-process",
        action="store_true",
        help="run the submission in this process (no time limit)",
    )


def run(args: argparse.Namespace) -> int:
    """Execute the parsed ``classroom`` action; return the exit status."""
    from hubrepro import classroom

    if args.action == "list":
        for name, spec in classroom.ASSIGNMENTS.items():
            total = (
                sum(c.points for c in spec.checks) + 2
            )  # + "submitted for this student" and "implemented without the reference module"
            print(
                f"{name}: {spec.title} ({total:g} points; implement {', '.join(spec.functions)}; report {', '.join(spec.answers)})"
            )
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
    report = classroom.grade(
        args.assignment,
        args.submission,
        student_id=args.student_id,
        isolate=not args.in_process,
        timeout=args.timeout,
    )
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
