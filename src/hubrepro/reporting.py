"""Tables, figures and provenance for the book.

Notebooks call :func:`use_book_style` once, build figures with matplotlib (or the
``plot_*`` helpers of the science modules), save artifacts with :func:`save_artifact`
and end with :func:`provenance`, which records what produced the numbers: the git
commit and dirty flag, the parameters, package versions and data checksums.
"""

from __future__ import annotations

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
    params: Mapping[str, Any] | None = None, data_files: Iterable[str | Path] = ()
) -> dict[str, Any]:
    """Describe what produced a notebook's numbers.

    Returns a JSON-serialisable dict: git commit and dirty flag (``None`` outside a
    checkout), the parameters, Python/platform, package versions, torch threads and
    device availability, and the SHA-256 of each data file.
    """
    import torch

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


def format_table(df: Any, decimals: int = 2) -> Any:
    """Round the numeric columns of a DataFrame for display (the library never rounds)."""
    return df.round(decimals)
