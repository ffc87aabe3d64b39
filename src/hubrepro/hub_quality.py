r"""Good and bad hubs: label-aware neighbourhood statistics for NeighborRetr's claims.

NeighborRetr (``lin2025neighborretr``) argues that some hubs are *good* (central
items that really are relevant to many queries) and some are *bad* (items that crowd
into many top-:math:`k` lists without being relevant). With concept labels (the
synthetic world of ``hubrepro.datasets``; :ref:`sec-neighborretr`) both are
measurable:

- a **slot** is one (query, gallery item) pair in a query's top-:math:`k` list; it is
  *good* when the labels agree;
- a **hub** is a gallery item with :math:`N_k \ge 2k` (the book's definition,
  :ref:`sec-hubness`); the **bad-hub fraction** is the share of hub slots that are bad.

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

from typing import Any

import torch

from hubrepro import _validation as V

__all__ = ["neighbor_label_stats", "gt_occurrence"]


def _labels(x: Any, name: str, func: str, n: int) -> torch.Tensor:
    t = V.as_tensor(x, name, func)
    if t.ndim != 1 or t.shape[0] != n:
        V.fail(func, name, f"a 1-D vector of length {n}", f"shape {tuple(t.shape)}")
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        V.fail(func, name, "an integer vector", str(t.dtype), exc=TypeError)
    return t


def neighbor_label_stats(
    sims: Any,
    query_labels: Any,
    gallery_labels: Any,
    *,
    k: int = 10,
    hub_factor: float = 2.0,
    chunk_size: int = 4096,
) -> dict[str, float]:
    r"""Return the label quality of top-:math:`k` neighbourhoods, overall and on hubs.

    Implements the bad-hub and good-neighbour statistics of the project's
    NeighborRetr reproduction (:ref:`sec-neighborretr`): with slots :math:`(i, j)`,
    :math:`j \in \mathrm{top}_k(i)`, and hubs :math:`H = \{j : N_k(j) \ge
    \text{hub\_factor}\cdot k\}`,

    .. math::

        \text{good-neighbour rate} = \frac{\#\{(i,j): y_i = y_j\}}{n_q k},\qquad
        \text{bad-hub fraction} = \frac{\#\{(i,j): j\in H,\ y_i \ne y_j\}}
                                       {\#\{(i,j): j \in H\}}.

    Parameters
    ----------
    sims : Tensor of shape (n_query, n_gallery)
        Scores, higher = closer.
    query_labels : LongTensor of shape (n_query,)
        Concept label of each query.
    gallery_labels : LongTensor of shape (n_gallery,)
        Concept label of each gallery item.
    k : int, default 10
        Neighbourhood size.
    hub_factor : float, default 2.0
        Hubs have :math:`N_k \ge` ``hub_factor`` × ``k``.
    chunk_size : int, default 4096
        Query rows per block.

    Returns
    -------
    dict
        ``good_neighbor_rate``, ``bad_hub_fraction`` and ``good_hub_fraction``
        (``nan`` without hubs), ``hub_occupancy`` (share of slots on hubs),
        ``n_hubs``, ``k``.

    Notes
    -----
    Ties in a row are broken by ``torch.topk``. Book: :ref:`sec-neighborretr`.

    Examples
    --------
    >>> import torch
    >>> s = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.1]])
    >>> st = neighbor_label_stats(s, torch.tensor([0, 1]), torch.tensor([0, 1, 1]), k=1, hub_factor=2)
    >>> st["bad_hub_fraction"], st["good_neighbor_rate"]
    (0.5, 0.5)
    """
    func = "neighbor_label_stats"
    s = V.check_matrix(sims, "sims", func)
    nq, ng = s.shape
    yq = _labels(query_labels, "query_labels", func, nq).to(s.device)
    yg = _labels(gallery_labels, "gallery_labels", func, ng).to(s.device)
    k = V.check_int(k, "k", func, low=1, high=ng)
    hub_factor = V.check_positive(hub_factor, "hub_factor", func)
    chunk_size = V.check_int(chunk_size, "chunk_size", func, low=1)
    tops, goods = [], []
    for a in range(0, nq, chunk_size):
        top = s[a : a + chunk_size].topk(k, dim=1).indices
        tops.append(top)
        goods.append(yg[top] == yq[a : a + chunk_size, None])
    top = torch.cat(tops)
    good = torch.cat(goods)
    n_k = torch.bincount(top.reshape(-1), minlength=ng)
    is_hub = n_k >= hub_factor * k
    on_hub = is_hub[top]
    n_hub_slots = int(on_hub.sum())
    bad_hub = (
        float((on_hub & ~good).sum()) / n_hub_slots if n_hub_slots else float("nan")
    )
    return {
        "k": k,
        "good_neighbor_rate": float(good.float().mean()),
        "bad_hub_fraction": bad_hub,
        "good_hub_fraction": 1.0 - bad_hub if n_hub_slots else float("nan"),
        "hub_occupancy": n_hub_slots / float(nq * k),
        "n_hubs": int(is_hub.sum()),
    }


def gt_occurrence(
    query_labels: Any, gallery_labels: Any, *, k: int | None = None
) -> torch.Tensor:
    r"""Return the label-based "ground-truth" occurrence of each gallery item.

    The reference histogram of NeighborRetr's Fig. 2 (``lin2025neighborretr``): with
    ``k=None``,
    the number of queries sharing the item's label,
    :math:`N^{\rm GT}(j) = \#\{i : y_i = y_j\}`. With ``k`` given, the occurrence an
    oracle would produce by spreading each query's :math:`k` slots evenly over the
    :math:`n_y` gallery items of its label,
    :math:`N^{\rm GT}_k(j) = N^{\rm GT}(j)\,\min(k, n_{y_j})/n_{y_j}` — on the same
    scale as :math:`N_k`.

    Parameters
    ----------
    query_labels : LongTensor of shape (n_query,)
    gallery_labels : LongTensor of shape (n_gallery,)
    k : int or None, default None

    Returns
    -------
    Tensor of shape (n_gallery,)
        Long counts (``k=None``) or float64 expected counts.

    Notes
    -----
    Book: :ref:`sec-neighborretr`.
    """
    func = "gt_occurrence"
    yq = V.as_tensor(query_labels, "query_labels", func)
    yg = V.as_tensor(gallery_labels, "gallery_labels", func)
    yq = _labels(yq, "query_labels", func, yq.shape[0] if yq.ndim == 1 else -1)
    yg = _labels(yg, "gallery_labels", func, yg.shape[0] if yg.ndim == 1 else -1)
    n_lab = int(max(int(yq.max()), int(yg.max()))) + 1
    q_per = torch.bincount(yq.long(), minlength=n_lab)
    counts = q_per[yg.long()]
    if k is None:
        return counts
    k = V.check_int(k, "k", func, low=1)
    g_per = torch.bincount(yg.long(), minlength=n_lab)[yg.long()].double()
    return counts.double() * torch.clamp(g_per, max=k) / g_per
