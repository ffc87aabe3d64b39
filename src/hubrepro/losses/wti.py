r"""The fine-grained similarity :math:`S` of NeighborRetr: weighted token-wise interaction (WTI).

NeighborRetr (``lin2025neighborretr``), §4.2, scores a text against a video by matching
every token of one with its best token of the other, weighted by a learnt token weight;
the released code computes it in ``NeighborRetr.local_level`` of
``NeighborRetr/models/modeling.py`` (``zzezze/NeighborRetr``, commit 04112ee), with
token-weight networks ``Linear(D, 2D) -> ReLU -> Linear(2D, 1)``
(``_create_weighting_network``). With one token per sample :math:`S` is the cosine
similarity, which is what :class:`~hubrepro.losses.NeighborRetrLoss` uses.

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hubrepro import _validation as V
from hubrepro.losses._checks import check_tokens

__all__ = ["wti_similarity", "WTISimilarity"]


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
    similarity of the released code (``NeighborRetr.local_level`` in
    ``NeighborRetr/models/modeling.py``, ``zzezze/NeighborRetr`` commit 04112ee).

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
        ``True`` reproduces the released code, where masked cosines are 0, so padding
        can win the max when every real cosine is negative. ``False`` (project
        default) ignores padding in the max.
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
    qt, qm = check_tokens(query_tokens, query_mask, "query_tokens", func)
    gt, gm = check_tokens(gallery_tokens, gallery_mask, "gallery_tokens", func)
    if qt.shape[-1] != gt.shape[-1]:
        V.fail(
            func,
            "gallery_tokens",
            f"of feature size {qt.shape[-1]} (as `query_tokens`)",
            f"shape {tuple(gt.shape)}",
        )
    step = chunk_size or qt.shape[0]
    step = V.check_int(step, "chunk_size", func, low=1)
    return _wti(qt, qm, gt, gm, query_mlp, gallery_mlp, masked_zero, step)


def _wti(
    qt: torch.Tensor,
    qm: torch.Tensor,
    gt: torch.Tensor,
    gm: torch.Tensor,
    query_mlp: Callable[[torch.Tensor], torch.Tensor] | None,
    gallery_mlp: Callable[[torch.Tensor], torch.Tensor] | None,
    masked_zero: bool,
    step: int,
) -> torch.Tensor:
    aq = _token_weights(qt, qm, query_mlp)
    ag = _token_weights(gt, gm, gallery_mlp)
    qn = F.normalize(qt, dim=-1)
    gn = F.normalize(gt, dim=-1)
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


def _weighting_network(dim: int) -> nn.Module:
    # the released token-weight network: Linear(D, 2D) -> ReLU -> Linear(2D, 1)
    return nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, 1))


class WTISimilarity(nn.Module):
    r"""The WTI similarity as a module, optionally with learnt token weights.

    See :func:`wti_similarity` for the equation. Implements NeighborRetr
    (``lin2025neighborretr``), §4.2.

    Parameters
    ----------
    dim : int or None, default None
        Token feature size. Given, the module owns one token-weight network per
        modality, ``Linear(dim, 2 dim) -> ReLU -> Linear(2 dim, 1)`` as in the released
        code; ``None`` weighs the valid tokens uniformly (no parameters).
    masked_zero : bool, default False
        As in :func:`wti_similarity` (``True``: the released code's masking).
    chunk_size : int or None
        As in :func:`wti_similarity`.

    Notes
    -----
    ``forward(query_tokens, query_mask, gallery_tokens, gallery_mask)`` returns the
    ``(n_query, n_gallery)`` matrix :math:`S`. Book: :ref:`sec-neighborretr`.

    Examples
    --------
    >>> import torch
    >>> wti = WTISimilarity(4)
    >>> s = wti(torch.randn(3, 5, 4), None, torch.randn(2, 6, 4), None)
    >>> tuple(s.shape)
    (3, 2)
    """

    def __init__(
        self,
        dim: int | None = None,
        *,
        masked_zero: bool = False,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        func = "WTISimilarity"
        self.dim = None if dim is None else V.check_int(dim, "dim", func, low=1)
        self.masked_zero = bool(masked_zero)
        self.chunk_size = (
            None
            if chunk_size is None
            else V.check_int(chunk_size, "chunk_size", func, low=1)
        )
        self.query_weights = None if dim is None else _weighting_network(dim)
        self.gallery_weights = None if dim is None else _weighting_network(dim)

    def extra_repr(self) -> str:  # noqa: D102
        return f"dim={self.dim}, masked_zero={self.masked_zero}"

    def forward(
        self,
        query_tokens: torch.Tensor,
        query_mask: torch.Tensor | None,
        gallery_tokens: torch.Tensor,
        gallery_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Return :math:`S`; see :func:`wti_similarity`."""
        return wti_similarity(
            query_tokens,
            query_mask,
            gallery_tokens,
            gallery_mask,
            self.query_weights,
            self.gallery_weights,
            masked_zero=self.masked_zero,
            chunk_size=self.chunk_size,
        )
