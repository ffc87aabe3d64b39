"""The run folder: what a run writes, written atomically, and read back with care.

A run folder holds :data:`RUN_FILES`. Every file is written through
:func:`hubrepro.io.atomic_write` (a temporary file in the same folder, flushed, synced
and renamed), so a kill at any point leaves the previous version or the new one. The
folder's states and what each command does with them:

- absent, empty, or holding only what an interrupted start leaves behind (temporary
  files, an empty ``checkpoints`` folder): a new run starts there;
- ``config.json`` without a checkpoint (killed before its first one): ``resume`` starts
  the run from its beginning with that config; a new start needs ``overwrite``;
- ``config.json`` and ``checkpoints/last.pt``: ``resume`` continues; ``overwrite``
  removes every artefact of the old run before the new one starts.

A checkpoint that cannot be read (truncated, not a checkpoint, missing entries) is
reported in one line naming the file, never as a traceback.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from hubrepro.io import atomic_write

#: What a run writes into its folder (``test_metrics.json`` by ``hubrepro train``).
RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "metrics.csv",
    "best.pt",
    "test_metrics.json",
    "checkpoints",
)
CONFIG = "config.json"
LAST = Path("checkpoints") / "last.pt"
BEST = "best.pt"


def _leftovers(run_dir: Path) -> list[Path]:
    # temporary files of interrupted atomic writes (".<name>.<random>.tmp")
    found = []
    for folder in (run_dir, run_dir / "checkpoints"):
        if folder.is_dir():
            found += [p for p in folder.iterdir() if _is_temp(p)]
    return found


def _is_temp(p: Path) -> bool:
    return p.is_file() and p.name.startswith(".") and p.name.endswith(".tmp")


def _blank(run_dir: Path) -> bool:
    """Nothing but what an interrupted start leaves: temp files, empty checkpoints/."""
    if not run_dir.exists():
        return True
    for p in run_dir.iterdir():
        if _is_temp(p):
            continue
        if p.name == "checkpoints" and p.is_dir():
            if all(_is_temp(q) for q in p.iterdir()):
                continue
        return False
    return True


def clear_run(run_dir: Path) -> None:
    """Remove every artefact of a run (and interrupted writes); other files stay."""
    for p in _leftovers(run_dir):
        p.unlink(missing_ok=True)
    for name in RUN_FILES:
        p = run_dir / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def prepare(run_dir: Path, *, resume: bool, overwrite: bool) -> str:
    """Check ``run_dir`` for a new start or a resume before anything is written.

    Returns ``"new"`` (start afresh: the caller writes the config), ``"restart"`` (a
    resume of a run that never reached its first checkpoint: start from the beginning,
    keep ``config.json``) or ``"resume"``.
    """
    if resume:
        if not (run_dir / CONFIG).is_file():
            raise FileNotFoundError(
                f"train: `run_dir` must hold a started run (config.json, "
                f"checkpoints/last.pt) to resume; got {run_dir} without config.json. "
                "Start a new run there instead."
            )
        return "resume" if (run_dir / LAST).is_file() else "restart"
    if not _blank(run_dir) and not overwrite:
        raise FileExistsError(
            f"train: `run_dir` must be new or empty; got {run_dir}, which holds files. "
            "Pass overwrite=True (CLI: --overwrite) or resume it (CLI: --resume)."
        )
    return "new"


def open_new(run_dir: Path, config: Mapping[str, Any]) -> None:
    """Clear ``run_dir`` of any old run, then write its ``config.json``."""
    if run_dir.exists():
        clear_run(run_dir)
    write_json(run_dir / CONFIG, config)
    (run_dir / "checkpoints").mkdir(exist_ok=True)


def open_restart(run_dir: Path) -> None:
    """Clear what a run that never checkpointed may have left, except its config."""
    for p in _leftovers(run_dir):
        p.unlink(missing_ok=True)
    for name in RUN_FILES:
        p = run_dir / name
        if name not in (CONFIG, "checkpoints") and (p.exists() or p.is_symlink()):
            p.unlink()
    (run_dir / "checkpoints").mkdir(exist_ok=True)


def _write(path: Path, write: Callable[[Any], Any]) -> None:
    atomic_write(path, write, overwrite=True)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, sorted JSON, atomically."""
    text = json.dumps(obj, indent=1, sort_keys=True) + "\n"
    _write(path, lambda fh: fh.write(text.encode()))


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8), atomically."""
    _write(path, lambda fh: fh.write(text.encode()))


def save(path: Path, obj: Any) -> None:
    """``torch.save`` ``obj`` to ``path``, atomically."""
    _write(path, lambda fh: torch.save(obj, fh))


def read_config(run_dir: Path) -> dict[str, Any]:
    """The parameters in ``run_dir/config.json`` (a one-line error if unreadable)."""
    p = run_dir / CONFIG
    try:
        params = json.loads(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"resume: `run_dir` must hold config.json; got {run_dir} without one."
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"resume: {p} must be the run's JSON config; it cannot be read "
            f"({_first_line(err)}). Start the run again with --overwrite."
        ) from None
    if not isinstance(params, dict):
        raise ValueError(
            f"resume: {p} must hold a JSON object of TrainConfig fields; got "
            f"{type(params).__name__}. Start the run again with --overwrite."
        )
    return params


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    msg = text[0] if text else ""
    msg = msg if len(msg) <= 160 else msg[:157] + "..."
    return f"{type(err).__name__}: {msg}" if msg else type(err).__name__


def load(path: Path, device: torch.device, keys: tuple[str, ...]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save`, or explain in one line why not."""
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated zip, pickle errors, foreign files, I/O
        raise ValueError(
            f"train: checkpoint {path} is damaged or not a hubrepro checkpoint "
            f"({_first_line(err)}); it cannot be resumed. Restore the file, or start "
            "the run again with --overwrite."
        ) from None
    missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise ValueError(
            f"train: checkpoint {path} is damaged or not a hubrepro checkpoint "
            f"(missing {missing}); it cannot be resumed. Restore the file, or start "
            "the run again with --overwrite."
        )
    return obj
