r"""The neighbour adjusting loss :math:`L_{\rm Nbi}` of NeighborRetr.

NeighborRetr (``lin2025neighborretr``), Eq. (5)-(8): a memory bank of past samples gives
every candidate a *bank centrality*; for each query the top-:math:`k` candidates get
soft targets from their similarity minus their centrality (both min-max normalised), so
that similar but not central neighbours ("good hubs") are pulled and central ones ("bad
hubs") pushed, by a soft-label cross-entropy on the **unscaled** similarities of
:math:`E(i) = \{i\} \cup \mathcal N_k(i)`. The released code is
``NeighborAdjustingLoss`` in ``NeighborRetr/models/until_module.py``, called per
direction by ``NeighborRetr.compute_neighbor_loss`` in ``NeighborRetr/models/modeling.py``
(``zzezze/NeighborRetr``, commit 04112ee).

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hubrepro import _validation as V
from hubrepro.losses._checks import check_square_sims

__all__ = [
    "bank_centrality",
    "neighbor_targets",
    "neighbor_adjusting_loss",
    "NeighborAdjustingLoss",
]

_EPS = 1e-8


def bank_centrality(
    bank_local: torch.Tensor, candidate_local: torch.Tensor
) -> torch.Tensor:
    r"""Return each candidate's mean cosine similarity to the memory bank.

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (5), for one-token features
    (the released code averages WTI similarities to the bank):
    :math:`\kappa_j = \frac1M\sum_m \cos(b_m, x_j)`, computed as one matrix-vector
    product with the mean of the normalised bank.

    Parameters
    ----------
    bank_local : Tensor of shape (bank_size, dim)
        Bank features of the *other* modality (detached by the bank).
    candidate_local : Tensor of shape (batch, dim)
        The candidates whose centrality is wanted.

    Returns
    -------
    Tensor of shape (batch,)
        New tensor; gradients flow into ``candidate_local`` only.

    Notes
    -----
    Book: :ref:`sec-neighborretr`.
    """
    func = "bank_centrality"
    b = V.check_matrix(bank_local, "bank_local", func)
    c = V.check_matrix(candidate_local, "candidate_local", func)
    if b.shape[1] != c.shape[1]:
        V.fail(
            func,
            "bank_local",
            f"of feature size {c.shape[1]}",
            f"shape {tuple(b.shape)}",
        )
    return _bank_centrality(b, c)


def _bank_centrality(bank: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    return F.normalize(cand, dim=-1) @ _bank_mean(bank, cand.dtype)


def _bank_mean(bank: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # mean of the normalised bank rows as one vector-matrix product (no (M, D) division)
    bank = bank.detach().to(dtype)
    inv_norm = 1.0 / torch.linalg.vector_norm(bank, dim=1).clamp_min(1e-12)
    return (inv_norm @ bank) / bank.shape[0]


def _neighbour_index(sims: torch.Tensor, k: int) -> torch.Tensor:
    # (..., B, k) columns of the top-k of each row, the row's own column excluded, in
    # no particular order; no gradient; batched over leading dimensions. On the CPU a
    # NumPy partition (about twice as fast as topk there; the same set of columns up
    # to exact ties, which only identical candidates produce)
    x = sims.detach().clone()
    x.diagonal(dim1=-2, dim2=-1).fill_(float("-inf"))
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        n = x.shape[-1]
        part = np.argpartition(x.numpy(), n - k, axis=-1)[..., n - k :]
        return torch.from_numpy(part)
    return x.topk(k, dim=-1, sorted=False).indices


def _neighbour_targets(
    sims: torch.Tensor,
    cent: torch.Tensor,
    idx: torch.Tensor,
    tau: float,
    stats: str,
    s_n: torch.Tensor | None = None,
) -> torch.Tensor:
    # P on the neighbours only, shape (..., B, k); the min-max statistics come from the
    # neighbours (gathered, O(Bk)) or from the complement of E(i) (masked, O(B^2));
    # `s_n` is sims gathered at idx when the caller has it
    if s_n is None:
        s_n = sims.gather(-1, idx)
    c = cent.to(sims.dtype)
    c_n = c[..., None, :].expand(sims.shape).gather(-1, idx)
    if stats == "neighbours":
        if not torch.is_grad_enabled() or not (s_n.requires_grad or c_n.requires_grad):
            # constants: both min-max normalisations in one stacked pass
            z = torch.stack([s_n, c_n])
            # amin and amax (aminmax with a dim is several times slower on the CPU)
            lo, hi = z.amin(dim=-1, keepdim=True), z.amax(dim=-1, keepdim=True)
            z = (z - lo) / (hi - lo).clamp_min(_EPS)
            return torch.softmax(tau * (z[0] - z[1]), dim=-1)
        # with gradient: min and max with their own gradient rule (as released)
        s_lo = s_n.min(dim=-1, keepdim=True).values
        s_hi = s_n.max(dim=-1, keepdim=True).values
        c_lo = c_n.min(dim=-1, keepdim=True).values
        c_hi = c_n.max(dim=-1, keepdim=True).values
    else:
        # +inf on E(i) = {i} + N_k(i), 0 elsewhere: min/max over the complement by an
        # addition (x + 0 = x exactly), which needs no mask in the backward pass
        off = torch.zeros(sims.shape, dtype=sims.dtype, device=sims.device)
        off.diagonal(dim1=-2, dim2=-1).fill_(float("inf"))
        off.scatter_(-1, idx, float("inf"))
        s_lo = (sims + off).min(dim=-1, keepdim=True).values
        s_hi = (sims - off).max(dim=-1, keepdim=True).values
        c_lo = (c[..., None, :] + off).min(dim=-1, keepdim=True).values
        c_hi = (c[..., None, :] - off).max(dim=-1, keepdim=True).values
    s_hat = (s_n - s_lo) / (s_hi - s_lo).clamp_min(_EPS)
    c_hat = (c_n - c_lo) / (c_hi - c_lo).clamp_min(_EPS)
    return torch.softmax(tau * (s_hat - c_hat), dim=-1)


def _check_nal_args(
    func: str, sims: Any, candidate_centrality: Any, k: Any, tau: Any, stats: Any
) -> tuple[torch.Tensor, torch.Tensor, int, float, str]:
    sims = check_square_sims(sims, func)
    b = sims.shape[0]
    cent = V.check_matrix(candidate_centrality, "candidate_centrality", func, ndim=1)
    if cent.shape[0] != b:
        V.fail(
            func, "candidate_centrality", f"of length {b}", f"length {cent.shape[0]}"
        )
    stats = V.check_choice(stats, "stats", func, ("neighbours", "complement"))
    k = V.check_int(k, "k", func, low=1, high=b - 2 if stats == "complement" else b - 1)
    tau = V.check_positive(tau, "tau", func, allow_zero=True)
    return sims, cent, k, tau, stats


def neighbor_targets(
    sims: torch.Tensor,
    candidate_centrality: torch.Tensor,
    *,
    k: int = 20,
    tau: float = 3.0,
    stats: Literal["neighbours", "complement"] = "neighbours",
) -> torch.Tensor:
    r"""Return the soft targets :math:`P` of the neighbour adjusting loss.

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (6)-(7)
    (``NeighborAdjustingLoss.compute_positive_weights`` of the released code). For row :math:`i`: :math:`\mathcal N_k(i)` are the top-:math:`k` columns
    except :math:`i`;

    .. math::

        D_{ij} = \hat S_{ij} - \hat C_{ij},\quad
        P_{ij} = \operatorname{softmax}_{j\in\mathcal N_k(i)}(\tau D_{ij}),\quad
        P_{ii} = 1,

    and :math:`P = 0` elsewhere, so every row sums to 2. Hats are row-wise min-max
    normalisations over a reference set :math:`R(i)`.

    Parameters
    ----------
    sims : Tensor of shape (batch, batch)
        :math:`S`, ground truth on the diagonal.
    candidate_centrality : Tensor of shape (batch,)
        :math:`\kappa_j` of each column (see :func:`bank_centrality`).
    k : int, default 20
        Neighbours per row; must be < batch (and < batch - 1 with
        ``stats="complement"``).
    tau : float, default 3.0
        :math:`\tau_n`, a multiplier (not a divisor).
    stats : {"neighbours", "complement"}, default "neighbours"
        :math:`R(i)`: the neighbours (project default) or, as the released code does
        (``NeighborAdjustingLoss.normalize_similarity``, although its docstring says
        "valid positions"), the complement of :math:`\{i\}\cup\mathcal N_k(i)`.

    Returns
    -------
    Tensor of shape (batch, batch)
        New tensor; differentiable in its inputs (detach them for constants).

    Notes
    -----
    Book: :ref:`sec-neighborretr`.
    """
    sims, cent, k, tau, stats = _check_nal_args(
        "neighbor_targets", sims, candidate_centrality, k, tau, stats
    )
    b = sims.shape[0]
    idx = _neighbour_index(sims, k)
    p_n = _neighbour_targets(sims, cent, idx, tau, stats)
    p = torch.zeros_like(sims).scatter(1, idx, p_n)
    return p + torch.eye(b, dtype=sims.dtype, device=sims.device)


def neighbor_adjusting_loss(
    sims: torch.Tensor,
    candidate_centrality: torch.Tensor,
    *,
    k: int = 20,
    tau: float = 3.0,
    stats: Literal["neighbours", "complement"] = "neighbours",
    detach_targets: bool = True,
) -> torch.Tensor:
    r"""Return one direction of the neighbour adjusting loss :math:`L_{\rm Nbi}`.

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (8)
    (``NeighborAdjustingLoss.forward`` of the released code):
    a soft-label cross-entropy on **unscaled** similarities restricted to
    :math:`E(i)=\{i\}\cup\mathcal N_k(i)`,

    .. math::

        L = \frac1B\sum_i \frac{-\sum_{j\in E(i)} P_{ij}
            \log\operatorname{softmax}_{l\in E(i)}(s_{il})|_j}{\sum_{j\in E(i)}P_{ij}}.

    For the other direction pass ``sims.T`` and the other modality's centrality.

    Parameters
    ----------
    sims, candidate_centrality, k, tau, stats
        As in :func:`neighbor_targets`.
    detach_targets : bool, default True
        Treat :math:`P` as constants. ``False`` is the released code.

    Returns
    -------
    Tensor
        Scalar loss. Columns outside :math:`E(i)` receive no gradient from row
        :math:`i` (when targets are detached, or with ``stats="neighbours"``).

    Notes
    -----
    Book: :ref:`sec-neighborretr`.
    """
    sims, cent, k, tau, stats = _check_nal_args(
        "neighbor_adjusting_loss", sims, candidate_centrality, k, tau, stats
    )
    return _nal(sims, cent, k, tau, stats, detach_targets)


def _nal(
    sims: torch.Tensor,
    cent: torch.Tensor,
    k: int,
    tau: float,
    stats: str,
    detach_targets: bool,
) -> torch.Tensor:
    # everything on the (..., B, k + 1) gathered logits of E(i) = {i} + top-k: columns
    # outside E(i) get no gradient by construction, and the cost is O(Bk) beyond the
    # top-k. Batched over leading dimensions (the two directions stacked): the mean
    # over every row of the stack is the mean of the directions' means.
    idx = _neighbour_index(sims, k)
    s_n = sims.gather(-1, idx)
    if detach_targets:
        with torch.no_grad():
            p_n = _neighbour_targets(sims, cent, idx, tau, stats, s_n)
    else:
        p_n = _neighbour_targets(sims, cent, idx, tau, stats, s_n)
    logits = torch.cat([sims.diagonal(dim1=-2, dim2=-1)[..., None], s_n], dim=-1)
    p = torch.cat([torch.ones_like(p_n[..., :1]), p_n], dim=-1)
    num = (p * torch.log_softmax(logits, dim=-1)).sum(dim=-1)
    return -(num / p.sum(dim=-1)).mean()


class NeighborAdjustingLoss(nn.Module):
    r"""The term :math:`L_{\rm Nbi}` in both directions, with the memory bank.

    :math:`L_{\rm Nbi} = \tfrac12\big[L(S, \kappa^g) + L(S^\top, \kappa^q)\big]`
    with :math:`L` = :func:`neighbor_adjusting_loss`, :math:`\kappa^g` the bank
    centrality (:func:`bank_centrality`) of the gallery candidates against the bank's
    queries and :math:`\kappa^q` that of the query candidates against the bank's
    gallery items, as ``NeighborRetr.compute_neighbor_loss`` of the released code
    combines the two directions.

    Parameters
    ----------
    num_neighbors : int, default 20
        :math:`k`, clipped to what the batch allows (``batch - 1``, or ``batch - 2``
        with ``stats="complement"``).
    tau : float, default 3.0
        :math:`\tau_n`.
    stats : {"neighbours", "complement"}, default "neighbours"
        As in :func:`neighbor_targets` (``"complement"``: the released code).
    detach_targets : bool, default True
        As in :func:`neighbor_adjusting_loss` (``False``: the released code).

    Notes
    -----
    ``forward(sims, query_local, gallery_local, bank_query_local, bank_gallery_local)``
    with one local vector per sample; bank rows are detached. Book:
    :ref:`sec-neighborretr`.

    Examples
    --------
    >>> import torch
    >>> q, g = torch.randn(6, 4), torch.randn(6, 4)
    >>> s = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(g, dim=1).T
    >>> term = NeighborAdjustingLoss(num_neighbors=2)
    >>> bool(term(s, q, g, torch.randn(10, 4), torch.randn(10, 4)) > 0)
    True
    """

    def __init__(
        self,
        *,
        num_neighbors: int = 20,
        tau: float = 3.0,
        stats: Literal["neighbours", "complement"] = "neighbours",
        detach_targets: bool = True,
    ) -> None:
        super().__init__()
        func = "NeighborAdjustingLoss"
        self.num_neighbors = V.check_int(num_neighbors, "num_neighbors", func, low=1)
        self.tau = V.check_positive(tau, "tau", func, allow_zero=True)
        self.stats = V.check_choice(stats, "stats", func, ("neighbours", "complement"))
        self.detach_targets = bool(detach_targets)

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f"num_neighbors={self.num_neighbors}, tau={self.tau}, "
            f"stats={self.stats!r}, detach_targets={self.detach_targets}"
        )

    def check_inputs(
        self,
        func: str,
        batch: int,
        dim: int,
        bank_query_local: Any,
        bank_gallery_local: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate the banks and the batch size; return the banks as tensors."""
        banks = []
        for name, x in (
            ("bank_query_local", bank_query_local),
            ("bank_gallery_local", bank_gallery_local),
        ):
            if x is None or x.shape[0] == 0:
                V.fail(
                    func,
                    name,
                    "a non-empty memory bank when `w_neighbor` > 0",
                    "None or an empty bank",
                    "Fill the bank first (see hubrepro.memory_bank.FIFOBank) or set w_neighbor=0.",
                )
            # the bank holds detached model outputs: shape and dtype are checked, the
            # (M, D) finiteness scan is skipped as it would cost more than the term
            x = V.check_matrix(x, name, func, finite=False)
            if x.shape[1] != dim:
                V.fail(func, name, f"of feature size {dim}", f"shape {tuple(x.shape)}")
            banks.append(x)
        if self._high(batch) < 1:
            V.fail(
                func,
                "query_local",
                f"a batch large enough for NAL with stats={self.stats!r}",
                f"batch {batch}",
            )
        return banks[0], banks[1]

    def _high(self, batch: int) -> int:
        return batch - 2 if self.stats == "complement" else batch - 1

    def loss(
        self,
        sims: torch.Tensor,
        query_local: torch.Tensor,
        gallery_local: torch.Tensor,
        bank_query_local: torch.Tensor,
        bank_gallery_local: torch.Tensor,
    ) -> torch.Tensor:
        """Return the term for validated inputs (see :meth:`check_inputs`)."""
        return self.loss_stacked(
            torch.stack([sims, sims.T]),
            F.normalize(query_local, dim=-1),
            F.normalize(gallery_local, dim=-1),
            bank_query_local,
            bank_gallery_local,
        )

    def loss_stacked(
        self,
        s2: torch.Tensor,
        query_unit: torch.Tensor,
        gallery_unit: torch.Tensor,
        bank_query_local: torch.Tensor,
        bank_gallery_local: torch.Tensor,
    ) -> torch.Tensor:
        """Return the term of the stack ``(S, S.T)`` and L2-normalised local features.

        Both directions run as one batched computation: the candidates of the rows of
        :math:`S` are the gallery items (centrality against the bank's queries), those
        of :math:`S^\top` the queries (against the bank's gallery items).
        """
        k = min(self.num_neighbors, self._high(s2.shape[-1]))
        means = torch.stack(
            [
                _bank_mean(bank_query_local, gallery_unit.dtype),
                _bank_mean(bank_gallery_local, query_unit.dtype),
            ]
        )
        with torch.set_grad_enabled(
            torch.is_grad_enabled() and not self.detach_targets
        ):
            # (2, B): bank centrality of each direction's candidates
            cent2 = torch.bmm(
                torch.stack([gallery_unit, query_unit]), means[:, :, None]
            )[..., 0]
        return _nal(s2, cent2, k, self.tau, self.stats, self.detach_targets)

    def forward(
        self,
        sims: torch.Tensor,
        query_local: torch.Tensor,
        gallery_local: torch.Tensor,
        bank_query_local: torch.Tensor,
        bank_gallery_local: torch.Tensor,
    ) -> torch.Tensor:
        r"""Return :math:`L_{\rm Nbi}` for one batch (row i of ``sims`` matches column i)."""
        func = "NeighborAdjustingLoss"
        sims = check_square_sims(sims, func)
        b = sims.shape[0]
        ql = V.check_matrix(query_local, "query_local", func)
        gl = V.check_matrix(gallery_local, "gallery_local", func)
        for name, x in (("query_local", ql), ("gallery_local", gl)):
            if x.shape != (b, ql.shape[1]):
                V.fail(
                    func,
                    name,
                    f"of shape ({b}, {ql.shape[1]}) (the batch of `sims`)",
                    f"shape {tuple(x.shape)}",
                )
        bq, bg = self.check_inputs(
            func, b, ql.shape[1], bank_query_local, bank_gallery_local
        )
        return self.loss(sims, ql, gl, bq, bg)
