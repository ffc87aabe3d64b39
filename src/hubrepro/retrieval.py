r"""Retrieval metrics for a score matrix, streamed over query blocks.

A score matrix ``sims`` of shape ``(n_query, n_gallery)`` ranks the gallery for
each query (query→gallery, e.g. text→video) and, read by columns, ranks the
queries for each gallery item (gallery→query, e.g. video→text).

Ground truth is ``query_to_gallery``: query ``i`` matches gallery item
``query_to_gallery[i]``; ``None`` means the square diagonal (query ``i`` matches
gallery ``i``). Several queries may match one gallery item (MSR-VTT: 20 captions
per video, COCO: 5 per image); no grouping or ordering of the rows is assumed.

Ranks
-----
Ranks are **0-based** counts (rank 0 = retrieved first). For query ``i`` with
ground truth ``g = query_to_gallery[i]`` and score :math:`t = S_{ig}`:

.. math::

    r^{\mathrm{opt}}_i = \#\{j : S_{ij} > t\}, \qquad
    r^{\mathrm{pes}}_i = \#\{j \ne g : S_{ij} \ge t\}, \qquad
    r^{\mathrm{avg}}_i = \tfrac12\,(r^{\mathrm{opt}}_i + r^{\mathrm{pes}}_i).

``ties="average"`` (the default) is what QB-Norm's evaluator (``metric.py`` of
``ioanacroi/qb-norm``, inherited from collaborative-experts) does: the rank is the mean
position of the tied entries, so a fully tied row gets rank :math:`(N_g-1)/2`.
``"optimistic"`` counts ties in the query's favour, ``"pessimistic"`` against it; the
two bracket every tie-breaking order.

For gallery item ``g`` with matching queries :math:`Q(g)`, each matching query
``i`` has a rank within column ``g`` (the same three policies, over the queries);
the gallery→query rank is the **minimum** over :math:`Q(g)`, i.e. the rank of the
best-ranked matching query. It equals the rank of the threshold
:math:`t_g = \max_{i \in Q(g)} S_{ig}`:
:math:`r^{\mathrm{opt}}_g = \#\{j: S_{jg} > t_g\}`,
:math:`r^{\mathrm{pes}}_g = \#\{j: S_{jg} \ge t_g\} - 1`.
It is streamed in two passes over query blocks (first the thresholds, then the
counts), so neither direction materialises more than one block.

Gallery items that no query matches cannot be ranked gallery→query. They get rank
NaN from :func:`gallery_ranks`, are **excluded** from that direction's metrics, and
their number is reported as ``n_unmatched_gallery`` by :func:`evaluate_retrieval`
(pass ``unmatched="raise"`` to refuse such input instead).

Metrics (:func:`metrics_from_ranks`), as QB-Norm's ``cols2metrics`` counts them:
``R@1`` is :math:`100\cdot\mathrm{mean}(r=0)` and ``R@K`` for :math:`K\ge2` is
:math:`100\cdot\mathrm{mean}(r<K)`, in percent. With integer ranks (optimistic or
pessimistic ties, or no ties) both read "the ground truth is among the first K". With
averaged ranks the convention is **inconsistent between R@1 and R@K**: a ground truth
tied with one other item at the top (rank 0.5) misses R@1, while one tied at rank 4.5
counts for R@5. The library keeps it so that its numbers equal the evaluator's on the
same matrix; pass ``ties="optimistic"`` and ``"pessimistic"`` to bound the effect of
ties. ``MdR`` and ``MnR`` are the median and mean of the **1-based** rank :math:`r+1`
(the median of an even count is the mean of the two middle values, as
``numpy.median``). ``Rsum`` is the sum of the R@K values of both directions. No
rounding happens in the library (the evaluator rounds to one decimal).

Book: :ref:`sec-hubness-retrieval`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hubrepro._validation import (
    as_tensor,
    check_choice,
    check_index_vector,
    check_int,
    check_matrix,
    fail,
)
from hubrepro.similarity import default_chunk_size

__all__ = [
    "TIES",
    "query_ranks",
    "gallery_ranks",
    "metrics_from_ranks",
    "evaluate_retrieval",
]

TIES = ("average", "optimistic", "pessimistic")
UNMATCHED = ("exclude", "raise")


def _check_inputs(
    func: str, sims: Any, query_to_gallery: Any, ties: str, chunk_size: Any
) -> tuple[torch.Tensor, torch.Tensor, int]:
    s = check_matrix(sims, "sims", func)
    check_choice(ties, "ties", func, TIES)
    n_q, n_g = s.shape
    if query_to_gallery is None:
        if n_q != n_g:
            fail(
                func,
                "query_to_gallery",
                "given when `sims` is not square",
                f"None with `sims` of shape {tuple(s.shape)}",
                "Pass the gallery index of each query (length n_query).",
            )
        gt = torch.arange(n_q, device=s.device)
    else:
        gt = check_index_vector(
            query_to_gallery, "query_to_gallery", func, length=n_q, upper=n_g
        )
        gt = gt.to(s.device)
    if chunk_size is None:
        chunk = default_chunk_size(n_g)
    else:
        chunk = check_int(chunk_size, "chunk_size", func, low=1)
    return s, gt, chunk


def _combine(
    greater: torch.Tensor, ge_minus_one: torch.Tensor, ties: str
) -> torch.Tensor:
    greater = greater.to(torch.float64)
    ge_minus_one = ge_minus_one.to(torch.float64)
    if ties == "optimistic":
        return greater
    if ties == "pessimistic":
        return ge_minus_one
    return (greater + ge_minus_one) / 2


def _query_ranks(
    s: torch.Tensor, gt: torch.Tensor, ties: str, chunk: int
) -> torch.Tensor:
    n_q = s.shape[0]
    greater = torch.empty(n_q, dtype=torch.long, device=s.device)
    ge = torch.empty(n_q, dtype=torch.long, device=s.device)
    for start in range(0, n_q, chunk):
        block = s[start : start + chunk]
        target = block.gather(1, gt[start : start + chunk, None])  # (rows, 1)
        greater[start : start + block.shape[0]] = (block > target).sum(1)
        ge[start : start + block.shape[0]] = (block >= target).sum(1)
    # `ge` counts the ground truth itself, hence the -1
    return _combine(greater, ge - 1, ties)


def _gallery_ranks(
    s: torch.Tensor, gt: torch.Tensor, ties: str, chunk: int
) -> torch.Tensor:
    n_q, n_g = s.shape
    # pass 1: best score of a matching query per gallery item, t_g = max_{i in Q(g)} S_ig
    thresh = torch.full((n_g,), float("-inf"), dtype=s.dtype, device=s.device)
    for start in range(0, n_q, chunk):
        block = s[start : start + chunk]
        idx = gt[start : start + chunk]
        scores = block.gather(1, idx[:, None]).squeeze(1)
        thresh.scatter_reduce_(0, idx, scores, reduce="amax")
    matched = torch.zeros(n_g, dtype=torch.bool, device=s.device)
    matched[gt] = True
    # pass 2: how many queries score above / at least the threshold in each column
    greater = torch.zeros(n_g, dtype=torch.long, device=s.device)
    ge = torch.zeros(n_g, dtype=torch.long, device=s.device)
    for start in range(0, n_q, chunk):
        block = s[start : start + chunk]
        greater += (block > thresh).sum(0)
        ge += (block >= thresh).sum(0)
    ranks = _combine(greater, ge - 1, ties)
    return torch.where(matched, ranks, torch.full_like(ranks, float("nan")))


def query_ranks(
    sims: Any,
    query_to_gallery: Any = None,
    *,
    ties: str = "average",
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""Return the 0-based rank of each query's ground-truth gallery item.

    Implements the rank used by the R@K / MdR / MnR protocol of text→video
    retrieval (as in QB-Norm's evaluator, :cite:`bogolin2022qbnorm`), with an
    explicit tie policy:

    .. math::

        r^{\mathrm{opt}}_i = \#\{j : S_{ij} > S_{ig_i}\},\quad
        r^{\mathrm{pes}}_i = \#\{j \ne g_i : S_{ij} \ge S_{ig_i}\},\quad
        r^{\mathrm{avg}}_i = (r^{\mathrm{opt}}_i + r^{\mathrm{pes}}_i)/2,

    where :math:`g_i` is ``query_to_gallery[i]``.

    Parameters
    ----------
    sims : Tensor or ndarray of shape (n_query, n_gallery)
        Scores, higher = more similar; floating point and finite.
    query_to_gallery : Tensor or ndarray of shape (n_query,), optional
        Integer gallery index matched by each query; ``None`` means the diagonal
        (``sims`` must then be square).
    ties : {"average", "optimistic", "pessimistic"}, default "average"
        How gallery items scoring exactly the ground truth's score are counted
        (``"average"``: QB-Norm's evaluator; see :func:`metrics_from_ranks` for how
        its half ranks enter R@K).
    chunk_size : int, optional
        Query rows per block (default: blocks of at most 2**24 scores).

    Returns
    -------
    Tensor of shape (n_query,), dtype float64
        0-based ranks on the device of ``sims`` (float because average ties give
        half-integers). Results do not depend on ``chunk_size``.

    Raises
    ------
    TypeError, ValueError
        Non-floating or non-finite ``sims``, wrong ndim, empty, ground truth of the
        wrong length or out of range, non-square ``sims`` without ground truth.

    See Also
    --------
    gallery_ranks, metrics_from_ranks, evaluate_retrieval

    Book
    ----
    :ref:`sec-hubness-retrieval`.

    Examples
    --------
    >>> import torch
    >>> s = torch.tensor([[0.9, 0.1, 0.9], [0.2, 0.8, 0.3]])
    >>> query_ranks(s, torch.tensor([0, 2]))
    tensor([0.5000, 1.0000], dtype=torch.float64)
    >>> query_ranks(s, torch.tensor([0, 2]), ties="optimistic")
    tensor([0., 1.], dtype=torch.float64)
    """
    s, gt, chunk = _check_inputs(
        "query_ranks", sims, query_to_gallery, ties, chunk_size
    )
    return _query_ranks(s, gt, ties, chunk)


