"""Assignment 1: the k-occurrence of a similarity matrix and its skewness.

The notebook is ``assignments/a1_k_occurrence_skewness.md``; this module is the grader's half:
the student's data variant and the checks. Book: :ref:`sec-classroom-assignments-list`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from hubrepro.classroom.assignments._checks import (
    answer_close,
    ask,
    choice,
    close,
    kind,
    number_of,
    randint,
    tensor_of,
    unchanged,
    unit_rows,
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


def _a1_data(seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    n_query, n_gallery = randint(g, 150, 250), randint(g, 100, 200)
    d, k = choice(g, [16, 32, 64, 128]), choice(g, [5, 10])
    query, gallery = unit_rows(n_query, d, g), unit_rows(n_gallery, d, g)
    return {"seed": seed, "k": k, "dim": d, "sims": query @ gallery.T}


def _a1_kocc_inputs(case: Case) -> list[Call]:
    g = case.generator()
    n_small = randint(g, 8, 12)
    shapes = [
        (randint(g, 20, 40), randint(g, 30, 50), 5),
        (randint(g, 40, 60), randint(g, 15, 25), 1),
        (
            randint(g, 8, 16),
            n_small,
            n_small,
        ),  # k = n_gallery: every column, every row
        (randint(g, 150, 250), 64, 7),
    ]
    return [
        Call(
            "k_occurrence", (torch.randn(n_q, n_g, generator=g, dtype=torch.float64), k)
        )
        for n_q, n_g, k in shapes
    ]


def _a1_kocc(case: Case, requests: Sequence[Call], outcomes: Sequence[Outcome]) -> None:
    k_occurrence = reference("hubrepro.hubness.k_occurrence")
    for call, out in zip(requests, outcomes, strict=True):
        sims, k = call.args
        n_q, n_g = sims.shape
        got = tensor_of(out.value, "k_occurrence's result")
        want = k_occurrence(sims, k=k)
        if tuple(got.shape) != (n_g,):
            raise CheckFailed(
                f"k_occurrence on a {n_q}x{n_g} matrix must return one count per gallery column ({n_g},); got shape {tuple(got.shape)}"
            )
        if not torch.equal(got.long().cpu(), want.long().cpu()):
            diff = int((got.long().cpu() != want.long().cpu()).sum())
            raise CheckFailed(
                f"k_occurrence({n_q}x{n_g} matrix, k={k}) differs from the reference in {diff} of {n_g} counts (the counts must sum to n_query * k = {n_q * k}; got {int(got.sum())})"
            )


def _a1_skew_inputs(case: Case) -> list[Call]:
    g = case.generator()
    cases = [
        torch.tensor([0, 0, 1, 5, 14]),
        torch.tensor([3, 3, 3, 4, 2, 9, 0, 0, 1]),
        torch.full((7,), 3),  # every item equally often: 0
        torch.poisson(torch.full((randint(g, 200, 400),), 4.0), generator=g).long(),
        torch.randint(0, 30, (randint(g, 40, 80),), generator=g),
    ]
    return [Call("skewness", (n_k,)) for n_k in cases]


def _a1_skew(case: Case, requests: Sequence[Call], outcomes: Sequence[Outcome]) -> None:
    skewness = reference("hubrepro.hubness.skewness")
    for call, out in zip(requests, outcomes, strict=True):
        (n_k,) = call.args
        close(
            number_of(out.value, "skewness's result"),
            number_of(skewness(n_k), "reference"),
            f"skewness of {n_k.tolist()[:6]}... (length {n_k.numel()})",
        )


def _a1_pure_inputs(case: Case) -> list[Call]:
    g = case.generator()
    sims = torch.randn(randint(g, 15, 25), randint(g, 10, 20), generator=g)
    n_k = torch.randint(0, 8, (randint(g, 5, 9),), generator=g)
    return [
        Call("k_occurrence", (sims, 3), return_args=True),
        Call("skewness", (n_k,), return_args=True),
    ]


def _a1_pure(case: Case, requests: Sequence[Call], outcomes: Sequence[Outcome]) -> None:
    def correct(requests: Sequence[Call], outcomes: Sequence[Outcome]) -> None:
        try:
            _a1_kocc(case, requests[:1], outcomes[:1])
            _a1_skew(case, requests[1:], outcomes[1:])
        except CheckFailed as err:
            raise CheckFailed(
                f"the inputs were left unchanged, but the results must be right too: {err}"
            ) from None

    unchanged(requests, outcomes, correct)


def _a1_n_k(case: Case) -> torch.Tensor:
    if "n_k" not in case.cache:
        case.cache["n_k"] = reference("hubrepro.hubness.k_occurrence")(
            case.data["sims"], k=case.data["k"]
        )
    return case.cache["n_k"]


def _a1_answer_skew(case: Case, requests, outcomes: Sequence[Outcome]) -> None:
    want = number_of(reference("hubrepro.hubness.skewness")(_a1_n_k(case)), "reference")
    answer_close(
        outcomes[0].value, "answer_skewness", want, "answer_skewness on your data"
    )


def _a1_answer_hub(case: Case, requests, outcomes: Sequence[Outcome]) -> None:
    n_k = _a1_n_k(case)
    got = outcomes[0].value
    try:
        idx = int(got)
    except (TypeError, ValueError):
        shown = got if isinstance(got, int | float | str) else kind(got)
        raise CheckFailed(
            f"answer_top_hub must be a gallery index (int); got {shown!r}"
        ) from None
    if not 0 <= idx < n_k.numel():
        raise CheckFailed(f"answer_top_hub must be in [0, {n_k.numel()}); got {idx}")
    if int(n_k[idx]) != int(n_k.max()):
        raise CheckFailed(
            f"gallery item {idx} occurs {int(n_k[idx])} times, but the largest k-occurrence on your data is {int(n_k.max())}"
        )


ASSIGNMENT = Assignment(
    name="a1_k_occurrence_skewness",
    title="k-occurrence and its skewness",
    functions=("k_occurrence", "skewness"),
    answers=("answer_skewness", "answer_top_hub"),
    make_data=_a1_data,
    references=("hubrepro.hubness.k_occurrence", "hubrepro.hubness.skewness"),
    checks=(
        Check(
            "k_occurrence matches the library",
            3,
            "hidden matrices, several shapes and k, against hubrepro.hubness.k_occurrence",
            _a1_kocc_inputs,
            _a1_kocc,
        ),
        Check(
            "skewness matches the library",
            2,
            "hand-made and random count vectors, against hubrepro.hubness.skewness",
            _a1_skew_inputs,
            _a1_skew,
        ),
        Check(
            "inputs are not modified",
            1,
            "both functions leave their arguments unchanged (and return the right result)",
            _a1_pure_inputs,
            _a1_pure,
        ),
        Check(
            "answer_skewness on your data",
            2,
            "skewness of N_k on the student's matrix",
            ask("answer_skewness"),
            _a1_answer_skew,
        ),
        Check(
            "answer_top_hub on your data",
            1,
            "an index of the largest N_k",
            ask("answer_top_hub"),
            _a1_answer_hub,
        ),
    ),
)
