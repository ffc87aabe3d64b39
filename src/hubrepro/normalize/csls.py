r"""Cross-domain similarity local scaling (CSLS) with a bank, Conneau et al. 2018.

Book: :ref:`sec-normalisation`, :ref:`eq-csls`.
"""

from __future__ import annotations

import torch

from hubrepro._validation import check_int, fail

from ._base import BankSource, BaseNormalizer, check_bank_choice, stream_bank_stats

__all__ = ["CSLS"]


class CSLS(BaseNormalizer):
    r"""CSLS with a bank: subtract each gallery item's mean similarity to its ``k`` nearest bank items.

    Implements the bank version of CSLS :cite:`conneau2018word` used as a baseline by
    QB-Norm :cite:`bogolin2022qbnorm`.

    .. math::

        \eta_{ij} = 2S_{ij} - r_i - r_j,\quad
        r_i = \frac1k\sum_{\text{top-}k\ j'} S_{ij'},\quad
        r_j = \frac1k\sum_{\text{top-}k\ b} P_{bj}.

    :math:`r_i` is constant within a row, so only :math:`r_j` changes the
    query-to-gallery ranking; it is kept so that the output equals the formula.

    Parameters
    ----------
    k : int, default 10
        Neighbourhood size :math:`K` (the original reports insensitivity for 5-50).
    bank : {"query", "gallery"}, default "query"

    Attributes
    ----------
    bank_mean_ : Tensor of shape (n_gallery,)
        :math:`r_j`.

    Notes
    -----
    The bank term is a streamed top-k mean over the bank rows (one pass).

    Book: :ref:`sec-normalisation`.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.normalize import CSLS
    >>> bank = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    >>> CSLS(k=1).fit(bank).transform(torch.tensor([[0.5, 0.5]])).tolist()
    [[-0.5, 0.5]]
    """

    banks = ("query",)
    _k_axes = ("bank", "gallery")

    def __init__(self, *, k: int = 10, bank: str = "query") -> None:
        self._store(k=k, bank=bank)

    def _required(self) -> tuple[str, ...]:
        return (self.bank,)

    def _check_params(self) -> None:
        check_int(self.k, "k", type(self).__name__, low=1)
        check_bank_choice(self.bank, type(self).__name__)

    def _fit_sources(
        self, sources: dict[str, BankSource], func: str, extra: dict
    ) -> None:
        self.bank_mean_ = stream_bank_stats(sources[self.bank], k_top=self.k).topk_mean

    def _check_transform(self, s: torch.Tensor, func: str) -> None:
        if self.k > s.shape[1]:
            fail(func, "k", f"at most n_gallery = {s.shape[1]}", self.k)

    def _transform(self, s: torch.Tensor) -> torch.Tensor:
        r_row = s.topk(self.k, dim=1).values.mean(dim=1, keepdim=True)
        return 2 * s - r_row - self._stat(self.bank_mean_, s)
