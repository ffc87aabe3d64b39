"""Grade a submitted notebook or module: the grader decides every point.

The submission runs in a child process (:class:`~hubrepro.classroom.sandbox.Sandbox`):
a fresh temporary folder, a scrubbed environment, resource limits, no ``hubrepro``
library, its whole process tree killed at the time limit, and OS isolation with
bubblewrap where it is installed. The child runs the code cells one by one (a cell
that raises, ``sys.exit`` included, is recorded and the next cell still runs, so one
unfinished exercise does not hide the others) and then only answers requests: call
this function on these inputs, send back this variable.

Everything else happens here, in the grader's process: the hidden inputs of each check
are drawn from a seed of the student and the check, the reference is computed with the
library, the outputs that came back as plain arrays and numbers are compared with it,
and the points are counted. Nothing the submission prints, writes or patches reaches
the report.

Book: :ref:`sec-classroom-collect-grade`.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from hubrepro._validation import fail
from hubrepro.classroom._harness import ProtocolError, decode
from hubrepro.classroom.assignments import get_assignment, student_data
from hubrepro.classroom.core import (
    ID_CHECK,
    Answer,
    Call,
    Case,
    Check,
    CheckFailed,
    CheckResult,
    GradeReport,
    Outcome,
    ReferenceUnavailable,
    student_seed,
)
from hubrepro.classroom.isolation import describe, resolve_isolation
from hubrepro.classroom.sandbox import Limits, Sandbox, SandboxStopped

__all__ = ["grade", "submission_cells"]


def submission_cells(path: str | Path) -> list[str]:
    """The code cells of a submission, in order, without running anything.

    A ``.ipynb`` or jupytext ``.md`` notebook gives its code cells; a ``.py`` module
    is split at ``# %%`` lines (jupytext percent format, VS Code). IPython magics and
    shell escapes (lines starting with ``%`` or ``!``) are blanked: the grader runs
    without IPython.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Another suffix, or a notebook that cannot be read.
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
    suffix = p.suffix.lower()
    if suffix == ".py":
        text = p.read_text(errors="replace")
        cells, cur = [], []
        for line in text.splitlines(keepends=True):
            if line.startswith("# %%") and cur:
                cells.append("".join(cur))
                cur = []
            cur.append(line)
        cells.append("".join(cur))
    elif suffix in (".ipynb", ".md"):
        import jupytext

        try:
            nb = jupytext.read(p)
            cells = [str(c.source) for c in nb.cells if c.cell_type == "code"]
        except Exception as err:
            fail(
                "grade",
                "submission",
                "a notebook jupytext can read",
                f"{p.name} ({type(err).__name__}: {str(err)[:200]})",
                "Hand in the .ipynb file saved by Jupyter.",
            )
            raise AssertionError from None
    else:
        fail(
            "grade",
            "submission",
            "a .ipynb notebook, a .py module or a jupytext .md notebook",
            repr(p.name),
        )
        raise AssertionError
    return [_drop_magics(c) for c in cells]


def _drop_magics(src: str) -> str:
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line
        for line in src.splitlines()
    )


def _serve_data(assignment: Any, student_id: Any) -> dict[str, Any]:
    """``student_data`` for the submission: validated here, computed with the library."""
    return student_data(assignment, student_id)


def _ask(box: Sandbox, request: Call | Answer) -> Outcome:
    """Send one request; the outcome, or ``CheckFailed`` with the student's feedback."""
    if isinstance(request, Answer):
        reply = box.value(request.name)
        if reply.get("missing"):
            raise CheckFailed(
                f"the submission sets no variable `{request.name}`; run the cell that computes it"
            )
    else:
        reply = box.call(
            request.function,
            request.args,
            dict(request.kwargs),
            grad=request.grad,
            return_args=request.return_args,
        )
        name = request.function
        if reply.get("missing"):
            raise CheckFailed(
                f"the submission defines no function `{name}`; keep the name given in the assignment"
            )
        raised = reply.get("raised")
        if raised is not None:
            raised = str(raised)
            if raised.split(":")[0] == "NotImplementedError":
                raise CheckFailed(
                    f"`{name}` is not implemented yet (it raised NotImplementedError)"
                )
            raise CheckFailed(f"`{name}` raised {raised}")
    bufs = reply.get("_buffers", [])
    try:
        grad_error = reply.get("grad_error")
        return Outcome(
            value=decode(reply.get("value"), bufs),
            args=tuple(decode(reply["args"], bufs)) if "args" in reply else (),
            grads=tuple(decode(reply["grads"], bufs)) if "grads" in reply else (),
            grad_error=None if grad_error is None else str(grad_error)[:600],
        )
    except ProtocolError as err:
        raise CheckFailed(
            f"what the submission sent back could not be read ({err})"
        ) from None


def _run_check(check: Check, case: Case, box: Sandbox) -> CheckResult:
    def result(earned: float, feedback: str = "", error: bool = False) -> CheckResult:
        return CheckResult(check.name, check.points, earned, feedback, error)

    try:
        requests = list(check.inputs(case))
        outcomes = [_ask(box, r) for r in requests]
        check.compare(case, requests, outcomes)
    except CheckFailed as err:
        return result(0.0, str(err))
    except ReferenceUnavailable as err:
        return result(0.0, str(err), error=True)
    except SandboxStopped:
        raise
    except Exception as err:
        tb = traceback.format_exception_only(type(err), err)[-1].strip()
        return result(0.0, f"the check crashed on this submission's output: {tb}")
    return result(check.points)


