r"""Hubness of the top-k retrieval graph: k-occurrence and its statistics.

Each query retrieves its top-``k`` gallery items. The **k-occurrence** of gallery
item ``g`` counts how many queries retrieve it :cite:`radovanovic2010hubs`:

.. math:: N_k(g) = \sum_{i=1}^{N_q} \mathbb 1\left[g \in \mathrm{top}_k(S_{i,:})\right],
   \qquad \sum_g N_k(g) = k N_q, \qquad \mu = \frac{k N_q}{N_g}.

*Hubs* are items with a large :math:`N_k`, *anti-hubs* items with
:math:`N_k = 0`. The statistics here summarise how unevenly the :math:`kN_q`
retrieval slots are shared (formulas in each function and in the book,
:ref:`sec-hubness`):

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
the ones with the **lowest gallery index** fill the remaining slots.
"""

from __future__ import annotations

from typing import Any

import torch

from hubrepro._validation import as_tensor, check_choice, check_int, check_matrix, fail
from hubrepro.similarity import METRICS, default_chunk_size, iter_similarity_blocks

__all__ = [
    "k_occurrence",
    "k_occurrence_from_embeddings",
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


def _topk_counts(block: torch.Tensor, k: int, counts: torch.Tensor) -> None:
    """Add this block's top-k memberships to ``counts`` (lowest index wins ties)."""
    n_cols = block.shape[1]
    if k == n_cols:
        counts += block.shape[0]
        return
    # k+1 largest values tell which rows have a tie straddling the k-th place
    vals, idx = torch.topk(block, k + 1, dim=1, largest=True, sorted=True)
    kth = vals[:, k - 1]
    tied = vals[:, k] == kth
    clean = ~tied
    if bool(clean.any()):
        counts += torch.bincount(idx[clean, :k].reshape(-1), minlength=n_cols)
    if bool(tied.any()):
        rows = block[tied]
        thr = kth[tied, None]
        above = rows > thr
        at = rows == thr
        need = k - above.sum(1, keepdim=True)
        # among the tied items, the first `need` by column index are selected
        chosen = above | (at & (torch.cumsum(at, dim=1) <= need))
        counts += chosen.sum(0)


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
    metric : {"cosine", "dot"}, default "cosine"
        Similarity (see :func:`hubrepro.similarity.similarity`).
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
    check_choice(metric, "metric", func, METRICS)
    within = gallery is None
    q = check_matrix(query, "query", func)
    g = q if within else check_matrix(gallery, "gallery", func)
    # shapes, dtypes and devices are checked here, before any block is computed
    blocks = iter_similarity_blocks(q, g, metric=metric, chunk_size=chunk_size)
    n_g = g.shape[0]
    k = _check_k(func, k, n_g - 1 if within else n_g, _k_bound_text(within))
    counts = torch.zeros(n_g, dtype=torch.long, device=q.device)
    for start, block in blocks:
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
    be the one of the authors' code (spec D8); the sample-adjusted estimator would
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
