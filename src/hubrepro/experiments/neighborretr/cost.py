"""What a NeighborRetr training step costs against InfoNCE: the committed benchmark.

``benchmarks/bench_encoders.py`` times, in one run, a full training step (the
``shapes-world`` dual encoders in the loop) and the loss alone for InfoNCE and
NeighborRetr (``fixed`` and ``official``), and the loss without each extra term; its
result file, ``benchmarks/results/bench_encoders.json``, is committed and read here.

Book: :ref:`sec-nr-cost`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from hubrepro import _validation as V

__all__ = ["step_cost", "step_cost_headlines", "BENCH_FILE"]

#: The committed result file, relative to the repository root.
BENCH_FILE = "benchmarks/results/bench_encoders.json"


def _record(path: str | Path | None) -> dict[str, Any]:
    p = Path(path) if path else Path(__file__).resolve().parents[4] / BENCH_FILE
    try:
        rec = json.loads(p.read_text())
        rec["results"][0]["objectives"]["InfoNCE"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
        V.fail(
            "step_cost",
            "path",
            "the result file of benchmarks/bench_encoders.py",
            f"{str(p)!r} ({type(err).__name__}: {err})",
            "Run `python benchmarks/bench_encoders.py` to write it.",
        )
    return rec


def step_cost(path: str | Path | None = None) -> pd.DataFrame:
    """One row per batch size and objective: step and loss time as ratios to InfoNCE's.

    Parameters
    ----------
    path : path, optional
        The benchmark's result file (default: the committed :data:`BENCH_FILE`).

    Returns
    -------
    DataFrame
        Columns ``batch``, ``objective``, ``step_ratio`` (NaN where only the loss
        was timed, i.e. the rows without one term) and ``loss_ratio``; the ratios are
        the benchmark's, medians of interleaved calls measured in one run.
    """
    return _frame(_record(path))


def _frame(rec: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {
            "batch": int(r["batch"]),
            "objective": name,
            "step_ratio": float(o.get("step_ratio", math.nan)),
            "loss_ratio": float(o["loss_ratio"]),
        }
        for r in rec["results"]
        for name, o in r["objectives"].items()
        if name != "InfoNCE"
    ]
    return pd.DataFrame(rows)


def step_cost_headlines(path: str | Path | None = None) -> dict[str, float]:
    """The numbers chapter 6 quotes: the targets and the range of each full-objective ratio.

    ``val-step-target``/``val-loss-target`` (the benchmark's targets),
    ``val-step-ratio-min|max`` and ``val-loss-ratio-min|max`` over batch sizes and the two
    full objectives (``fixed``, ``official``), ``val-loss-ratio-one-term-min|max`` over
    the rows without one term.
    """
    rec = _record(path)
    frame = _frame(rec)
    full = frame[frame["step_ratio"].notna()]
    one_term = frame[frame["step_ratio"].isna()]
    out = {
        "val-step-target": float(rec["targets"]["step_ratio"]),
        "val-loss-target": float(rec["targets"]["loss_ratio"]),
        "val-step-ratio-min": float(full["step_ratio"].min()),
        "val-step-ratio-max": float(full["step_ratio"].max()),
        "val-loss-ratio-min": float(full["loss_ratio"].min()),
        "val-loss-ratio-max": float(full["loss_ratio"].max()),
    }
    if len(one_term):
        out["val-loss-ratio-one-term-min"] = float(one_term["loss_ratio"].min())
        out["val-loss-ratio-one-term-max"] = float(one_term["loss_ratio"].max())
    return out
