"""Grade a submitted notebook or module against the library's reference implementations.

The grader runs the submission's code cells one by one in a fresh namespace (a cell
that raises is recorded and the next cell still runs, so one unfinished exercise does
not hide the others), then runs the assignment's checks
(:mod:`hubrepro.classroom.assignments`). Each check calls the student's function on
hidden inputs and compares it with the reference implementation in :mod:`hubrepro`
(looked up by name when the check runs), or compares a reported answer with the
reference answer on the student's own data variant (``--student-id``).

By default the command line grades in a child process with a time limit, so a
submission that loops or crashes the interpreter cannot take the grader down.

Book: :ref:`sec-classroom`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubrepro._validation import fail

__all__ = [
    "CheckFailed",
    "CheckResult",
    "GradeReport",
    "Context",
    "load_submission",
    "grade",
    "reference",
]


class CheckFailed(Exception):
    """Raised by a check with the feedback shown to the student."""


class ReferenceUnavailable(Exception):
    """The library function a check compares with is not part of this installation."""


def reference(dotted: str) -> Callable[..., Any]:
    """Return the library object ``hubrepro.<module>.<name>`` named by ``dotted``.

    Looked up when a check runs, so the classroom machinery imports even where a
    module of the library is missing; the check then reports it instead of crashing.
    """
    module, _, name = dotted.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ReferenceUnavailable(
            f"the reference `{dotted}` is not available in this installation ({err})"
        ) from None
    return obj


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: its name, points earned out of ``points``, feedback."""

    name: str
    points: float
    earned: float
    feedback: str
    error: bool = False  # the grader itself could not run the check (missing reference)

    @property
    def passed(self) -> bool:
        return self.earned >= self.points


