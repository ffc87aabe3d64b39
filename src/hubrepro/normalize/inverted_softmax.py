r"""Inverted softmax with a bank (IS), Smith et al. 2017 as used by QB-Norm.

Book: :ref:`sec-normalisation`, :ref:`eq-is`.
"""

from __future__ import annotations

import torch

from ._base import (
    DEFAULT_BETA_GALLERY,
    DEFAULT_BETA_QUERY,
    BankSource,
    BaseNormalizer,
    check_bank_choice,
    check_beta,
    check_scale,
    stream_bank_stats,
)

__all__ = ["InvertedSoftmax"]


class InvertedSoftmax(BaseNormalizer):
    r"""Inverted softmax (IS) over a bank: divide each gallery column by its bank partition sum.

    Every gallery item :math:`g_j` gets one normaliser, the softmax partition
    sum of its similarities to the bank; items that are close to many bank
    queries (hubs) are pushed down for every test query. Implements the bank
    version of the inverted softmax of Smith et al. :cite:`smith2017offline` used by
    QB-Norm :cite:`bogolin2022qbnorm` (no equation number verified).

    .. math::

        \mathrm{IS}(q_i, g_j) = \frac{e^{\beta S_{ij}}}{\sum_{b=1}^{M} e^{\beta P_{bj}}},
        \qquad
        \log \mathrm{IS}_{ij} = \beta S_{ij} - c_j,\quad
        c_j = \mathrm{LSE}_b(\beta P_{bj}),

    with :math:`S` the test similarities (``sims``), :math:`P` the bank
    similarities (:math:`P^q` for ``bank="query"``, :math:`P^g` for
    ``bank="gallery"``) and :math:`\beta` the inverse temperature
    (``beta_query`` or ``beta_gallery``).

    Parameters
    ----------
    beta_query : float, default ``DEFAULT_BETA_QUERY`` (1/1.99)
        :math:`\beta_q`, used with ``bank="query"`` (the released DBNorm code's
        default; QB-Norm's is 20 on cosine scores).
    beta_gallery : float, default ``DEFAULT_BETA_GALLERY`` (3)
        :math:`\beta_g`, used with ``bank="gallery"`` (the IS-g variant; the released
        DBNorm code's default).
    bank : {"query", "gallery"}, default "query"
        Which bank normalises.
    scale : {"similarity", "log"}, default "similarity"
        ``"similarity"`` returns :math:`S_{ij}-c_j/\beta` (rank-equivalent, on
        the scale of ``sims``); ``"log"`` returns :math:`\log\mathrm{IS}_{ij}`.

    Attributes
    ----------
    lse_ : Tensor of shape (n_gallery,)
        :math:`c_j`.

    Notes
    -----
    The partition sum is a streaming log-sum-exp with a running maximum, so
    :math:`\beta P` up to :math:`10^4` is exact; the upstream code exponentiates
    directly and overflows (defect D5 of the released DBNorm code,
    :ref:`sec-dbnorm-errata`). Inputs are never modified.

    Book: :ref:`sec-normalisation`.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.normalize import InvertedSoftmax
    >>> s = torch.tensor([[0.9, 0.8]])
    >>> bank = torch.tensor([[0.9, 0.1], [0.8, 0.2]])
    >>> InvertedSoftmax(beta_query=10.0).fit(bank).transform(s).argmax(dim=1).item()
    1
    """

    banks = ("query",)

    def __init__(
        self,
        *,
        beta_query: float = DEFAULT_BETA_QUERY,
        beta_gallery: float = DEFAULT_BETA_GALLERY,
        bank: str = "query",
        scale: str = "similarity",
    ) -> None:
        self._store(
            beta_query=beta_query, beta_gallery=beta_gallery, bank=bank, scale=scale
        )

    def _required(self) -> tuple[str, ...]:
        return (self.bank,)

    @property
    def beta_(self) -> float:
        """The inverse temperature of the chosen bank."""
        return self.beta_query if self.bank == "query" else self.beta_gallery

    def _check_params(self) -> None:
        f = type(self).__name__
        check_beta(self.beta_query, "beta_query", f)
        check_beta(self.beta_gallery, "beta_gallery", f)
        check_bank_choice(self.bank, f)
        check_scale(self.scale, f)

    def _fit_sources(
        self, sources: dict[str, BankSource], func: str, extra: dict
    ) -> None:
        self.lse_ = stream_bank_stats(sources[self.bank], beta=self.beta_).lse

    def _transform(self, s: torch.Tensor) -> torch.Tensor:
        beta, c = self.beta_, self._stat(self.lse_, s)
        # the similarity scale is computed directly (not as log / beta) so that it is exact
        return s - c / beta if self.scale == "similarity" else beta * s - c
