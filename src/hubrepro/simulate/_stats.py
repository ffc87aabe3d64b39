"""Centrality, Spearman's rank correlation, Cohen's d and per-cell seeds.

Part of :mod:`hubrepro.simulate`; import from there. Book: :ref:`sec-theory`.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch

from hubrepro._validation import (
    check_choice,
    check_matrix,
    fail,
)
from hubrepro.similarity import l2_normalize

from ._laws import METRICS


def _geometry(x: torch.Tensor, metric: str) -> torch.Tensor:
    """The points as the metric sees them: as they are, normalised, or centred and normalised."""
    if metric == "euclidean":
        return x
    if metric == "cosine_centred":
        x = x - x.mean(0, keepdim=True)
    return l2_normalize(x)


def global_centrality(
    x: torch.Tensor, metric: str = "euclidean", *, centre: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Distance of each point to the data mean, in the metric's geometry.

    The global centrality of chapter :ref:`sec-theory` (definition "Centrality"): Euclidean
    :math:`\lVert x-\bar x\rVert`; cosine :math:`\lVert\tilde x-\bar{\tilde x}\rVert`
    with :math:`\tilde x=x/\lVert x\rVert` (for ``"cosine_centred"`` after subtracting
    :math:`\bar x`). Small values mean *central* points; claims R2/T1 predict they
    are hubs. ``centre`` overrides the mean (for instance a point's own
    mixture-component mean, claim R4).

    Returns
    -------
    Tensor of shape (n,)
    """
    func = "global_centrality"
    x = check_matrix(x, "x", func)
    check_choice(metric, "metric", func, METRICS)
    x = _geometry(x, metric)
    ref = x.mean(0, keepdim=True) if centre is None else centre
    return (x - ref).norm(dim=1)


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n with ties given their average rank (as scipy's ``rankdata``)."""
    srt, order = torch.sort(v)
    _, inverse, counts = torch.unique_consecutive(
        srt, return_inverse=True, return_counts=True
    )
    ends = torch.cumsum(counts, 0).double()
    avg = ends - (counts.double() - 1.0) / 2.0
    ranks = torch.empty_like(avg[inverse])
    ranks[order] = avg[inverse]
    return ranks


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    r"""Spearman's rank correlation with average ranks for ties.

    :math:`\rho=\operatorname{corr}(\operatorname{rank}a,\operatorname{rank}b)`; ties
    (frequent in :math:`N_k`) get their average rank, as in
    ``scipy.stats.spearmanr``. Returns NaN when either input is constant.

    Examples
    --------
    >>> import torch
    >>> round(spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 5.0, 4.0])), 6)
    0.5
    """
    func = "spearman"
    a = check_matrix(a, "a", func, floating=False, ndim=1)
    b = check_matrix(b, "b", func, floating=False, ndim=1)
    if a.shape != b.shape:
        fail(func, "b", f"of the length of `a` ({a.shape[0]})", f"length {b.shape[0]}")
    if a.numel() < 2:
        fail(func, "a", "at least two values", a.numel())
    ra, rb = _ranks(a), _ranks(b.to(a.device))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = ra.norm() * rb.norm()
    if float(den) == 0.0:
        return math.nan
    return round(float((ra @ rb) / den), 15)


def cohens_d(a: torch.Tensor, b: torch.Tensor) -> float:
    r"""Cohen's :math:`d=(\bar a-\bar b)/s_p` with the pooled standard deviation.

    :math:`s_p^2=\frac{(n_a-1)s_a^2+(n_b-1)s_b^2}{n_a+n_b-2}` (unbiased variances).
    Used for the hub-vs-rest comparison of chapter :ref:`sec-theory`, "Two modalities".

    Examples
    --------
    >>> import torch
    >>> round(cohens_d(torch.tensor([2.0, 4.0]), torch.tensor([0.0, 2.0])), 6)
    1.414214
    """
    func = "cohens_d"
    a = check_matrix(a, "a", func, ndim=1).double()
    b = check_matrix(b, "b", func, ndim=1).double()
    if a.numel() + b.numel() < 3 or a.numel() < 1 or b.numel() < 1:
        fail(
            func,
            "a",
            "non-empty groups with at least three values in all",
            f"{a.numel()} and {b.numel()}",
        )
    va = a.var() if a.numel() > 1 else a.new_zeros(())
    vb = b.var() if b.numel() > 1 else b.new_zeros(())
    sp = torch.sqrt(
        ((a.numel() - 1) * va + (b.numel() - 1) * vb) / (a.numel() + b.numel() - 2)
    )
    if float(sp) == 0.0:
        return math.nan
    return float((a.mean() - b.mean()) / sp)


def derive_seed(seed: int, *keys: Any) -> int:
    """A 63-bit seed for one grid cell, from the notebook's ``seed`` and the cell's keys.

    Hashing the keys (law, dimension, replicate, ...) makes every cell's draw
    independent of the grid it sits in: adding a dimension to a sweep does not
    change the numbers of the others.
    """
    h = hashlib.sha256(repr((int(seed), *keys)).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1
