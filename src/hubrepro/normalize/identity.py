"""The identity normaliser (``"none"``): the raw similarities, copied.

Book: :ref:`sec-normalisation`.
"""

from __future__ import annotations

import torch

from ._base import BankSource, BaseNormalizer

__all__ = ["Identity"]


class Identity(BaseNormalizer):
    """Return the similarities unchanged (a copy): the baseline ``"none"``.

    Needs no bank; ``fit`` accepts and ignores banks so that it can stand in
    for any method in a loop over :data:`hubrepro.normalize.METHODS`.

    Book: :ref:`sec-normalisation`.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.normalize import Identity
    >>> Identity().fit().transform(torch.eye(2)).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """

    banks = ()

    def __init__(self) -> None:
        self._store()

    def _fit_sources(
        self, sources: dict[str, BankSource], func: str, extra: dict
    ) -> None:
        pass

    def _transform(self, s: torch.Tensor) -> torch.Tensor:
        return s.clone()
