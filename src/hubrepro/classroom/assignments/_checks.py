"""What the checks of every assignment share: reading outcomes, comparing, drawing inputs.

Comparisons raise :class:`~hubrepro.classroom.core.CheckFailed` with the feedback the
student reads; nothing here knows a solution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from hubrepro.classroom._harness import Unsupported
from hubrepro.classroom.core import Answer, Case, CheckFailed, Outcome


def kind(x: Any) -> str:
    return x.type_name if isinstance(x, Unsupported) else type(x).__name__


def tensor_of(x: Any, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        import numpy as np

        return torch.as_tensor(np.asarray(x))
    except Exception:
        raise CheckFailed(f"{what} must be a tensor or array; got {kind(x)}") from None


def number_of(x: Any, what: str) -> float:
    try:
        t = torch.as_tensor(
            x.detach() if isinstance(x, torch.Tensor) else x, dtype=torch.float64
        )
    except Exception:
        raise CheckFailed(f"{what} must be a number; got {kind(x)}") from None
    if t.numel() != 1:
        raise CheckFailed(f"{what} must be a single number; got shape {tuple(t.shape)}")
    return float(t.reshape(()))


def close(
    got: float, want: float, what: str, *, rtol: float = 1e-4, atol: float = 1e-6
) -> None:
    if not (math.isfinite(got) and abs(got - want) <= atol + rtol * abs(want)):
        raise CheckFailed(f"{what}: expected {want:.6g}, got {got:.6g}")


def answer_close(
    got: Any, name: str, want: float, what: str, *, rtol: float = 1e-4
) -> None:
    """Compare the student's answer ``got`` (variable ``name``) with the reference ``want``."""
    close(number_of(got, name), want, what, rtol=rtol)


def unit_rows(
    n: int,
    d: int,
    g: torch.Generator,
    dtype=torch.float32,
    shift: torch.Tensor | None = None,
) -> torch.Tensor:
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    if shift is not None:
        x = x + shift
    return (x / x.norm(dim=1, keepdim=True)).to(dtype)


def same_order(
    got: torch.Tensor, ref: torch.Tensor, what: str, *, rtol: float = 1e-9
) -> None:
    """Each row of ``got`` ranks the columns as ``ref`` does (ties within a tolerance)."""
    if got.shape != ref.shape:
        raise CheckFailed(
            f"{what}: expected shape {tuple(ref.shape)}, got {tuple(got.shape)}"
        )
    got = got.to(torch.float64)
    if not bool(torch.isfinite(got).all()):
        raise CheckFailed(
            f"{what}: the result holds NaN or infinity (does the code exponentiate before taking the log?)"
        )
    order = ref.to(torch.float64).argsort(dim=1, descending=True)
    s = got.gather(1, order)
    tol = rtol * float(got.abs().max()) + 1e-12
    bad = (s[:, 1:] > s[:, :-1] + tol).any(dim=1)
    if bool(bad.any()):
        row = int(bad.nonzero()[0])
        raise CheckFailed(
            f"{what}: row {row} ranks the gallery differently from the reference ({int(bad.sum())} of {got.shape[0]} rows differ)"
        )


def unchanged(
    requests: Sequence[Any],
    outcomes: Sequence[Outcome],
    correct: Callable[[Sequence[Any], Sequence[Outcome]], None],
) -> None:
    """Every argument came back from the call as sent (``Call.return_args``), and right.

    ``correct(requests, outcomes)`` must pass too: leaving the inputs alone earns
    nothing for a function that does not work.
    """
    for call, out in zip(requests, outcomes, strict=True):
        for i, (sent, back) in enumerate(zip(call.args, out.args, strict=True)):
            if isinstance(sent, torch.Tensor) and not (
                isinstance(back, torch.Tensor)
                and back.shape == sent.shape
                and torch.equal(back.to(sent.dtype), sent)
            ):
                raise CheckFailed(
                    f"`{call.function}` modified its input argument {i + 1}; work on a new tensor instead"
                )
    correct(requests, outcomes)


def randint(g: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=g))


def choice(g: torch.Generator, options: list[Any]) -> Any:
    return options[randint(g, 0, len(options) - 1)]


def ask(name: str):
    """Inputs of an answer check: read the variable ``name``."""

    def inputs(case: Case) -> list[Answer]:
        return [Answer(name)]

    return inputs
