"""What the reproducibility chapter reports about a build: environment and run times.

The notebook runner (``scripts/run_notebooks.py``) records the wall time of every
executed notebook in ``book/executed/timings-<set>.json`` and tells the kernel where
that is through two environment variables, ``HUBREPRO_EXECUTED_DIR`` and
``HUBREPRO_PARAMS_SET``. Notebook ``70_environment`` reads it with
:func:`read_timings` and tabulates the environment of
:func:`hubrepro.reporting.provenance` with :func:`environment_table`, so the chapter
pastes the versions and times instead of typing them.

Book: :ref:`sec-reproducibility`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hubrepro._validation import fail

__all__ = [
    "RunInfoConfig",
    "timings_path",
    "read_timings",
    "timings_summary",
    "environment_table",
]


@dataclasses.dataclass(frozen=True)
class RunInfoConfig:
    """Parameters of notebook ``70_environment`` (built with :func:`hubrepro.config.from_params`).

    Attributes
    ----------
    executed_dir : str
        Folder of the runner's timings files; ``""`` means ``$HUBREPRO_EXECUTED_DIR``.
    params_set : str
        Parameter set whose timings are reported; ``""`` means ``$HUBREPRO_PARAMS_SET``.
    seed : int
        Unused (nothing is random); kept for the notebook template.
    device : str
        Unused (nothing is computed); kept for the notebook template.
    artifact_dir : str
        Where the tables and ``provenance.json`` are written.
    """

    executed_dir: str = ""
    params_set: str = ""
    seed: int = 0
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/70_environment"


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

    Book
    ----
    :ref:`sec-reproducibility-timings`.
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


def read_timings(path: str | Path, *, exclude: tuple[str, ...] = ()) -> Any:
    """Read the runner's timings as a table, robust to a missing or damaged file.

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
        valid entry; entries whose value is not a non-negative number are skipped.

    Book
    ----
    :ref:`sec-reproducibility-timings`.
    """
    import pandas as pd

    p = Path(path)
    rows: list[tuple[str, float]] = []
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        data = {}
    if isinstance(data, dict):
        for name, value in data.items():
            if (
                name in exclude
                or isinstance(value, bool)
                or not isinstance(value, int | float)
            ):
                continue
            if value == value and value >= 0:  # drops NaN and negatives
                rows.append((str(name), float(value)))
    return pd.DataFrame(sorted(rows), columns=["notebook", "seconds"])


def timings_summary(timings: Any) -> dict[str, Any]:
    """Summarise a :func:`read_timings` table.

    Returns
    -------
    dict
        ``n_notebooks``, ``total_seconds``, ``slowest`` (name or ``None``),
        ``slowest_seconds`` (0.0 when empty).

    Book
    ----
    :ref:`sec-reproducibility-timings`.
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


def environment_table(prov: Mapping[str, Any]) -> Any:
    """Tabulate the environment recorded by :func:`hubrepro.reporting.provenance`.

    Returns
    -------
    pandas.DataFrame
        Columns ``component`` and ``version``: Python, the platform, each recorded
        package ("not installed" when absent), torch threads and CUDA availability,
        and the git commit.

    Book
    ----
    :ref:`sec-reproducibility-environment`.
    """
    import pandas as pd

    if not isinstance(prov, Mapping):
        fail(
            "environment_table",
            "prov",
            "a mapping from reporting.provenance()",
            type(prov).__name__,
            exc=TypeError,
        )
    rows = [
        ("Python", str(prov.get("python"))),
        ("platform", str(prov.get("platform"))),
    ]
    for pkg, version in (prov.get("packages") or {}).items():
        rows.append((pkg, version if version else "not installed"))
    rows.append(("torch threads", str(prov.get("torch_threads"))))
    rows.append(("CUDA available", str(prov.get("cuda_available"))))
    commit = prov.get("commit") or "unknown (not a git checkout)"
    rows.append(
        (
            "git commit",
            commit[:12] + (" (uncommitted changes)" if prov.get("dirty") else ""),
        )
    )
    return pd.DataFrame(rows, columns=["component", "version"])
