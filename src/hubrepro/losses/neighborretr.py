r"""The NeighborRetr objective (Lin et al., CVPR 2025), composed from its four terms.

NeighborRetr (``lin2025neighborretr``) trains a dual encoder with

.. math::

    L = L_{\rm Wti} + w_{\rm opt} L_{\rm Opt} + w_{\rm nbi} L_{\rm Nbi}
        + w_{\rm kl} L_{\rm KL},

where :math:`L_{\rm Wti}` is a centrality-weighted symmetric InfoNCE on the
fine-grained similarity :math:`S` (Eq. 3-4, ``hubrepro.losses.centrality``),
:math:`L_{\rm Nbi}` the neighbour adjusting loss on de-centralised similarities against
memory-bank centrality (Eq. 5-8, ``hubrepro.losses.neighbor``), :math:`L_{\rm Opt}`
a uniform regulariser towards a Sinkhorn plan of the global scores :math:`G` (Eq.
10-12, ``hubrepro.losses.uniform``; ``cuturi2013sinkhorn``) and :math:`L_{\rm KL}`
a consistency term between the two similarity levels (Eq. 15,
``hubrepro.losses.kl``). Each term has a functional and an ``nn.Module`` form in its
own module; :class:`NeighborRetrLoss` composes the module forms as
``NeighborRetr._compute_losses`` of ``NeighborRetr/models/modeling.py`` composes them in
the released code (``zzezze/NeighborRetr``, commit 04112ee), whose docstrings give the
equation numbers.

Every place where the released code does something surprising has the project's sound
default plus the authors' behaviour behind a named flag (:data:`COMPAT_FLAGS`), and
``compat="official"`` switches all of them at once; the book's table of these choices
is in :ref:`sec-neighborretr`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from hubrepro import _validation as V
from hubrepro.losses._checks import check_scale
from hubrepro.losses.centrality import CentralityWeightedInfoNCE
from hubrepro.losses.kl import _REDUCTIONS, KLConsistency
from hubrepro.losses.neighbor import NeighborAdjustingLoss
from hubrepro.losses.uniform import UniformRegularisation

__all__ = ["COMPAT_FLAGS", "NeighborRetrLoss"]

#: The flag of each surprise of the released code under each ``compat`` setting
#: (the table of :ref:`sec-neighborretr`).
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

    Implements NeighborRetr (``lin2025neighborretr``), §4, for dual encoders with one
    local (fine) vector and one global vector per sample and modality — the models of
    the book's reproduction (:class:`~hubrepro.heads.DualEncoderHeads`,
    :class:`~hubrepro.encoders.DualEncoder`); token-level WTI is available separately
    as :func:`~hubrepro.losses.wti_similarity`. The terms are the modules
    :class:`~hubrepro.losses.CentralityWeightedInfoNCE`,
    :class:`~hubrepro.losses.UniformRegularisation`,
    :class:`~hubrepro.losses.NeighborAdjustingLoss` and
    :class:`~hubrepro.losses.KLConsistency` (attributes ``wti``, ``uniform``,
    ``neighbor``, ``kl``).

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
        Sinkhorn settings (the released code hard-codes 50 and 1.0).
    normalize_global : bool, default False
        Cosine instead of raw dot product for :math:`G` (the released code: raw; kept).
    kl_reduction : {"mean", "batchmean", "sum"}, default "mean"
        See :func:`~hubrepro.losses.kl_consistency` (the released code: ``"mean"``; kept).
    compat : {"fixed", "official"}, default "fixed"
        Sets every flag below to the project default or to the released code's behaviour.
    nal_stats, detach_weights, detach_targets, centrality_exclude_pad, centrality_exclude_self, tie_temperatures, separate_plans
        Individual overrides of ``COMPAT_FLAGS`` (``None`` = from ``compat``);
        ``separate_plans`` is that of :func:`~hubrepro.losses.uniform_regularisation`.

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
            kl_reduction, "kl_reduction", func, _REDUCTIONS
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
        f = self.flags = _Flags(**resolved)  # type: ignore[arg-type]
        self.wti = CentralityWeightedInfoNCE(
            kappa=self.kappa,
            exclude_pad=f.centrality_exclude_pad,
            exclude_self=f.centrality_exclude_self,
            detach=f.detach_weights,
        )
        self.neighbor = NeighborAdjustingLoss(
            num_neighbors=self.num_neighbors,
            tau=self.tau_nal,
            stats=f.nal_stats,  # type: ignore[arg-type]
            detach_targets=f.detach_targets,
        )
        self.uniform = UniformRegularisation(
            beta=self.ot_beta,
            tau=self.tau_nal if f.tie_temperatures else self.tau_uniform,
            iters=self.sinkhorn_iters,
            eps=self.sinkhorn_eps,
            separate_plans=f.separate_plans,
        )
        self.kl = KLConsistency(reduction=self.kl_reduction)  # type: ignore[arg-type]

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
        scale = check_scale(logit_scale, func)
        # inputs are validated above: the terms below skip their own checks. Shared
        # work is done once: the normalised local features (S, both centralities),
        # the stacks (S, S^T) of L_Nbi and L_KL and (G, G^T) of L_Opt and L_KL, on
        # which each term runs its two directions as one batched computation.
        qn, gn = F.normalize(ql, dim=-1), F.normalize(gl, dim=-1)
        s = qn @ gn.T
        use_nbi, use_uni, use_kl = (
            self.w_neighbor > 0,
            self.w_uniform > 0,
            self.w_kl > 0,
        )
        zero = s.new_zeros(())
        nbi = uni = kl = zero
        wq, wg = self.wti.weights_unit(qg, qn, gg, gn)
        wti = self.wti.loss(s, scale, wq, wg)
        s2 = torch.stack([s, s.T]) if use_nbi or use_kl else None
        g2 = None
        if use_uni or use_kl:
            if self.normalize_global:
                g = F.normalize(qg, dim=-1) @ F.normalize(gg, dim=-1).T
            else:
                g = qg @ gg.T
            g2 = torch.stack([g, g.T])
        if use_nbi:
            bq, bg = self.neighbor.check_inputs(
                func, b, ql.shape[1], bank_query_local, bank_gallery_local
            )
            nbi = self.neighbor.loss_stacked(s2, qn, gn, bq, bg)
        if use_uni:
            uni = self.uniform.loss_stacked(g2, bounded=self.normalize_global)
        if use_kl:
            kl = self.kl.loss_stacked(s2, g2)
        loss = wti
        for used, w, term in (
            (use_uni, self.w_uniform, uni),
            (use_nbi, self.w_neighbor, nbi),
            (use_kl, self.w_kl, kl),
        ):
            if used:
                loss = loss + w * term
        if return_terms:
            return {"loss": loss, "wti": wti, "uniform": uni, "neighbor": nbi, "kl": kl}
        return loss
