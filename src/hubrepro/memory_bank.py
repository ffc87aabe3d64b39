r"""A FIFO memory bank of detached features, as NeighborRetr uses it.

NeighborRetr (``lin2025neighborretr``), §4.3, as released (``MemoryBankManager`` in
``NeighborRetr/utils/memory_bank.py`` and ``NeighborRetr.update_memory_bank`` in
``NeighborRetr/models/modeling.py`` of ``zzezze/NeighborRetr``, commit 04112ee): at the
start of every epoch the bank is filled with the features of ``mb_batch`` training
batches computed without gradient; after every step the current (gathered) batch is
pushed to the front and the bank is truncated to its capacity
:math:`M` = ``mb_batch`` × batch size; it is cleared at the end of the epoch. The bank
is used only for the candidate centrality of the neighbour adjusting loss.

The bank is modality-agnostic: it stores any number of named feature tensors that
share their first dimension (e.g. ``"query"`` and ``"gallery"``), plus the dataset
index of each row. Under distributed training the trainer pushes *gathered* batches,
so every rank holds the same bank.

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from hubrepro import _validation as V

__all__ = ["FIFOBank"]


class FIFOBank:
    r"""First-in-first-out bank of detached feature rows with their dataset indices.

    Implements the memory bank of NeighborRetr (``lin2025neighborretr``), §4.3.
    New rows go to the **front**; rows beyond ``capacity`` fall off the
    back.

    Parameters
    ----------
    capacity : int
        Maximum number of rows :math:`M` (at least 1).

    Attributes
    ----------
    capacity : int
        The maximum number of rows.

    Notes
    -----
    Pushed tensors are detached and copied, so later in-place changes by the caller
    never reach the bank and the bank never holds the autograd graph.
    Book: :ref:`sec-neighborretr`.

    Examples
    --------
    >>> import torch
    >>> bank = FIFOBank(3)
    >>> bank.push_front({"query": torch.zeros(2, 4)}, torch.tensor([0, 1]))
    >>> bank.push_front({"query": torch.ones(2, 4)}, torch.tensor([2, 3]))
    >>> bank.indices.tolist()
    [2, 3, 0]
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = V.check_int(capacity, "capacity", "FIFOBank", low=1)
        self._feats: dict[str, torch.Tensor] = {}
        self._indices: torch.Tensor | None = None

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return 0 if self._indices is None else int(self._indices.shape[0])

    def __repr__(self) -> str:
        return (
            f"FIFOBank(capacity={self.capacity}, size={len(self)}, names={self.names})"
        )

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the stored features."""
        return tuple(self._feats)

    @property
    def indices(self) -> torch.Tensor:
        """Dataset indices of the rows, front first (an empty tensor when empty)."""
        if self._indices is None:
            return torch.empty(0, dtype=torch.long)
        return self._indices.clone()

    def get(self, name: str) -> torch.Tensor | None:
        """Return the stored rows of feature ``name`` (front first), or ``None`` if empty."""
        if not len(self):
            return None
        if name not in self._feats:
            V.fail("FIFOBank.get", "name", f"one of {self.names}", repr(name))
        return self._feats[name]

    # ----------------------------------------------------------------- updates
    def push_front(
        self, features: Mapping[str, torch.Tensor], indices: torch.Tensor | None = None
    ) -> None:
        """Push a batch of rows to the front and drop what exceeds the capacity.

        Parameters
        ----------
        features : mapping of str to Tensor of shape (batch, ...)
            Named features; every tensor has the same number of rows. The names must
            equal those of earlier pushes (until :meth:`clear`).
        indices : LongTensor of shape (batch,) or None
            Dataset indices of the rows; ``None`` stores ``-1``.
        """
        func = "FIFOBank.push_front"
        if not isinstance(features, Mapping) or not features:
            V.fail(
                func,
                "features",
                "a non-empty mapping of name -> tensor",
                type(features).__name__,
                exc=TypeError,
            )
        if self._feats and set(features) != set(self._feats):
            V.fail(
                func,
                "features",
                f"the names {sorted(self._feats)} of the bank",
                sorted(features),
            )
        rows = {
            int(V.as_tensor(t, f"features[{k!r}]", func).shape[0])
            for k, t in features.items()
        }
        if len(rows) != 1:
            V.fail(
                func, "features", "tensors with the same number of rows", sorted(rows)
            )
        n = rows.pop()
        first = next(iter(features.values()))
        if indices is None:
            idx = torch.full((n,), -1, dtype=torch.long, device=first.device)
        else:
            idx = V.as_tensor(indices, "indices", func)
            if idx.shape != (n,):
                V.fail(func, "indices", f"of shape ({n},)", f"shape {tuple(idx.shape)}")
            idx = idx.detach().to(device=first.device, dtype=torch.long)
        new = {k: t.detach().clone() for k, t in features.items()}
        if self._feats:
            for k, t in new.items():
                if t.shape[1:] != self._feats[k].shape[1:]:
                    V.fail(
                        func,
                        f"features[{k!r}]",
                        f"rows of shape {tuple(self._feats[k].shape[1:])}",
                        f"{tuple(t.shape[1:])}",
                    )
            new = {
                k: torch.cat([t, self._feats[k].to(t.device)], dim=0)
                for k, t in new.items()
            }
            idx = torch.cat([idx, self._indices.to(idx.device)], dim=0)  # type: ignore[union-attr]
        self._feats = {k: t[: self.capacity] for k, t in new.items()}
        self._indices = idx[: self.capacity].clone()

    def fill(
        self, batches: Iterable[tuple[Mapping[str, torch.Tensor], torch.Tensor | None]]
    ) -> None:
        """Clear the bank, then push every ``(features, indices)`` batch in order."""
        self.clear()
        for feats, idx in batches:
            self.push_front(feats, idx)

    def clear(self) -> None:
        """Remove every row (the names are forgotten too)."""
        self._feats = {}
        self._indices = None

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Return a checkpointable dict (tensors and ints only)."""
        return {
            "capacity": self.capacity,
            "features": {k: t.clone() for k, t in self._feats.items()},
            "indices": None if self._indices is None else self._indices.clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the bank from :meth:`state_dict` output."""
        self.capacity = V.check_int(
            state["capacity"], "capacity", "FIFOBank.load_state_dict", low=1
        )
        self._feats = {k: t.clone() for k, t in state["features"].items()}
        self._indices = None if state["indices"] is None else state["indices"].clone()

    def to(self, device: torch.device | str) -> FIFOBank:
        """Move the stored rows to ``device`` in place and return ``self``."""
        self._feats = {k: t.to(device) for k, t in self._feats.items()}
        if self._indices is not None:
            self._indices = self._indices.to(device)
        return self
