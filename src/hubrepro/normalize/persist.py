"""Fit once, apply many: save a fitted normaliser's statistics and load them back.

A statistics file is one ``.safetensors`` file: the fitted per-gallery tensors
(``lse_query_``, ``active_``, ``bias_``, ...) as named tensors, and in its header
a small JSON record::

    {"format": "hubrepro-normalizer-stats", "version": 1,
     "method": "dualis", "class": "DualIS",
     "params": {"beta_query": 20.0, "beta_gallery": 20.0, ...},
     "n_gallery": 9000, "bank_sizes": {"query": 180000, "gallery": 9000},
     "gallery_sha256": "…", "metric": "cosine", "scalars": {...},
     "tensors": ["lse_query_", "lse_gallery_"], "hubrepro": "0.1.0"}

``gallery_sha256`` hashes the test gallery the statistics were fitted on (its
shape, dtype and bytes): :func:`load_normalizer` with ``gallery=`` refuses
statistics fitted on a different gallery, since every statistic is per gallery
item. Statistics fitted from similarity matrices record no gallery unless one is
given to :func:`save_normalizer`. Reading is safe: ``safetensors`` holds plain
arrays, nothing is unpickled.

Read the record without loading the tensors with :func:`read_record` or
``hubrepro normalize info STATS``.

Book: :ref:`sec-normalisation`, section "Fit once, apply many".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from hubrepro._validation import fail

__all__ = ["save_normalizer", "load_normalizer", "read_record", "FORMAT"]

FORMAT = "hubrepro-normalizer-stats"
VERSION = 1
_KEY = "hubrepro"


def _method_name(est) -> str:
    from . import METHODS

    for name, cls in METHODS.items():
        if type(est) is cls:
            return name
    fail(
        "save_normalizer",
        "est",
        f"an estimator of hubrepro.normalize.METHODS ({sorted(METHODS)})",
        type(est).__name__,
        exc=TypeError,
    )
    raise AssertionError


def _fitted_tensors(est) -> dict[str, torch.Tensor]:
    return {
        k: v
        for k, v in vars(est).items()
        if k.endswith("_") and not k.startswith("_") and isinstance(v, torch.Tensor)
    }


def save_normalizer(
    est, path: str | Path, *, gallery: Any = None, overwrite: bool = False
) -> Path:
    """Save a fitted normaliser's statistics and hyperparameters to one ``.safetensors`` file.

    Parameters
    ----------
    est : BaseNormalizer
        A fitted estimator of :data:`hubrepro.normalize.METHODS`.
    path : str or Path
        Target file, ending in ``.safetensors``. Written atomically.
    gallery : Tensor, ndarray or MappedRows, optional
        The test gallery embeddings, to record their hash when ``est`` was fitted
        from similarity matrices (``fit_embeddings`` records it itself); if both
        exist they must agree.
    overwrite : bool, default False
        Replace an existing file.

    Returns
    -------
    Path

    Examples
    --------
    >>> import torch, tempfile, os
    >>> from hubrepro.normalize import DualIS, load_normalizer
    >>> g = torch.Generator().manual_seed(0)
    >>> gal, bq, bg = (torch.randn(n, 8, generator=g) for n in (5, 40, 10))
    >>> est = DualIS(beta_query=20.0, beta_gallery=20.0).fit_embeddings(
    ...     gal, bank_query=bq, bank_gallery=bg)
    >>> path = est.save(os.path.join(tempfile.mkdtemp(), "stats.safetensors"))
    >>> back = load_normalizer(path, gallery=gal)
    >>> torch.equal(back.lse_query_, est.lse_query_)
    True
    """
    from safetensors.torch import save

    from hubrepro.io import array_sha256, atomic_write

    func = "save_normalizer"
    method = _method_name(est)
    if not getattr(est, "fitted_", False):
        fail(func, "est", "fitted", f"an unfitted {type(est).__name__}",
             "Call fit(...) or fit_embeddings(...) first.")  # fmt: skip
    p = Path(path)
    if p.suffix.lower() != ".safetensors":
        fail(func, "path", "a file name ending in .safetensors", repr(p.name))
    digest = getattr(est, "gallery_sha256_", None)
    if gallery is not None:
        given = array_sha256(gallery)
        if digest is not None and given != digest:
            fail(func, "gallery", "the gallery the statistics were fitted on",
                 "a different gallery (its hash differs)")  # fmt: skip
        digest = given
    tensors = {
        k: v.detach().cpu().contiguous() for k, v in _fitted_tensors(est).items()
    }
    scalars = {
        k: v
        for k, v in vars(est).items()
        if k.endswith("_")
        and not k.startswith("_")
        and isinstance(v, int | float)
        and not isinstance(v, bool)
    }
    record = {
        "format": FORMAT,
        "version": VERSION,
        "method": method,
        "class": type(est).__name__,
        "params": est.get_params(),
        "n_gallery": int(est.n_gallery_),
        "bank_sizes": dict(getattr(est, "n_bank_", {})),
        "gallery_sha256": digest,
        "metric": getattr(est, "metric_", None),
        "scalars": scalars,
        "tensors": sorted(tensors),
        "hubrepro": _version(),
    }
    blob = save(tensors, metadata={_KEY: json.dumps(record, sort_keys=True)})
    return atomic_write(p, lambda fh: fh.write(blob), overwrite=overwrite)


def _version() -> str:
    from hubrepro import __version__

    return __version__


def read_record(path: str | Path) -> dict[str, Any]:
    """The JSON record of a statistics file (method, hyperparameters, sizes, gallery hash)."""
    from safetensors import safe_open

    func = "read_record"
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"{func}: `path` must be an existing file; got {str(p)!r}."
        )
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as err:  # noqa: BLE001 - any parse failure is a bad file
        fail(func, "path", "a statistics file written by save_normalizer",
             f"{p.name!r}, which safetensors cannot read ({err})")  # fmt: skip
    try:
        record = json.loads(meta[_KEY])
        ok = record.get("format") == FORMAT
    except (KeyError, ValueError, AttributeError):
        ok = False
    if not ok:
        fail(func, "path", "a statistics file written by save_normalizer",
             f"{p.name!r}, a safetensors file without hubrepro's record")  # fmt: skip
    if record.get("version") != VERSION:
        fail(func, "path", f"a statistics file of format version {VERSION}",
             f"version {record.get('version')!r}", "Refit with this hubrepro.")  # fmt: skip
    return record


def load_normalizer(
    path: str | Path, *, gallery: Any = None, device: str | torch.device = "cpu"
):
    """Load a fitted normaliser saved by :func:`save_normalizer`, ready to ``transform``.

    Parameters
    ----------
    path : str or Path
        A ``.safetensors`` statistics file.
    gallery : Tensor, ndarray or MappedRows, optional
        The test gallery the statistics will be applied to: refused unless it is
        the one they were fitted on (same shape, dtype and bytes). Statistics that
        record no gallery are refused too when ``gallery`` is given.
    device : str or torch.device, default "cpu"
        Where the statistics go.

    Returns
    -------
    BaseNormalizer
        Fitted; ``transform`` works at once.

    Raises
    ------
    ValueError
        Not a statistics file, or fitted on another gallery.
    """
    from safetensors.torch import load_file

    from hubrepro.io import array_sha256

    from . import METHODS

    func = "load_normalizer"
    record = read_record(path)
    method = record.get("method")
    if method not in METHODS:
        fail(func, "path", f"statistics of a method in {sorted(METHODS)}", repr(method))
    if gallery is not None:
        digest = record.get("gallery_sha256")
        if digest is None:
            fail(func, "gallery", "omitted for these statistics",
                 "a gallery, but the statistics record none (fitted from similarity matrices)",
                 "Apply them to similarity matrices (--sims), or save them with the gallery.")  # fmt: skip
        shape = tuple(getattr(gallery, "shape", ()))
        if shape and shape[0] != record["n_gallery"]:
            fail(func, "gallery", f"the gallery of {record['n_gallery']} items the statistics were fitted on",
                 f"a gallery of shape {shape}", "Refit the statistics on this gallery.")  # fmt: skip
        if array_sha256(gallery) != digest:
            fail(func, "gallery", "the gallery the statistics were fitted on",
                 "a different gallery (same size, different contents or dtype)",
                 "Refit the statistics on this gallery.")  # fmt: skip
    est = METHODS[method](**record["params"])
    tensors = load_file(str(path), device=str(torch.device(device)))
    missing = sorted(set(record["tensors"]) - set(tensors))
    if missing:
        fail(func, "path", "a complete statistics file", f"one missing {missing}")
    for k, v in tensors.items():
        setattr(est, k, v)
    for k, v in record.get("scalars", {}).items():
        setattr(est, k, v)
    est.n_gallery_ = int(record["n_gallery"])
    est.n_bank_ = dict(record.get("bank_sizes", {}))
    est.gallery_sha256_ = record.get("gallery_sha256")
    est.metric_ = record.get("metric")
    est.fitted_ = True
    return est
