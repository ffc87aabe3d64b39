"""The graded assignments: each student's data variant and the checks run on a submission.

Every assignment of ``assignments/`` that the grader knows has a module here, named
like its notebook, that defines its ``ASSIGNMENT``: the functions and answer variables
the student must provide, a seeded data variant per student (:func:`student_data`),
and its checks. Each check draws **hidden inputs** from a seed of the student and the
check (no two students see the same ones, and with the teacher's ``--salt`` none can
be computed in advance), names the student function to call on them or the answer
variable to read, and compares what comes back with the reference implementation in
:mod:`hubrepro`, looked up by name (:func:`hubrepro.classroom.reference`) in the
grader's own process. The submission never sees the reference, the expected values or
the points, and the grader never carries a second implementation of the solution.

Book: :ref:`sec-classroom-authoring`.
"""

from __future__ import annotations

from typing import Any

from hubrepro._validation import fail
from hubrepro.classroom.assignments import (
    a1_k_occurrence_skewness,
    a2_inverted_softmax,
    a3_hubness_vs_dimension,
    a4_neighbor_adjusting_loss,
    a5_centrality_weight,
)
from hubrepro.classroom.core import Assignment, student_seed

__all__ = [
    "ASSIGNMENTS",
    "get_assignment",
    "list_assignments",
    "student_data",
]

ASSIGNMENTS: dict[str, Assignment] = {
    m.ASSIGNMENT.name: m.ASSIGNMENT
    for m in (
        a1_k_occurrence_skewness,
        a2_inverted_softmax,
        a3_hubness_vs_dimension,
        a4_neighbor_adjusting_loss,
        a5_centrality_weight,
    )
}


def list_assignments() -> list[str]:
    """Names of the assignments the grader knows."""
    return list(ASSIGNMENTS)


def get_assignment(name: str, *, func: str = "get_assignment") -> Assignment:
    """The :class:`~hubrepro.classroom.core.Assignment` called ``name``.

    Raises ``ValueError`` listing the known names when there is none.
    """
    if not isinstance(name, str):
        fail(func, "assignment", "a str", repr(name), exc=TypeError)
    if name not in ASSIGNMENTS:
        fail(func, "assignment", "one of " + ", ".join(ASSIGNMENTS), repr(name))
    return ASSIGNMENTS[name]


def student_data(assignment: str, student_id: str) -> dict[str, Any]:
    """Return the data variant of ``assignment`` for ``student_id``.

    Sizes, dimensions and hyperparameters vary with the student, drawn from a seed that
    hashes the assignment name and the id (:func:`hubrepro.classroom.student_seed`),
    so neighbours in a class get different answers while the teacher's grader
    regenerates each student's data. While a submission is graded, the same call in
    the submission is answered by the grader (the library itself is hidden there).

    Parameters
    ----------
    assignment : str
        An assignment name (:func:`list_assignments`).
    student_id : str
        The id from the class roster.

    Returns
    -------
    dict
        Tensors and settings named in the assignment notebook (e.g. ``sims``, ``k``),
        plus the ``seed`` used.

    Book
    ----
    :ref:`sec-classroom-hand-out`.

    Examples
    --------
    >>> a = student_data("a1_k_occurrence_skewness", "ada")
    >>> b = student_data("a1_k_occurrence_skewness", "ada")
    >>> bool((a["sims"] == b["sims"]).all()), a["k"] in (5, 10)
    (True, True)
    """
    spec = get_assignment(assignment, func="student_data")
    return spec.make_data(student_seed(spec.name, student_id))
