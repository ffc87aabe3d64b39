"""The classroom: assignments authored once, student versions, per-student data, autograding.

- :func:`build_assignments` turns each authored assignment of ``assignments/`` into a
  student notebook (solutions replaced by ``raise NotImplementedError``) and a solution
  notebook (``make assignments``).
- :func:`student_data` draws a student's own variant of the data from their id, so
  answers differ between students.
- :func:`grade` runs a submitted notebook or module in a sandboxed child process that
  only answers the grader's requests (call this function on these hidden inputs, send
  back this variable); the grader compares the outputs with the library's reference
  implementations itself and decides every point.

Modules: ``core`` (how a check is written, what a report holds), ``assignments`` (one
module per assignment: its data and checks), ``grading`` (the grader), ``sandbox`` and
``isolation`` (the child process and what it can see), ``_harness`` (the program the
child runs), ``authoring`` (student and solution builds).

Command line: ``python -m hubrepro.classroom {list,build,grade}`` (also
``hubrepro classroom ...``). Book: :ref:`sec-classroom`.
"""

from __future__ import annotations

from hubrepro.classroom.assignments import (
    ASSIGNMENTS,
    get_assignment,
    list_assignments,
    student_data,
)
from hubrepro.classroom.authoring import (
    build_assignments,
    solution_source,
    strip_solutions,
)
from hubrepro.classroom.core import (
    Answer,
    Assignment,
    Call,
    Case,
    Check,
    CheckFailed,
    CheckResult,
    GradeReport,
    Outcome,
    reference,
    student_seed,
)
from hubrepro.classroom.grading import grade, submission_cells

__all__ = [
    "ASSIGNMENTS",
    "Answer",
    "Assignment",
    "Call",
    "Case",
    "Check",
    "CheckFailed",
    "CheckResult",
    "GradeReport",
    "Outcome",
    "build_assignments",
    "get_assignment",
    "grade",
    "list_assignments",
    "reference",
    "solution_source",
    "strip_solutions",
    "student_data",
    "student_seed",
    "submission_cells",
]
