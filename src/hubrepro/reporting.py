"""Tables, figures and provenance for the book.

Notebooks call :func:`use_book_style` once, build their experiment config from the
parameters cell with :func:`notebook_config`, build figures with matplotlib (or the
``plot_*`` helpers of the science modules), save and glue each result with
:func:`publish` (an artifact file plus a glue key the book pastes), and end with
:func:`record_provenance`, which records what produced the numbers: the git commit
and dirty flag, the configuration actually used, package versions and data checksums.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import platform
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "use_book_style",
    "notebook_config",
    "publish",
    "record_provenance",
    "provenance",
    "provenance_line",
    "write_provenance",
    "save_artifact",
    "sha256_file",
    "format_table",
]

_PACKAGES = (
    "hubrepro",
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "open_clip_torch",
    "papermill",
    "jupyter-book",
)


def use_book_style() -> None:
    """Set the matplotlib style shared by every figure of the book."""
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "savefig.bbox": "tight",
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 10,
            "legend.frameon": False,
            "image.cmap": "viridis",
        }
    )


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, read in blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def provenance(
    params: Any = None, data_files: Iterable[str | Path] = ()
) -> dict[str, Any]:
    """Describe what produced a notebook's numbers.

    ``params`` is a mapping of parameters or an experiment config (a dataclass, recorded
    through :func:`hubrepro.config.to_params`). Returns a JSON-serialisable dict: git
    commit and dirty flag (``None`` outside a checkout), the parameters, Python/platform,
    package versions, torch threads and device availability, and the SHA-256 of each
    data file.
    """
    import torch

    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        from hubrepro.config import to_params

        params = to_params(params)

    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": None if status is None else bool(status),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "parameters": dict(params or {}),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: _version(p) for p in _PACKAGES},
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "data": {str(p): sha256_file(p) for p in data_files},
    }


def provenance_line(prov: Mapping[str, Any]) -> str:
    """One line for the page: commit, dirty flag, versions."""
    commit = (prov.get("commit") or "unknown")[:10]
    dirty = " (uncommitted changes)" if prov.get("dirty") else ""
    pk = prov.get("packages", {})
    return (
        f"Produced by hubrepro {pk.get('hubrepro')} at commit {commit}{dirty}, "
        f"Python {prov.get('python')}, torch {pk.get('torch')}, numpy {pk.get('numpy')}."
    )


def write_provenance(artifact_dir: str | Path, prov: Mapping[str, Any]) -> Path:
    """Write ``provenance.json`` into ``artifact_dir`` (created if needed)."""
    d = Path(artifact_dir)
    d.mkdir(parents=True, exist_ok=True)
    p = d / "provenance.json"
    p.write_text(json.dumps(prov, indent=1, sort_keys=True, default=str) + "\n")
    return p


def save_artifact(obj: Any, artifact_dir: str | Path, key: str) -> Path:
    """Save a DataFrame (CSV) or matplotlib Figure (PNG) under ``artifact_dir/key``.

    Artifacts are build outputs: an existing file of the same key is replaced.
    """
    d = Path(artifact_dir)
    d.mkdir(parents=True, exist_ok=True)
    if hasattr(obj, "to_csv"):
        p = d / f"{key}.csv"
        obj.to_csv(p)
    elif hasattr(obj, "savefig"):
        p = d / f"{key}.png"
        obj.savefig(p)
    else:
        p = d / f"{key}.json"
        p.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    return p


def notebook_config(cls: type, namespace: Mapping[str, Any]) -> Any:
    """Build a notebook's experiment config from the variables of its parameters cell.

    Every field of the frozen dataclass ``cls`` that ``namespace`` defines (a notebook
    passes ``globals()`` right after its ``parameters`` cell, so papermill's injected
    values are the ones read) is taken from it; the fields the notebook does not expose
    keep their defaults. Values are checked as by :func:`hubrepro.config.from_params`,
    so a mistyped ``-p`` value fails before any work starts. The names come from the
    config class, so no hand-written list of parameter names can drift from it.

    Parameters
    ----------
    cls : type
        A dataclass whose field names are the notebook's parameter names.
    namespace : Mapping
        The notebook's global variables.

    Returns
    -------
    An instance of ``cls``.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Cfg:
    ...     seed: int = 0
    ...     k: int = 10
    >>> notebook_config(Cfg, {"seed": 3, "glue": print})
    Cfg(seed=3, k=10)
    """
    from hubrepro.config import from_params

    if not dataclasses.is_dataclass(cls) or not isinstance(cls, type):
        raise TypeError(
            f"notebook_config: `cls` must be a dataclass type; got {cls!r}. Pass the "
            "experiment's config class, e.g. StudyConfig."
        )
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    return from_params(cls, {n: namespace[n] for n in names if n in namespace})


def publish(
    key: str, obj: Any, artifact_dir: str | Path | None = None, *, display: bool = False
) -> Any:
    """Save ``obj`` as an artifact (when ``artifact_dir`` is given) and glue it as ``key``.

    The one call behind every number, table and figure the book pastes: a DataFrame is
    written as ``artifact_dir/key.csv``, a figure as ``key.png``, anything else as
    ``key.json`` (:func:`save_artifact`), then ``myst_nb.glue(key, obj,
    display=display)`` makes it available to ``{glue:*}`` pastes. Plain numbers and
    strings are glued only (pass ``artifact_dir=None``). Returns ``obj`` so a notebook
    cell can end with it and show it.
    """
    from myst_nb import glue

    if artifact_dir is not None:
        save_artifact(obj, artifact_dir, key)
    glue(key, obj, display=display)
    return obj


def record_provenance(
    cfg: Any, key: str, *, data_files: Iterable[str | Path] = ()
) -> dict[str, Any]:
    """Write ``provenance.json`` for the config actually used and glue its one-line summary.

    ``cfg`` is the notebook's final experiment config (after any
    ``dataclasses.replace``); it must have an ``artifact_dir`` field. The provenance
    (:func:`provenance`) is written into that folder and :func:`provenance_line` is
    glued as ``key``. Returns the provenance record.
    """
    prov = provenance(cfg, data_files)
    write_provenance(cfg.artifact_dir, prov)
    publish(key, provenance_line(prov))
    return prov


def format_table(df: Any, decimals: int = 2) -> Any:
    """Round the numeric columns of a DataFrame for display (the library never rounds)."""
    return df.round(decimals)
