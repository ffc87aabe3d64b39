r"""NeighborRetr training objectives (Lin et al., CVPR 2025), as the authors implemented them.

NeighborRetr (``lin2025neighborretr``) trains a dual encoder with four terms,

.. math::

    L = L_{\rm Wti} + w_{\rm opt} L_{\rm Opt} + w_{\rm nbi} L_{\rm Nbi}
        + w_{\rm kl} L_{\rm KL},

where :math:`L_{\rm Wti}` is a centrality-weighted symmetric InfoNCE on the
fine-grained similarity :math:`S` (Eq. 3-4), :math:`L_{\rm Nbi}` the neighbour
adjusting loss on de-centralised similarities against memory-bank centrality
(Eq. 5-8), :math:`L_{\rm Opt}` a uniform regulariser towards a Sinkhorn plan of the
global scores :math:`G` (Eq. 10-12; ``cuturi2013sinkhorn``) and :math:`L_{\rm KL}`
a consistency term between the two similarity levels (Eq. 15). Equation numbers come
from the official code's docstrings (the project spec, ``neighborretr.md`` §0).

Every place where the official code does something surprising (spec §5) has the
project's sound default plus the authors' behaviour behind a named flag, and
``compat="official"`` switches all of them at once. Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from hubrepro import _validation as V
from hubrepro.losses.contrastive import _check_scale, _check_square_sims

__all__ = [
    "COMPAT_FLAGS",
    "wti_similarity",
    "centrality",
    "centrality_weights",
    "centrality_weighted_infonce",
    "bank_centrality",
    "neighbor_targets",
    "neighbor_adjusting_loss",
    "sinkhorn_plan",
    "uniform_regularisation",
    "kl_consistency",
    "NeighborRetrLoss",
]

_EPS = 1e-8

#: The per-surprise flags (spec §5) under each ``compat`` setting.
COMPAT_FLAGS: dict[str, dict[str, object]] = {
    "fixed": {
        "nal_stats": "neighbours",
        "detach_weights": True,
        "detach_targets": True,
        "centrality_exclude_pad": True,
        "centrality_exclude_self": True,
        "tie_temperatures": False,
        "separate_plans": False,
    },
    "official": {
        "nal_stats": "complement",
        "detach_weights": False,
        "detach_targets": False,
        "centrality_exclude_pad": False,
        "centrality_exclude_self": False,
        "tie_temperatures": True,
        "separate_plans": True,
    },
}


# --------------------------------------------------------------------------- WTI


def _token_weights(
    tokens: torch.Tensor,
    mask: torch.Tensor,
    mlp: Callable[[torch.Tensor], torch.Tensor] | None,
) -> torch.Tensor:
    # softmax over valid positions of the MLP scores (uniform weights without an MLP)
    if mlp is None:
        scores = torch.zeros(tokens.shape[:2], dtype=tokens.dtype, device=tokens.device)
    else:
        scores = mlp(tokens).reshape(tokens.shape[:2])
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=1)


def _check_tokens(
    tokens: torch.Tensor, mask: torch.Tensor | None, name: str, func: str
) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = V.check_matrix(tokens, name, func, ndim=3)
    if mask is None:
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    else:
        mask = V.as_tensor(mask, f"{name}_mask", func)
        if mask.shape != tokens.shape[:2]:
            V.fail(
                func,
                f"{name}_mask",
                f"of shape {tuple(tokens.shape[:2])}",
                f"shape {tuple(mask.shape)}",
            )
        mask = mask.bool()
        if not bool(mask.any(dim=1).all()):
            V.fail(
                func,
                f"{name}_mask",
                "True for at least one token per sample",
                "a sample with no valid token",
            )
    return tokens, mask


def wti_similarity(
    query_tokens: torch.Tensor,
    query_mask: torch.Tensor | None,
    gallery_tokens: torch.Tensor,
    gallery_mask: torch.Tensor | None,
    query_mlp: Callable[[torch.Tensor], torch.Tensor] | None = None,
    gallery_mlp: Callable[[torch.Tensor], torch.Tensor] | None = None,
    *,
    masked_zero: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""Return the weighted token-wise interaction (WTI) similarity matrix.

    Implements NeighborRetr (``lin2025neighborretr``), §4.2, the fine-grained
    similarity of the official code (spec §2.1).

    .. math::

        s_{ij} = \tfrac12\Big[\sum_p a^q_i[p]\max_q c_{ij}[p,q]
                 + \sum_q a^g_j[q]\max_p c_{ij}[p,q]\Big],\qquad
        c_{ij}[p,q] = \langle \hat T_{i,p}, \hat V_{j,q}\rangle,

    with token weights :math:`a = \operatorname{softmax}(\mathrm{MLP}(T))` over valid
    positions and hats denoting L2 normalisation.

    Parameters
    ----------
    query_tokens : Tensor of shape (n_query, n_query_tokens, dim)
        Token features :math:`T` (text tokens in the paper).
    query_mask : Tensor of bool, shape (n_query, n_query_tokens), or None
        ``True`` at valid tokens; ``None`` means all valid.
    gallery_tokens : Tensor of shape (n_gallery, n_gallery_tokens, dim)
        Token features :math:`V` (video frames in the paper).
    gallery_mask : Tensor of bool or None
        As ``query_mask``.
    query_mlp, gallery_mlp : callable or None
        Maps tokens ``(n, tokens, dim)`` to scores ``(n, tokens, 1)``; ``None`` gives
        uniform weights over valid tokens.
    masked_zero : bool, default False
        ``True`` reproduces the official code (spec §5 row 13): masked cosines are 0,
        so padding can win the max when every real cosine is negative. ``False``
        (project default) ignores padding in the max.
    chunk_size : int or None
        Query rows per block, bounding memory at
        ``chunk_size * n_gallery * n_query_tokens * n_gallery_tokens``.

    Returns
    -------
    Tensor of shape (n_query, n_gallery)
        New tensor, dtype and device of ``query_tokens``, values in [-1, 1].

    Raises
    ------
    ValueError
        On mismatched shapes, a sample with no valid token, or non-finite input.

    Notes
    -----
    With one token per sample this is the cosine similarity. Book:
    :ref:`sec-neighborretr`.

    Examples
    --------
    >>> import torch
    >>> q, g = torch.randn(3, 1, 4), torch.randn(2, 1, 4)
    >>> s = wti_similarity(q, None, g, None)
    >>> torch.allclose(s, torch.nn.functional.cosine_similarity(q, g.transpose(0, 1), dim=-1))
    True
    """
    func = "wti_similarity"
    qt, qm = _check_tokens(query_tokens, query_mask, "query_tokens", func)
    gt, gm = _check_tokens(gallery_tokens, gallery_mask, "gallery_tokens", func)
    if qt.shape[-1] != gt.shape[-1]:
        V.fail(
            func,
            "gallery_tokens",
            f"of feature size {qt.shape[-1]} (as `query_tokens`)",
            f"shape {tuple(gt.shape)}",
        )
    aq = _token_weights(qt, qm, query_mlp)
    ag = _token_weights(gt, gm, gallery_mlp)
    qn = F.normalize(qt, dim=-1)
    gn = F.normalize(gt, dim=-1)
    step = chunk_size or qt.shape[0]
    step = V.check_int(step, "chunk_size", func, low=1)
    blocks = []
    for start in range(0, qt.shape[0], step):
        sl = slice(start, start + step)
        c = torch.einsum("ipd,jqd->ijpq", qn[sl], gn)  # (bq, n_gallery, Np, Nq)
        valid = qm[sl][:, None, :, None] & gm[None, :, None, :]
        c = c.masked_fill(~valid, 0.0 if masked_zero else float("-inf"))
        best_g = c.max(dim=3).values  # (bq, G, Np): best gallery token per query token
        best_q = c.max(dim=2).values  # (bq, G, Nq)
        # padded rows of the max are -inf (or 0): zero them before weighting
        best_g = best_g.masked_fill(~qm[sl][:, None, :], 0.0)
        best_q = best_q.masked_fill(~gm[None, :, :], 0.0)
        s_q2g = (aq[sl][:, None, :] * best_g).sum(-1)
        s_g2q = (ag[None, :, :] * best_q).sum(-1)
        blocks.append(0.5 * (s_q2g + s_g2q))
    return torch.cat(blocks, dim=0)


