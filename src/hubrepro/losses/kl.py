r"""The KL consistency :math:`L_{\rm KL}` of NeighborRetr between fine and global scores.

NeighborRetr (``lin2025neighborretr``), Eq. (15): the row-wise softmax of the
fine-grained similarity :math:`S` is kept close to that of the global scores :math:`G`.
The released code is ``KLDivergenceLoss`` in ``NeighborRetr/models/until_module.py``,
averaged over the two directions in ``NeighborRetr._compute_losses`` of
``NeighborRetr/models/modeling.py`` (``zzezze/NeighborRetr``, commit 04112ee).

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from hubrepro import _validation as V
from hubrepro.losses._checks import check_square_sims

__all__ = ["kl_consistency", "KLConsistency"]

_REDUCTIONS = ("mean", "batchmean", "sum")


def kl_consistency(
    sims: torch.Tensor,
    global_sims: torch.Tensor,
    *,
    reduction: Literal["mean", "batchmean", "sum"] = "mean",
) -> torch.Tensor:
    r"""Return the KL consistency :math:`L_{\rm KL}` between fine and global scores.

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (15):

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
        ``"mean"`` divides the summed KL by :math:`B^2` as the released code does
        (``F.kl_div(..., reduction="mean")``; kept); ``"batchmean"`` by :math:`B`.

    Returns
    -------
    Tensor
        Scalar loss.

    Notes
    -----
    Book: :ref:`sec-neighborretr`.
    """
    func = "kl_consistency"
    s = check_square_sims(sims, func)
    g = check_square_sims(global_sims, func)
    if s.shape != g.shape:
        V.fail(
            func,
            "global_sims",
            f"of shape {tuple(s.shape)} (as `sims`)",
            f"shape {tuple(g.shape)}",
        )
    reduction = V.check_choice(reduction, "reduction", func, _REDUCTIONS)
    return _kl(s, g, reduction)


def _kl(s: torch.Tensor, g: torch.Tensor, reduction: str) -> torch.Tensor:
    return _kl_stacked(torch.stack([s, s.T]), torch.stack([g, g.T]), reduction)


def _kl_stacked(s2: torch.Tensor, g2: torch.Tensor, reduction: str) -> torch.Tensor:
    # both directions at once on the stacks (S, S^T) and (G, G^T); "mean" is the
    # element-wise mean of F.kl_div per direction, as the released code calls it
    b = s2.shape[-1]
    logp = torch.log_softmax(s2, dim=-1)
    kl = (logp.exp() * (logp - torch.log_softmax(g2, dim=-1))).sum()
    return kl / (2 * {"mean": b * b, "batchmean": b, "sum": 1}[reduction])


class KLConsistency(nn.Module):
    r"""The term :math:`L_{\rm KL}` as a module; see :func:`kl_consistency`.

    Parameters
    ----------
    reduction : {"mean", "batchmean", "sum"}, default "mean"
        As in :func:`kl_consistency` (``"mean"``: the released code).

    Notes
    -----
    ``forward(sims, global_sims)`` returns the scalar term. Book:
    :ref:`sec-neighborretr`.

    Examples
    --------
    >>> import torch
    >>> s = torch.randn(4, 4)
    >>> float(KLConsistency()(s, s))
    0.0
    """

    def __init__(
        self, *, reduction: Literal["mean", "batchmean", "sum"] = "mean"
    ) -> None:
        super().__init__()
        self.reduction = V.check_choice(
            reduction, "reduction", "KLConsistency", _REDUCTIONS
        )

    def extra_repr(self) -> str:  # noqa: D102
        return f"reduction={self.reduction!r}"

    def loss(self, sims: torch.Tensor, global_sims: torch.Tensor) -> torch.Tensor:
        """Return the term of validated square matrices of the same shape."""
        return _kl(sims, global_sims, self.reduction)

    def loss_stacked(self, s2: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        """Return the term of the stacks ``(S, S.T)`` and ``(G, G.T)``."""
        return _kl_stacked(s2, g2, self.reduction)

    def forward(self, sims: torch.Tensor, global_sims: torch.Tensor) -> torch.Tensor:
        r"""Return :math:`L_{\rm KL}` of :math:`S` and :math:`G` (batch, batch)."""
        return kl_consistency(sims, global_sims, reduction=self.reduction)