def gallery_ranks(
    sims: Any,
    query_to_gallery: Any = None,
    *,
    ties: str = "average",
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""Return, per gallery item, the 0-based rank of its best-ranked matching query.

    Gallery→query retrieval (e.g. video→text) reads ``sims`` by columns. With
    several matching queries per item, the item's rank is the minimum over its
    ground-truth queries, which is the rank of the threshold
    :math:`t_g = \max_{i: g_i = g} S_{ig}`:

    .. math::

        r^{\mathrm{opt}}_g = \#\{j : S_{jg} > t_g\},\quad
        r^{\mathrm{pes}}_g = \#\{j : S_{jg} \ge t_g\} - 1,\quad
        r^{\mathrm{avg}}_g = (r^{\mathrm{opt}}_g + r^{\mathrm{pes}}_g)/2.

    Streamed in two passes over blocks of query rows (thresholds, then counts).

    Parameters
    ----------
    sims : Tensor or ndarray of shape (n_query, n_gallery)
        Scores, higher = more similar.
    query_to_gallery : Tensor or ndarray of shape (n_query,), optional
        Gallery index matched by each query; ``None`` means the diagonal.
    ties : {"average", "optimistic", "pessimistic"}, default "average"
        Tie policy, as in :func:`query_ranks`.
    chunk_size : int, optional
        Query rows per block.

    Returns
    -------
    Tensor of shape (n_gallery,), dtype float64
        0-based ranks on the device of ``sims``; **NaN** for gallery items that no
        query matches (they cannot be ranked; :func:`metrics_from_ranks` drops them).

    Raises
    ------
    TypeError, ValueError
        As :func:`query_ranks`.

    See Also
    --------
    query_ranks, evaluate_retrieval

    Book
    ----
    :ref:`sec-hubness-retrieval`.

    Examples
    --------
    >>> import torch
    >>> s = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.95, 0.3]])
    >>> gallery_ranks(s, torch.tensor([0, 1, 1]))
    tensor([1., 0.], dtype=torch.float64)
    """
    s, gt, chunk = _check_inputs(
        "gallery_ranks", sims, query_to_gallery, ties, chunk_size
    )
    return _gallery_ranks(s, gt, ties, chunk)


def _check_ks(func: str, ks: Any) -> tuple[int, ...]:
    if isinstance(ks, int | np.integer) and not isinstance(ks, bool):
        ks = (ks,)
    if not isinstance(ks, Sequence) or isinstance(ks, str) or len(ks) == 0:
        fail(
            func,
            "ks",
            "a non-empty sequence of positive integers",
            repr(ks),
            exc=TypeError,
        )
    # duplicates dropped (order kept), so Rsum never counts a cut-off twice
    return tuple(dict.fromkeys(check_int(k, "ks", func, low=1) for k in ks))


def metrics_from_ranks(
    ranks: Any, *, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    r"""Summarise 0-based ranks as R@K (percent), MdR and MnR (1-based).

    .. math::

        \mathrm{R@}1 = 100\cdot\frac{1}{n}\sum_i \mathbb 1[r_i = 0],\quad
        \mathrm{R@}K = 100\cdot\frac{1}{n}\sum_i \mathbb 1[r_i < K]\ (K\ge 2),

        \mathrm{MdR} = \mathrm{median}_i(r_i) + 1,\quad
        \mathrm{MnR} = \frac1n\sum_i r_i + 1,

    the rule of QB-Norm's ``cols2metrics`` (``R1`` counts ``cols == 0``, ``R5`` and
    ``R10`` count ``cols < K``). For integer ranks the two R@K forms agree; for
    averaged ranks (``ties="average"``) a half rank :math:`K-\tfrac12` counts for R@K
    when :math:`K\ge2` but rank :math:`\tfrac12` does not count for R@1, an
    inconsistency of the convention kept for parity with the evaluator. NaN ranks
    (gallery items without a matching query, see :func:`gallery_ranks`) are left
    out; ``n`` counts the others.

    Parameters
    ----------
    ranks : Tensor or ndarray of shape (n,)
        0-based ranks (integers or half-integers), NaN for unrankable items.
    ks : sequence of int, default (1, 5, 10)
        Cut-offs K.

    Returns
    -------
    dict
        ``{"R@1": ..., "R@5": ..., "R@10": ..., "MdR": ..., "MnR": ...}`` as Python
        floats, unrounded (one ``R@K`` per entry of ``ks``, in that order).

    Raises
    ------
    ValueError
        Not 1-D, negative or infinite ranks, no rankable entry, bad ``ks``.

    Book
    ----
    :ref:`sec-hubness-retrieval`.

    Examples
    --------
    >>> import torch
    >>> metrics_from_ranks(torch.tensor([0.0, 1.0, 3.0, 20.0]), ks=(1, 5))
    {'R@1': 25.0, 'R@5': 75.0, 'MdR': 3.0, 'MnR': 7.0}
    >>> metrics_from_ranks(torch.tensor([0.5, 4.5]), ks=(1, 5))["R@1"]  # tie at the top
    0.0
    """
    func = "metrics_from_ranks"
    r = as_tensor(ranks, "ranks", func)
    if r.ndim != 1:
        fail(func, "ranks", "a 1-D vector", f"shape {tuple(r.shape)}")
    ks = _check_ks(func, ks)
    r = r.detach().to(device="cpu", dtype=torch.float64)
    r = r[~torch.isnan(r)]
    if r.numel() == 0:
        fail(
            func,
            "ranks",
            "non-empty with at least one non-NaN rank",
            "no rankable entry",
        )
    if bool(torch.isinf(r).any()) or bool((r < 0).any()):
        fail(
            func,
            "ranks",
            "finite and non-negative (0-based ranks)",
            f"values in [{r.min()}, {r.max()}]",
        )
    arr = r.numpy()
    # 100 * hits / n rather than 100 * mean: exact for round percentages. R@1 counts
    # rank 0 exactly (QB-Norm's `cols == 0`), so a tie at the top (0.5) is a miss
    hits = {k: np.count_nonzero(arr == 0 if k == 1 else arr < k) for k in ks}
    out = {f"R@{k}": 100.0 * int(h) / arr.size for k, h in hits.items()}
    out["MdR"] = float(np.median(arr) + 1.0)
    out["MnR"] = float(np.mean(arr) + 1.0)
    return out


def evaluate_retrieval(
    sims: Any,
    query_to_gallery: Any = None,
    *,
    ks: Sequence[int] = (1, 5, 10),
    ties: str = "average",
    chunk_size: int | None = None,
    unmatched: str = "exclude",
) -> dict[str, Any]:
    r"""Evaluate retrieval in both directions: R@K, MdR, MnR and Rsum.

    Implements the standard cross-modal retrieval protocol (as evaluated in
    :cite:`bogolin2022qbnorm` and :cite:`wang2023balance`): query→gallery ranks from
    :func:`query_ranks`, gallery→query ranks (best matching query) from
    :func:`gallery_ranks`, summarised by :func:`metrics_from_ranks`, and

    .. math:: \mathrm{Rsum} = \sum_{K \in ks} \mathrm{R@}K^{q\to g} + \mathrm{R@}K^{g\to q}.

    Parameters
    ----------
    sims : Tensor or ndarray of shape (n_query, n_gallery)
        Scores, higher = more similar.
    query_to_gallery : Tensor or ndarray of shape (n_query,), optional
        Gallery index matched by each query; ``None`` means the square diagonal.
    ks : sequence of int, default (1, 5, 10)
        Cut-offs K.
    ties : {"average", "optimistic", "pessimistic"}, default "average"
        Tie policy for both directions.
    chunk_size : int, optional
        Query rows per block (memory bound); results do not depend on it.
    unmatched : {"exclude", "raise"}, default "exclude"
        What to do with gallery items that no query matches: leave them out of the
        gallery→query metrics (their number is reported), or raise ``ValueError``.

    Returns
    -------
    dict
        ``{"query_to_gallery": {"R@1", "R@5", "R@10", "MdR", "MnR"},
        "gallery_to_query": {...}, "Rsum": float, "n_unmatched_gallery": int}``,
        all values unrounded Python numbers.

    Raises
    ------
    TypeError, ValueError
        Bad inputs (see :func:`query_ranks`), or unmatched gallery items with
        ``unmatched="raise"``.

    Book
    ----
    :ref:`sec-hubness-retrieval`.

    Examples
    --------
    >>> import torch
    >>> res = evaluate_retrieval(torch.eye(3), ks=(1,))
    >>> res["query_to_gallery"]["R@1"], res["gallery_to_query"]["MdR"], res["Rsum"]
    (100.0, 1.0, 200.0)
    """
    func = "evaluate_retrieval"
    s, gt, chunk = _check_inputs(func, sims, query_to_gallery, ties, chunk_size)
    ks = _check_ks(func, ks)
    check_choice(unmatched, "unmatched", func, UNMATCHED)
    q_ranks = _query_ranks(s, gt, ties, chunk)
    g_ranks = _gallery_ranks(s, gt, ties, chunk)
    n_unmatched = int(torch.isnan(g_ranks).sum())
    if n_unmatched and unmatched == "raise":
        first = int(torch.isnan(g_ranks).nonzero()[0])
        fail(
            func,
            "query_to_gallery",
            "such that every gallery item is matched by at least one query",
            f"{n_unmatched} unmatched gallery item(s), the first is column {first}",
            "Drop those columns, or pass unmatched='exclude'.",
        )
    fwd = metrics_from_ranks(q_ranks, ks=ks)
    bwd = metrics_from_ranks(g_ranks, ks=ks)
    rsum = sum(fwd[f"R@{k}"] + bwd[f"R@{k}"] for k in ks)
    return {
        "query_to_gallery": fwd,
        "gallery_to_query": bwd,
        "Rsum": float(rsum),
        "n_unmatched_gallery": n_unmatched,
    }