# ------------------------------------------------------------------- centrality


def centrality(
    global_emb: torch.Tensor,
    local_tokens: torch.Tensor,
    local_mask: torch.Tensor | None = None,
    *,
    exclude_pad: bool = True,
    exclude_self: bool = True,
) -> torch.Tensor:
    r"""Return each sample's intra-modal centrality in the batch.

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (3), as the official code
    computes it (spec §2.2): the mean cosine between a sample's global vector and
    every token of every sample of the same modality in the batch.

    .. math::

        C_i = \frac{1}{|\mathcal T_i|}\sum_{(j,p)\in\mathcal T_i}
              \cos(g_i, T_{j,p})

    where :math:`\mathcal T_i` holds the (sample, token) pairs averaged over.

    Parameters
    ----------
    global_emb : Tensor of shape (batch, dim)
        Global vectors :math:`g` (any norm; cosines are taken).
    local_tokens : Tensor of shape (batch, dim) or (batch, tokens, dim)
        Local features :math:`T`; a matrix means one token per sample.
    local_mask : Tensor of bool, shape (batch, tokens), or None
        Valid tokens.
    exclude_pad : bool, default True
        Average over valid tokens only; ``False`` (official, §5 row 3) includes
        padded positions (as zeros features give cosine 0).
    exclude_self : bool, default True
        Leave the sample's own tokens out; ``False`` is the official behaviour.

    Returns
    -------
    Tensor of shape (batch,)
        New tensor with the dtype and device of ``global_emb``; keeps gradients.

    Notes
    -----
    Book: :ref:`sec-neighborretr`.
    """
    func = "centrality"
    g = V.check_matrix(global_emb, "global_emb", func)
    t = V.as_tensor(local_tokens, "local_tokens", func)
    if t.ndim == 2:
        t = t[:, None, :]
    t, m = _check_tokens(t, local_mask, "local_tokens", func)
    if t.shape[0] != g.shape[0] or t.shape[-1] != g.shape[-1]:
        V.fail(
            func,
            "local_tokens",
            f"of batch {g.shape[0]} and feature size {g.shape[-1]}",
            f"shape {tuple(t.shape)}",
        )
    if exclude_self and g.shape[0] < 2:
        V.fail(
            func,
            "global_emb",
            "at least 2 samples when `exclude_self` is True",
            f"{g.shape[0]}",
        )
    return _centrality(g, t, m, exclude_pad, exclude_self)


