"""Input checks at the public boundary, with one error template.

Every public function of :mod:`hubrepro` validates its arguments here and raises
``ValueError`` (bad values or shapes) or ``TypeError`` (bad types) whose message
follows one template::

    <function>: `<argument>` must be <expected>; got <received>. <what to do>

Private helpers trust their callers. Nothing here copies or converts silently:
a NumPy array becomes a tensor that shares its memory (``torch.from_numpy``),
and an integer matrix where scores are expected is refused, not cast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "fail",
    "as_tensor",
    "check_matrix",
    "check_same_columns",
    "check_nonzero_rows",
    "check_index_vector",
    "check_positive",
    "check_int",
    "check_choice",
    "check_probability",
]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def fail(
    func: str,
    name: str,
    expected: str,
    received: Any,
    hint: str = "",
    *,
    exc: type[Exception] = ValueError,
) -> None:
    """Raise ``exc`` with the project's error template."""
    msg = f"{func}: `{name}` must be {expected}; got {received}."
    if hint:
        msg += f" {hint}"
    raise exc(msg)


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"[:200]


def _cast_hint(dtype: torch.dtype) -> str:
    """What to do with a matrix of ``dtype`` where floating scores are expected."""
    if dtype == torch.bool:
        return "A boolean matrix is a mask, not scores: compute the scores it selects."
    if dtype.is_complex:
        return (
            "Pass the real scores explicitly (e.g. `x.real`) if that is what you mean."
        )
    return "Convert it explicitly, e.g. `x.astype('float32')`, if the integers really are scores."


def as_tensor(x: Any, name: str, func: str) -> torch.Tensor:
    """Return ``x`` as a tensor without copying (NumPy arrays share memory).

    Lists and scalars are refused: callers pass arrays or tensors.
    """
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            fail(
                func, name, "a numeric array", "an array of dtype object", exc=TypeError
            )
        if not x.flags.writeable:
            # torch.from_numpy warns on read-only memory; a copy keeps the caller's array intact
            x = x.copy()
        return torch.from_numpy(x)
    fail(func, name, "a torch.Tensor or numpy.ndarray", _describe(x), exc=TypeError)
    raise AssertionError  # unreachable, for type checkers


def check_matrix(
    x: Any,
    name: str,
    func: str,
    *,
    floating: bool = True,
    finite: bool = True,
    allow_empty: bool = False,
    ndim: int = 2,
) -> torch.Tensor:
    """Validate a score or embedding matrix and return it as a tensor.

    Checks: tensor or array; ``ndim`` dimensions; floating dtype (no silent cast
    of integers); no NaN or infinity; non-empty unless ``allow_empty``.
    """
    t = as_tensor(x, name, func)
    if t.ndim != ndim:
        fail(func, name, f"a {ndim}-D matrix", _describe(x))
    if floating and t.dtype not in _FLOAT_DTYPES:
        fail(
            func,
            name,
            "a floating-point matrix (float16, bfloat16, float32 or float64)",
            _describe(x),
            _cast_hint(t.dtype),
            exc=TypeError,
        )
    if not allow_empty and t.numel() == 0:
        fail(func, name, "non-empty", _describe(x))
    if finite and t.numel() and t.is_floating_point():
        # checked in row blocks: isfinite on the whole matrix allocates temporaries
        # larger than the matrix itself (1.2 GB for a 180k x 1k float32 matrix)
        step = max(1, (1 << 22) // max(1, t[0].numel())) if t.ndim else 1
        blocks = (
            (t[i : i + step] for i in range(0, t.shape[0], step)) if t.ndim else (t,)
        )
        if not all(bool(torch.isfinite(b).all()) for b in blocks):
            bad = ~torch.isfinite(t)
            idx = tuple(int(i) for i in bad.nonzero()[0].tolist())
            n_bad = int(bad.sum())
            fail(
                func,
                name,
                "finite (no NaN or infinity)",
                f"{n_bad} non-finite value(s), the first at index {idx} ({t[idx].item()})",
                "Drop or repair those rows before calling.",
            )
    return t


def check_same_columns(
    func: str,
    reference: tuple[str, torch.Tensor],
    *others: tuple[str, torch.Tensor | None],
) -> None:
    """Check that every matrix shares the number of columns (gallery items) of ``reference``."""
    ref_name, ref = reference
    for name, t in others:
        if t is None:
            continue
        if t.shape[-1] != ref.shape[-1]:
            fail(
                func,
                name,
                f"of width {ref.shape[-1]} (the number of gallery items in `{ref_name}`)",
                f"shape {tuple(t.shape)}",
            )


def check_nonzero_rows(
    x: torch.Tensor,
    name: str,
    func: str,
    *,
    offset: int = 0,
    hint: str = "Drop or re-embed those rows, or use metric='dot' (--metric dot).",
) -> None:
    """Refuse rows of zero norm, which have no direction for the cosine similarity.

    ``offset`` is added to the reported row (for a chunk of a larger matrix).
    """
    if x.ndim != 2 or x.numel() == 0:
        return
    zero = ~(x != 0).any(dim=1)
    if bool(zero.any()):
        row = int(zero.nonzero()[0]) + offset
        fail(
            func,
            name,
            "free of all-zero rows under the cosine metric (a zero vector has no direction)",
            f"{int(zero.sum())} zero row(s), the first is row {row}",
            hint,
        )


def check_index_vector(
    x: Any, name: str, func: str, *, length: int, upper: int
) -> torch.Tensor:
    """Validate an integer vector of ``length`` entries in ``[0, upper)``."""
    t = as_tensor(x, name, func)
    if t.ndim != 1:
        fail(func, name, "a 1-D integer vector", _describe(t))
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
        fail(func, name, "an integer vector", _describe(t), exc=TypeError)
    if t.shape[0] != length:
        fail(func, name, f"of length {length}", f"length {t.shape[0]}")
    if t.numel():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= upper:
            bad = int(((t < 0) | (t >= upper)).nonzero()[0])
            fail(
                func,
                name,
                f"in the range [0, {upper})",
                f"{int(t[bad])} at position {bad}",
            )
    return t.long()


def check_positive(x: Any, name: str, func: str, *, allow_zero: bool = False) -> float:
    """Validate a positive finite real number (e.g. an inverse temperature)."""
    if isinstance(x, bool) or not isinstance(x, int | float | np.floating | np.integer):
        fail(func, name, "a real number", _describe(x), exc=TypeError)
    v = float(x)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        fail(
            func,
            name,
            "non-negative and finite" if allow_zero else "positive and finite",
            v,
        )
    return v


def check_int(
    x: Any, name: str, func: str, *, low: int | None = None, high: int | None = None
) -> int:
    """Validate an integer in ``[low, high]`` (either bound optional)."""
    if isinstance(x, bool) or not isinstance(x, int | np.integer):
        fail(func, name, "an integer", _describe(x), exc=TypeError)
    v = int(x)
    if (low is not None and v < low) or (high is not None and v > high):
        rng = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        fail(func, name, f"an integer in {rng}", v)
    return v


def check_choice(x: Any, name: str, func: str, choices: Sequence[str]) -> str:
    """Validate that ``x`` is one of ``choices``."""
    if x not in choices:
        fail(func, name, "one of " + ", ".join(repr(c) for c in choices), repr(x))
    return str(x)


def check_probability(x: Any, name: str, func: str) -> float:
    """Validate a number in ``[0, 1]``."""
    v = check_positive(x, name, func, allow_zero=True)
    if v > 1:
        fail(func, name, "in [0, 1]", v)
    return v
