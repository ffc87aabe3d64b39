r"""Summaries over seeds and paired differences between conditions.

Every comparison of two trained conditions is paired by seed (both trained with the
same seeds, on the same data): :func:`paired_interval` is the Student-t interval of the
mean per-seed difference (:func:`hubrepro.inference.paired_t_interval`). Metrics are
named by the short keys of :data:`METRICS` (rates in percent).

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hubrepro import inference
from hubrepro._validation import check_choice, fail

from .config import StudyConfig

__all__ = [
    "Metric",
    "METRICS",
    "metric_values",
    "paired_interval",
    "summary_table",
    "delta_table",
]


@dataclass(frozen=True)
class Metric:
    """A quantity compared between conditions.

    Attributes
    ----------
    column : str
        Column of the runs frame (:func:`~hubrepro.training.evaluate`'s key).
    scale : float
        Factor applied before display and intervals (100: a rate shown in percent).
    label : str
        Human name, with its unit.
    decimals : int
        Decimals shown.
    kind : str
        ``"r1"``, ``"skew"`` or ``"rate"``: which margin of :class:`StudyConfig` applies.
    """

    column: str
    scale: float
    label: str
    decimals: int
    kind: str


#: The metrics of the tables and verdicts, by short key.
METRICS: dict[str, Metric] = {
    "r1_t2i": Metric("q2g_R@1", 1.0, "R@1 text→image (%)", 1, "r1"),
    "r1_i2t": Metric("g2q_R@1", 1.0, "R@1 image→text (%)", 1, "r1"),
    "skew": Metric(
        "gallery_skewness", 1.0, "skewness of N₁₀ over the images", 2, "skew"
    ),
    "hub_occ": Metric(
        "gallery_hub_occupancy", 100.0, "top-10 slots on hub images (%)", 1, "rate"
    ),
    "antihub": Metric(
        "query_antihub_rate", 100.0, "captions never retrieved (%)", 1, "rate"
    ),
    "bad_hub": Metric(
        "q2g_bad_hub_fraction", 100.0, "hub slots not relevant (%)", 1, "rate"
    ),
    "good": Metric(
        "q2g_good_neighbor_rate", 100.0, "top-10 slots relevant (%)", 1, "rate"
    ),
}


def margin(cfg: StudyConfig, metric: str) -> float:
    """The margin of no practical difference of ``metric`` (:class:`StudyConfig`)."""
    kind = METRICS[metric].kind
    return {"r1": cfg.margin_r1, "skew": cfg.margin_skew, "rate": cfg.margin_rate}[kind]


def metric_values(runs: pd.DataFrame, condition: str, metric: str) -> pd.Series:
    """Per-seed values of ``metric`` (scaled) under ``condition``, indexed by seed."""
    check_choice(metric, "metric", "metric_values", tuple(METRICS))
    m = METRICS[metric]
    sub = runs[runs["condition"] == condition]
    if sub.empty:
        fail(
            "metric_values",
            "condition",
            f"one of {sorted(set(runs['condition']))}",
            repr(condition),
        )
    return sub.set_index("seed")[m.column].astype(float) * m.scale


def paired_interval(
    runs: pd.DataFrame,
    baseline: str,
    treatment: str,
    metric: str,
    *,
    confidence: float = 0.95,
) -> inference.Interval:
    """Interval of ``treatment − baseline`` in ``metric``, paired by seed (Student t).

    Only the seeds both conditions ran with are paired.

    Examples
    --------
    >>> import pandas as pd
    >>> runs = pd.DataFrame({"condition": ["a"] * 3 + ["b"] * 3, "seed": [0, 1, 2] * 2,
    ...                      "q2g_R@1": [10.0, 11.0, 12.0, 12.0, 13.0, 14.5]})
    >>> iv = paired_interval(runs, "a", "b", "r1_t2i")
    >>> round(iv.estimate, 2), iv.n
    (2.17, 3)
    """
    a = metric_values(runs, baseline, metric)
    b = metric_values(runs, treatment, metric)
    seeds = sorted(set(a.index) & set(b.index))
    return inference.paired_t_interval(
        a.loc[seeds].to_numpy(), b.loc[seeds].to_numpy(), confidence=confidence
    )


def summary_table(
    runs: pd.DataFrame,
    conditions: Iterable[str],
    metrics: Sequence[str],
    labels: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Mean ± standard deviation over seeds of ``metrics`` per condition, as text.

    Returns one row per condition (index: its label) and one column per metric
    (its :class:`Metric` label), each cell ``"mean ± sd"`` at the metric's decimals;
    the unrounded means and deviations are the ``attrs["data"]`` frame.
    """
    rows, data = {}, []
    for cond in conditions:
        label = (labels or {}).get(cond, cond)
        cells = {}
        for key in metrics:
            m = METRICS[key]
            v = metric_values(runs, cond, key)
            mean, sd = (
                float(v.mean()),
                float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
            )
            cells[m.label] = f"{mean:.{m.decimals}f} ± {sd:.{m.decimals}f}"
            data.append(
                {"condition": cond, "metric": key, "mean": mean, "sd": sd, "n": len(v)}
            )
        rows[label] = cells
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "training condition"
    out.attrs["data"] = pd.DataFrame(data)
    return out


def delta_table(
    runs: pd.DataFrame,
    baseline: str,
    conditions: Iterable[str],
    metrics: Sequence[str],
    cfg: StudyConfig,
) -> pd.DataFrame:
    """Paired differences ``condition − baseline`` with 95 % intervals and verdicts.

    One row per (condition, metric): ``condition``, ``label``, ``metric``,
    ``metric_label``, ``estimate``, ``low``, ``high``, ``n``, ``change`` (the verdict of
    "the condition changes the metric": *supported* when the interval excludes zero in
    either direction, *not supported* when it lies inside the metric's margin,
    *inconclusive* otherwise).
    """
    rows = []
    for cond in conditions:
        if cond == baseline:
            continue
        for key in metrics:
            iv = paired_interval(runs, baseline, cond, key)
            up = inference.verdict(iv, claim="greater", equivalence=margin(cfg, key))
            down = inference.verdict(iv, claim="less", equivalence=margin(cfg, key))
            change = "supported" if "supported" in (up, down) else up
            rows.append(
                {
                    "condition": cond,
                    "label": cfg.label(cond),
                    "metric": key,
                    "metric_label": METRICS[key].label,
                    "estimate": iv.estimate,
                    "low": iv.low,
                    "high": iv.high,
                    "n": iv.n,
                    "change": change,
                }
            )
    return pd.DataFrame(rows)


def format_delta(frame: pd.DataFrame) -> pd.DataFrame:
    """A delta table pivoted for the page: conditions as rows, ``"+1.2 [0.3, 2.1]"`` cells."""
    cells = {}
    for _, r in frame.iterrows():
        d = METRICS[r["metric"]].decimals
        iv = inference.Interval(
            r["estimate"], r["low"], r["high"], 0.95, int(r["n"]), ""
        )
        cells.setdefault(r["label"], {})[r["metric_label"]] = iv.format(d)
    out = pd.DataFrame.from_dict(cells, orient="index")
    out.index.name = "training condition"
    return out


def _nan_mean(x: Iterable[float]) -> float:
    v = np.asarray(list(x), dtype=float)
    return float(np.nanmean(v)) if v.size else float("nan")