def _id_check(submitted: Any, student_id: str | None) -> tuple[CheckResult, str]:
    """The "submitted for this student" check, and the id whose data are graded."""
    sid = student_id if student_id is not None else submitted
    if sid is None:
        why = "no `STUDENT_ID` in the submission and no --student-id given"
        return CheckResult(ID_CHECK, 1, 0.0, why), "unknown"
    if not isinstance(sid, str) or not sid.strip():
        why = f"the submission's STUDENT_ID must be a non-empty roster id; got {sid!r}"
        return CheckResult(ID_CHECK, 1, 0.0, why[:300]), "unknown"
    sid = sid.strip()
    ok = isinstance(submitted, str) and submitted.strip() == sid
    if ok:
        why = ""
    elif submitted is None:
        why = "the submission sets no `STUDENT_ID`"
    else:
        shown = (
            submitted if isinstance(submitted, int | float | str) else "a non-string"
        )
        why = (
            f"the submission's STUDENT_ID is {shown!r}, not {sid!r}: "
            "its answers were computed on another student's data"
        )
    return CheckResult(ID_CHECK, 1, 1.0 if ok else 0.0, why[:300]), sid


def grade(
    assignment: str,
    submission: str | Path,
    *,
    student_id: str | None = None,
    timeout: float = 300.0,
    memory_mb: int = 4096,
    sandbox: str = "auto",
    salt: str = "",
) -> GradeReport:
    """Grade ``submission`` for ``assignment``; every point is decided by the grader.

    Parameters
    ----------
    assignment : str
        An assignment name (see :func:`hubrepro.classroom.list_assignments`).
    submission : path
        The student's ``.ipynb`` notebook, ``.py`` module or jupytext ``.md`` notebook.
    student_id : str, optional
        The student whose data variant the answers are checked on (and whose hidden
        inputs are drawn). Default: the submission's ``STUDENT_ID``. When both are
        given and differ, the "submitted for this student" check fails.
    timeout : float, default 300
        Seconds the submission may spend running its cells and answering the checks
        (wall clock; the grader's own work does not count). Must be positive.
    memory_mb : int, default 4096
        Address space the submission may use beyond the libraries loaded before it.
    sandbox : {"auto", "bwrap", "none"}, default "auto"
        OS isolation: ``"bwrap"`` (bubblewrap; an error if it cannot run here),
        ``"none"`` (a child process with limits only), ``"auto"`` (bwrap where it
        works). The report's ``sandbox`` says which one ran.
    salt : str, default ""
        A teacher's secret mixed into the seeds of the hidden inputs, so that they
        cannot be computed before grading.

    Returns
    -------
    GradeReport
        Per-check feedback and the score; ``report.passed`` is true when every check
        passed.

    Raises
    ------
    ValueError
        Unknown assignment, a timeout that is not positive, an unknown or unusable
        ``sandbox``, an unreadable submission. FileNotFoundError: no such submission.
        RuntimeError: the grading sandbox could not start.

    Book
    ----
    :ref:`sec-classroom-collect-grade`.
    """
    spec = get_assignment(assignment, func="grade")
    limits = Limits(timeout=timeout, memory_mb=memory_mb)
    limits.check("grade")
    if student_id is not None:
        student_seed(spec.name, student_id)  # refuses an empty or non-string id
        student_id = student_id.strip()
    if not isinstance(salt, str):
        fail("grade", "salt", "a str", repr(salt), exc=TypeError)
    cells = submission_cells(submission)
    isolation = resolve_isolation(sandbox)
    path = str(Path(submission))

    results: list[CheckResult] = []
    cell_errors: list[str] = []
    sid = student_id or "unknown"
    with Sandbox(isolation=isolation, limits=limits, serve_data=_serve_data) as box:
        try:
            cell_errors = box.run_cells(cells)
            reply = box.value("STUDENT_ID")
            try:
                submitted = (
                    None
                    if reply.get("missing")
                    else decode(reply.get("value"), reply["_buffers"])
                )
            except ProtocolError:
                submitted = None
            id_result, sid = _id_check(submitted, student_id)
            results.append(id_result)
            case_data = student_data(spec.name, sid)
            cache: dict[str, Any] = {}
            for check in spec.checks:
                case = Case(spec.name, sid, check.name, case_data, salt, cache)
                results.append(_run_check(check, case, box))
        except SandboxStopped as stop:
            done = {r.name for r in results}
            for name, points in [(ID_CHECK, 1.0)] + [
                (c.name, c.points) for c in spec.checks
            ]:
                if name not in done:
                    results.append(
                        CheckResult(name, points, 0.0, f"not graded: {stop}")
                    )
    return GradeReport(
        spec.name,
        sid,
        path,
        tuple(results),
        tuple(cell_errors),
        sandbox=describe(isolation),
    )
