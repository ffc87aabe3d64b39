r"""Notebook 40: the DBNorm main table, every method in both directions.

Runs the baseline and every bank-based normaliser of :mod:`hubrepro.normalize`
(IS, DIS = QB-Norm, CSLS, GC, DualIS, DualDIS in both modes, SN, DBSN, NNN) on a
:class:`~hubrepro.datasets.PairedData` (embeddings) or a
:class:`~hubrepro.datasets.SimilarityData` (a user's precomputed matrices), in both
retrieval directions, and returns tidy DataFrames with R@1/5/10, MdR, MnR,
R@1+5+10 and the hubness of the normalised scores (DBNorm, Wang et al. 2023,
Tables 1-5 as far as they are known: :ref:`sec-dbnorm-published`).

Book: :ref:`sec-dbnorm-main`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from hubrepro._validation import fail

from .config import RECALL_SUM, DBNormConfig, banks_needed, method_label
from .matrices import Matrices, describe_data, load_data, prepare
from .protocol import (
    evaluate_method,
    format_hyper,
    free_hyper,
    tune_method,
)

__all__ = [
    "MainResult",
    "run",
    "run_main",
    "run_many",
    "main_table",
    "delta_frame",
    "hubness_table",
    "headlines",
]


@dataclass(frozen=True, eq=False)
class MainResult:
    """Output of :func:`run_main`, :func:`run_many` and :func:`run`.

    Attributes
    ----------
    table : DataFrame
        One row per (dataset, direction, method) on the test split: metrics, hubness,
        chosen hyperparameters (``hyper``) and whether they were tuned (``tuned``).
    tuning : DataFrame
        Every validation evaluation (dataset, direction, method, grid point, metrics).
    data : DataFrame or None
        Sizes of each dataset (:func:`~hubrepro.experiments.dbnorm.matrices.describe_data`),
        filled by :func:`run`.
    """

    table: pd.DataFrame
    tuning: pd.DataFrame
    data: pd.DataFrame | None = None


def run_main(data: Any, cfg: DBNormConfig, *, name: str = "data",
             prepared: Mapping[tuple[str, str], Matrices] | None = None) -> MainResult:  # fmt: skip
    """Run every method of ``cfg.methods`` in every direction: tune on validation, test once.

    Parameters
    ----------
    data : PairedData or SimilarityData
    cfg : DBNormConfig
    name : str
        Dataset label written in the ``dataset`` column.
    prepared : mapping, optional
        The output of :func:`~hubrepro.experiments.dbnorm.matrices.prepare`
        (computed here if not given).

    Returns
    -------
    MainResult

    Book
    ----
    :ref:`sec-dbnorm`, main table (notebook 40).
    """
    mats = dict(prepared) if prepared is not None else prepare(data, cfg)
    rows, grids = [], []
    for direction in cfg.directions:
        test = mats.get(("test", direction))
        if test is None:
            continue
        val = mats.get(("val", direction))
        for key in cfg.methods:
            if any(getattr(test, f"bank_{b}_sims") is None for b in banks_needed(key)):
                continue
            best, grid = tune_method(key, val, cfg)
            if len(grid) and key != "dualdis-faithful":
                grids.append(grid.assign(dataset=name, direction=direction))
            met = evaluate_method(key, test, cfg, best)
            rows.append({
                "dataset": name, "direction": direction, "method": key, "label": method_label(key),
                **met, "hyper": format_hyper(best), "tuned": val is not None and bool(free_hyper(key, cfg)),
                **{f"param_{k}": v for k, v in best.items()},
            })  # fmt: skip
    tuning = pd.concat(grids, ignore_index=True) if grids else pd.DataFrame()
    return MainResult(pd.DataFrame(rows), tuning)


def run_many(datasets: Mapping[str, Any], cfg: DBNormConfig) -> MainResult:
    """:func:`run_main` over several datasets (label -> data), concatenated."""
    results = [run_main(d, cfg, name=label) for label, d in datasets.items()]
    table = pd.concat([r.table for r in results], ignore_index=True)
    tuning = pd.concat([r.tuning for r in results if len(r.tuning)], ignore_index=True) if any(
        len(r.tuning) for r in results) else pd.DataFrame()  # fmt: skip
    return MainResult(table, tuning)


def run(cfg: DBNormConfig) -> MainResult:
    """Notebook 40: load the data of ``cfg``, run :func:`run_many`, record the data sizes."""
    datasets = load_data(cfg)
    return dataclasses.replace(run_many(datasets, cfg), data=describe_data(datasets))


def main_table(result: MainResult, metrics: Sequence[str] = ("R@1", "R@5", "R@10", "MdR", "MnR", RECALL_SUM),
               hub: Sequence[str] = ("hub_skewness",)) -> pd.DataFrame:  # fmt: skip
    """A display table: rows (dataset, direction, method label), metric columns, rounded to 2."""
    t = result.table
    cols = [*metrics, *[h for h in hub if h in t.columns], "hyper"]
    out = t.set_index(["dataset", "direction", "label"])[cols]
    return out.rename(
        columns={"hub_skewness": "skew N_k", "hub_antihub_rate": "anti-hubs"}
    ).round(2)


def delta_frame(table: pd.DataFrame, metric: str = "R@1") -> pd.DataFrame:
    """``metric`` minus the baseline's, per (dataset, direction, method)."""
    base = table[table.method == "none"].set_index(["dataset", "direction"])[metric]
    out = table[table.method != "none"].copy()
    keys = pd.MultiIndex.from_arrays([out["dataset"], out["direction"]])
    out["delta"] = out[metric].to_numpy() - base.reindex(keys).to_numpy()
    return out


