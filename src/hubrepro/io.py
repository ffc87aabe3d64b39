"""Reading and writing arrays: ``.npy``, ``.pt``, ``.safetensors`` (and pickles on request).

Pickles (``.pkl``, ``.pickle``, and ``.npy`` files holding Python objects) can run
arbitrary code when loaded, so they are refused unless ``allow_pickle=True`` is
passed explicitly (``--allow-pickle`` on the command line). ``.pt`` files are read
with ``torch.load(weights_only=True)``, which refuses arbitrary objects.

Writing never overwrites an existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["load_array", "save_array", "SUPPORTED_SUFFIXES"]

SUPPORTED_SUFFIXES = (".npy", ".pt", ".pth", ".safetensors", ".pkl", ".pickle")


def _pick(obj: Any, path: Path, key: str | None) -> Any:
    """From a dict-like container, take ``key`` or the only entry."""
    if isinstance(obj, dict):
        if key is not None:
            if key not in obj:
                raise ValueError(
                    f"load_array: `key` must name an entry of {path}; got {key!r}, "
                    f"available: {sorted(map(str, obj))}."
                )
            return obj[key]
        if len(obj) == 1:
            return next(iter(obj.values()))
        raise ValueError(
            f"load_array: {path} holds several arrays {sorted(map(str, obj))}; "
            "pass `key` (--key on the command line) to choose one."
        )
    if key is not None:
        raise ValueError(
            f"load_array: `key` was given ({key!r}) but {path} holds a single array."
        )
    return obj


def load_array(
    path: str | Path, *, allow_pickle: bool = False, key: str | None = None
) -> torch.Tensor:
    """Load one array from ``path`` as a tensor (no dtype conversion).

    Parameters
    ----------
    path : str or Path
        A ``.npy``, ``.pt``/``.pth``, ``.safetensors`` or (with ``allow_pickle``)
        ``.pkl``/``.pickle`` file.
    allow_pickle : bool, default False
        Permit pickles. Only for files you trust: unpickling can execute code.
    key : str, optional
        Which entry to take from a file holding a dict of arrays.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the suffix is unsupported, the file is a pickle and ``allow_pickle`` is
        false, or the content is not one numeric array.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"load_array: `path` must be an existing file; got {str(p)!r}."
        )
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(
            f"load_array: `path` must end in one of {', '.join(SUPPORTED_SUFFIXES)}; got {p.name!r}."
        )
    if suffix in (".pkl", ".pickle") and not allow_pickle:
        raise ValueError(
            f"load_array: refusing to unpickle {p.name!r}: a pickle can run arbitrary code. "
            "Pass allow_pickle=True (--allow-pickle) only if you trust the file."
        )
    try:
        if suffix == ".npy":
            with p.open("rb") as fh:
                has_header = fh.read(6) == b"\x93NUMPY"
            if not has_header and not allow_pickle:
                raise ValueError(
                    f"load_array: could not read {str(p)!r} as .npy: it does not start with the "
                    "NumPy header (a corrupt file, or a raw pickle; pass allow_pickle=True only "
                    "if you trust it)."
                )
            try:
                obj = np.load(p, allow_pickle=False)
            except ValueError as err:
                if "allow_pickle" not in str(err):
                    raise
                if not allow_pickle:
                    raise ValueError(
                        f"load_array: {p.name!r} holds Python objects (a pickle inside .npy). "
                        "Pass allow_pickle=True (--allow-pickle) only if you trust the file."
                    ) from None
                obj = np.load(p, allow_pickle=True)
                if obj.dtype == object and obj.shape == ():
                    obj = obj.item()
        elif suffix in (".pt", ".pth"):
            obj = torch.load(p, map_location="cpu", weights_only=True)
        elif suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(p))
        else:
            with p.open("rb") as fh:
                obj = pickle.load(fh)  # noqa: S301 - explicit opt-in above
    except (OSError, pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ValueError(
            f"load_array: could not read {str(p)!r} as {suffix}: {err}"
        ) from err
    obj = _pick(obj, p, key)
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise ValueError(
                f"load_array: {p.name!r} must hold a numeric array; got dtype object."
            )
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, torch.Tensor):
        return obj
    raise ValueError(
        f"load_array: {p.name!r} must hold one numeric array; got {type(obj).__name__}."
    )


def save_array(
    x: torch.Tensor | np.ndarray, path: str | Path, *, overwrite: bool = False
) -> Path:
    """Save ``x`` to ``.npy``, ``.pt`` or ``.safetensors`` (by suffix); refuse to overwrite."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(
            f"save_array: `path` {str(p)!r} already exists; choose another name or pass overwrite=True."
        )
    suffix = p.suffix.lower()
    t = torch.as_tensor(x).detach().cpu()
    p.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        if t.dtype == torch.bfloat16:
            t = t.float()
        np.save(p, t.numpy())
    elif suffix in (".pt", ".pth"):
        torch.save(t.contiguous(), p)
    elif suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({"data": t.contiguous()}, str(p))
    else:
        raise ValueError(
            f"save_array: `path` must end in .npy, .pt or .safetensors; got {p.name!r}."
        )
    return p
