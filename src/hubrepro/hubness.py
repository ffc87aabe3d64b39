r"""Hubness of the top-k retrieval graph: nearest neighbours, k-occurrence and its statistics.

Each query retrieves its top-``k`` gallery items. The **k-occurrence** of gallery
item ``g`` counts how many queries retrieve it :cite:`radovanovic2010hubs`:

.. math:: N_k(g) = \sum_{i=1}^{N_q} \mathbb 1\left[g \in \mathrm{top}_k(S_{i,:})\right],
   \qquad \sum_g N_k(g) = k N_q, \qquad \mu = \frac{k N_q}{N_g}.

*Hubs* are items with a large :math:`N_k`, *anti-hubs* items with
:math:`N_k = 0`. The top-k lists come from a score matrix (:func:`k_occurrence`) or
straight from embeddings, streamed in blocks under a cosine, dot-product, Euclidean or
centred-cosine geometry (:func:`knn`, :func:`k_occurrence_from_embeddings`;
:func:`k_occurrence_from_indices` counts a neighbour list). The statistics summarise
how unevenly the :math:`kN_q` retrieval slots are shared (formulas in each function
and in the book, :ref:`sec-hubness`):

- :func:`skewness` -- population skewness of :math:`N_k` over **all** gallery items
  (zeros included), as ``scipy.stats.skew`` with its default ``bias=True``;
- :func:`skewness_nonzero` -- the same over items with :math:`N_k \ge 1` only, the
  variant of the DBNorm authors' code (``get_skewness``) :cite:`wang2023balance`;
- :func:`robin_hood_index`, :func:`gini` -- inequality of the slots
  :cite:`feldbauer2019comprehensive`;
- :func:`hub_occupancy` -- share of slots held by hubs (:math:`N_k \ge 2\mu`);
- :func:`antihub_rate` -- share of items never retrieved.

**Ties in the top-k.** The selection is deterministic: items scoring strictly above
the k-th largest score are always selected, and among the items tied at that score
the ones with the **lowest gallery index** fill the remaining slots (:func:`knn`
orders its lists by score, then by index, so every prefix of a list is the top-k of a
smaller k under the same rule).

Why one module of about 800 lines: the k-occurrence and its statistics are one concept
(every statistic is read from :math:`N_k`, and :math:`N_k` from the one top-k rule
above), and about 470 of the lines are docstrings carrying each formula, its reference
and doctested examples; the code is under 300 lines.
"""

from __future__ import annotations

from typing import Any

import torch

from hubrepro._validation import as_tensor, check_choice, check_int, check_matrix, fail
from hubrepro.similarity import default_chunk_size, iter_similarity_blocks

__all__ = [
    "EMBEDDING_METRICS",
    "knn",
    "k_occurrence",
    "k_occurrence_from_embeddings",
    "k_occurrence_from_indices",
    "skewness",
    "skewness_nonzero",
    "robin_hood_index",
    "hub_occupancy",
    "antihub_rate",
    "gini",
    "hubness_stats",
    "hubness_report",
]

_NEG_INF = float("-inf")


#: Geometries of :func:`knn` and :func:`k_occurrence_from_embeddings`: cosine
#: similarity, dot product, Euclidean distance, and cosine after centring.
EMBEDDING_METRICS: tuple[str, ...] = ("cosine", "dot", "euclidean", "cosine_centred")


