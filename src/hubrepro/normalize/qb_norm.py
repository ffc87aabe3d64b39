r"""Dynamic inverted softmax (DIS), the QB-Norm normaliser of Bogolin et al. 2022.

Book: :ref:`sec-normalisation`, :ref:`eq-dis`.
"""

from __future__ import annotations

import torch

from hubrepro._validation import check_int

from ._base import (
    DEFAULT_BETA_GALLERY,
    DEFAULT_BETA_QUERY,
    BankSource,
    first_argmax,
    stream_bank_stats,
)
from .inverted_softmax import InvertedSoftmax

__all__ = ["QBNorm"]


class QBNorm(InvertedSoftmax):
    r"""Dynamic inverted softmax (DIS, QB-Norm): IS only for queries whose top-1 is a potential hub.

    The activation set :math:`A` holds the gallery items that are in the top-``k``
    of at least one bank item. A test query whose nearest gallery item (on the
    original :math:`S`) lies in :math:`A` is normalised by IS; every other query
    keeps its raw row ("do no harm" when the bank does not cover the gallery).
    Implements DIS of QB-Norm :cite:`bogolin2022qbnorm` (equation number not verified).

    .. math::

        A = \bigcup_{b=1}^{M}\mathrm{TopK}_k\{j : P_{bj}\},\quad
        g^*(i) = \arg\max_j S_{ij},\quad
        \gamma_i = \mathbb 1[g^*(i)\in A],

        \log\mathrm{DIS}_{ij} = \beta S_{ij} - \gamma_i\, c_j,\qquad
        c_j=\mathrm{LSE}_b(\beta P_{bj}).

    Parameters
    ----------
    beta_query, beta_gallery, bank, scale
        As in :class:`InvertedSoftmax`.
    k : int, default 1
        Activation-set size per bank item (QB-Norm's default, "a good trade-off").

    Attributes
    ----------
    lse_ : Tensor of shape (n_gallery,)
    active_ : BoolTensor of shape (n_gallery,)
        The activation set :math:`A`.

    Notes
    -----
    Differences from the upstream code: the gate uses the original :math:`S`
    with ties to the lowest index (the upstream routine, ``qb_norm`` in
    ``ioanacroi/qb-norm`` ``dynamic_inverted_softmax.py`` and in the released DBNorm
    code, normalises in place and reuses its output: defect D3 of
    :ref:`sec-dbnorm-errata`); gated-off rows are returned as
    :math:`\beta S_{ij}` in the log scale, i.e. as :math:`S_{ij}` in the
    similarity scale, so gated and ungated rows share one scale (the upstream
    output mixes exp-ratios with raw scores); the activation set is a boolean
    mask built chunk by chunk, with no full sort per row.

    Book: :ref:`sec-normalisation`.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.normalize import QBNorm
    >>> bank = torch.tensor([[0.9, 0.1, 0.0]])  # only gallery item 0 is active
    >>> s = torch.tensor([[0.5, 0.4, 0.0], [0.1, 0.6, 0.0]])
    >>> out = QBNorm(beta_query=20.0).fit(bank).transform(s)
    >>> bool(torch.equal(out[1], s[1]))  # query 1's top-1 is not active: unchanged
    True
    """

    def __init__(
        self,
        *,
        beta_query: float = DEFAULT_BETA_QUERY,
        beta_gallery: float = DEFAULT_BETA_GALLERY,
        k: int = 1,
        bank: str = "query",
        scale: str = "similarity",
    ) -> None:
        self._store(
            beta_query=beta_query,
            beta_gallery=beta_gallery,
            k=k,
            bank=bank,
            scale=scale,
        )

    def _check_params(self) -> None:
        super()._check_params()
        check_int(self.k, "k", type(self).__name__, low=1)

    def _fit_sources(
        self, sources: dict[str, BankSource], func: str, extra: dict
    ) -> None:
        st = stream_bank_stats(sources[self.bank], beta=self.beta_, k_active=self.k)
        self.lse_, self.active_ = st.lse, st.active

    def gate(self, sims: torch.Tensor) -> torch.Tensor:
        """Boolean gate :math:`\\gamma_i` of each query row (its top-1 is in :math:`A`)."""
        return self.active_.to(sims.device)[first_argmax(sims)]

    def _transform(self, s: torch.Tensor) -> torch.Tensor:
        beta, c = self.beta_, self._stat(self.lse_, s)
        gamma = self.gate(s).to(s.dtype)[:, None]
        # ungated rows come back bit-for-bit equal to `sims` on the similarity scale
        return (
            s - gamma * (c / beta)
            if self.scale == "similarity"
            else beta * s - gamma * c
        )
