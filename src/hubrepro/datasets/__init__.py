"""Datasets: the embedded stdlib code-search benchmark, a synthetic generator, users' data.

One entry point, :func:`load_dataset`, returns a :class:`PairedData` (embeddings of a
test split and a bank) or, for users' similarity matrices, a :class:`SimilarityData`:

- ``stdlib-code`` -- docstring summary -> function source, extracted from the Python
  standard library and shipped with the package (:mod:`hubrepro.datasets.stdlib_code`), embedded with
  all-MiniLM-L6-v2 through an on-disk cache (:mod:`hubrepro.datasets.embed`);
- ``synthetic`` -- a seeded CLIP-like generator with a modality gap, a cone and
  hubness (``hubrepro.datasets.synthetic``);
- ``shapes-world`` -- rendered images of coloured shapes with captions from a grammar
  and exactly known relevance, for training encoders from scratch
  (:mod:`hubrepro.datasets.shapes_world`; returns a :class:`ShapesWorld`);
- ``user`` -- embeddings or similarity matrices in a folder (:mod:`hubrepro.datasets.user`), e.g. those
  written by the open_clip pipeline (:mod:`hubrepro.datasets.clip`).

Giving ``data_dir`` always means the user's data, whatever ``name`` says, so a notebook
is pointed at your own data with one parameter (``-p data_dir DIR``).

Book: :ref:`sec-data`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubrepro._validation import check_choice, fail

from ._base import SCALES, PairedData, SimilarityData
from .shapes_world import ShapesWorld, ShapesWorldConfig, make_shapes_world
from .synthetic import SyntheticConfig, describe, make_synthetic

__all__ = [
    "PairedData",
    "SimilarityData",
    "SCALES",
    "ShapesWorld",
    "ShapesWorldConfig",
    "SyntheticConfig",
    "describe",
    "list_datasets",
    "load_dataset",
    "make_shapes_world",
    "make_synthetic",
]

_DATASETS = {
    "stdlib-code": (
        "Docstring summary -> function source from the Python standard library "
        "(shipped; about 4,900 pairs; 1,000-pair test split + bank; protocols "
        "'random' and 'by-module'), embedded with all-MiniLM-L6-v2."
    ),
    "synthetic": (
        "Seeded CLIP-like generator: Zipf concepts, two modality maps, noise, a "
        "modality gap, a cone; multi-caption; concept labels; optional bank shift."
    ),
    "shapes-world": (
        "Rendered images of 1-3 coloured shapes with grammar captions (synonyms, "
        "word orders, partial descriptions); exact caption-image relevance; long "
        "tail; train/bank/val/test splits. Raw images and token ids, for training "
        "encoders (returns a ShapesWorld)."
    ),
    "user": (
        "Your embeddings or similarity matrices in a folder (data_dir): query/gallery"
        "[/bank_*] or sims[/bank_*_sims], .npy/.pt/.safetensors."
    ),
}
_OPTIONS = {
    "stdlib-code": {
        "protocol",
        "n_query",
        "n_bank",
        "cache_dir",
        "device",
        "progress",
        "pairs_file",
    },
    "synthetic": set(SyntheticConfig.__dataclass_fields__)
    | {"device", "dtype", "generator", "config"},
    "shapes-world": set(ShapesWorldConfig.__dataclass_fields__) | {"config"},
    "user": {"allow_pickle", "layout", "n_gallery", "n_bank"},
}


def list_datasets() -> dict[str, str]:
    """Names of the available datasets with a one-line description each."""
    return dict(_DATASETS)


def load_dataset(
    name: str = "stdlib-code",
    *,
    seed: int = 0,
    data_dir: str | Path | None = None,
    **options: Any,
) -> PairedData | SimilarityData | ShapesWorld:
    """Load a dataset by name.

    Parameters
    ----------
    name : {"stdlib-code", "synthetic", "shapes-world", "user"}, default "stdlib-code"
        The source (:func:`list_datasets`).
    seed : int, default 0
        Seed of the split (stdlib-code), the draw (synthetic, shapes-world) or the
        subsample (user).
    data_dir : str or Path, optional
        A folder in the ``user`` layout. When given, the user's data is loaded
        whatever ``name`` is, and options meant for the other sources are ignored
        (they are listed in ``meta["ignored_options"]``).
    **options
        Source options. ``stdlib-code``: ``protocol`` (``"random"`` or
        ``"by-module"``), ``n_query``, ``n_bank``, ``cache_dir``, ``device``,
        ``progress``. ``synthetic``: the fields of :class:`SyntheticConfig`, ``device``,
        ``dtype``. ``shapes-world``: the fields of
        :class:`~hubrepro.datasets.ShapesWorldConfig`. ``user``:
        ``allow_pickle``, ``layout``, ``n_gallery``, ``n_bank`` (subsampling of
        embeddings).

    Returns
    -------
    PairedData or SimilarityData or ShapesWorld
        ``SimilarityData`` only for users' similarity matrices; ``ShapesWorld`` (raw
        images and captions of four splits) for ``shapes-world``.

    Raises
    ------
    ValueError, TypeError
        Unknown name or options, bad values.

    Book
    ----
    :ref:`sec-data`.
    """
    func = "load_dataset"
    ignored: list[str] = []
    if data_dir is not None and name != "user":
        ignored = sorted(k for k in options if k not in _OPTIONS["user"])
        name = "user"
        options = {k: v for k, v in options.items() if k in _OPTIONS["user"]}
    name = check_choice(name, "name", func, tuple(_DATASETS))
    unknown = sorted(set(options) - _OPTIONS[name])
    if unknown:
        fail(
            func,
            "options",
            f"options of {name!r} among {sorted(_OPTIONS[name])}",
            f"unknown {unknown}",
            exc=TypeError,
        )
    if name == "stdlib-code":
        from .stdlib_code import load_stdlib_code

        return load_stdlib_code(seed=seed, **options)
    if name == "synthetic":
        return make_synthetic(seed=seed, **options)
    if name == "shapes-world":
        return make_shapes_world(seed=seed, **options)
    if data_dir is None:
        fail(
            func,
            "data_dir",
            "a folder for the 'user' dataset",
            "None",
            "Pass data_dir=... (-p data_dir DIR).",
        )
    from .user import load_user

    n_gallery = options.pop("n_gallery", None)
    n_bank = options.pop("n_bank", None)
    data = load_user(data_dir, **options)
    if isinstance(data, PairedData):
        if n_gallery is not None or n_bank is not None:
            data = data.subsample(n_gallery, n_bank, seed=seed)
    elif n_gallery is not None or n_bank is not None:
        fail(
            func,
            "n_gallery",
            "None for similarity matrices (subsample embeddings only)",
            n_gallery,
        )
    if ignored:
        data.meta["ignored_options"] = ignored
    return data