def hubness_table(table: pd.DataFrame) -> pd.DataFrame:
    """Skewness (standard and retrieved-only), anti-hub rate (%), largest N_k, per method."""
    cols = {
        "hub_skewness": "skew N_k (all items)",
        "hub_skewness_nonzero": "skew N_k (retrieved only)",
        "hub_antihub_rate": "anti-hubs (%)",
        "hub_max_occurrence": "max N_k",
        "hub_robin_hood": "Robin Hood",
    }
    have = [c for c in cols if c in table.columns]
    out = table.set_index(["dataset", "direction", "label"])[have].rename(columns=cols)
    if "anti-hubs (%)" in out.columns:
        out["anti-hubs (%)"] = 100 * out["anti-hubs (%)"]
    return out.round(2)


def headlines(
    result: MainResult | pd.DataFrame, *, direction: str = "query_to_gallery"
) -> dict[str, Any]:
    """Numbers the chapter pastes, from the first dataset (glue-key suffixes).

    ``result`` is a :class:`MainResult` or its ``table``. Keys: ``txt-dataset``;
    ``val-r1-<method>``, ``val-rsum-<method>`` (R@1+5+10) and ``val-skew-<method>``
    for every method key of the table (``-`` kept; ``none`` is the baseline), and
    ``val-<hyperparameter>-<method>`` for the chosen values; ``txt-best-method`` and
    ``val-r1-best``; ``val-r1-base-g2q`` and ``val-r1-dualis-g2q`` when the reverse
    direction was run; ``val-dualis-gain-min`` / ``-max`` over all datasets;
    ``val-n-datasets``; with the data sizes of :func:`run`, ``val-n-query``,
    ``val-n-gallery`` and ``val-n-bank-gallery`` of the first dataset.
    """
    table = result if isinstance(result, pd.DataFrame) else result.table
    if table.empty:
        fail("headlines", "table", "a non-empty main table", "an empty one")
    first = table["dataset"].iloc[0]
    t = table[(table.dataset == first) & (table.direction == direction)].set_index(
        "method"
    )
    out: dict[str, Any] = {"txt-dataset": str(first)}
    for key, row in t.iterrows():
        out[f"val-r1-{key}"] = float(row["R@1"])
        out[f"val-rsum-{key}"] = float(row[RECALL_SUM])
        if "hub_skewness" in row:
            out[f"val-skew-{key}"] = float(row["hub_skewness"])
        for col in (c for c in t.columns if str(c).startswith("param_")):
            if pd.notna(row[col]):
                out[f"val-{col[6:].replace('_', '-')}-{key}"] = float(row[col])
    best = t["R@1"].idxmax()
    out["txt-best-method"] = method_label(str(best))
    out["val-r1-best"] = float(t.loc[best, "R@1"])
    rev = table[(table.dataset == first) & (table.direction != direction)].set_index(
        "method"
    )
    for key in ("none", "dualis"):
        if key in rev.index:
            out[f"val-r1-{'base' if key == 'none' else key}-g2q"] = float(
                rev.loc[key, "R@1"]
            )
    d = delta_frame(table)
    gains = d[(d.method == "dualis") & (d.direction == direction)]["delta"]
    if len(gains):
        out["val-dualis-gain-min"] = float(gains.min())
        out["val-dualis-gain-max"] = float(gains.max())
    out["val-n-datasets"] = int(table["dataset"].nunique())
    sizes = None if isinstance(result, pd.DataFrame) else result.data
    if sizes is not None and len(sizes):
        row = sizes.iloc[0]
        out["val-n-query"] = int(row["n_query"])
        out["val-n-gallery"] = int(row["n_gallery"])
        out["val-n-bank-gallery"] = int(row["n_bank_gallery"] or 0)
    return out