@dataclasses.dataclass(frozen=True)
class GradeReport:
    """Every check's result plus the cells of the submission that raised."""

    assignment: str
    student_id: str
    submission: str
    results: tuple[CheckResult, ...]
    cell_errors: tuple[str, ...] = ()

    @property
    def score(self) -> float:
        return sum(r.earned for r in self.results)

    @property
    def max_score(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(score=self.score, max_score=self.max_score, passed=self.passed)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GradeReport:
        return cls(
            assignment=d["assignment"],
            student_id=d["student_id"],
            submission=d["submission"],
            results=tuple(CheckResult(**r) for r in d["results"]),
            cell_errors=tuple(d.get("cell_errors", ())),
        )

    def to_text(self) -> str:
        lines = [f"{self.assignment} -- student {self.student_id} -- {self.submission}"]
        for r in self.results:
            mark = "PASS" if r.passed else ("ERROR" if r.error else "FAIL")
            lines.append(
                f"  [{mark:5}] {r.name} ({r.earned:g}/{r.points:g})"
                + (f": {r.feedback}" if r.feedback else "")
            )
        if self.cell_errors:
            lines.append("  cells that raised while running the submission:")
            lines.extend(f"    {e}" for e in self.cell_errors)
        lines.append(
            f"  score: {self.score:g}/{self.max_score:g}"
            + ("" if self.passed else " -- not yet complete")
        )
        return "\n".join(lines)


@dataclasses.dataclass
class Context:
    """What a check sees: the submission's namespace, the student id and their data."""

    namespace: dict[str, Any]
    student_id: str
    data: dict[str, Any]
    source: str = ""  # the submission's code, all cells

    def function(self, name: str) -> Callable[..., Any]:
        """The student's function ``name`` (fails the check when it is not defined)."""
        f = self.namespace.get(name)
        if not callable(f):
            raise CheckFailed(
                f"the submission defines no function `{name}`; keep the name given in the assignment"
            )
        return f

    def value(self, name: str) -> Any:
        """The student's answer variable ``name`` (fails the check when it is not set)."""
        if name not in self.namespace:
            raise CheckFailed(
                f"the submission sets no variable `{name}`; run the cell that computes it"
            )
        return self.namespace[name]

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the student's function, turning its exceptions into feedback."""
        f = self.function(name)
        try:
            return f(*args, **kwargs)
        except NotImplementedError:
            raise CheckFailed(
                f"`{name}` is not implemented yet (it raised NotImplementedError)"
            ) from None
        except Exception as err:  # the student's bug, reported, not propagated
            raise CheckFailed(f"`{name}` raised {type(err).__name__}: {err}") from None


def _code_cells(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".py":
        text = path.read_text()
        # `# %%` cells (jupytext percent format, VS Code) run one by one like notebook cells
        cells, cur = [], []
        for line in text.splitlines(keepends=True):
            if line.startswith("# %%") and cur:
                cells.append("".join(cur))
                cur = []
            cur.append(line)
        cells.append("".join(cur))
        return cells
    if suffix in (".ipynb", ".md"):
        import jupytext

        nb = jupytext.read(path)
        return [c.source for c in nb.cells if c.cell_type == "code"]
    fail(
        "grade",
        "submission",
        "a .ipynb notebook, a .py module or a jupytext .md notebook",
        repr(path.name),
    )
    raise AssertionError


def _drop_magics(src: str) -> str:
    # IPython magics and shell escapes are not Python; the grader runs without IPython
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line
        for line in src.splitlines()
    )


def load_submission(path: str | Path) -> tuple[dict[str, Any], list[str]]:
    """Run a submission's code cells in a fresh namespace.

    Returns the namespace and one line per cell that raised (``cell N: Error: message``).
    A raising cell does not stop the later cells.
    """
    p = Path(path)
    if not p.is_file():
        fail(
            "grade",
            "submission",
            "an existing file",
            repr(str(p)),
            exc=FileNotFoundError,
        )
    cells = _code_cells(p)
    ns: dict[str, Any] = {
        "__name__": "__submission__",
        "__file__": str(p),
        "__source__": "\n".join(cells),
    }
    errors: list[str] = []
    old_cwd = os.getcwd()
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        os.chdir(p.parent)
        for i, src in enumerate(cells, start=1):
            try:
                code = compile(_drop_magics(src), f"<{p.name} cell {i}>", "exec")
                # the submission's prints would mix with the report (and break --json)
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(code, ns)  # noqa: S102 -- running the submission is the grader's job
            except Exception as err:
                errors.append(f"cell {i}: {type(err).__name__}: {err}")
    finally:
        os.chdir(old_cwd)
    return ns, errors


def _forbidden_uses(forbidden: tuple[str, ...], source: str) -> list[str]:
    """Names of ``forbidden`` modules (``hubrepro.x``) that ``source`` imports or uses."""
    found = []
    for dotted in forbidden:
        parent, _, leaf = dotted.rpartition(".")
        pats = [
            re.escape(dotted) + r"\b",
            r"from\s+"
            + re.escape(parent)
            + r"\s+import\s+[^\n]*\b"
            + re.escape(leaf)
            + r"\b",
        ]
        if any(re.search(pat, source) for pat in pats):
            found.append(dotted)
    return found


def _own_work(forbidden: tuple[str, ...], source: str) -> CheckResult:
    name = "implemented without the reference module"
    used = _forbidden_uses(forbidden, source)
    if used:
        return CheckResult(
            name,
            1,
            0.0,
            f"the submission uses {', '.join(used)}, which the grader compares with; "
            "write the code yourself",
        )
    return CheckResult(name, 1, 1.0, "")


def _run_check(check, ctx: Context) -> CheckResult:
    try:
        check.func(ctx)
    except CheckFailed as err:
        return CheckResult(check.name, check.points, 0.0, str(err))
    except ReferenceUnavailable as err:
        return CheckResult(check.name, check.points, 0.0, str(err), error=True)
    except Exception as err:
        tb = traceback.format_exception_only(type(err), err)[-1].strip()
        return CheckResult(
            check.name, check.points, 0.0, f"the check crashed on this submission: {tb}"
        )
    return CheckResult(check.name, check.points, check.points, "")


def grade(
    assignment: str,
    submission: str | Path,
    *,
    student_id: str | None = None,
    isolate: bool = False,
    timeout: float = 300.0,
) -> GradeReport:
    """Grade ``submission`` for ``assignment``.

    Parameters
    ----------
    assignment : str
        An assignment name (see :func:`hubrepro.classroom.list_assignments`).
    submission : path
        The student's ``.ipynb`` notebook, ``.py`` module or jupytext ``.md`` notebook.
    student_id : str, optional
        The student whose data variant the answers are checked on. Default: the
        submission's ``STUDENT_ID``. When both are given and differ, the
        "submitted for this student" check fails.
    isolate : bool, default False
        Run in a child process with a time limit (the command line's default).
    timeout : float, default 300
        Seconds allowed to the child process when ``isolate``.

    Returns
    -------
    GradeReport
        Per-check feedback and the score; ``report.passed`` is true when every check passed.

    Raises
    ------
    ValueError
        Unknown assignment; FileNotFoundError: no such submission.

    Book
    ----
    :ref:`sec-classroom-collect-grade`.
    """
    from hubrepro.classroom.assignments import get_assignment, student_data

    spec = get_assignment(assignment, func="grade")
    path = Path(submission)
    if not path.is_file():
        fail(
            "grade",
            "submission",
            "an existing file",
            repr(str(path)),
            exc=FileNotFoundError,
        )
    if isolate:
        return _grade_in_child(spec.name, path, student_id, timeout)
    ns, cell_errors = load_submission(path)
    submitted_for = ns.get("STUDENT_ID")
    sid = student_id if student_id is not None else submitted_for
    results: list[CheckResult] = []
    if sid is None:
        results.append(
            CheckResult(
                "submitted for this student",
                1,
                0.0,
                "no `STUDENT_ID` in the submission and no --student-id given",
            )
        )
        sid = "unknown"
    else:
        sid = str(sid)
        ok = submitted_for is not None and str(submitted_for) == sid
        why = (
            ""
            if ok
            else (
                f"the submission's STUDENT_ID is {submitted_for!r}, not {sid!r}: its answers were computed on another student's data"
                if submitted_for is not None
                else "the submission sets no `STUDENT_ID`"
            )
        )
        results.append(
            CheckResult("submitted for this student", 1, 1.0 if ok else 0.0, why)
        )
    ctx = Context(
        namespace=ns,
        student_id=sid,
        data=student_data(spec.name, sid),
        source=str(ns.get("__source__", "")),
    )
    results.append(_own_work(spec.forbidden, ctx.source))
    results.extend(_run_check(c, ctx) for c in spec.checks)
    return GradeReport(spec.name, sid, str(path), tuple(results), tuple(cell_errors))


def _grade_in_child(
    name: str, path: Path, student_id: str | None, timeout: float
) -> GradeReport:
    cmd = [
        sys.executable,
        "-m",
        "hubrepro.classroom",
        "grade",
        name,
        str(path),
        "--in-process",
        "--json",
    ]
    if student_id is not None:
        cmd += ["--student-id", student_id]
    env = dict(os.environ, MPLBACKEND="Agg")
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        r = CheckResult(
            "runs within the time limit",
            1,
            0.0,
            f"grading took longer than {timeout:g} s; look for an endless loop",
        )
        return GradeReport(name, str(student_id), str(path), (r,))
    try:
        return GradeReport.from_dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (json.JSONDecodeError, IndexError, KeyError):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        r = CheckResult(
            "runs to the end",
            1,
            0.0,
            "the submission stopped the grader: " + " | ".join(tail),
        )
        return GradeReport(name, str(student_id), str(path), (r,))
