"""Assignment 4: the neighbour adjusting loss of NeighborRetr, value and gradient.

The notebook is ``assignments/a4_neighbor_adjusting_loss.md``; this module is the grader's half:
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
    number_of,
    randint,
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


def _a4_inputs(
    b: int, g: torch.Generator, dtype=torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    x = unit_rows(b, 16, g, dtype)
    y = x + 0.6 * torch.randn(b, 16, generator=g, dtype=dtype)
    y = y / y.norm(dim=1, keepdim=True)
    bank = unit_rows(3 * b, 16, g, dtype)
    sims = x @ y.T
    centrality = (bank @ y.T).mean(dim=0)
    return sims, centrality


def _nal_reference(
    sims: torch.Tensor, centrality: torch.Tensor, k: int, tau: float
) -> torch.Tensor:
    nal = reference("hubrepro.losses.neighbor_adjusting_loss")
    return nal(sims, centrality, k=k, tau=tau, stats="neighbours", detach_targets=True)


def _a4_data(seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    b, k, tau = randint(g, 40, 64), choice(g, [5, 8, 10]), choice(g, [1.0, 3.0, 5.0])
    sims, centrality = _a4_inputs(b, g, torch.float32)
    return {
        "seed": seed,
        "k": k,
        "tau": tau,
        "sims": sims,
        "candidate_centrality": centrality,
    }


def _a4_value_inputs(case: Case) -> list[Call]:
    g = case.generator()
    b_all = randint(g, 22, 28)
    calls = []
    for b, k, tau in [
        (randint(g, 10, 14), 3, 3.0),
        (randint(g, 26, 34), 10, 1.0),
        (b_all, b_all - 1, 5.0),  # every other column is a neighbour
    ]:
        sims, cen = _a4_inputs(b, g)
        calls.append(Call("neighbor_adjusting_loss", (sims, cen, k, tau)))
    return calls


def _a4_value(
    case: Case, requests: Sequence[Call], outcomes: Sequence[Outcome]
) -> None:
    for call, out in zip(requests, outcomes, strict=True):
        sims, cen, k, tau = call.args
        close(
            number_of(out.value, "the loss"),
            number_of(_nal_reference(sims, cen, k, tau), "reference"),
            f"the loss on a batch of {sims.shape[0]} with k={k}, tau={tau}",
            rtol=1e-6,
        )


def _a4_grad_inputs(case: Case) -> list[Call]:
    g = case.generator()
    sims, cen = _a4_inputs(randint(g, 18, 24), g)
    return [Call("neighbor_adjusting_loss", (sims, cen, 5, 3.0), grad=(0,))]


def _a4_grad(case: Case, requests: Sequence[Call], outcomes: Sequence[Outcome]) -> None:
    sims, cen, k, tau = requests[0].args
    out = outcomes[0]
    if not isinstance(out.value, torch.Tensor) or not out.value.requires_grad:
        raise CheckFailed(
            "the loss must be a scalar tensor that carries gradients back to `sims`"
        )
    if out.grad_error is not None:
        raise CheckFailed(f"backward through the loss failed: {out.grad_error}")
    want = sims.clone().requires_grad_(True)
    _nal_reference(want, cen, k, tau).backward()
    got = out.grads[0]
    if not (
        isinstance(got, torch.Tensor)
        and got.shape == want.grad.shape
        and torch.allclose(got.to(want.grad.dtype), want.grad, rtol=1e-6, atol=1e-9)
    ):
        raise CheckFailed(
            "the gradient with respect to `sims` differs from the reference (are the soft targets detached, and restricted to the ground truth and the k neighbours?)"
        )


def _a4_answer(case: Case, requests, outcomes: Sequence[Outcome]) -> None:
    d = case.data
    want = number_of(
        _nal_reference(d["sims"], d["candidate_centrality"], d["k"], d["tau"]),
        "reference",
    )
    answer_close(
        outcomes[0].value, "answer_loss", want, "answer_loss on your batch", rtol=1e-4
    )


ASSIGNMENT = Assignment(
    name="a4_neighbor_adjusting_loss",
    title="The neighbour adjusting loss of NeighborRetr",
    functions=("neighbor_adjusting_loss",),
    answers=("answer_loss",),
    make_data=_a4_data,
    references=("hubrepro.losses.neighbor_adjusting_loss",),
    checks=(
        Check(
            "the loss matches the library",
            3,
            "hidden batches, several k and tau, against hubrepro.losses.neighbor_adjusting_loss",
            _a4_value_inputs,
            _a4_value,
        ),
        Check(
            "the gradient matches the library",
            2,
            "autograd through the student's loss equals the reference gradient",
            _a4_grad_inputs,
            _a4_grad,
        ),
        Check(
            "answer_loss on your data",
            1,
            "the loss on the student's batch",
            ask("answer_loss"),
            _a4_answer,
        ),
    ),
)
