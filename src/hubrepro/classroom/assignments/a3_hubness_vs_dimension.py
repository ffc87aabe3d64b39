"""Assignment 3: the skewness of the k-occurrence as a function of the dimension.

The notebook is ``assignments/a3_hubness_vs_dimension.md``; this module is the grader's half:
the student's data variant and the checks. Book: :ref:`sec-classroom-assignments-list`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from hubrepro.classroom.assignments._checks import (
    ask,
    choice,
    close,
    kind,
    number_of,
    randint,
)
from hubrepro.classroom.core import (
    Assignment,
    Call,
    Case,
    Check,
    CheckFailed,
    Outcome,
    reference,
)

__all__ = ["ASSIGNMENT"]


def _a3_data(seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    n, k = randint(g, 200, 400), choice(g, [5, 10])
    dims = [2, 8, 32, 128, choice(g, [256, 512])]
    return {
        "seed": seed,
        "k": k,
        "n": n,
        "dims": dims,
        "samples": [torch.randn(n, d, generator=g) for d in dims],
    }


def _curve_reference(samples: list[torch.Tensor], k: int) -> list[float]:
    kocc = reference("hubrepro.hubness.k_occurrence_from_embeddings")
    skewness = reference("hubrepro.hubness.skewness")
    return [number_of(skewness(kocc(x, k=k)), "reference") for x in samples]


def _student_curve(got: Any, n: int) -> list[float]:
    if not isinstance(got, list | tuple | torch.Tensor) and not hasattr(got, "shape"):
        raise CheckFailed(
            f"hubness_curve must return a list of numbers; got {kind(got)}"
        )
    values = [number_of(v, "each value of the curve") for v in got]
    if len(values) != n:
        raise CheckFailed(
            f"hubness_curve must return one skewness per sample ({n}); got {len(values)}"
        )
    return values


def _a3_curve_inputs(case: Case) -> list[Call]:
    g = case.generator()
    samples = [
        torch.randn(randint(g, 70, 90), 3, generator=g, dtype=torch.float64),
        torch.randn(randint(g, 70, 90), 50, generator=g, dtype=torch.float64),
        torch.rand(randint(g, 50, 70), 20, generator=g, dtype=torch.float64),
    ]
    return [Call("hubness_curve", (samples, k)) for k in (1, 5)]


def _a3_curve(
    case: Case, requests: Sequence[Call], outcomes: Sequence[Outcome]
) -> None:
    for call, out in zip(requests, outcomes, strict=True):
        samples, k = call.args
        got = _student_curve(out.value, len(samples))
        for i, (a, b) in enumerate(zip(got, _curve_reference(samples, k), strict=True)):
            close(
                a,
                b,
                f"hubness_curve, sample {i} ({samples[i].shape[0]} points in dimension {samples[i].shape[1]}, k={k}); remember to leave each point out of its own neighbours",
            )


def _a3_student_reference(case: Case) -> list[float]:
    # computed once per grading: two checks compare with it
    if "curve" not in case.cache:
        case.cache["curve"] = _curve_reference(case.data["samples"], case.data["k"])
    return case.cache["curve"]


def _a3_answer_curve(case: Case, requests, outcomes: Sequence[Outcome]) -> None:
    got = _student_curve(outcomes[0].value, len(case.data["dims"]))
    for d, a, b in zip(
        case.data["dims"], got, _a3_student_reference(case), strict=True
    ):
        close(a, b, f"answer_curve at dimension {d} on your data")


def _a3_answer_grows(case: Case, requests, outcomes: Sequence[Outcome]) -> None:
    ref = _a3_student_reference(case)
    got = outcomes[0].value
    if not isinstance(got, bool):
        shown = got if isinstance(got, int | float | str) else kind(got)
        raise CheckFailed(f"answer_grows must be True or False; got {shown!r}")
    if got != (ref[-1] > ref[0]):
        raise CheckFailed(
            "answer_grows does not describe your curve: compare its first and last values"
        )


ASSIGNMENT = Assignment(
    name="a3_hubness_vs_dimension",
    title="Hubness grows with dimension",
    functions=("hubness_curve",),
    answers=("answer_curve", "answer_grows"),
    make_data=_a3_data,
    references=(
        "hubrepro.hubness.k_occurrence_from_embeddings",
        "hubrepro.hubness.skewness",
    ),
    checks=(
        Check(
            "hubness_curve matches the library",
            3,
            "hidden samples, k in {1, 5}, against hubrepro.hubness",
            _a3_curve_inputs,
            _a3_curve,
        ),
        Check(
            "answer_curve on your data",
            2,
            "the skewness at each of your dimensions",
            ask("answer_curve"),
            _a3_answer_curve,
        ),
        Check(
            "answer_grows on your data",
            1,
            "does the skewness grow from the smallest to the largest dimension?",
            ask("answer_grows"),
            _a3_answer_grows,
        ),
    ),
)
