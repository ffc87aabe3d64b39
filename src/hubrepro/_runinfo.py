"""The notebook runner's timings file: book machinery, not part of the public API.

The runner (``scripts/run_notebooks.py``) records the wall time of every executed
notebook in ``<executed>/timings-<set>.json`` (:func:`timings_path`,
:func:`load_timings`, :func:`write_timings`) and tells the kernel where that is through
two environment variables, ``HUBREPRO_EXECUTED_DIR`` and ``HUBREPRO_PARAMS_SET``.
Notebook 70's driver (:mod:`hubrepro.experiments.environment`) reads it back as a
table (:func:`read_timings`, :func:`timings_summary`). The file's name, format and
variables are defined here once, for both sides.

Book: :ref:`sec-reproducibility-timings`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hubrepro._validation import fail

__all__ = [
    "ENV_EXECUTED_DIR",
    "ENV_PARAMS_SET",
    "timings_path",
    "load_timings",
    "write_timings",
    "read_timings",
    "timings_summary",
]


ENV_EXECUTED_DIR = "HUBREPRO_EXECUTED_DIR"
ENV_PARAMS_SET = "HUBREPRO_PARAMS_SET"


def timings_path(
    executed_dir: str | Path | None = None, params_set: str | None = None
) -> Path:
    """Where the runner writes the timings of a parameter set.

    Parameters
    ----------
    executed_dir : path, optional
        The runner's ``book/executed`` folder. Default: ``$HUBREPRO_EXECUTED_DIR`` (set
        by the runner), else ``../book/executed`` relative to the working directory
        (the runner executes notebooks inside ``notebooks/``).
    params_set : str, optional
        Default: ``$HUBREPRO_PARAMS_SET``, else ``"default"``.

    Returns
    -------
    Path
        ``<executed_dir>/timings-<params_set>.json`` (it need not exist).
    """
    if executed_dir is None or executed_dir == "":
        executed_dir = (
            os.environ.get(ENV_EXECUTED_DIR) or Path("..") / "book" / "executed"
        )
    if params_set is None or params_set == "":
        params_set = os.environ.get(ENV_PARAMS_SET) or "default"
    if not isinstance(params_set, str):
        fail("timings_path", "params_set", "a str", repr(params_set), exc=TypeError)
    return Path(executed_dir) / f"timings-{params_set}.json"


def load_timings(path: str | Path) -> dict[str, float]:
    """The timings of a ``timings-<set>.json`` file, robust to a missing or damaged file.

    Returns
    -------
    dict of str to float
        Notebook -> seconds; empty when the file does not exist or cannot be parsed
        (a truncated file from an interrupted run). Entries whose value is not a
        non-negative number are skipped.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    out = {}
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value == value and value >= 0:  # drops NaN and negatives
            out[str(name)] = float(value)
    return out


def write_timings(path: str | Path, timings: dict[str, float]) -> None:
    """Write ``timings`` (notebook -> seconds) as the runner's JSON file."""
    from hubrepro.io import atomic_write

    text = json.dumps(timings, indent=1, sort_keys=True) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")), overwrite=True)


def read_timings(path: str | Path, *, exclude: tuple[str, ...] = ()) -> Any:
    """Read the runner's timings as a table (:func:`load_timings`).

    Parameters
    ----------
    path : path
        A ``timings-<set>.json`` file: ``{"NN_slug": seconds, ...}``.
    exclude : tuple of str
        Notebook names to leave out (e.g. the reading notebook itself).

    Returns
    -------
    pandas.DataFrame
        Columns ``notebook`` and ``seconds``, sorted by notebook, index from 0. Empty
        (same columns) when the file does not exist, cannot be parsed, or holds no
        valid entry.
    """
    import pandas as pd

    rows = sorted(
        (name, sec) for name, sec in load_timings(path).items() if name not in exclude
    )
    return pd.DataFrame(rows, columns=["notebook", "seconds"])


def timings_summary(timings: Any) -> dict[str, Any]:
    """Summarise a :func:`read_timings` table.

    Returns
    -------
    dict
        ``n_notebooks``, ``total_seconds``, ``slowest`` (name or ``None``),
        ``slowest_seconds`` (0.0 when empty).
    """
    if not hasattr(timings, "columns") or not {"notebook", "seconds"} <= set(
        timings.columns
    ):
        fail(
            "timings_summary",
            "timings",
            "a DataFrame with columns notebook and seconds (from read_timings)",
            type(timings).__name__,
            exc=TypeError,
        )
    if len(timings) == 0:
        return {
            "n_notebooks": 0,
            "total_seconds": 0.0,
            "slowest": None,
            "slowest_seconds": 0.0,
        }
    i = timings["seconds"].idxmax()
    return {
        "n_notebooks": int(len(timings)),
        "total_seconds": float(timings["seconds"].sum()),
        "slowest": str(timings.loc[i, "notebook"]),
        "slowest_seconds": float(timings.loc[i, "seconds"]),
    }
