"""Compatibility shims, imported before anything that may import torchvision.

The registry's torchvision 0.28.0 wheel is a CUDA build. Beside a CPU build of
torch 2.13.0, ``import torchvision`` fails with
``RuntimeError: operator torchvision::nms does not exist`` because the compiled
extension that registers the operator schemas cannot load; ``open_clip``,
``timm`` and ``transformers`` import torchvision and fail with it.

:func:`ensure_torchvision` catches that one error, drops the half-imported
modules, defines the two missing schemas (``nms``, ``qnms``) in a fragment
library kept alive at module level, and imports again. It never touches a
working torchvision, and it is a no-op where torchvision is not installed.
"""

from __future__ import annotations

import sys

import torch

_FRAGMENT: torch.library.Library | None = (
    None  # kept alive: dropping it unregisters the schemas
)


def ensure_torchvision() -> bool:
    """Make ``import torchvision`` work beside a CPU-only torch, if needed.

    Returns ``True`` when torchvision is importable afterwards, ``False`` when it
    is not installed.
    """
    global _FRAGMENT
    try:
        import torchvision  # noqa: F401
    except ModuleNotFoundError:
        return False
    except RuntimeError as err:
        if "torchvision::nms" not in str(err):
            raise
        for name in [
            m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")
        ]:
            del sys.modules[name]
        if _FRAGMENT is None:
            _FRAGMENT = torch.library.Library("torchvision", "FRAGMENT")
            _FRAGMENT.define(
                "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
            )
            _FRAGMENT.define(
                "qnms(Tensor qdets, Tensor qscores, float iou_threshold) -> Tensor"
            )
        import torchvision  # noqa: F401
    return True


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"`` into a device.

    Raises ``ValueError`` when CUDA is asked for and absent.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"resolve_device: `device` must name an available device; got {str(device)!r} "
            "but torch.cuda.is_available() is False. Use 'cpu' or 'auto'."
        )
    return dev
