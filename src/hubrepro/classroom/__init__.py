"""The classroom: assignments authored once, student versions, per-student data, autograding.

- :func:`build_assignments` turns each authored assignment of ``assignments/`` into a
  student notebook (solutions replaced by ``raise NotImplementedError``) and a solution
  notebook (``make assignments``).
- :func:`student_data` draws a student's own variant of the data from their id, so
  answers differ between students.
- :func:`grade` runs a submitted notebook or module and checks it against the library's
  reference implementations, with per-check feedback and a score.

Command line: ``python -m hubrepro.classroom {list,build,grade}`` (also
``hubrepro classroom ...``). Book: :ref:`sec-classroom`.
"""

from __future__ import annotations

from hubrepro.classroom.assignments import (
    ASSIGNMENTS,
    Assignment,
    Check,
    get_assignment,
    list_assignments,
    student_data,
    student_seed,
)
from hubrepro.classroom.authoring import (
    build_assignments,
    solution_source,
    strip_solutions,
)
from hubrepro.classroom.grading import CheckResult, GradeReport, grade, load_submission

__all__ = [
    "ASSIGNMENTS",
    "Assignment",
    "Check",
    "CheckResult",
    "GradeReport",
    "build_assignments",
    "get_assignment",
    "grade",
    "list_assignments",
    "load_submission",
    "solution_source",
    "strip_solutions",
    "student_data",
    "student_seed",
]
