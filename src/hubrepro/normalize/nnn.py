r"""Nearest neighbour normalisation (NNN), Chowdhury et al., EMNLP 2024.

Book: :ref:`sec-normalisation`, :ref:`eq-nnn`.
"""

from __future__ import annotations

import torch

from hubrepro._validation import check_int, check_positive

from ._base import BankSource, BaseNormalizer, check_bank_choice, stream_bank_stats

__all__ = ["NNN"]


class NNN(BaseNormalizer):
    r"""NNN: subtract a per-gallery bias, ``alpha`` times the mean of its top-``k`` bank similarities.

    Implements nearest neighbour normalisation :cite:`chowdhury2024nnn` as the
    released code computes it (``multimodal-interpretability/nnn``, commit cea80de,
    ``nnn/nnn_retriever.py``: the bias is ``alternate_weight`` times the mean of each
    gallery item's ``alternate_ks`` largest similarities to the reference set):

    .. math::

        \mathrm{NNN}_{ij} = S_{ij} - \alpha\,\frac1k\sum_{\text{top-}k\ b} P_{bj}.

    With ``alpha = 1`` this is the bank term of :class:`CSLS` (up to the factor 2
    and the row constant).

    Parameters
    ----------
    alpha : float, default 0.5
        Bias weight :math:`\alpha\ge 0`: the default ``alternate_weight`` of the
        release's ``NNNRanker`` (its README suggests 0.75 as a starting point and
        the paper sweeps it on validation data).
    k : int, default 256
        Number of nearest bank items per gallery item: the release's default
        ``alternate_ks`` (its README suggests 128). Must not exceed the bank size.
    bank : {"query", "gallery"}, default "query"
        NNN uses a bank of reference queries.

    Attributes
    ----------
    bias_ : Tensor of shape (n_gallery,)

    Notes
    -----
    The bias is a streamed top-k mean over the bank rows (one pass); a query then costs one subtraction.

    Book: :ref:`sec-normalisation`.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.normalize import NNN
    >>> bank = torch.tensor([[1.0, 0.0], [0.5, 0.0]])
    >>> NNN(alpha=1.0, k=2).fit(bank).transform(torch.zeros(1, 2)).tolist()
    [[-0.75, 0.0]]
    """

    banks = ("query",)
    _k_axes = ("bank",)

    def __init__(
        self, *, alpha: float = 0.5, k: int = 256, bank: str = "query"
    ) -> None:
        self._store(alpha=alpha, k=k, bank=bank)

    def _required(self) -> tuple[str, ...]:
        return (self.bank,)

    def _check_params(self) -> None:
        f = type(self).__name__
        check_positive(self.alpha, "alpha", f, allow_zero=True)
        check_int(self.k, "k", f, low=1)
        check_bank_choice(self.bank, f)

    def _fit_sources(
        self, sources: dict[str, BankSource], func: str, extra: dict
    ) -> None:
        self.bias_ = (
            self.alpha * stream_bank_stats(sources[self.bank], k_top=self.k).topk_mean
        )

    def _transform(self, s: torch.Tensor) -> torch.Tensor:
        return s - self._stat(self.bias_, s)
