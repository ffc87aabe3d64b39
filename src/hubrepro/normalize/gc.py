r"""Globally corrected retrieval (GC), Dinu et al. 2015, a QB-Norm baseline.

Book: :ref:`sec-normalisation`, :ref:`eq-gc`.
"""

from __future__ import annotations

import torch

from ._base import BankSource, BaseNormalizer, check_bank_choice

__all__ = ["GloballyCorrected"]


class GloballyCorrected(BaseNormalizer):
    r"""GC: rank gallery items by the rank of the query among the bank, as seen from each item.

    For candidate :math:`g_j`, the query :math:`q_i` is ranked among
    :math:`\{q_i\}\cup B` by similarity to :math:`g_j`; the retrieved items are
    those where the query ranks best, ties broken by :math:`S_{ij}`. Implements
    globally corrected retrieval :cite:`dinu2015improving` with a bank, as in the
    baselines of QB-Norm :cite:`bogolin2022qbnorm`.

    .. math::

        \rho_{ij} = \#\{b : P_{bj} > S_{ij}\},\qquad
        \mathrm{GC}_{ij} = -\rho_{ij}\,C_i + S_{ij},\quad
        C_i = \max_j S_{ij} - \min_j S_{ij} + 1 .

    :math:`\rho_{ij}` is the 0-based rank of the query among the bank for item
    :math:`j`; multiplying it by :math:`C_i`, larger than the spread of the row,
    makes the score sort by :math:`\rho` first and by :math:`S` among equal
    ranks.

    Parameters
    ----------
    bank : {"query", "gallery"}, default "query"

    Attributes
    ----------
    sorted_bank_ : Tensor of shape (n_gallery, n_bank)
        Each gallery column's bank similarities, sorted ascending.

    Notes
    -----
    GC is the one method that keeps the whole bank: ranks need every bank value
    of each column, so ``fit`` stores the sorted bank matrix
    (``n_bank * n_gallery`` values; with embeddings it is filled chunk by chunk).
    A query then costs one binary search per gallery item. The score is computed
    in float64 and cast to the dtype of ``sims``: in float32, the tie-break by
    :math:`S` is exact only while :math:`\rho C_i` stays below about :math:`10^5`.

    Book: :ref:`sec-normalisation`.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.normalize import GloballyCorrected
    >>> bank = torch.tensor([[0.9, 0.1], [0.8, 0.1]])
    >>> s = torch.tensor([[0.7, 0.3]])  # 2 bank items beat 0.7 on item 0, none beat 0.3 on 1
    >>> GloballyCorrected().fit(bank).transform(s).argmax(dim=1).item()
    1
    """

    banks = ("query",)

    def __init__(self, *, bank: str = "query") -> None:
        self._store(bank=bank)

    def _required(self) -> tuple[str, ...]:
        return (self.bank,)

    def _check_params(self) -> None:
        check_bank_choice(self.bank, type(self).__name__)

    def _fit_sources(
        self, sources: dict[str, BankSource], func: str, extra: dict
    ) -> None:
        src = sources[self.bank]
        bank_t = torch.empty(
            src.n_gallery, src.n_bank, dtype=src.dtype, device=src.device
        )
        for a, block in src.blocks():
            bank_t[:, a : a + block.shape[0]] = block.T
        if src.reducer is not None:  # every rank keeps the whole bank's columns
            bank_t = src.reducer.gather_rows(bank_t.T.contiguous()).T
        self.sorted_bank_ = bank_t.sort(dim=1).values

    def ranks(self, sims: torch.Tensor) -> torch.Tensor:
        r"""The 0-based rank :math:`\rho_{ij}` of each query among the bank, per gallery item."""
        sb = self.sorted_bank_.to(device=sims.device, dtype=sims.dtype)
        n_le = torch.searchsorted(
            sb, sims.T.contiguous(), right=True
        )  # (n_gallery, n_query)
        return (sb.shape[1] - n_le).T

    def _transform(self, s: torch.Tensor) -> torch.Tensor:
        rho = self.ranks(s).to(torch.float64)
        s64 = s.to(torch.float64)
        c = (
            s64.max(dim=1, keepdim=True).values
            - s64.min(dim=1, keepdim=True).values
            + 1
        )
        return -rho * c + s64