def _centrality(
    g: torch.Tensor,
    t: torch.Tensor,
    m: torch.Tensor | None,
    exclude_pad: bool,
    exclude_self: bool,
) -> torch.Tensor:
    gn = F.normalize(g, dim=-1)
    if t.ndim == 2:
        # one token per sample: a sum of cosines is one product with the summed tokens
        tn = F.normalize(t, dim=-1)
        total = gn @ tn.sum(dim=0)
        if exclude_self:
            return (total - (gn * tn).sum(dim=-1)) / (g.shape[0] - 1)
        return total / g.shape[0]
    cos = torch.einsum("id,jpd->ijp", gn, F.normalize(t, dim=-1))
    keep = torch.ones_like(cos, dtype=torch.bool)
    if exclude_pad and m is not None:
        keep = keep & m[None, :, :]
    if exclude_self:
        eye = torch.eye(g.shape[0], dtype=torch.bool, device=g.device)
        keep = keep & ~eye[:, :, None]
    num = (cos * keep).sum(dim=(1, 2))
    return num / keep.sum(dim=(1, 2)).clamp_min(1)


def centrality_weights(
    global_emb: torch.Tensor,
    local_tokens: torch.Tensor,
    local_mask: torch.Tensor | None = None,
    *,
    kappa: float = 0.3,
    exclude_pad: bool = True,
    exclude_self: bool = True,
    detach: bool = True,
) -> torch.Tensor:
    r"""Return the centrality weights :math:`w_i = e^{\kappa C_i}` of :math:`L_{\rm Wti}`.

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (3)-(4) as coded (spec
    §2.2): **more central samples weigh more**. See :func:`centrality` for
    :math:`C_i` and its flags.

    Parameters
    ----------
    global_emb, local_tokens, local_mask
        As in :func:`centrality`.
    kappa : float, default 0.3
        :math:`\kappa \ge 0`; 0 gives unit weights.
    exclude_pad, exclude_self : bool
        As in :func:`centrality`.
    detach : bool, default True
        Cut the gradient through the weights. ``False`` is the official code (§5 row
        2), which adds a hidden regulariser lowering every sample's centrality.

    Returns
    -------
    Tensor of shape (batch,)
        Positive weights, a new tensor.

    Notes
    -----
    Book: :ref:`sec-neighborretr`.
    """
    kappa = V.check_positive(kappa, "kappa", "centrality_weights", allow_zero=True)
    c = centrality(
        global_emb,
        local_tokens,
        local_mask,
        exclude_pad=exclude_pad,
        exclude_self=exclude_self,
    )
    w = torch.exp(kappa * c)
    return w.detach() if detach else w


