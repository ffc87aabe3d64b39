r"""Centrality and the centrality-weighted InfoNCE :math:`L_{\rm Wti}` of NeighborRetr.

NeighborRetr (``lin2025neighborretr``), Eq. (3)-(4): each sample's intra-modal
centrality :math:`C_i` in the batch gives it the weight :math:`w_i = e^{\kappa C_i}` in a
symmetric InfoNCE on the fine-grained similarity :math:`S`. The released code computes
the weights in ``NeighborRetr.compute_centrality_weights`` of
``NeighborRetr/models/modeling.py`` and the weighted loss in ``CentralityWeightingLoss``
of ``NeighborRetr/models/until_module.py`` (``zzezze/NeighborRetr``, commit 04112ee):
**more central samples weigh more**, and the weights are not detached there.

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hubrepro import _validation as V
from hubrepro.losses._checks import check_scale, check_square_sims, check_tokens
from hubrepro.losses.contrastive import infonce

__all__ = [
    "centrality",
    "centrality_weights",
    "centrality_weighted_infonce",
    "CentralityWeightedInfoNCE",
]


def centrality(
    global_emb: torch.Tensor,
    local_tokens: torch.Tensor,
    local_mask: torch.Tensor | None = None,
    *,
    exclude_pad: bool = True,
    exclude_self: bool = True,
) -> torch.Tensor:
    r"""Return each sample's intra-modal centrality in the batch.

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (3), as the released code
    computes it (``compute_centrality_weights`` in ``NeighborRetr/models/modeling.py``,
    ``zzezze/NeighborRetr`` commit 04112ee): the mean cosine between a sample's global
    vector and every token of every sample of the same modality in the batch.

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
        Average over valid tokens only; ``False`` (the released code) includes padded
        positions (as zero features give cosine 0).
    exclude_self : bool, default True
        Leave the sample's own tokens out; ``False`` is the released behaviour.

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
    t, m = check_tokens(t, local_mask, "local_tokens", func)
    _check_batch(func, g, t, exclude_self)
    return _centrality(g, t, m, exclude_pad, exclude_self)


