"""Chunked exact kNN, k-occurrence counts, centrality, Spearman and Cohen's d.

Part of :mod:`hubrepro.simulate`; import from there. Book: :ref:`sec-theory`.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch

from hubrepro._validation import (
    check_choice,
    check_int,
    check_matrix,
    fail,
)

from ._laws import METRICS


def _prepare(x: torch.Tensor, metric: str, centre: torch.Tensor | None) -> torch.Tensor:
    if metric == "euclidean":
        return x
    if metric == "cosine_centred":
        x = x - centre
    return x / x.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def knn(
    query: torch.Tensor,
    gallery: torch.Tensor | None = None,
    *,
    k: int = 10,
    metric: str = "euclidean",
    chunk_size: int = 2048,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact k nearest neighbours, streamed over blocks of query rows.

    Never builds the full :math:`n_q\times n_g` matrix: each block of
    ``chunk_size`` query rows is scored against the gallery and reduced by
    ``torch.topk``, so memory is :math:`O(\text{chunk\_size}\cdot n_g)`. With
    ``gallery=None`` the neighbours are searched within ``query`` itself and each
    point's own entry is excluded (the within-set k-occurrence of
    Radovanović et al., chapter :ref:`sec-theory`).

    Scores (higher is nearer): ``"euclidean"``
    :math:`-\lVert x-y\rVert^2`, computed as
    :math:`2\langle x,y\rangle-\lVert y\rVert^2-\lVert x\rVert^2`;
    ``"cosine"`` :math:`\cos(x,y)`; ``"cosine_centred"`` the cosine after subtracting
    the mean of ``gallery`` (of ``query`` when ``gallery`` is None) from both sides
    (the centring of Suzuki et al. 2013).

    Parameters
    ----------
    query : Tensor of shape (n_query, d)
    gallery : Tensor of shape (n_gallery, d), optional
    k : int, default 10
        At most ``n_gallery`` (``n_query - 1`` within one set).
    metric : {"euclidean", "cosine", "cosine_centred"}
    chunk_size : int, default 2048

    Returns
    -------
    indices : LongTensor of shape (n_query, k)
        Neighbour indices, nearest first.
    scores : Tensor of shape (n_query, k)
        Their scores (negative squared distances for ``"euclidean"``).

    Notes
    -----
    Exact ties (probability zero for continuous laws) are broken by ``torch.topk``,
    not necessarily towards the lowest index.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[0.0], [1.0], [3.0]])
    >>> knn(x, k=1)[0].flatten().tolist()
    [1, 0, 1]
    """
    func = "knn"
    q = check_matrix(query, "query", func)
    within = gallery is None
    gal = q if within else check_matrix(gallery, "gallery", func)
    if not within and gal.shape[1] != q.shape[1]:
        fail(
            func,
            "gallery",
            f"of width {q.shape[1]} (the width of `query`)",
            f"shape {tuple(gal.shape)}",
        )
    if not within and gal.device != q.device:
        fail(func, "gallery", f"on the device of `query` ({q.device})", str(gal.device))
    check_choice(metric, "metric", func, METRICS)
    n_g = gal.shape[0]
    k = check_int(k, "k", func, low=1, high=n_g - 1 if within else n_g)
    chunk_size = check_int(chunk_size, "chunk_size", func, low=1)
    centre = gal.mean(0, keepdim=True) if metric == "cosine_centred" else None
    qp, gp = _prepare(q, metric, centre), _prepare(gal, metric, centre)
    # Euclidean: rank by 2<x, y> - |y|^2 (one fused addmm); the row constant -|x|^2
    # does not change a row's ranking and is added to the k kept scores only
    neg_g_sq = -gp.square().sum(1).unsqueeze(0) if metric == "euclidean" else None
    idx_out = torch.empty(q.shape[0], k, dtype=torch.long, device=q.device)
    val_out = torch.empty(q.shape[0], k, dtype=q.dtype, device=q.device)
    for start in range(0, q.shape[0], chunk_size):
        block = qp[start : start + chunk_size]
        if neg_g_sq is None:
            s = block @ gp.T
        else:
            s = torch.addmm(neg_g_sq, block, gp.T, alpha=2.0)
        if within:
            rows = torch.arange(block.shape[0], device=q.device)
            s[rows, rows + start] = -math.inf
        val, idx = torch.topk(s, k, dim=1)
        if neg_g_sq is not None:
            val = val - block.square().sum(1, keepdim=True)
        idx_out[start : start + chunk_size] = idx
        val_out[start : start + chunk_size] = val
    return idx_out, val_out


def k_occurrence_counts(
    indices: torch.Tensor, n_gallery: int, k: int | None = None
) -> torch.Tensor:
    r"""Count :math:`N_k` from a neighbour-index matrix: how often each item is in a top-k list.

    :math:`N_k(x)=\#\{y: x\in\mathrm{kNN}(y)\}` (Radovanović et al. 2010, Sec. 3),
    read from the first ``k`` columns of ``indices`` (all columns by default), so one
    :func:`knn` call with the largest ``k`` serves every smaller ``k``.

    Returns
    -------
    LongTensor of shape (n_gallery,)

    Examples
    --------
    >>> import torch
    >>> k_occurrence_counts(torch.tensor([[1, 2], [0, 2], [0, 1]]), 3, k=1).tolist()
    [2, 1, 0]
    """
    func = "k_occurrence_counts"
    idx = check_matrix(indices, "indices", func, floating=False)
    if idx.dtype.is_floating_point:
        fail(func, "indices", "an integer matrix", str(idx.dtype), exc=TypeError)
    n_gallery = check_int(n_gallery, "n_gallery", func, low=1)
    k = idx.shape[1] if k is None else check_int(k, "k", func, low=1, high=idx.shape[1])
    return torch.bincount(idx[:, :k].reshape(-1).long(), minlength=n_gallery)


def global_centrality(
    x: torch.Tensor, metric: str = "euclidean", *, centre: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Distance of each point to the data mean, in the metric's geometry.

    Theory spec, section 1: Euclidean :math:`\lVert x-\bar x\rVert`; cosine
    :math:`\lVert\tilde x-\bar{\tilde x}\rVert` with :math:`\tilde x=x/\lVert x\rVert`
    (for ``"cosine_centred"`` after subtracting :math:`\bar x`). Small values mean
    *central* points; claims R2/T1 predict they are hubs. ``centre`` overrides the
    mean (for instance a point's own mixture-component mean, claim R4).

    Returns
    -------
    Tensor of shape (n,)
    """
    func = "global_centrality"
    x = check_matrix(x, "x", func)
    check_choice(metric, "metric", func, METRICS)
    if metric != "euclidean":
        x = _prepare(x, metric, x.mean(0, keepdim=True))
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
    Used for the hub-vs-rest comparison of experiment E5.

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