def centrality_weighted_infonce(
    sims: torch.Tensor,
    logit_scale: torch.Tensor | float,
    w_query: torch.Tensor | None = None,
    w_gallery: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Return the centrality-weighted symmetric InfoNCE :math:`L_{\rm Wti}`.

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (4) (spec §2.2).

    .. math::

        L_{\rm Wti} = \tfrac12\Big[-\tfrac1B\sum_i w^q_i
        \log\operatorname{softmax}_j(\lambda s_{ij})\big|_{j=i}
        -\tfrac1B\sum_j w^g_j\log\operatorname{softmax}_i(\lambda s_{ij})\big|_{i=j}\Big]

    Parameters
    ----------
    sims : Tensor of shape (batch, batch)
        :math:`S`; row i matches column i.
    logit_scale : float or scalar Tensor
        :math:`\lambda`.
    w_query, w_gallery : Tensor of shape (batch,) or None
        Weights :math:`w^q`, :math:`w^g`; ``None`` means 1 (then this is exactly
        :func:`~hubrepro.losses.symmetric_infonce`).

    Returns
    -------
    Tensor
        Scalar loss.

    Notes
    -----
    The weights are not normalised (as in the official code). Book:
    :ref:`sec-neighborretr`.
    """
    func = "centrality_weighted_infonce"
    sims = _check_square_sims(sims, func)
    scale = _check_scale(logit_scale, func)
    b = sims.shape[0]
    for name, w in (("w_query", w_query), ("w_gallery", w_gallery)):
        if w is not None and (not isinstance(w, torch.Tensor) or w.shape != (b,)):
            V.fail(
                func,
                name,
                f"a tensor of shape ({b},)",
                getattr(w, "shape", type(w).__name__),
            )
    return _weighted_infonce(sims, scale, w_query, w_gallery)


def _weighted_infonce(
    sims: torch.Tensor,
    scale: torch.Tensor | float,
    w_query: torch.Tensor | None,
    w_gallery: torch.Tensor | None,
) -> torch.Tensor:
    logits = sims * scale
    target = torch.arange(sims.shape[0], device=sims.device)
    nll_q = F.cross_entropy(logits, target, reduction="none")
    nll_g = F.cross_entropy(logits.T, target, reduction="none")
    if w_query is not None:
        nll_q = nll_q * w_query
    if w_gallery is not None:
        nll_g = nll_g * w_gallery
    return 0.5 * (nll_q.mean() + nll_g.mean())


# ------------------------------------------------------------------------- NAL


def bank_centrality(
    bank_local: torch.Tensor, candidate_local: torch.Tensor
) -> torch.Tensor:
    r"""Return each candidate's mean cosine similarity to the memory bank.

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (5) (spec §2.3 step 1) for
    one-token features: :math:`\kappa_j = \frac1M\sum_m \cos(b_m, x_j)`, computed as
    one matrix-vector product with the mean of the normalised bank.

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
    # mean of the normalised bank rows as one vector-matrix product (no (M, D) division)
    bank = bank.detach().to(cand.dtype)
    inv_norm = 1.0 / torch.linalg.vector_norm(bank, dim=1).clamp_min(1e-12)
    mean_bank = (inv_norm @ bank) / bank.shape[0]
    return F.normalize(cand, dim=-1) @ mean_bank


def _neighbour_index(sims: torch.Tensor, k: int) -> torch.Tensor:
    # (B, k) columns of the top-k of each row, the row's own column excluded; no gradient
    eye = torch.eye(sims.shape[0], dtype=torch.bool, device=sims.device)
    return (
        sims.detach()
        .masked_fill(eye, float("-inf"))
        .topk(k, dim=1, sorted=False)
        .indices
    )


def _neighbour_targets(
    sims: torch.Tensor,
    cent: torch.Tensor,
    idx: torch.Tensor,
    tau: float,
    stats: str,
) -> torch.Tensor:
    # P on the neighbours only, shape (B, k); the min-max statistics come from the
    # neighbours (gathered, O(Bk)) or from the complement of E(i) (masked, O(B^2))
    s_n = sims.gather(1, idx)
    c = cent.to(sims.dtype)
    c_n = c[idx]
    if stats == "neighbours":
        s_lo, s_hi = (
            s_n.min(dim=1, keepdim=True).values,
            s_n.max(dim=1, keepdim=True).values,
        )
        c_lo, c_hi = (
            c_n.min(dim=1, keepdim=True).values,
            c_n.max(dim=1, keepdim=True).values,
        )
    else:
        b = sims.shape[0]
        in_e = torch.eye(b, dtype=torch.bool, device=sims.device).scatter_(1, idx, True)
        c_full = c[None, :].expand(b, b)
        s_lo = sims.masked_fill(in_e, float("inf")).min(dim=1, keepdim=True).values
        s_hi = sims.masked_fill(in_e, float("-inf")).max(dim=1, keepdim=True).values
        c_lo = c_full.masked_fill(in_e, float("inf")).min(dim=1, keepdim=True).values
        c_hi = c_full.masked_fill(in_e, float("-inf")).max(dim=1, keepdim=True).values
    s_hat = (s_n - s_lo) / (s_hi - s_lo).clamp_min(_EPS)
    c_hat = (c_n - c_lo) / (c_hi - c_lo).clamp_min(_EPS)
    return torch.softmax(tau * (s_hat - c_hat), dim=1)


def _check_nal_args(
    func: str, sims: Any, candidate_centrality: Any, k: Any, tau: Any, stats: Any
) -> tuple[torch.Tensor, torch.Tensor, int, float, str]:
    sims = _check_square_sims(sims, func)
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

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (6)-(7) (spec §2.3 steps
    2-5). For row :math:`i`: :math:`\mathcal N_k(i)` are the top-:math:`k` columns
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
        :math:`R(i)`: the neighbours (project default) or, as the official code
        does (§5 row 1), the complement of :math:`\{i\}\cup\mathcal N_k(i)`.

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

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (8) (spec §2.3 step 6):
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
        Treat :math:`P` as constants. ``False`` is the official code (§5 row 2).

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
    # everything on the (B, k + 1) gathered logits of E(i) = {i} + top-k: columns outside
    # E(i) get no gradient by construction, and the cost is O(Bk) beyond the top-k
    idx = _neighbour_index(sims, k)
    if detach_targets:
        p_n = _neighbour_targets(sims.detach(), cent.detach(), idx, tau, stats)
    else:
        p_n = _neighbour_targets(sims, cent, idx, tau, stats)
    logits = torch.cat([sims.diagonal()[:, None], sims.gather(1, idx)], dim=1)
    p = torch.cat([torch.ones_like(p_n[:, :1]), p_n], dim=1)
    num = -(p * torch.log_softmax(logits, dim=1)).sum(dim=1)
    return (num / p.sum(dim=1)).mean()


# -------------------------------------------------------------------- Sinkhorn


# below this score span, exp(K - max K) and the scalings stay normal float64 numbers
_MATVEC_SPAN = 300.0


def _sinkhorn(g: torch.Tensor, iters: int, eps: float) -> torch.Tensor:
    # Plan with rows summing to about 1 (columns to n/m), no gradient. The log-domain
    # updates u = log mu - LSE_j(K_ij + v_j), v = log nu - LSE_i(K_ij + u_i) with
    # K = G / eps are evaluated in float64 as a = mu / (E b), b = nu / (E^T a) with
    # E = exp(K - max K), a = exp(u + max K), b = exp(v): the same iterates up to
    # rounding, two matrix-vector products per iteration instead of 2 B^2
    # exponentials, and the plan n * E_ij a_i b_j needs no further exponential. When
    # the span of K could over- or underflow these numbers, the logsumexp loop runs.
    k = g.detach() / eps
    n, m = k.shape
    k64 = k.double()
    top = k64.max()
    if float(top - k64.min()) < _MATVEC_SPAN:
        e = torch.exp(k64 - top)
        et = e.T.contiguous()
        b = torch.ones(m, dtype=torch.float64, device=k.device)
        a = b
        for _ in range(iters):
            a = (1.0 / n) / (e @ b)
            b = (1.0 / m) / (et @ a)
        return (e * (n * a)[:, None] * b[None, :]).to(k.dtype)
    log_mu, log_nu = -math.log(n), -math.log(m)
    u = torch.zeros(n, dtype=k.dtype, device=k.device)
    v = torch.zeros(m, dtype=k.dtype, device=k.device)
    for _ in range(iters):
        u = log_mu - torch.logsumexp(k + v[None, :], dim=1)
        v = log_nu - torch.logsumexp(k + u[:, None], dim=0)
    return torch.exp(k + u[:, None] + v[None, :] + math.log(n))


@torch.no_grad()
def sinkhorn_plan(
    scores: torch.Tensor, *, iters: int = 50, eps: float = 1.0
) -> torch.Tensor:
    r"""Return the entropic optimal-transport plan of a score matrix, rows summing to 1.

    Log-domain Sinkhorn (``cuturi2013sinkhorn``) with uniform marginals, as in
    NeighborRetr (``lin2025neighborretr``), Eq. (10)-(11) (spec §2.4 step 1):

    .. math::

        u \leftarrow \log\mu - \operatorname{LSE}_j(G_{ij}/\varepsilon + v_j),\qquad
        v \leftarrow \log\nu - \operatorname{LSE}_i(G_{ij}/\varepsilon + u_i),

    :math:`\mu = 1/n`, :math:`\nu = 1/m`, and :math:`Q = n\,e^{G/\varepsilon + u + v}`.

    Parameters
    ----------
    scores : Tensor of shape (n, m)
        Scores :math:`G` (higher = more similar; the cost is :math:`-G`).
    iters : int, default 50
        Sinkhorn iterations (each updates :math:`u` then :math:`v`).
    eps : float, default 1.0
        Entropic regularisation :math:`\varepsilon`.

    Returns
    -------
    Tensor of shape (n, m)
        A new tensor without gradient. Columns sum to :math:`n/m` exactly (the last
        update), rows to 1 up to the convergence tolerance.

    Notes
    -----
    The official code rescales by the batch size, correct for square matrices only
    (§5 row 14); the general uniform marginals here agree with it when ``n == m``.
    The updates are evaluated as matrix-vector products with
    :math:`e^{G/\varepsilon - \max}` in float64 (the same iterates, about 20x
    cheaper than a logsumexp per update), falling back to logsumexp when the score
    span exceeds 300 (where those numbers could leave the float64 range).
    Book: :ref:`sec-neighborretr`.

    Examples
    --------
    >>> import torch
    >>> q = sinkhorn_plan(torch.randn(5, 5))
    >>> bool(torch.allclose(q.sum(1), torch.ones(5), atol=1e-3))
    True
    """
    func = "sinkhorn_plan"
    g = V.check_matrix(scores, "scores", func).detach()
    iters = V.check_int(iters, "iters", func, low=1)
    eps = V.check_positive(eps, "eps", func)
    return _sinkhorn(g, iters, eps)


def uniform_regularisation(
    global_sims: torch.Tensor,
    *,
    beta: float = 0.7,
    tau: float = 3.0,
    iters: int = 50,
    eps: float = 1.0,
    separate_plans: bool = False,
) -> torch.Tensor:
    r"""Return the uniform regularisation :math:`L_{\rm Opt}` towards a Sinkhorn plan.

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (12) (spec §2.4):

    .. math::

        T = \beta Q + (1-\beta) I,\qquad
        L^{q\to g} = -\tfrac1B\sum_{ij} T_{ij}\log\operatorname{softmax}_j(\tau G_{ij}),

    with :math:`Q` = :func:`sinkhorn_plan` of :math:`G` (no gradient), the
    gallery-to-query term the same on :math:`G^\top` with its own target plan, and
    :math:`L_{\rm Opt} = \frac12(L^{q\to g} + L^{g\to q})`.

    Parameters
    ----------
    global_sims : Tensor of shape (batch, batch)
        Global scores :math:`G` (raw dot products in the official code).
    beta : float, default 0.7
        :math:`\beta \in [0, 1]` (the official function default 0.3 is never used).
    tau : float, default 3.0
        :math:`\tau_u`, a logit multiplier.
    iters, eps
        Passed to :func:`sinkhorn_plan`.
    separate_plans : bool, default False
        ``True`` runs Sinkhorn separately on :math:`G` and on :math:`G^\top`, as the
        released code does (``compute_uniform_loss`` in ``NeighborRetr/models/
        modeling.py`` of ``zzezze/NeighborRetr``, commit 04112ee, calls the loss once
        per direction) and as ``compat="official"`` selects. ``False`` (project
        default) runs it once and uses :math:`Q^\top` for :math:`G^\top`: the two
        agree at convergence (the entropic plan of :math:`G^\top` is :math:`Q^\top`),
        but after a finite number of iterations they differ, and so do the loss and
        its gradient (by up to a few percent of the term at raw score scales of
        20-50 and 50 iterations). Half the Sinkhorn cost.

    Returns
    -------
    Tensor
        Scalar loss, non-negative in every floating type: each summand
        :math:`-T_{ij}\log\operatorname{softmax}_j` is a non-negative weight times a
        non-positive log-probability.

    Notes
    -----
    Book: :ref:`sec-neighborretr`.
    """
    func = "uniform_regularisation"
    g = _check_square_sims(global_sims, func)
    beta = V.check_probability(beta, "beta", func)
    tau = V.check_positive(tau, "tau", func, allow_zero=True)
    iters = V.check_int(iters, "iters", func, low=1)
    eps = V.check_positive(eps, "eps", func)
    return _uniform(g, beta, tau, iters, eps, bool(separate_plans))


def _uniform(
    g: torch.Tensor, beta: float, tau: float, iters: int, eps: float, separate: bool
) -> torch.Tensor:
    # one plan per direction (the release), or the transpose of the plan of G (equal at
    # convergence: uniform marginals, unique optimum)
    q = _sinkhorn(g, iters, eps)
    plans = (q, _sinkhorn(g.T, iters, eps) if separate else q.T)
    total = g.new_zeros(())
    # -sum_j T_ij log softmax_j(tau x_ij) with T = beta Q + (1 - beta) I, summed as
    # non-negative terms (T >= 0, log-softmax <= 0): no cancellation below zero
    for x, plan in zip((g, g.T), plans, strict=True):
        logp = torch.log_softmax(tau * x, dim=1)
        nll = -(beta * (plan * logp).sum(dim=1) + (1.0 - beta) * logp.diagonal())
        total = total + nll.mean()
    return 0.5 * total


def kl_consistency(
    sims: torch.Tensor,
    global_sims: torch.Tensor,
    *,
    reduction: Literal["mean", "batchmean", "sum"] = "mean",
) -> torch.Tensor:
    r"""Return the KL consistency :math:`L_{\rm KL}` between fine and global scores.

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (15) (spec §2.5):

    .. math::

        L_{\rm KL} = \tfrac12\big[\mathrm{KL}(\operatorname{softmax}(S)\,\Vert\,
        \operatorname{softmax}(G)) + \mathrm{KL}(\operatorname{softmax}(S^\top)\,\Vert\,
        \operatorname{softmax}(G^\top))\big],

    row-wise softmaxes, gradients into both branches.

    Parameters
    ----------
    sims : Tensor of shape (batch, batch)
        :math:`S`.
    global_sims : Tensor of shape (batch, batch)
        :math:`G`.
    reduction : {"mean", "batchmean", "sum"}, default "mean"
        ``"mean"`` divides the summed KL by :math:`B^2` as the official code does
        (§5 row 6; kept); ``"batchmean"`` by :math:`B`.

    Returns
    -------
    Tensor
        Scalar loss.

    Notes
    -----
    Book: :ref:`sec-neighborretr`.
    """
    func = "kl_consistency"
    s = _check_square_sims(sims, func)
    g = _check_square_sims(global_sims, func)
    if s.shape != g.shape:
        V.fail(
            func,
            "global_sims",
            f"of shape {tuple(s.shape)} (as `sims`)",
            f"shape {tuple(g.shape)}",
        )
    reduction = V.check_choice(
        reduction, "reduction", func, ("mean", "batchmean", "sum")
    )
    return _kl(s, g, reduction)


def _kl(s: torch.Tensor, g: torch.Tensor, reduction: str) -> torch.Tensor:
    total = s.new_zeros(())
    for a, b in ((s, g), (s.T, g.T)):
        logp = torch.log_softmax(a, dim=1)
        kl = (logp.exp() * (logp - torch.log_softmax(b, dim=1))).sum()
        # "mean" is the element-wise mean of F.kl_div, as the official code calls it
        total = (
            total
            + kl / {"mean": a.numel(), "batchmean": a.shape[0], "sum": 1}[reduction]
        )
    return 0.5 * total


# ---------------------------------------------------------------- combined loss


@dataclass(frozen=True)
class _Flags:
    nal_stats: str
    detach_weights: bool
    detach_targets: bool
    centrality_exclude_pad: bool
    centrality_exclude_self: bool
    tie_temperatures: bool
    separate_plans: bool


class NeighborRetrLoss(nn.Module):
    r"""The NeighborRetr objective :math:`L_{\rm Wti} + w_{\rm opt}L_{\rm Opt} + w_{\rm nbi}L_{\rm Nbi} + w_{\rm kl}L_{\rm KL}`.

    Implements NeighborRetr (``lin2025neighborretr``), §4 (spec §2) for dual
    encoders with one local (fine) vector and one global vector per sample and
    modality — the CPU reproduction's model (spec §8); token-level WTI is available
    separately as :func:`wti_similarity`.

    Parameters
    ----------
    kappa : float, default 0.3
        Centrality scale :math:`\kappa` of :math:`L_{\rm Wti}`; 0 gives plain InfoNCE.
    tau_nal : float, default 3.0
        :math:`\tau_n`, multiplier of the NAL target softmax.
    tau_uniform : float, default 3.0
        :math:`\tau_u` of :math:`L_{\rm Opt}`; ignored when temperatures are tied.
    ot_beta : float, default 0.7
        :math:`\beta` mixing the Sinkhorn plan with the identity.
    num_neighbors : int, default 20
        :math:`k` of NAL (clipped to what the batch allows).
    w_uniform, w_neighbor, w_kl : float, default 1.0
        Term weights; a zero weight skips the term's computation.
    sinkhorn_iters, sinkhorn_eps : int, float, default 50, 1.0
        Sinkhorn settings (official: hard-coded 50 and 1.0).
    normalize_global : bool, default False
        Cosine instead of raw dot product for :math:`G` (§5 row 5; official: raw).
    kl_reduction : {"mean", "batchmean", "sum"}, default "mean"
        See :func:`kl_consistency` (§5 row 6).
    compat : {"fixed", "official"}, default "fixed"
        Sets every flag below to the project default or to the official code.
    nal_stats, detach_weights, detach_targets, centrality_exclude_pad, centrality_exclude_self, tie_temperatures, separate_plans
        Individual overrides of ``COMPAT_FLAGS`` (``None`` = from ``compat``);
        ``separate_plans`` is that of :func:`uniform_regularisation`.

    Notes
    -----
    ``forward`` returns the scalar loss, or with ``return_terms=True`` a dict with
    ``loss``, ``wti``, ``uniform``, ``neighbor``, ``kl`` (unweighted terms). Memory
    bank features are always detached; the Sinkhorn plan never carries gradient.
    Book: :ref:`sec-neighborretr`.

    Examples
    --------
    >>> import torch
    >>> crit = NeighborRetrLoss(num_neighbors=2)
    >>> q, g = torch.randn(6, 8), torch.randn(6, 8)
    >>> terms = crit(q, g, q, g, 10.0, bank_query_local=q, bank_gallery_local=g, return_terms=True)
    >>> sorted(terms)
    ['kl', 'loss', 'neighbor', 'uniform', 'wti']
    """

    def __init__(
        self,
        *,
        kappa: float = 0.3,
        tau_nal: float = 3.0,
        tau_uniform: float = 3.0,
        ot_beta: float = 0.7,
        num_neighbors: int = 20,
        w_uniform: float = 1.0,
        w_neighbor: float = 1.0,
        w_kl: float = 1.0,
        sinkhorn_iters: int = 50,
        sinkhorn_eps: float = 1.0,
        normalize_global: bool = False,
        kl_reduction: Literal["mean", "batchmean", "sum"] = "mean",
        compat: Literal["fixed", "official"] = "fixed",
        nal_stats: Literal["neighbours", "complement"] | None = None,
        detach_weights: bool | None = None,
        detach_targets: bool | None = None,
        centrality_exclude_pad: bool | None = None,
        centrality_exclude_self: bool | None = None,
        tie_temperatures: bool | None = None,
        separate_plans: bool | None = None,
    ) -> None:
        super().__init__()
        func = "NeighborRetrLoss"
        compat = V.check_choice(compat, "compat", func, tuple(COMPAT_FLAGS))
        self.kappa = V.check_positive(kappa, "kappa", func, allow_zero=True)
        self.tau_nal = V.check_positive(tau_nal, "tau_nal", func, allow_zero=True)
        self.tau_uniform = V.check_positive(
            tau_uniform, "tau_uniform", func, allow_zero=True
        )
        self.ot_beta = V.check_probability(ot_beta, "ot_beta", func)
        self.num_neighbors = V.check_int(num_neighbors, "num_neighbors", func, low=1)
        self.w_uniform = V.check_positive(w_uniform, "w_uniform", func, allow_zero=True)
        self.w_neighbor = V.check_positive(
            w_neighbor, "w_neighbor", func, allow_zero=True
        )
        self.w_kl = V.check_positive(w_kl, "w_kl", func, allow_zero=True)
        self.sinkhorn_iters = V.check_int(sinkhorn_iters, "sinkhorn_iters", func, low=1)
        self.sinkhorn_eps = V.check_positive(sinkhorn_eps, "sinkhorn_eps", func)
        self.normalize_global = bool(normalize_global)
        self.kl_reduction = V.check_choice(
            kl_reduction, "kl_reduction", func, ("mean", "batchmean", "sum")
        )
        self.compat = compat
        given = {
            "nal_stats": nal_stats,
            "detach_weights": detach_weights,
            "detach_targets": detach_targets,
            "centrality_exclude_pad": centrality_exclude_pad,
            "centrality_exclude_self": centrality_exclude_self,
            "tie_temperatures": tie_temperatures,
            "separate_plans": separate_plans,
        }
        resolved = {
            k: (COMPAT_FLAGS[compat][k] if v is None else v) for k, v in given.items()
        }
        V.check_choice(
            resolved["nal_stats"], "nal_stats", func, ("neighbours", "complement")
        )
        self.flags = _Flags(**resolved)  # type: ignore[arg-type]

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f"kappa={self.kappa}, tau_nal={self.tau_nal}, ot_beta={self.ot_beta}, "
            f"k={self.num_neighbors}, weights=({self.w_uniform}, {self.w_neighbor}, "
            f"{self.w_kl}), compat={self.compat!r}, flags={self.flags}"
        )

    def forward(
        self,
        query_local: torch.Tensor,
        gallery_local: torch.Tensor,
        query_global: torch.Tensor,
        gallery_global: torch.Tensor,
        logit_scale: torch.Tensor | float,
        *,
        bank_query_local: torch.Tensor | None = None,
        bank_gallery_local: torch.Tensor | None = None,
        return_terms: bool = False,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        r"""Return the loss (or its named terms) for one (gathered) batch.

        Parameters
        ----------
        query_local, gallery_local : Tensor of shape (batch, dim)
            Local features; :math:`S` is their cosine similarity (WTI with one token).
        query_global, gallery_global : Tensor of shape (batch, global_dim)
            Global features; :math:`G` is their dot product (or cosine).
        logit_scale : float or scalar Tensor
            :math:`\lambda` of :math:`L_{\rm Wti}`.
        bank_query_local, bank_gallery_local : Tensor of shape (bank_size, dim) or None
            Memory-bank features (detached here). Required when ``w_neighbor > 0``.
        return_terms : bool, default False
            Return a dict of the total and the unweighted terms.

        Returns
        -------
        Tensor or dict of Tensor
            The scalar loss, or ``{"loss", "wti", "uniform", "neighbor", "kl"}``.
        """
        func = "NeighborRetrLoss"
        ql = V.check_matrix(query_local, "query_local", func)
        gl = V.check_matrix(gallery_local, "gallery_local", func)
        qg = V.check_matrix(query_global, "query_global", func)
        gg = V.check_matrix(gallery_global, "gallery_global", func)
        b = ql.shape[0]
        for name, x in (
            ("gallery_local", gl),
            ("query_global", qg),
            ("gallery_global", gg),
        ):
            if x.shape[0] != b:
                V.fail(
                    func,
                    name,
                    f"{b} rows (the batch of `query_local`)",
                    f"shape {tuple(x.shape)}",
                )
        if b < 2:
            V.fail(
                func,
                "query_local",
                "a batch of at least 2 samples",
                f"shape {tuple(ql.shape)}",
            )
        f = self.flags
        scale = _check_scale(logit_scale, func)
        # inputs are validated above: the terms below call the unchecked implementations
        s = F.normalize(ql, dim=-1) @ F.normalize(gl, dim=-1).T
        if self.normalize_global:
            g = F.normalize(qg, dim=-1) @ F.normalize(gg, dim=-1).T
        else:
            g = qg @ gg.T
        zero = s.new_zeros(())
        w_q = w_g = None
        if self.kappa > 0:
            cq = _centrality(
                qg, ql, None, f.centrality_exclude_pad, f.centrality_exclude_self
            )
            cg = _centrality(
                gg, gl, None, f.centrality_exclude_pad, f.centrality_exclude_self
            )
            w_q, w_g = torch.exp(self.kappa * cq), torch.exp(self.kappa * cg)
            if f.detach_weights:
                w_q, w_g = w_q.detach(), w_g.detach()
        wti = _weighted_infonce(s, scale, w_q, w_g)
        nbi = zero
        if self.w_neighbor > 0:
            banks = {
                "bank_query_local": bank_query_local,
                "bank_gallery_local": bank_gallery_local,
            }
            for name, x in banks.items():
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
                if x.shape[1] != ql.shape[1]:
                    V.fail(
                        func,
                        name,
                        f"of feature size {ql.shape[1]}",
                        f"shape {tuple(x.shape)}",
                    )
            high = b - 2 if f.nal_stats == "complement" else b - 1
            if high < 1:
                V.fail(
                    func,
                    "query_local",
                    f"a batch large enough for NAL with stats={f.nal_stats!r}",
                    f"batch {b}",
                )
            k = min(self.num_neighbors, high)
            cent_g = _bank_centrality(bank_query_local, gl)  # type: ignore[arg-type]
            cent_q = _bank_centrality(bank_gallery_local, ql)  # type: ignore[arg-type]
            args = (k, self.tau_nal, f.nal_stats, f.detach_targets)
            nbi = 0.5 * (_nal(s, cent_g, *args) + _nal(s.T, cent_q, *args))
        uni = zero
        if self.w_uniform > 0:
            tau_u = self.tau_nal if f.tie_temperatures else self.tau_uniform
            uni = _uniform(
                g,
                self.ot_beta,
                tau_u,
                self.sinkhorn_iters,
                self.sinkhorn_eps,
                f.separate_plans,
            )
        kl = zero
        if self.w_kl > 0:
            kl = _kl(s, g, self.kl_reduction)
        loss = wti + self.w_uniform * uni + self.w_neighbor * nbi + self.w_kl * kl
        if return_terms:
            return {"loss": loss, "wti": wti, "uniform": uni, "neighbor": nbi, "kl": kl}
        return loss