def _topk(
    block: torch.Tensor, k: int, *, ordered: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-k scores and columns of each row, ties at the k-th place to the lowest index.

    With ``ordered`` each row is sorted by score, then by column, so that every prefix
    of a row is the top of a smaller k under the same rule.
    """
    n_cols = block.shape[1]
    kk = min(k + 1, n_cols)
    # k+1 largest values tell which rows have a tie straddling the k-th place
    vals, idx = torch.topk(block, kk, dim=1, largest=True, sorted=True)
    if kk > k:
        tied = vals[:, k] == vals[:, k - 1]
        vals, idx = vals[:, :k], idx[:, :k]
        if bool(tied.any()):
            rows = block[tied]
            thr = vals[tied, k - 1 :]
            above = rows > thr
            at = rows == thr
            need = k - above.sum(1, keepdim=True)
            # among the tied items, the first `need` by column index are selected
            chosen = above | (at & (torch.cumsum(at, dim=1) <= need))
            cols = chosen.nonzero()[:, 1].view(-1, k)
            idx = idx.clone()
            vals = vals.clone()
            idx[tied] = cols
            vals[tied] = rows.gather(1, cols)
    if ordered:
        by_index = torch.argsort(idx, dim=1)
        idx, vals = idx.gather(1, by_index), vals.gather(1, by_index)
        by_score = torch.sort(vals, dim=1, descending=True, stable=True).indices
        idx, vals = idx.gather(1, by_score), vals.gather(1, by_score)
    return vals, idx


def _topk_counts(block: torch.Tensor, k: int, counts: torch.Tensor) -> None:
    """Add this block's top-k memberships to ``counts`` (lowest index wins ties)."""
    if k == block.shape[1]:
        counts += block.shape[0]
        return
    counts += torch.bincount(_topk(block, k)[1].reshape(-1), minlength=counts.numel())


def _k_bound_text(exclude_self: bool) -> str:
    return "the number of gallery items" + (
        " minus one, as self is excluded" if exclude_self else ""
    )


def _check_k(func: str, k: Any, n_available: int, what: str) -> int:
    k = check_int(k, "k", func, low=1)
    if k > n_available:
        fail(func, "k", f"at most {n_available} ({what})", k, "Choose a smaller `k`.")
    return k


def k_occurrence(
    sims: Any,
    k: int = 10,
    *,
    exclude_self: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""Count, for each gallery item, how many queries have it in their top-k.

    Implements the k-occurrence :math:`N_k` of :cite:`radovanovic2010hubs`,
    Sect. 3, for a query×gallery score matrix:

    .. math:: N_k(g) = \sum_i \mathbb 1[g \in \mathrm{top}_k(S_{i,:})]

    With ``exclude_self=True`` the matrix is one set against itself (square) and
    each item's own column is removed from its row before the top-k, giving
    :math:`N_k(x)=\#\{y \ne x : x \in \mathrm{kNN}(y)\}`.

    Parameters
    ----------
    sims : Tensor or ndarray of shape (n_query, n_gallery)
        Scores, higher = closer; floating point and finite.
    k : int, default 10
        Neighbourhood size; ``1 <= k <= n_gallery`` (``n_gallery - 1`` with
        ``exclude_self``).
    exclude_self : bool, default False
        Drop the diagonal (requires a square ``sims``).
    chunk_size : int, optional
        Query rows per block (default: blocks of at most 2**24 scores).

    Returns
    -------
    LongTensor of shape (n_gallery,)
        :math:`N_k`, on the device of ``sims``; sums to ``n_query * k``.

    Raises
    ------
    TypeError, ValueError
        Bad ``sims``, ``k`` out of range, non-square with ``exclude_self``.

    Notes
    -----
    Ties at the k-th place are broken by the lowest gallery index, so the result
    is deterministic and independent of ``chunk_size`` and device.

    Book
    ----
    :ref:`sec-hubness-koccurrence`.

    Examples
    --------
    >>> import torch
    >>> s = torch.tensor([[0.9, 0.5, 0.1], [0.8, 0.7, 0.2], [0.6, 0.6, 0.6]])
    >>> k_occurrence(s, k=1)
    tensor([3, 0, 0])
    >>> k_occurrence(s, k=1, exclude_self=True)
    tensor([2, 1, 0])
    """
    func = "k_occurrence"
    s = check_matrix(sims, "sims", func)
    n_q, n_g = s.shape
    if exclude_self and n_q != n_g:
        fail(func, "sims", "square when `exclude_self=True`", f"shape {tuple(s.shape)}")
    k = _check_k(func, k, n_g - 1 if exclude_self else n_g, _k_bound_text(exclude_self))
    chunk = (
        default_chunk_size(n_g)
        if chunk_size is None
        else check_int(chunk_size, "chunk_size", func, low=1)
    )
    counts = torch.zeros(n_g, dtype=torch.long, device=s.device)
    for start in range(0, n_q, chunk):
        block = s[start : start + chunk]
        if exclude_self:
            block = _mask_self(block, start)
        _topk_counts(block, k, counts)
    return counts


def _mask_self(block: torch.Tensor, start: int, *, copy: bool = True) -> torch.Tensor:
    # a copy when `block` is a view of the caller's matrix, which is never written;
    # -inf never enters a top-k because every row keeps at least k finite entries
    if copy:
        block = block.clone()
    rows = torch.arange(block.shape[0], device=block.device)
    block[rows, rows + start] = _NEG_INF
    return block


def _embedding_blocks(
    func: str, query: Any, gallery: Any, metric: str, chunk_size: Any
) -> tuple[int, int, torch.device, Any]:
    r"""Validate embeddings; return the sizes, the device and the score blocks.

    The blocks are ``(start, scores, row_offset)``: ``scores`` rank the gallery for
    query rows ``start:start + len(scores)``; for ``"euclidean"`` they omit the row
    constant :math:`-\lVert x\rVert^2`, which ``row_offset`` holds (``None`` otherwise),
    so a row's ranking costs one fused ``addmm``.
    """
    check_choice(metric, "metric", func, EMBEDDING_METRICS)
    within = gallery is None
    q = check_matrix(query, "query", func)
    g = q if within else check_matrix(gallery, "gallery", func)
    # shapes, dtypes, devices and chunk_size are checked here, before any block is computed
    pair = iter_similarity_blocks(
        q, g, metric="cosine" if metric == "cosine" else "dot", chunk_size=chunk_size
    )
    chunk = min(
        default_chunk_size(g.shape[0]) if chunk_size is None else int(chunk_size),
        q.shape[0],
    )
    if metric in ("cosine", "dot"):
        blocks = ((start, b, None) for start, b in pair)
    elif metric == "cosine_centred":
        centre = g.mean(0, keepdim=True)
        centred = iter_similarity_blocks(
            q - centre, g - centre, metric="cosine", chunk_size=chunk
        )
        blocks = ((start, b, None) for start, b in centred)
    else:
        blocks = _euclidean_blocks(q, g, chunk)
    return q.shape[0], g.shape[0], q.device, blocks


def _euclidean_blocks(q: torch.Tensor, g: torch.Tensor, chunk: int) -> Any:
    # rank by 2<x, y> - |y|^2 (one fused addmm); -|x|^2 is the row's offset
    neg_g_sq = -g.square().sum(1).unsqueeze(0)
    gt = g.T
    for start in range(0, q.shape[0], chunk):
        rows = q[start : start + chunk]
        scores = torch.addmm(neg_g_sq, rows, gt, alpha=2.0)
        yield start, scores, rows.square().sum(1, keepdim=True)


def knn(
    query: Any,
    gallery: Any = None,
    *,
    k: int = 10,
    metric: str = "cosine",
    chunk_size: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact k nearest neighbours from embeddings, streamed over blocks of query rows.

    Never builds the full :math:`n_q\times n_g` matrix: each block of ``chunk_size``
    query rows is scored against the gallery and reduced to its top-k at once, so
    memory is :math:`O(\text{chunk\_size}\cdot n_g)`. With ``gallery=None`` the
    neighbours are searched within ``query`` itself and each point's own entry is
    excluded (the within-set k-occurrence of :cite:`radovanovic2010hubs`, Sect. 3).

    Scores (higher is nearer): ``"cosine"`` :math:`\cos(x,y)`; ``"dot"``
    :math:`\langle x,y\rangle`; ``"euclidean"`` :math:`-\lVert x-y\rVert^2`, computed
    as :math:`2\langle x,y\rangle-\lVert y\rVert^2-\lVert x\rVert^2`;
    ``"cosine_centred"`` the cosine after subtracting the mean of ``gallery`` (of
    ``query`` when ``gallery`` is None) from both sides, the centring of
    :cite:`suzuki2013centering`.

    Parameters
    ----------
    query : Tensor or ndarray of shape (n_query, d)
    gallery : Tensor or ndarray of shape (n_gallery, d), optional
        ``None``: within one set, self excluded.
    k : int, default 10
        At most ``n_gallery`` (``n_query - 1`` within one set).
    metric : {"cosine", "dot", "euclidean", "cosine_centred"}, default "cosine"
    chunk_size : int, default 4096
        Query rows per block.

    Returns
    -------
    indices : LongTensor of shape (n_query, k)
        Neighbour indices, nearest first; ties are ordered by index, so
        ``indices[:, :j]`` is the top-j list for every ``j <= k`` (the tie rule of
        :func:`k_occurrence`).
    scores : Tensor of shape (n_query, k)
        Their scores (negative squared distances for ``"euclidean"``).

    See Also
    --------
    k_occurrence_from_indices : :math:`N_k` of these lists, for any ``j <= k``.
    k_occurrence_from_embeddings : the counts only.

    Book
    ----
    :ref:`sec-hubness-koccurrence`; the simulations of :ref:`sec-theory`.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[0.0], [1.0], [3.0]])
    >>> knn(x, k=1, metric="euclidean")[0].flatten().tolist()
    [1, 0, 1]
    """
    func = "knn"
    n_q, n_g, device, blocks = _embedding_blocks(
        func, query, gallery, metric, chunk_size
    )
    within = gallery is None
    k = _check_k(func, k, n_g - 1 if within else n_g, _k_bound_text(within))
    idx_out = torch.empty(n_q, k, dtype=torch.long, device=device)
    val_out = None
    for start, block, offset in blocks:
        if within:
            block = _mask_self(block, start, copy=False)
        val, idx = _topk(block, k, ordered=True)
        if offset is not None:
            val = val - offset
        if val_out is None:
            val_out = torch.empty(n_q, k, dtype=val.dtype, device=device)
        idx_out[start : start + block.shape[0]] = idx
        val_out[start : start + block.shape[0]] = val
        del block  # free this block before the generator computes the next one
    return idx_out, val_out


def k_occurrence_from_indices(
    indices: Any, n_gallery: int, k: int | None = None
) -> torch.Tensor:
    r"""Count :math:`N_k` from neighbour lists: how often each item is in a top-k list.

    :math:`N_k(g)=\#\{i: g\in\mathrm{kNN}(i)\}` read from the first ``k`` columns of
    ``indices`` (all columns by default), so one :func:`knn` call with the largest
    ``k`` serves every smaller ``k``.

    Parameters
    ----------
    indices : LongTensor of shape (n_query, k_max)
        Neighbour lists, nearest first (from :func:`knn`).
    n_gallery : int
        Number of gallery items (the length of the result).
    k : int, optional
        At most ``k_max``; default ``k_max``.

    Returns
    -------
    LongTensor of shape (n_gallery,)

    Book
    ----
    :ref:`sec-hubness-koccurrence`.

    Examples
    --------
    >>> import torch
    >>> k_occurrence_from_indices(torch.tensor([[1, 2], [0, 2], [0, 1]]), 3, k=1).tolist()
    [2, 1, 0]
    """
    func = "k_occurrence_from_indices"
    idx = check_matrix(indices, "indices", func, floating=False)
    if idx.dtype.is_floating_point or idx.dtype == torch.bool:
        fail(func, "indices", "an integer matrix", str(idx.dtype), exc=TypeError)
    n_gallery = check_int(n_gallery, "n_gallery", func, low=1)
    k = idx.shape[1] if k is None else check_int(k, "k", func, low=1, high=idx.shape[1])
    flat = idx[:, :k].reshape(-1).long()
    if int(flat.min()) < 0 or int(flat.max()) >= n_gallery:
        fail(
            func,
            "indices",
            f"indices in [0, {n_gallery})",
            f"values in [{int(flat.min())}, {int(flat.max())}]",
        )
    return torch.bincount(flat, minlength=n_gallery)


def k_occurrence_from_embeddings(
    query: Any,
    gallery: Any = None,
    *,
    k: int = 10,
    metric: str = "cosine",
    chunk_size: int = 4096,
) -> torch.Tensor:
    r"""Compute :math:`N_k` straight from embeddings, streaming similarity blocks.

    The similarity matrix is never materialised: blocks of ``chunk_size`` query rows
    are multiplied against the gallery and reduced to their top-k at once, so the
    theory simulations (one set of 100k points in 512 dimensions) run in the memory
    of one ``chunk_size x n_gallery`` block.

    Parameters
    ----------
    query : Tensor or ndarray of shape (n_query, d)
        Query embeddings.
    gallery : Tensor or ndarray of shape (n_gallery, d), optional
        Gallery embeddings. ``None`` means within one set: the gallery is ``query``
        itself and each point's own entry is excluded.
    k : int, default 10
        Neighbourhood size.
    metric : {"cosine", "dot", "euclidean", "cosine_centred"}, default "cosine"
        The geometry (see :func:`knn`).
    chunk_size : int, default 4096
        Query rows per block.

    Returns
    -------
    LongTensor of shape (n_gallery,)
        :math:`N_k` on the device of ``query``.

    Raises
    ------
    TypeError, ValueError
        As :func:`hubrepro.similarity.similarity` and :func:`k_occurrence`.

    See Also
    --------
    k_occurrence : the same from a score matrix.
    knn : the neighbour lists and their scores.

    Book
    ----
    :ref:`sec-hubness-koccurrence`.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> k_occurrence_from_embeddings(x, k=1)
    tensor([1, 2, 0])
    """
    func = "k_occurrence_from_embeddings"
    _, n_g, device, blocks = _embedding_blocks(func, query, gallery, metric, chunk_size)
    within = gallery is None
    k = _check_k(func, k, n_g - 1 if within else n_g, _k_bound_text(within))
    counts = torch.zeros(n_g, dtype=torch.long, device=device)
    for start, block, _ in blocks:
        if within:
            # the block is freshly computed, so the diagonal is masked in place
            block = _mask_self(block, start, copy=False)
        _topk_counts(block, k, counts)
        del block  # free this block before the generator computes the next one
    return counts


def _check_nk(func: str, n_k: Any) -> torch.Tensor:
    t = as_tensor(n_k, "n_k", func)
    if t.ndim != 1:
        fail(func, "n_k", "a 1-D vector of k-occurrences", f"shape {tuple(t.shape)}")
    if t.numel() == 0:
        fail(func, "n_k", "non-empty", "an empty vector")
    if t.dtype == torch.bool or t.is_complex():
        fail(func, "n_k", "a real (integer) vector", f"dtype {t.dtype}", exc=TypeError)
    x = t.detach().to(torch.float64)
    if not bool(torch.isfinite(x).all()) or bool((x < 0).any()):
        fail(
            func,
            "n_k",
            "finite and non-negative counts",
            f"values in [{x.min().item()}, {x.max().item()}]",
        )
    if float(x.sum()) == 0:
        fail(func, "n_k", "a vector with at least one occurrence", "all zeros")
    return x


def _skew(x: torch.Tensor) -> float:
    d = x - x.mean()
    m2 = (d * d).mean()
    if float(m2) <= 1e-14 * max(1.0, float(x.abs().max()) ** 2):
        return 0.0
    m3 = (d * d * d).mean()
    return float(m3 / m2**1.5)


def skewness(n_k: Any) -> float:
    r"""Return the population skewness of the k-occurrences over all gallery items.

    Implements :math:`S_{N_k}` of :cite:`radovanovic2010hubs` (Eq. 1):

    .. math::

        S_{N_k} = \frac{\frac1{N_g}\sum_g (N_k(g)-\mu)^3}
        {\left(\frac1{N_g}\sum_g (N_k(g)-\mu)^2\right)^{3/2}},
        \qquad \mu = \frac1{N_g}\sum_g N_k(g),

    over **all** items, anti-hubs (:math:`N_k=0`) included. Large positive values
    mean a few hubs and many rarely retrieved items; 0 is symmetric.

    Parameters
    ----------
    n_k : Tensor or ndarray of shape (n_gallery,)
        k-occurrences (non-negative).

    Returns
    -------
    float
        Agrees with ``scipy.stats.skew(n_k)`` (``bias=True``), except that a
        constant vector (every item retrieved equally often) gives 0 where scipy
        gives NaN.

    Raises
    ------
    TypeError, ValueError
        Not a 1-D real vector, empty, negative or non-finite, all zeros.

    Book
    ----
    :eq:`eq-hubness-skewness`.

    Examples
    --------
    >>> round(skewness(torch.tensor([0, 0, 0, 4])), 6)
    1.154701
    >>> skewness(torch.tensor([2, 2, 2]))
    0.0
    """
    return _skew(_check_nk("skewness", n_k))


def skewness_nonzero(n_k: Any) -> float:
    r"""Return the skewness over the retrieved items only (the DBNorm-code variant).

    The DBNorm authors' ``get_skewness`` :cite:`wang2023balance` counts the flattened
    top-k indices, which only lists items retrieved at least once, and takes the
    skewness of those counts: anti-hubs are silently dropped.

    .. math:: S^{+}_{N_k} = S\left(\{N_k(g) : N_k(g) \ge 1\}\right)

    with :math:`S` the population skewness of :func:`skewness`. Use it only to
    compare with numbers produced by that code, and label it "skewness (retrieved
    items only)"; dropping the zeros removes the long empty left tail, so the value
    is usually smaller than :func:`skewness` and is not comparable across methods
    that change the anti-hub rate.

    Parameters
    ----------
    n_k : Tensor or ndarray of shape (n_gallery,)
        k-occurrences.

    Returns
    -------
    float
        Population skewness of the nonzero entries (0 if they are all equal).

    Notes
    -----
    The estimator (population, ``bias=True``) is scipy's default and is assumed to
    be the one of the authors' code, which calls ``scipy.stats.skew`` without
    arguments (DBNorm repository, ``get_skewness``); the sample-adjusted estimator would
    differ by the factor :math:`\sqrt{n(n-1)}/(n-2)`.

    Book
    ----
    :eq:`eq-hubness-skewness-nonzero`.

    Examples
    --------
    >>> skewness_nonzero(torch.tensor([0, 0, 0, 4]))
    0.0
    """
    x = _check_nk("skewness_nonzero", n_k)
    return _skew(x[x > 0])


def robin_hood_index(n_k: Any) -> float:
    r"""Return the Robin Hood (Hoover) index of the k-occurrences.

    The share of all retrieval slots that would have to move from items above the
    mean to items below it to make :math:`N_k` uniform
    :cite:`feldbauer2019comprehensive`:

    .. math:: H = \frac{\sum_g \lvert N_k(g) - \mu\rvert}{2 \sum_g N_k(g)}
       \in \left[0,\, 1 - \tfrac1{N_g}\right].

    Parameters
    ----------
    n_k : Tensor or ndarray of shape (n_gallery,)
        k-occurrences.

    Returns
    -------
    float
        0 for perfectly even occurrences; closer to 1 means more hubness.

    Book
    ----
    :eq:`eq-hubness-robin-hood`.

    Examples
    --------
    >>> robin_hood_index(torch.tensor([0, 0, 0, 4]))
    0.75
    """
    x = _check_nk("robin_hood_index", n_k)
    return float((x - x.mean()).abs().sum() / (2 * x.sum()))


def hub_occupancy(n_k: Any, k: int) -> float:
    r"""Return the share of all k-occurrences held by hubs (:math:`N_k \ge 2\mu`).

    Feldbauer et al.'s hub occupation :cite:`feldbauer2019comprehensive`, with the
    hub threshold at twice the mean occurrence (:math:`\mu = kN_q/N_g`, which is
    :math:`k` when queries and gallery are the same set):

    .. math:: O = \frac{\sum_{g:\,N_k(g) \ge 2\mu} N_k(g)}{\sum_g N_k(g)}.

    Parameters
    ----------
    n_k : Tensor or ndarray of shape (n_gallery,)
        k-occurrences; they must sum to a multiple of ``k`` (``n_query * k``).
    k : int
        The neighbourhood size used for ``n_k``.

    Returns
    -------
    float
        In [0, 1]; larger means more of the retrieval goes to hubs.

    Book
    ----
    :eq:`eq-hubness-occupancy`.

    Examples
    --------
    >>> hub_occupancy(torch.tensor([0, 0, 1, 3]), k=1)
    0.75
    """
    func = "hub_occupancy"
    x = _check_nk(func, n_k)
    k = check_int(k, "k", func, low=1)
    total = float(x.sum())
    if total % k:
        fail(
            func, "k", f"a divisor of sum(n_k) = {total:g} (sum(n_k) = n_query * k)", k
        )
    return float(x[x >= 2 * x.mean()].sum() / total)


def antihub_rate(n_k: Any) -> float:
    r"""Return the share of gallery items that no query retrieves.

    .. math:: A = \frac{1}{N_g}\#\{g : N_k(g) = 0\}

    Parameters
    ----------
    n_k : Tensor or ndarray of shape (n_gallery,)
        k-occurrences.

    Returns
    -------
    float
        In [0, 1).

    Book
    ----
    :eq:`eq-hubness-antihub`.

    Examples
    --------
    >>> antihub_rate(torch.tensor([0, 0, 1, 3]))
    0.5
    """
    x = _check_nk("antihub_rate", n_k)
    return float((x == 0).double().mean())


def gini(n_k: Any) -> float:
    r"""Return the Gini coefficient of the k-occurrences.

    With :math:`N_k` sorted increasingly, :math:`N_{(1)} \le \dots \le N_{(n)}`
    (:cite:`feldbauer2019comprehensive`; half the relative mean absolute difference):

    .. math::

        G = \frac{\sum_{i=1}^{n} (2i - n - 1)\, N_{(i)}}{n \sum_i N_{(i)}}
          = \frac{\sum_{g,h} \lvert N_k(g) - N_k(h)\rvert}{2 n \sum_g N_k(g)}.

    Parameters
    ----------
    n_k : Tensor or ndarray of shape (n_gallery,)
        k-occurrences.

    Returns
    -------
    float
        In [0, 1 - 1/n]; 0 for perfectly even occurrences.

    Book
    ----
    :eq:`eq-hubness-gini`.

    Examples
    --------
    >>> gini(torch.tensor([0, 0, 0, 4]))
    0.75
    """
    x = _check_nk("gini", n_k)
    xs = torch.sort(x).values
    n = xs.numel()
    i = torch.arange(1, n + 1, dtype=torch.float64, device=xs.device)
    return float(((2 * i - n - 1) * xs).sum() / (n * xs.sum()))


def hubness_stats(n_k: Any, k: int) -> dict[str, Any]:
    """Summarise k-occurrences with every hubness statistic of this module.

    Parameters
    ----------
    n_k : Tensor or ndarray of shape (n_gallery,)
        k-occurrences, e.g. from :func:`k_occurrence`.
    k : int
        The neighbourhood size used for ``n_k``.

    Returns
    -------
    dict
        ``{"k", "skewness", "skewness_nonzero", "robin_hood", "hub_occupancy",
        "antihub_rate", "gini", "max_occurrence"}``; Python numbers, unrounded.

    Book
    ----
    :ref:`sec-hubness`.

    Examples
    --------
    >>> hubness_stats(torch.tensor([0, 0, 1, 3]), 1)["max_occurrence"]
    3
    """
    func = "hubness_stats"
    k = check_int(k, "k", func, low=1)
    x = _check_nk(func, n_k)
    return {
        "k": k,
        "skewness": skewness(x),
        "skewness_nonzero": skewness_nonzero(x),
        "robin_hood": robin_hood_index(x),
        "hub_occupancy": hub_occupancy(x, k),
        "antihub_rate": antihub_rate(x),
        "gini": gini(x),
        "max_occurrence": int(x.max()),
    }


def hubness_report(
    sims: Any,
    k: int = 10,
    *,
    exclude_self: bool = False,
    chunk_size: int | None = None,
) -> dict[str, Any]:
    """Compute :math:`N_k` from a score matrix and summarise it (:func:`hubness_stats`).

    Parameters
    ----------
    sims : Tensor or ndarray of shape (n_query, n_gallery)
        Scores, higher = closer.
    k : int, default 10
        Neighbourhood size.
    exclude_self : bool, default False
        One set against itself: drop the diagonal.
    chunk_size : int, optional
        Query rows per block.

    Returns
    -------
    dict
        ``{"k", "skewness", "skewness_nonzero", "robin_hood", "hub_occupancy",
        "antihub_rate", "gini", "max_occurrence"}``.

    Book
    ----
    :ref:`sec-hubness`.

    Examples
    --------
    >>> import torch
    >>> hubness_report(torch.eye(4), k=1)["skewness"]
    0.0
    """
    n_k = k_occurrence(sims, k, exclude_self=exclude_self, chunk_size=chunk_size)
    return hubness_stats(n_k, k)
