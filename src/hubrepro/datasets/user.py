"""Users' own data: embeddings or similarity matrices in a folder (``data_dir``).

Layout of ``data_dir`` (each array as ``.npy``, ``.pt`` or ``.safetensors``; only the
first two files of a layout are required)::

    data_dir/
      dataset.yml               # optional: name, scale, query_modality, gallery_modality, layout
      # embeddings layout -> PairedData
      query.npy                 # (n_query, d)
      gallery.npy               # (n_gallery, d)
      query_to_gallery.npy      # (n_query,) int; absent = the square diagonal
      bank_query.npy            # (n_bank_query, d)
      bank_gallery.npy          # (n_bank_gallery, d)
      bank_query_to_gallery.npy # (n_bank_query,) int, indexes bank_gallery
      query_labels.npy ...      # optional concept labels (also gallery_, bank_query_, bank_gallery_)
      # or the similarity layout -> SimilarityData
      sims.npy                  # (n_query, n_gallery)
      bank_query_sims.npy       # (n_bank_query, n_gallery)
      bank_gallery_sims.npy     # (n_bank_gallery, n_gallery)
      query_to_gallery.npy, query_mask.npy

A third layout, ``layout: qbnorm`` in ``dataset.yml``, reads the pickles of the QB-Norm
command line (test sims, bank sims, query masks) and needs ``allow_pickle=True``:
unpickling can run arbitrary code, so it is never done by default.

Book: :ref:`sec-data`.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any

import torch

from hubrepro._validation import check_choice, check_nonzero_rows, fail
from hubrepro.io import load_array

from ._base import SCALES, PairedData, SimilarityData

__all__ = [
    "load_user",
    "read_dataset_yml",
    "EMBEDDING_FILES",
    "SIMILARITY_FILES",
    "LAYOUTS",
]

EMBEDDING_FILES = (
    "query",
    "gallery",
    "query_to_gallery",
    "bank_query",
    "bank_gallery",
    "bank_query_to_gallery",
    "query_labels",
    "gallery_labels",
    "bank_query_labels",
    "bank_gallery_labels",
)
SIMILARITY_FILES = (
    "sims",
    "bank_query_sims",
    "bank_gallery_sims",
    "query_to_gallery",
    "query_mask",
)
LAYOUTS = ("embeddings", "similarities", "qbnorm")
_SUFFIXES = (".npy", ".pt", ".pth", ".safetensors")
_YML_KEYS = {
    "name",
    "layout",
    "scale",
    "query_modality",
    "gallery_modality",
    "description",
    "source",
    "licence",
    "model",
    "files",
    "captions_per_item",
}


def read_dataset_yml(data_dir: str | Path) -> dict[str, Any]:
    """Read ``data_dir/dataset.yml`` (``{}`` when absent), checking its keys."""
    import yaml

    p = Path(data_dir) / "dataset.yml"
    if not p.is_file():
        return {}
    try:
        meta = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(
            f"load_user: {p} is not valid YAML: {' '.join(str(err).split())}"
        ) from err
    if not isinstance(meta, dict):
        fail(
            "load_user",
            "dataset.yml",
            "a mapping of keys to values",
            type(meta).__name__,
        )
    unknown = sorted(set(meta) - _YML_KEYS)
    if unknown:
        fail(
            "load_user",
            "dataset.yml",
            f"keys among {sorted(_YML_KEYS)}",
            f"unknown key(s) {unknown}",
        )
    return meta


def _find(data_dir: Path, stem: str) -> Path | None:
    found = [
        data_dir / f"{stem}{s}"
        for s in _SUFFIXES
        if (data_dir / f"{stem}{s}").is_file()
    ]
    if len(found) > 1:
        fail(
            "load_user",
            stem,
            "stored in exactly one file",
            ", ".join(p.name for p in found),
            "Remove the duplicates from the folder.",
        )
    return found[0] if found else None


def _load(data_dir: Path, stem: str, allow_pickle: bool) -> torch.Tensor | None:
    p = _find(data_dir, stem)
    return None if p is None else load_array(p, allow_pickle=allow_pickle)


def load_user(
    data_dir: str | Path, *, allow_pickle: bool = False, layout: str | None = None
) -> PairedData | SimilarityData:
    """Load a user's benchmark from ``data_dir`` (see the module docstring for the layout).

    Parameters
    ----------
    data_dir : str or Path
        The folder.
    allow_pickle : bool, default False
        Permit reading pickles (the QB-Norm layout). Only for files you trust.
    layout : {"embeddings", "similarities", "qbnorm"}, optional
        Overrides ``layout`` in ``dataset.yml``; by default inferred from the files
        present (``query`` -> embeddings, ``sims`` -> similarities).

    Returns
    -------
    PairedData or SimilarityData

    Raises
    ------
    FileNotFoundError
        If ``data_dir`` is missing or holds neither layout.
    ValueError, TypeError
        For malformed files (shapes, dtypes, indices out of range, pickles without
        ``allow_pickle``), with a message naming the file.

    Book
    ----
    :ref:`sec-data`.
    """
    func = "load_user"
    d = Path(data_dir).expanduser()
    if not d.is_dir():
        fail(
            func, "data_dir", "an existing folder", repr(str(d)), exc=FileNotFoundError
        )
    meta = read_dataset_yml(d)
    layout = layout if layout is not None else meta.get("layout")
    if layout is None:
        if _find(d, "query") is not None:
            layout = "embeddings"
        elif _find(d, "sims") is not None:
            layout = "similarities"
        else:
            fail(
                func,
                "data_dir",
                "a folder with query + gallery embeddings or a sims matrix",
                f"{str(d)!r} holding {sorted(p.name for p in d.iterdir())[:10]}",
                "See the layout in the data chapter (`hubrepro.datasets.user`).",
                exc=FileNotFoundError,
            )
    layout = check_choice(layout, "layout", func, LAYOUTS)
    scale = check_choice(meta.get("scale", "cosine"), "scale", func, SCALES)
    base_meta = {**meta, "source": "user", "data_dir": str(d), "layout": layout}
    if layout == "qbnorm":
        return _load_qbnorm(d, meta, allow_pickle, scale, base_meta)
    if layout == "similarities":
        arrays = {name: _load(d, name, allow_pickle) for name in SIMILARITY_FILES}
        if arrays["sims"] is None:
            fail(
                func,
                "data_dir",
                "a folder with sims.npy (or .pt/.safetensors)",
                repr(str(d)),
                exc=FileNotFoundError,
            )
        return SimilarityData(scale=scale, meta=base_meta, **arrays)
    arrays = {name: _load(d, name, allow_pickle) for name in EMBEDDING_FILES}
    for req in ("query", "gallery"):
        if arrays[req] is None:
            fail(
                func,
                "data_dir",
                f"a folder with {req}.npy (or .pt/.safetensors)",
                repr(str(d)),
                exc=FileNotFoundError,
            )
    if scale != "cosine":
        fail(
            func,
            "scale",
            "'cosine' for embeddings (similarities are computed here)",
            repr(scale),
        )
    data = PairedData(name=str(meta.get("name", "user")), meta=base_meta, **arrays)
    for name in ("query", "gallery", "bank_query", "bank_gallery"):
        if arrays[name] is not None:  # shapes and dtypes were checked by PairedData
            check_nonzero_rows(getattr(data, name), _find(d, name).name, func,
                               hint="Drop or re-embed those rows.")  # fmt: skip
    return data


def _inside(d: Path, name: Any, what: str) -> Path:
    """``d / name`` for a relative ``name`` that stays inside ``d`` (files named in dataset.yml)."""
    rel = PurePath(str(name))
    if not isinstance(name, str) or not name or rel.is_absolute() or ".." in rel.parts:
        fail(
            "load_user",
            f"dataset.yml {what}",
            "a file name relative to data_dir, inside it",
            repr(name),
            "dataset.yml may only name files in its own folder: move or link the file there.",
        )
    return d / rel


def _load_qbnorm(
    d: Path,
    meta: dict[str, Any],
    allow_pickle: bool,
    scale: str,
    base_meta: dict[str, Any],
) -> SimilarityData:
    """QB-Norm's pickles: test sims, bank sims (bank queries x test gallery), query masks."""
    func = "load_user"
    files = meta.get("files") or {}
    if not isinstance(files, dict) or "sims" not in files:
        fail(
            func,
            "dataset.yml",
            "a `files` mapping with at least `sims` (and `bank_query_sims`, `query_mask`) for layout qbnorm",
            repr(files),
        )
    unknown = sorted(set(files) - set(SIMILARITY_FILES))
    if unknown:
        fail(
            func,
            "dataset.yml",
            f"`files` keys among {list(SIMILARITY_FILES)}",
            f"unknown {unknown}",
        )
    arrays: dict[str, Any] = {}
    for key, name in files.items():
        p = _inside(d, name, f"files.{key}")
        if not p.is_file():
            fail(
                func,
                f"files.{key}",
                "an existing file in data_dir",
                repr(str(p)),
                exc=FileNotFoundError,
            )
        arrays[key] = load_array(p, allow_pickle=allow_pickle)
    sims = arrays["sims"]
    if "query_mask" in arrays:
        arrays["query_mask"] = arrays["query_mask"].reshape(-1)
    if (
        "query_to_gallery" not in arrays
        and sims.ndim == 2
        and sims.shape[0] != sims.shape[1]
    ):
        n_q, n_g = sims.shape
        if n_q % n_g:
            fail(
                func,
                "sims",
                "square, a multiple of the gallery size, or given with query_to_gallery",
                f"shape {(n_q, n_g)}",
            )
        # QB-Norm orders multi-caption queries gallery-major: caption r of item i is row i*c+r
        arrays["query_to_gallery"] = torch.arange(n_g).repeat_interleave(n_q // n_g)
    return SimilarityData(scale=scale, meta=base_meta, **arrays)
