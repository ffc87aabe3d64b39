"""Assignment 2: the inverted softmax with a query bank, in the log domain.

The notebook is ``assignments/a2_inverted_softmax.md``; this module is the grader's half:
the student's data variant and the checks. Book: :ref:`sec-classroom-assignments-list`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from hubrepro.classroom.assignments._checks import (
    answer_close,
    ask,
    choice,
    kind,
    randint,
    same_order,
    tensor_of,
    unchanged,
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


def _hubby_pair(
    n_query: int,
    n_gallery: int,
    n_bank: int,
    d: int,
    g: torch.Generator,
    dtype=torch.float32,
) -> dict[str, torch.Tensor]:
    # a shared latent plus noise, the gallery pushed along one direction: a cone with hubs
    shift = torch.zeros(d, dtype=torch.float64)
    shift[0] = 1.5
    z = torch.randn(max(n_query, n_gallery), d, generator=g, dtype=torch.float64)
    gallery = (
        z[:n_gallery]
        + 0.9 * torch.randn(n_gallery, d, generator=g, dtype=torch.float64)
        + shift
    )
    query = z[:n_query] + 0.9 * torch.randn(
        n_query, d, generator=g, dtype=torch.float64
    )
    bank = torch.randn(n_bank, d, generator=g, dtype=torch.float64) * math.sqrt(
        1 + 0.81
    )
    unit = [(x / x.norm(dim=1, keepdim=True)).to(dtype) for x in (query, gallery, bank)]
    q, gal, b = unit
    return {"sims": q @ gal.T, "bank_query_sims": b @ gal.T}


def _a2_data(seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    n = randint(g, 200, 300)
    d, beta = choice(g, [16, 24, 32]), choice(g, [10.0, 20.0, 30.0])
    return {"seed": seed, "beta": beta, "dim": d, **_hubby_pair(n, n, 2 * n, d, g)}


def _is_reference(sims: torch.Tensor, bank: torch.Tensor, beta: float) -> torch.Tensor:
    return reference("hubrepro.normalize.normalize")(
        "is", sims, bank_query_sims=bank, beta_query=beta
    )


def _a2_shape_inputs(case: Case) -> list[Call]:
    g = case.generator()
    n_q, n_g, n_b = randint(g, 15, 25), randint(g, 26, 34), randint(g, 30, 50)
    d = _hubby_pair(n_q, n_g, n_b, 8, g)
    return [Call("inverted_softmax", (d["sims"], d["bank_query_sims"], 20.0))]


def _a2_shape(
    case: Case, requests: Sequence[Call], outcomes: Sequence[Outcome]
) -> None:
    sims, got = requests[0].args[0], outcomes[0].value
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(
            f"inverted_softmax must return a torch.Tensor; got {kind(got)}"
        )
    if got.shape != sims.shape or got.dtype != sims.dtype:
        raise CheckFailed(
            f"inverted_softmax must keep the shape {tuple(sims.shape)} and dtype {sims.dtype} of `sims`; got {tuple(got.shape)}, {got.dtype}"
        )
    _a2_right(requests, outcomes, "the shape and dtype are kept, but the ranking")


def _a2_right(requests: Sequence[Call], outcomes: Sequence[Outcome], what: str) -> None:
    """A float32 result ranks like the float64 reference (a property earns nothing alone)."""
    sims, bank, beta = requests[0].args
    same_order(
        tensor_of(outcomes[0].value, "inverted_softmax's result"),
        _is_reference(sims.double(), bank.double(), beta),
        f"{what} must be right too; IS with beta={beta:g}",
        rtol=1e-5,
    )


def _a2_ranking_inputs(case: Case) -> list[Call]:
    g = case.generator()
    calls = []
    for n_q, n_g, n_b, beta in [
        (randint(g, 35, 45), randint(g, 25, 35), randint(g, 70, 90), 1.0),
        (randint(g, 55, 65), randint(g, 45, 55), randint(g, 110, 130), 20.0),
        (randint(g, 20, 30), randint(g, 65, 75), randint(g, 30, 36), 5.0),
    ]:
        d = _hubby_pair(n_q, n_g, n_b, 12, g, dtype=torch.float64)
        calls.append(Call("inverted_softmax", (d["sims"], d["bank_query_sims"], beta)))
    return calls


def _a2_ranking(
    case: Case, requests: Sequence[Call], outcomes: Sequence[Outcome]
) -> None:
    for call, out in zip(requests, outcomes, strict=True):
        sims, bank, beta = call.args
        same_order(
            tensor_of(out.value, "inverted_softmax's result"),
            _is_reference(sims, bank, beta),
            f"IS with beta={beta} on a {sims.shape[0]}x{sims.shape[1]} matrix and a bank of {bank.shape[0]}",
        )


def _a2_logdomain_inputs(case: Case) -> list[Call]:
    g = case.generator()
    n_q, n_g, n_b = randint(g, 45, 55), randint(g, 35, 45), randint(g, 350, 450)
    d = _hubby_pair(n_q, n_g, n_b, 16, g)
    beta = 1000.0  # exp(1000 * 0.9) overflows float32 and float64
    return [Call("inverted_softmax", (d["sims"], d["bank_query_sims"], beta))]


def _a2_logdomain(
    case: Case, requests: Sequence[Call], outcomes: Sequence[Outcome]
) -> None:
    sims, bank, beta = requests[0].args
    same_order(
        tensor_of(outcomes[0].value, "inverted_softmax's result"),
        _is_reference(sims.double(), bank.double(), beta),
        f"IS with beta={beta:g} in float32 (the log domain keeps it finite)",
        rtol=1e-5,
    )


def _a2_pure_inputs(case: Case) -> list[Call]:
    g = case.generator()
    d = _hubby_pair(randint(g, 8, 12), randint(g, 10, 14), randint(g, 12, 18), 6, g)
    return [
        Call(
            "inverted_softmax",
            (d["sims"], d["bank_query_sims"], 20.0),
            return_args=True,
        )
    ]


def _a2_pure(case: Case, requests: Sequence[Call], outcomes: Sequence[Outcome]) -> None:
    unchanged(
        requests,
        outcomes,
        lambda r, o: _a2_right(r, o, "the inputs were left unchanged, but the ranking"),
    )


def _r1(sims: torch.Tensor) -> float:
    res = reference("hubrepro.retrieval.evaluate_retrieval")(sims)
    return float(res["query_to_gallery"]["R@1"])


def _a2_answer_plain(case: Case, requests, outcomes: Sequence[Outcome]) -> None:
    answer_close(
        outcomes[0].value,
        "answer_r1_plain",
        _r1(case.data["sims"]),
        "answer_r1_plain (R@1 in percent, no normalisation) on your data",
        rtol=1e-3,
    )


def _a2_answer_is(case: Case, requests, outcomes: Sequence[Outcome]) -> None:
    d = case.data
    want = _r1(_is_reference(d["sims"], d["bank_query_sims"], d["beta"]))
    answer_close(
        outcomes[0].value,
        "answer_r1_is",
        want,
        "answer_r1_is (R@1 in percent after IS) on your data",
        rtol=1e-3,
    )


ASSIGNMENT = Assignment(
    name="a2_inverted_softmax",
    title="Inverted softmax in the log domain",
    functions=("inverted_softmax",),
    answers=("answer_r1_plain", "answer_r1_is"),
    make_data=_a2_data,
    references=(
        "hubrepro.normalize.normalize",
        "hubrepro.retrieval.evaluate_retrieval",
    ),
    checks=(
        Check(
            "shape and dtype are kept",
            1,
            "same shape and dtype as `sims` (and the ranking right)",
            _a2_shape_inputs,
            _a2_shape,
        ),
        Check(
            "rankings match the library's IS",
            3,
            "per-row rankings against hubrepro.normalize.normalize('is', ...)",
            _a2_ranking_inputs,
            _a2_ranking,
        ),
        Check(
            "log domain: finite for a large beta",
            2,
            "beta = 1000 in float32 must neither overflow nor change the ranking",
            _a2_logdomain_inputs,
            _a2_logdomain,
        ),
        Check(
            "inputs are not modified",
            1,
            "`sims` and `bank_query_sims` unchanged (and the ranking right)",
            _a2_pure_inputs,
            _a2_pure,
        ),
        Check(
            "answer_r1_plain on your data",
            1,
            "R@1 of the raw similarities",
            ask("answer_r1_plain"),
            _a2_answer_plain,
        ),
        Check(
            "answer_r1_is on your data",
            2,
            "R@1 after IS with your beta",
            ask("answer_r1_is"),
            _a2_answer_is,
        ),
    ),
)
