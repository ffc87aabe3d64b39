r"""Bank statistics across processes and machines, with ``torch.distributed``.

Every statistic a normaliser fits is a reduction over the bank's rows, so each
process can stream its own **shard** of the bank (its own files, or a slice of
one memory-mapped file) and the shards' partial results are combined:

- **log-sum-exp** :math:`c_j`: each shard's :math:`\mathrm{LSE}` over its rows,
  all-gathered, then a log-sum-exp over the ranks;
- **activation set** :math:`A`: the union of the shard rows' top-:math:`k`, combined
  by an all-reduce MAX of the masks (a logical OR);
- **top-k mean**: each shard's :math:`k` largest values per column (padded
  with :math:`-\infty`), all-gathered, then the top-:math:`k` of the union and its mean;
- **Sinkhorn potentials**: each rank updates the row potentials of its rows, and the
  column log-sum-exps are all-gathered and combined at every iteration;
- **GC's sorted bank**: the shards' columns, all-gathered and sorted;
- **bank size**: an all-reduce SUM of the shards' row counts.

The log-sum-exp of a union is the log-sum-exp of the parts' log-sum-exps,
:math:`\mathrm{LSE}_{b\in B}x_b=\mathrm{LSE}_r\,\mathrm{LSE}_{b\in B_r}x_b`, and
the activation set of a union of rows is the union of the shards' sets (each
bank row contributes its own top-:math:`k`), so the result equals one process's
up to the rounding of a different summation order (activation sets, top-:math:`k`
means and GC's sorted bank are bitwise equal). An empty shard contributes
:math:`-\infty` (log-sum-exp), nothing (activation set) and :math:`-\infty`
padding (top-:math:`k`). Every rank ends with the same fitted statistics.

The process group is the default one (``torchrun`` sets it up:
:func:`init_from_env`) or any group the caller passes; ``gloo`` works on CPU,
``nccl`` on GPUs (the statistics then live on each rank's device).

Book: :ref:`sec-normalisation`, section "Banks larger than one machine".
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from hubrepro._validation import check_int, fail

__all__ = [
    "fit_distributed",
    "fit_embeddings_distributed",
    "shard_range",
    "init_from_env",
    "is_distributed",
]


class Reducer:
    """Combines per-shard statistics over a process group (private helper)."""

    def __init__(self, group: Any = None) -> None:
        self.group = group
        self.world = dist.get_world_size(group)

    def _gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        parts = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(parts, t.contiguous(), group=self.group)
        return parts

    def sum_int(self, n: int) -> int:
        t = torch.tensor([n], dtype=torch.int64, device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.group)
        return int(t.item())

    def _device(self) -> torch.device:
        backend = dist.get_backend(self.group)
        if backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def logsumexp(self, v: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(torch.stack(self._gather(v)), dim=0)

    def any(self, mask: torch.Tensor) -> torch.Tensor:
        t = mask.to(torch.uint8)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.group)
        return t.bool()

    def topk(self, top: torch.Tensor, k: int) -> torch.Tensor:
        """The ``k`` largest values per column of the union of the shards' ``top``."""
        if top.shape[0] < k:  # a small or empty shard: pad with -inf
            pad = torch.full(
                (k - top.shape[0], top.shape[1]),
                -torch.inf,
                dtype=top.dtype,
                device=top.device,
            )
            top = torch.cat([top, pad], dim=0)
        return torch.cat(self._gather(top), dim=0).topk(k, dim=0).values

    def gather_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's rows in rank order (shards may differ in length)."""
        sizes = self._gather(
            torch.tensor([x.shape[0]], dtype=torch.int64, device=x.device)
        )
        sizes = [int(s.item()) for s in sizes]
        height = max(sizes)
        padded = torch.zeros((height, *x.shape[1:]), dtype=x.dtype, device=x.device)
        padded[: x.shape[0]] = x
        parts = self._gather(padded)
        return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)], dim=0)


