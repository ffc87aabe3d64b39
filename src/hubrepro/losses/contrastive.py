r"""Symmetric InfoNCE, the contrastive baseline of CLIP-style dual encoders.

Implements the symmetric InfoNCE loss of Oord et al. (``oord2018representation``) as
used by CLIP (``radford2021learning``) and CLIP4Clip (``luo2022clip4clip``).

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hubrepro.losses._checks import check_scale, check_square_sims

__all__ = ["symmetric_infonce", "SymmetricInfoNCE"]


def infonce(
    sims: torch.Tensor,
    scale: torch.Tensor | float,
    w_query: torch.Tensor | None = None,
    w_gallery: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Symmetric InfoNCE with optional per-sample weights, on validated inputs.

    The one implementation behind :func:`symmetric_infonce` (no weights) and the
    centrality-weighted :math:`L_{\rm Wti}` of NeighborRetr
    (:func:`hubrepro.losses.centrality_weighted_infonce`).
    """
    logits = sims * scale
    target = torch.arange(sims.shape[0], device=sims.device)
    nll_q = F.cross_entropy(logits, target, reduction="none")
    nll_g = F.cross_entropy(logits.T, target, reduction="none")
    if w_query is not None:
        nll_q = nll_q * w_query
    if w_gallery is not None:
        nll_g = nll_g * w_gallery
    return 0.5 * (nll_q.mean() + nll_g.mean())


def symmetric_infonce(
    sims: torch.Tensor, logit_scale: torch.Tensor | float = 1.0
) -> torch.Tensor:
    r"""Return the symmetric InfoNCE loss of a batch similarity matrix.

    Row :math:`i` of ``sims`` is query :math:`i`; its positive is column :math:`i`.

    Implements Oord et al. (``oord2018representation``), Eq. (4), symmetrised as in
    CLIP (``radford2021learning``).

    .. math::

        L = \tfrac12\Big[\operatorname{CE}(\lambda S, I)
            + \operatorname{CE}(\lambda S^\top, I)\Big],
        \qquad
        \operatorname{CE}(X, I) = -\tfrac1B\sum_i \log
            \frac{e^{X_{ii}}}{\sum_j e^{X_{ij}}}

    where :math:`S` is the :math:`B\times B` similarity matrix and :math:`\lambda`
    the logit scale (inverse temperature).

    Parameters
    ----------
    sims : Tensor of shape (batch, batch)
        Similarities :math:`S`, rows = queries, columns = gallery items.
    logit_scale : float or scalar Tensor, default 1.0
        :math:`\lambda`; a tensor keeps its gradient (learnable temperature).

    Returns
    -------
    Tensor
        A scalar of the dtype of ``sims``.

    Raises
    ------
    ValueError
        If ``sims`` is not square, has fewer than two rows or is not finite.

    References
    ----------
    Keys of ``references.bib``: ``oord2018representation``, ``radford2021learning``.

    Notes
    -----
    With ``logit_scale`` a tensor this equals ``F.cross_entropy`` on
    ``logit_scale * sims`` and its transpose, averaged. Book: :ref:`sec-neighborretr`.

    Examples
    --------
    >>> import torch
    >>> s = torch.eye(3)
    >>> round(float(symmetric_infonce(s, 1.0)), 4)
    0.5514
    """
    func = "symmetric_infonce"
    return infonce(check_square_sims(sims, func), check_scale(logit_scale, func))


class SymmetricInfoNCE(nn.Module):
    r"""Symmetric InfoNCE as a module: ``loss(sims, logit_scale)``.

    See :func:`symmetric_infonce` for the equation. Implements Oord et al.
    (``oord2018representation``).

    Notes
    -----
    Book: :ref:`sec-neighborretr`.
    """

    def forward(
        self, sims: torch.Tensor, logit_scale: torch.Tensor | float = 1.0
    ) -> torch.Tensor:
        """Return the loss; see :func:`symmetric_infonce`."""
        return symmetric_infonce(sims, logit_scale)
