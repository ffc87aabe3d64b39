"""Input checks shared by the loss terms (one error template: :mod:`hubrepro._validation`)."""

from __future__ import annotations

import torch

from hubrepro import _validation as V


def check_square_sims(sims: torch.Tensor, func: str) -> torch.Tensor:
    """A square ``(batch, batch)`` floating matrix with ``batch >= 2``."""
    sims = V.check_matrix(sims, "sims", func)
    if sims.shape[0] != sims.shape[1] or sims.shape[0] < 2:
        V.fail(
            func,
            "sims",
            "a square (batch, batch) matrix with batch >= 2 (row i matches column i)",
            f"shape {tuple(sims.shape)}",
        )
    return sims


def check_scale(logit_scale: torch.Tensor | float, func: str) -> torch.Tensor | float:
    """A positive float, or a one-element tensor (kept, with its gradient)."""
    if isinstance(logit_scale, torch.Tensor):
        if logit_scale.numel() != 1:
            V.fail(func, "logit_scale", "a scalar", f"shape {tuple(logit_scale.shape)}")
        return logit_scale.reshape(())
    return V.check_positive(logit_scale, "logit_scale", func)


def check_tokens(
    tokens: torch.Tensor, mask: torch.Tensor | None, name: str, func: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token features ``(n, tokens, dim)`` and a boolean mask with a valid token per row."""
    tokens = V.check_matrix(tokens, name, func, ndim=3)
    if mask is None:
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    else:
        mask = V.as_tensor(mask, f"{name}_mask", func)
        if mask.shape != tokens.shape[:2]:
            V.fail(
                func,
                f"{name}_mask",
                f"of shape {tuple(tokens.shape[:2])}",
                f"shape {tuple(mask.shape)}",
            )
        mask = mask.bool()
        if not bool(mask.any(dim=1).all()):
            V.fail(
                func,
                f"{name}_mask",
                "True for at least one token per sample",
                "a sample with no valid token",
            )
    return tokens, mask
