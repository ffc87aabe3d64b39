"""Data-parallel training under ``torchrun``: features gathered with gradient."""

from __future__ import annotations

import torch
import torch.distributed as dist


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        rank, world = _dist()
        ctx.rank, ctx.n = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # every rank computes the same loss on the gathered batch: sum their gradients
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather ``x`` (batch, ...) from every rank, keeping the gradient to ``x``.

    Without an initialised process group this returns ``x``. Every rank must pass the
    same number of rows. The backward pass sums the gradients of all ranks, so with
    gradients averaged afterwards the update equals a one-process step on the global
    batch.
    """
    if _dist()[1] == 1:
        return x
    return _GatherWithGrad.apply(x)


def _average_gradients(model: torch.nn.Module) -> None:
    world = _dist()[1]
    if world == 1:
        return
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world
