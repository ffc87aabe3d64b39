"""Embed a folder of images and their captions with an open_clip model from LOCAL weights.

The result is written in the ``user`` layout (:mod:`hubrepro.datasets.user`), so any
notebook can read it with one parameter (``-p dataset user -p data_dir DIR``).
Nothing is downloaded: ``weights`` must be a local checkpoint file (a state dict, as
open_clip saves them). Images are the gallery, captions the queries; an image with
several captions gives a many-to-one ``query_to_gallery``.

Captions file: CSV with a header holding ``image`` and ``caption`` columns, or JSON
lines with ``image`` and ``caption`` keys; ``image`` is a file name relative to the
images folder.

Book: :ref:`sec-data`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hubrepro._compat import ensure_torchvision, resolve_device
from hubrepro._validation import check_choice, check_int, fail
from hubrepro.io import atomic_write, save_array

from .embed import num_threads

__all__ = ["read_captions", "load_clip", "embed_clip", "ROLES"]

ROLES = ("test", "bank")


def read_captions(path: str | Path) -> list[tuple[str, str]]:
    """Read ``(image, caption)`` rows from a CSV (header ``image,caption``) or JSONL file.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        For another suffix, missing columns/keys, or empty fields (with the line number).
    """
    func = "read_captions"
    p = Path(path)
    if not p.is_file():
        fail(
            func,
            "path",
            "an existing captions file",
            repr(str(p)),
            exc=FileNotFoundError,
        )
    try:
        return _read_captions(p, func)
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{func}: {str(p)!r} must be UTF-8 text ({err}); save the captions file as UTF-8."
        ) from None


def _read_captions(p: Path, func: str) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    suffix = p.suffix.lower()
    if suffix == ".csv":
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            if "image" not in cols or "caption" not in cols:
                fail(
                    func,
                    "path",
                    "a CSV whose header has `image` and `caption` columns",
                    f"columns {cols}",
                )
            for line, rec in enumerate(reader, start=2):
                rows.append(_row(rec, p, line))
    elif suffix in (".jsonl", ".json"):
        with p.open(encoding="utf-8") as fh:
            for line, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    rec = json.loads(text)
                except json.JSONDecodeError as err:
                    raise ValueError(
                        f"{func}: {p.name} line {line} is not valid JSON: {err}"
                    ) from err
                if not isinstance(rec, dict):
                    fail(
                        func,
                        f"line {line} of {p.name}",
                        "a JSON object",
                        type(rec).__name__,
                    )
                rows.append(_row(rec, p, line))
    else:
        fail(func, "path", "a .csv or .jsonl file", repr(p.name))
    if not rows:
        fail(func, "path", "a file with at least one caption", f"an empty {p.name}")
    return rows


def _row(rec: dict[str, Any], p: Path, line: int) -> tuple[str, str]:
    image, caption = rec.get("image"), rec.get("caption")
    if (
        not isinstance(image, str)
        or not image.strip()
        or not isinstance(caption, str)
        or not caption.strip()
    ):
        fail(
            "read_captions",
            f"line {line} of {p.name}",
            "a non-empty `image` and `caption`",
            f"image={image!r}, caption={caption!r}",
        )
    return image.strip(), caption.strip()


def load_clip(
    model: str, weights: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[Any, Any, Any]:
    """Build an open_clip model from a LOCAL weights file: ``(model, preprocess, tokenizer)``.

    Raises
    ------
    FileNotFoundError
        If ``weights`` is not a file (nothing is downloaded).
    ValueError
        If ``model`` is not an open_clip model name.
    """
    func = "load_clip"
    w = Path(weights).expanduser()
    if not w.is_file():
        fail(
            func,
            "weights",
            "a local checkpoint file (nothing is downloaded)",
            repr(str(w)),
            exc=FileNotFoundError,
        )
    ensure_torchvision()
    import open_clip

    if model not in open_clip.list_models():
        fail(
            func,
            "model",
            "an open_clip model name (open_clip.list_models())",
            repr(model),
        )
    dev = resolve_device(device)
    with w.open("rb"):
        pass  # an unreadable file is reported as such, before open_clip sees it
    try:
        net, _, preprocess = open_clip.create_model_and_transforms(
            model, pretrained=str(w), device=dev
        )
    except RuntimeError as err:
        raise ValueError(
            f"{func}: `weights` {str(w)!r} do not fit model {model!r}: "
            f"{' '.join(str(err)[:500].split())}"
        ) from err
    except Exception as err:  # noqa: BLE001 - a corrupt or foreign checkpoint
        raise ValueError(
            f"{func}: `weights` {str(w)!r} could not be read as an open_clip checkpoint "
            f"of {model!r} ({type(err).__name__}: {' '.join(str(err)[:300].split())}); "
            "pass the state dict saved by open_clip (or torch.save(model.state_dict()))."
        ) from err
    net.eval()
    return net, preprocess, open_clip.get_tokenizer(model)


def embed_clip(
    model: str,
    weights: str | Path,
    images: str | Path,
    captions: str | Path,
    out_dir: str | Path,
    *,
    role: str = "test",
    batch_size: int = 32,
    device: str | torch.device = "auto",
    threads: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Path]:
    """Embed images (gallery) and captions (queries) and write them in the ``user`` layout.

    Parameters
    ----------
    model : str
        open_clip model name, e.g. ``"ViT-B-32"``.
    weights : str or Path
        Local checkpoint of that model.
    images : str or Path
        Folder of the image files named in ``captions``.
    captions : str or Path
        CSV or JSONL of ``(image, caption)`` rows (see :func:`read_captions`).
    out_dir : str or Path
        Output folder (created).
    role : {"test", "bank"}, default "test"
        ``test`` writes ``query``/``gallery``/``query_to_gallery``; ``bank`` writes
        ``bank_query``/``bank_gallery``/``bank_query_to_gallery``. Run twice into the
        same folder to get a benchmark with a bank.
    batch_size : int, default 32
    device : str or torch.device, default "auto"
        CUDA when available.
    threads : int, optional
        ``torch`` threads while encoding (restored after).
    overwrite : bool, default False
        Replace existing output files.
    progress : bool, default True
        tqdm progress bars.

    Returns
    -------
    dict
        Role-prefixed names (``query``, ``gallery``, ``query_to_gallery``, ``items``,
        ``dataset.yml``) -> written paths. Embeddings are float32 and L2-normalised.

    Book
    ----
    :ref:`sec-data`.
    """
    func = "embed_clip"
    role = check_choice(role, "role", func, ROLES)
    batch_size = check_int(batch_size, "batch_size", func, low=1)
    img_dir = Path(images).expanduser()
    if not img_dir.is_dir():
        fail(
            func,
            "images",
            "an existing folder",
            repr(str(img_dir)),
            exc=FileNotFoundError,
        )
    rows = read_captions(captions)
    gallery_files = list(dict.fromkeys(img for img, _ in rows))
    missing = [f for f in gallery_files if not (img_dir / f).is_file()]
    if missing:
        fail(
            func,
            "images",
            "a folder holding every image named in the captions file",
            f"{len(missing)} missing, e.g. {missing[:3]}",
            exc=FileNotFoundError,
        )
    prefix = "" if role == "test" else "bank_"
    out = Path(out_dir).expanduser()
    targets = {
        f"{prefix}query": out / f"{prefix}query.npy",
        f"{prefix}gallery": out / f"{prefix}gallery.npy",
        f"{prefix}query_to_gallery": out / f"{prefix}query_to_gallery.npy",
        f"{prefix}items": out / f"{prefix}items.csv",
    }
    if out.exists() and not out.is_dir():
        fail(func, "out_dir", "a folder (or a path to create)", f"the file {str(out)!r}",
             exc=FileExistsError)  # fmt: skip
    meta = _read_yml(out)  # a broken dataset.yml is refused before the encoding
    existing = [p.name for p in targets.values() if os.path.lexists(p)]
    if existing and not overwrite:
        fail(
            func,
            "out_dir",
            "free of the files to write",
            f"existing {existing}",
            "Pass overwrite=True (--overwrite).",
            exc=FileExistsError,
        )
    net, preprocess, tokenizer = load_clip(model, weights, device=device)
    dev = next(net.parameters()).device
    pos = {f: i for i, f in enumerate(gallery_files)}
    q2g = np.array([pos[img] for img, _ in rows], dtype=np.int64)
    with num_threads(threads):
        img_emb = _encode_images(
            net,
            preprocess,
            [img_dir / f for f in gallery_files],
            batch_size,
            dev,
            progress,
        )
        txt_emb = _encode_texts(
            net, tokenizer, [c for _, c in rows], batch_size, dev, progress
        )
    # every file is written atomically; existing ones were refused above without overwrite
    save_array(txt_emb, targets[f"{prefix}query"], overwrite=overwrite)
    save_array(img_emb, targets[f"{prefix}gallery"], overwrite=overwrite)
    save_array(q2g, targets[f"{prefix}query_to_gallery"], overwrite=overwrite)
    text = io.StringIO(newline="")
    wr = csv.writer(text)
    wr.writerow(["query_index", "gallery_index", "image", "caption"])
    for i, (img, cap) in enumerate(rows):
        wr.writerow([i, pos[img], img, cap])
    items = text.getvalue().encode("utf-8")
    atomic_write(
        targets[f"{prefix}items"], lambda fh: fh.write(items), overwrite=overwrite
    )
    targets["dataset.yml"] = _write_yml(out, model, Path(weights), meta)
    return targets


def _read_yml(out: Path) -> dict[str, Any]:
    """The existing ``dataset.yml`` of ``out`` (merged, not replaced), checked before the work."""
    from .user import read_dataset_yml

    return read_dataset_yml(out) if out.is_dir() else {}


def _write_yml(out: Path, model: str, weights: Path, meta: dict[str, Any]) -> Path:
    import yaml

    from hubrepro.datasets.manifest import sha256_file

    p = out / "dataset.yml"
    meta = dict(meta)
    meta.update(
        {
            "name": meta.get("name", out.name),
            "layout": "embeddings",
            "scale": "cosine",
            "query_modality": "text",
            "gallery_modality": "image",
            "model": {
                "open_clip": model,
                "weights": weights.name,
                "sha256": sha256_file(weights),
            },
        }
    )
    text = yaml.safe_dump(meta, sort_keys=True).encode("utf-8")
    return atomic_write(p, lambda fh: fh.write(text), overwrite=True)


@torch.inference_mode()
def _encode_images(
    net: Any,
    preprocess: Any,
    files: Sequence[Path],
    bs: int,
    dev: torch.device,
    progress: bool,
) -> torch.Tensor:
    from PIL import Image
    from tqdm import tqdm

    chunks = []
    for start in tqdm(range(0, len(files), bs), desc="images", disable=not progress):
        batch = []
        for f in files[start : start + bs]:
            try:
                with Image.open(f) as im:
                    batch.append(preprocess(im.convert("RGB")))
            except OSError as err:
                raise ValueError(
                    f"embed_clip: could not read image {f.name!r}: {err}"
                ) from err
        emb = net.encode_image(torch.stack(batch).to(dev))
        chunks.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu())
    return torch.cat(chunks)


@torch.inference_mode()
def _encode_texts(
    net: Any,
    tokenizer: Any,
    texts: Sequence[str],
    bs: int,
    dev: torch.device,
    progress: bool,
) -> torch.Tensor:
    from tqdm import tqdm

    chunks = []
    for start in tqdm(range(0, len(texts), bs), desc="captions", disable=not progress):
        tokens = tokenizer(list(texts[start : start + bs])).to(dev)
        emb = net.encode_text(tokens)
        chunks.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu())
    return torch.cat(chunks)