def _check_batch(
    func: str, g: torch.Tensor, t: torch.Tensor, exclude_self: bool
) -> None:
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

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (3)-(4) as coded
    (``compute_centrality_weights`` in ``NeighborRetr/models/modeling.py``,
    ``zzezze/NeighborRetr`` commit 04112ee): **more central samples weigh more**. See
    :func:`centrality` for :math:`C_i` and its flags.

    Parameters
    ----------
    global_emb, local_tokens, local_mask
        As in :func:`centrality`.
    kappa : float, default 0.3
        :math:`\kappa \ge 0`; 0 gives unit weights.
    exclude_pad, exclude_self : bool
        As in :func:`centrality`.
    detach : bool, default True
        Cut the gradient through the weights. ``False`` is the released code, which
        thereby adds a hidden regulariser lowering every sample's centrality.

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

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (4) (``CentralityWeightingLoss``
    in ``NeighborRetr/models/until_module.py``, ``zzezze/NeighborRetr`` commit 04112ee).

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
    The weights are not normalised (as in the released code). Book:
    :ref:`sec-neighborretr`.
    """
    func = "centrality_weighted_infonce"
    sims = check_square_sims(sims, func)
    scale = check_scale(logit_scale, func)
    b = sims.shape[0]
    for name, w in (("w_query", w_query), ("w_gallery", w_gallery)):
        if w is not None and (not isinstance(w, torch.Tensor) or w.shape != (b,)):
            V.fail(
                func,
                name,
                f"a tensor of shape ({b},)",
                getattr(w, "shape", type(w).__name__),
            )
    return infonce(sims, scale, w_query, w_gallery)


class CentralityWeightedInfoNCE(nn.Module):
    r"""The term :math:`L_{\rm Wti}` as a module: centrality weights, then weighted InfoNCE.

    See :func:`centrality_weights` and :func:`centrality_weighted_infonce`.

    Parameters
    ----------
    kappa : float, default 0.3
        :math:`\kappa \ge 0`; 0 skips the weights (plain symmetric InfoNCE).
    exclude_pad, exclude_self, detach : bool, default True
        As in :func:`centrality_weights` (``False`` for each: the released code).

    Notes
    -----
    ``forward(sims, logit_scale, query_global, query_local, gallery_global,
    gallery_local, *, query_mask=None, gallery_mask=None)``: locals are matrices (one
    token per sample) or token tensors with masks. Book: :ref:`sec-neighborretr`.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.losses import symmetric_infonce
    >>> term = CentralityWeightedInfoNCE(kappa=0.0)
    >>> s = torch.eye(3)
    >>> x = torch.randn(3, 4)
    >>> bool(term(s, 1.0, x, x, x, x) == symmetric_infonce(s, 1.0))
    True
    """

    def __init__(
        self,
        *,
        kappa: float = 0.3,
        exclude_pad: bool = True,
        exclude_self: bool = True,
        detach: bool = True,
    ) -> None:
        super().__init__()
        func = "CentralityWeightedInfoNCE"
        self.kappa = V.check_positive(kappa, "kappa", func, allow_zero=True)
        self.exclude_pad = bool(exclude_pad)
        self.exclude_self = bool(exclude_self)
        self.detach = bool(detach)

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f"kappa={self.kappa}, exclude_pad={self.exclude_pad}, "
            f"exclude_self={self.exclude_self}, detach={self.detach}"
        )

    def weights(
        self,
        global_emb: torch.Tensor,
        local: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """Return :math:`e^{\\kappa C}` of validated features (``None`` when kappa is 0)."""
        if self.kappa == 0:
            return None
        w = torch.exp(
            self.kappa
            * _centrality(global_emb, local, mask, self.exclude_pad, self.exclude_self)
        )
        return w.detach() if self.detach else w

    def weights_unit(
        self,
        query_global: torch.Tensor,
        query_unit: torch.Tensor,
        gallery_global: torch.Tensor,
        gallery_unit: torch.Tensor,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Return :math:`(w^q, w^g)` of validated one-token features, locals L2-normalised.

        Both modalities in one batched computation (``(None, None)`` when kappa is 0);
        without a gradient graph when the weights are detached.
        """
        if self.kappa == 0:
            return None, None
        b = query_global.shape[0]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach):
            g2 = F.normalize(torch.stack([query_global, gallery_global]), dim=-1)
            t2 = torch.stack([query_unit, gallery_unit])
            # sum of the cosines with every token: one product with the summed tokens
            total = torch.bmm(g2, t2.sum(dim=1)[:, :, None])[..., 0]
            if self.exclude_self:
                c = (total - (g2 * t2).sum(dim=-1)) / (b - 1)
            else:
                c = total / b
            w = torch.exp(self.kappa * c)
        return w[0], w[1]

    def loss(
        self,
        sims: torch.Tensor,
        scale: torch.Tensor | float,
        w_query: torch.Tensor | None,
        w_gallery: torch.Tensor | None,
    ) -> torch.Tensor:
        """Return the weighted InfoNCE of validated inputs and weights."""
        return infonce(sims, scale, w_query, w_gallery)

    def forward(
        self,
        sims: torch.Tensor,
        logit_scale: torch.Tensor | float,
        query_global: torch.Tensor,
        query_local: torch.Tensor,
        gallery_global: torch.Tensor,
        gallery_local: torch.Tensor,
        *,
        query_mask: torch.Tensor | None = None,
        gallery_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""Return :math:`L_{\rm Wti}` for one batch (row i of ``sims`` matches column i)."""
        func = "CentralityWeightedInfoNCE"
        sims = check_square_sims(sims, func)
        scale = check_scale(logit_scale, func)
        feats = []
        for side, g, t, m in (
            ("query", query_global, query_local, query_mask),
            ("gallery", gallery_global, gallery_local, gallery_mask),
        ):
            g = V.check_matrix(g, f"{side}_global", func)
            t = V.as_tensor(t, f"{side}_local", func)
            if t.ndim == 2 and m is None:
                t = V.check_matrix(t, f"{side}_local", func)  # one token per sample
                _check_batch(func, g, t[:, None, :], self.exclude_self)
            else:
                t, m = check_tokens(
                    t if t.ndim == 3 else t[:, None, :], m, f"{side}_local", func
                )
                _check_batch(func, g, t, self.exclude_self)
            if g.shape[0] != sims.shape[0]:
                V.fail(
                    func,
                    f"{side}_global",
                    f"{sims.shape[0]} rows (the batch of `sims`)",
                    f"shape {tuple(g.shape)}",
                )
            feats.append((g, t, m))
        (qg, qt, qm), (gg, gt, gm) = feats
        return self.loss(
            sims, scale, self.weights(qg, qt, qm), self.weights(gg, gt, gm)
        )
