"""The environment and the run time of every notebook (notebook 70, chapter :ref:`sec-reproducibility`).

:func:`run` tabulates what produced a build: the Python and package versions, torch's
thread count and device, the git commit (from :func:`hubrepro.reporting.provenance`,
:func:`environment_table`), and the wall time of each notebook under the parameter set
of the build, read from the notebook runner's timings file (``scripts/run_notebooks.py``
writes ``book/executed/timings-<set>.json`` and tells the kernel where it is);
:func:`headlines` collects the numbers the chapter quotes.

Book: :ref:`sec-reproducibility`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from hubrepro import _runinfo
from hubrepro._validation import fail

__all__ = [
    "EnvironmentConfig",
    "EnvironmentResult",
    "run",
    "headlines",
    "environment_table",
    "timings_table",
]

#: the notebook that reads the timings, left out of its own table
_SELF = "70_environment"


@dataclasses.dataclass(frozen=True)
class EnvironmentConfig:
    """Parameters of notebook ``70_environment`` (names equal the notebook's parameters).

    Attributes
    ----------
    executed_dir : str
        Folder of the runner's timings files; ``""`` means the folder the runner
        writes to (``$HUBREPRO_EXECUTED_DIR``).
    params_set : str
        Parameter set whose timings are reported; ``""`` means the set being built
        (``$HUBREPRO_PARAMS_SET``).
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


@dataclasses.dataclass
class EnvironmentResult:
    """What :func:`run` returns.

    Attributes
    ----------
    config : EnvironmentConfig
    provenance : dict
        :func:`hubrepro.reporting.provenance` of ``config``.
    environment : pandas.DataFrame
        :func:`environment_table` (columns ``component``, ``version``).
    cpus : int
        Logical CPUs of the machine.
    timings_path : pathlib.Path
        The timings file read (it need not exist).
    timings : pandas.DataFrame
        Columns ``notebook`` and ``seconds``, this notebook left out; empty when the
        file is missing or damaged.
    summary : dict
        ``n_notebooks``, ``total_seconds``, ``slowest``, ``slowest_seconds``.
    """

    config: EnvironmentConfig
    provenance: dict[str, Any]
    environment: pd.DataFrame
    cpus: int
    timings_path: Path
    timings: pd.DataFrame
    summary: dict[str, Any]


def run(cfg: EnvironmentConfig) -> EnvironmentResult:
    """Run notebook 70: the environment table and the notebooks' timings.

    Parameters
    ----------
    cfg : EnvironmentConfig

    Returns
    -------
    EnvironmentResult

    Book
    ----
    :ref:`sec-reproducibility-environment`, :ref:`sec-reproducibility-timings`.
    """
    from hubrepro.reporting import provenance

    if not isinstance(cfg, EnvironmentConfig):
        fail("run", "cfg", "an EnvironmentConfig", type(cfg).__name__, exc=TypeError)
    prov = provenance(cfg)
    path = _runinfo.timings_path(cfg.executed_dir or None, cfg.params_set or None)
    timings = _runinfo.read_timings(path, exclude=(_SELF,))
    return EnvironmentResult(
        config=cfg,
        provenance=prov,
        environment=environment_table(prov),
        cpus=os.cpu_count() or 0,
        timings_path=path,
        timings=timings,
        summary=_runinfo.timings_summary(timings),
    )


def headlines(result: EnvironmentResult) -> dict[str, Any]:
    """The numbers and names the chapter quotes (keys become ``nb70-<key>`` glue keys).

    Returns
    -------
    dict
        ``txt-python``, ``txt-torch``, ``txt-platform``, ``val-threads`` (torch's
        threads), ``val-cpus``, ``txt-cuda`` (``"available"`` or not);
        ``txt-params-set`` (the set whose timings are reported), ``val-n-timed``,
        ``val-total-seconds``, ``val-total-minutes``, ``txt-slowest`` (``"none"``
        without timings) and ``val-slowest-seconds``.
    """
    prov, summary = result.provenance, result.summary
    return {
        "txt-python": prov["python"],
        "txt-torch": prov["packages"]["torch"],
        "txt-platform": prov["platform"],
        "val-threads": prov["torch_threads"],
        "val-cpus": result.cpus,
        "txt-cuda": "available" if prov["cuda_available"] else "not available",
        "txt-params-set": result.timings_path.stem.removeprefix("timings-"),
        "val-n-timed": summary["n_notebooks"],
        "val-total-seconds": summary["total_seconds"],
        "val-total-minutes": summary["total_seconds"] / 60,
        "txt-slowest": summary["slowest"] or "none",
        "val-slowest-seconds": summary["slowest_seconds"],
    }


def timings_table(result: EnvironmentResult) -> pd.DataFrame:
    """The timings indexed by notebook, or one placeholder row when none was recorded."""
    shown = result.timings.set_index("notebook")
    return shown if len(shown) else shown.reindex(["(no timings recorded yet)"])


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