def is_distributed() -> bool:
    """Whether a default process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_from_env(device: str | torch.device = "cpu") -> bool:
    """Start the default process group from ``torchrun``'s environment, if any.

    Uses ``nccl`` when ``device`` is a CUDA device, ``gloo`` otherwise. Returns
    whether this process is one of several (``WORLD_SIZE > 1``); does nothing when
    a group is already running or ``WORLD_SIZE`` is unset or 1.
    """
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return True


def shard_range(
    n_rows: int, rank: int | None = None, world_size: int | None = None
) -> tuple[int, int]:
    """Rows ``[start, stop)`` of ``n_rows`` that belong to ``rank`` (contiguous, near-even).

    The first ``n_rows % world_size`` ranks get one row more; a rank may get none.

    Examples
    --------
    >>> from hubrepro.normalize.distributed import shard_range
    >>> [shard_range(10, r, 3) for r in range(3)]
    [(0, 4), (4, 7), (7, 10)]
    >>> shard_range(1, 1, 2)
    (1, 1)
    """
    func = "shard_range"
    if rank is None or world_size is None:
        if not (dist.is_available() and dist.is_initialized()):
            rank, world_size = 0, 1
        else:
            rank, world_size = dist.get_rank(), dist.get_world_size()
    check_int(n_rows, "n_rows", func, low=0)
    check_int(world_size, "world_size", func, low=1)
    check_int(rank, "rank", func, low=0)
    if rank >= world_size:
        fail(func, "rank", f"below world_size = {world_size}", rank)
    base, extra = divmod(n_rows, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _with_reducer(est, group, call):
    if not (dist.is_available() and dist.is_initialized()):
        fail(
            type(est).__name__ + ".fit (distributed)",
            "process group",
            "initialised (torch.distributed.init_process_group, or run under torchrun)",
            "none",
        )
    est._reducer = Reducer(group)
    try:
        return call()
    finally:
        del est._reducer


def fit_embeddings_distributed(est, gallery: Any, *, group: Any = None, **kwargs: Any):
    r"""``est.fit_embeddings(gallery, **kwargs)`` with the banks sharded over processes.

    Call it on every rank of the group with the **whole** test gallery and this
    rank's shard of each bank (``bank_query=``, ``bank_gallery=``: tensors or
    :class:`hubrepro.io.MappedRows`; a shard may be empty). Every rank returns
    the same fitted estimator, equal to a one-process fit on the concatenated
    shards (in rank order) up to summation-order rounding.

    Parameters
    ----------
    est : BaseNormalizer
        An unfitted (or to be refitted) estimator.
    gallery : Tensor of shape (n_gallery, d)
        The whole test gallery, identical on every rank.
    group : ProcessGroup, optional
        Default: the default process group.
    **kwargs
        As for :meth:`~hubrepro.normalize.BaseNormalizer.fit_embeddings`.

    Returns
    -------
    est

    Examples
    --------
    Inside a job started with ``torchrun --nproc-per-node 2 job.py``::

        from hubrepro.io import open_rows
        from hubrepro.normalize import DualIS
        from hubrepro.normalize.distributed import (
            fit_embeddings_distributed, init_from_env, shard_range)

        init_from_env()
        n = open_rows("bank_captions.npy").shape[0]
        start, stop = shard_range(n)
        est = fit_embeddings_distributed(
            DualIS(beta_query=20.0, beta_gallery=20.0), gallery,
            bank_query=open_rows("bank_captions.npy", start=start, stop=stop),
            bank_gallery=my_video_shard)
    """
    return _with_reducer(est, group, lambda: est.fit_embeddings(gallery, **kwargs))


def fit_distributed(est, *args: Any, group: Any = None, **kwargs: Any):
    """``est.fit(...)`` with each rank passing its rows of the bank similarity matrices.

    As :func:`fit_embeddings_distributed`, from precomputed bank x gallery
    matrices (each rank's rows; ``bank_cross_sims`` rows follow the query bank's).
    """
    return _with_reducer(est, group, lambda: est.fit(*args, **kwargs))
