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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
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
    "recall_table",
    "metrics_table",
    "hubness_pivot",
    "delta_intervals",
    "skew_interval",
    "leaders",
    "interval_headlines",
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
    items : dict
        ``(dataset, direction, method) -> {"ranks", "topk"}``: per ranked test item,
        the 0-based rank of its right answer and its top-``hubness_k`` indices
        (:func:`~hubrepro.experiments.dbnorm.protocol.evaluate_method`), from which
        the intervals of the book are bootstrapped (:func:`delta_intervals`).
    """

    table: pd.DataFrame
    tuning: pd.DataFrame
    data: pd.DataFrame | None = None
    items: dict = field(default_factory=dict)


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
    rows, grids, items = [], [], {}
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
            per_item: dict = {}
            met = evaluate_method(key, test, cfg, best, items=per_item)
            items[(name, direction, key)] = per_item
            rows.append({
                "dataset": name, "direction": direction, "method": key, "label": method_label(key),
                **met, "hyper": format_hyper(best), "tuned": val is not None and bool(free_hyper(key, cfg)),
                **{f"param_{k}": v for k, v in best.items()},
            })  # fmt: skip
    tuning = pd.concat(grids, ignore_index=True) if grids else pd.DataFrame()
    return MainResult(pd.DataFrame(rows), tuning, items=items)


def run_many(datasets: Mapping[str, Any], cfg: DBNormConfig) -> MainResult:
    """:func:`run_main` over several datasets (label -> data), concatenated."""
    results = [run_main(d, cfg, name=label) for label, d in datasets.items()]
    table = pd.concat([r.table for r in results], ignore_index=True)
    tuning = pd.concat([r.tuning for r in results if len(r.tuning)], ignore_index=True) if any(
        len(r.tuning) for r in results) else pd.DataFrame()  # fmt: skip
    items = {k: v for r in results for k, v in r.items.items()}
    return MainResult(table, tuning, items=items)


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


def _ordered(table: pd.DataFrame, column: str) -> list[Any]:
    return list(dict.fromkeys(table[column]))


def recall_table(
    table: pd.DataFrame, metric: str = "R@1", *, direction: str | None = None
) -> pd.DataFrame:
    """``metric`` of every method (rows, in the order run) per dataset and direction (columns).

    The book's main table: one row per method key (index ``method``), a two-level
    column index (dataset, direction); with ``direction`` only that direction's
    rows, one column per dataset.
    """
    if direction is not None:
        out = recall_table(table[table.direction == direction], metric)
        return out.droplevel("direction", axis=1)
    piv = table.pivot_table(
        index="method", columns=["dataset", "direction"], values=metric, sort=False
    )
    cols = [
        (d, r)
        for d in _ordered(table, "dataset")
        for r in _ordered(table, "direction")
        if (d, r) in piv.columns
    ]
    return piv.reindex(index=_ordered(table, "method"), columns=pd.MultiIndex.from_tuples(
        cols, names=["dataset", "direction"]))  # fmt: skip


def metrics_table(
    table: pd.DataFrame,
    direction: str,
    metrics: Sequence[str] = ("R@1", "R@5", "R@10", "MdR", "MnR", RECALL_SUM),
) -> pd.DataFrame:
    """Every metric of one direction: rows (dataset, method), metrics, skewness, chosen values."""
    t = table[table.direction == direction]
    cols = [*metrics, *(c for c in ("hub_skewness",) if c in t.columns), "hyper"]
    return t.set_index(["dataset", "method"])[cols]


def hubness_pivot(table: pd.DataFrame, stat: str = "hub_skewness") -> pd.DataFrame:
    """One hubness statistic: rows (direction, method), one column per dataset.

    Directions are the outer row level so that the table stays as narrow as the
    number of datasets.
    """
    piv = table.pivot_table(
        index=["direction", "method"], columns="dataset", values=stat, sort=False
    )
    rows = [
        (d, m)
        for d in _ordered(table, "direction")
        for m in _ordered(table, "method")
        if (d, m) in piv.index
    ]
    cols = [d for d in _ordered(table, "dataset") if d in piv.columns]
    return piv.reindex(index=pd.MultiIndex.from_tuples(rows, names=["direction", "method"]),
                       columns=pd.Index(cols, name="dataset"))  # fmt: skip


def _hits(result: MainResult, key: tuple[str, str, str], metric: str) -> np.ndarray:
    from hubrepro.inference import recall_hits

    if not metric.startswith("R@"):
        fail("delta_intervals", "metric", "a recall (R@1, R@5, R@10)", repr(metric))
    items = result.items.get(key)
    if items is None:
        fail("delta_intervals", "result", f"per-item ranks of {key}",
             "none (run the main table with run_main)")  # fmt: skip
    return recall_hits(items["ranks"], int(metric[2:]))


def delta_intervals(
    result: MainResult,
    metric: str = "R@1",
    *,
    reference: str = "none",
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Every method's ``metric`` minus the ``reference`` method's, with a 95 % interval.

    The interval is :func:`hubrepro.inference.paired_bootstrap` over the ranked test
    items of each dataset and direction (both methods rank the same items). Returns
    one row per (dataset, direction, method) other than ``reference``: ``delta``,
    ``low``, ``high`` and ``interval`` (an :class:`~hubrepro.inference.Interval`).
    """
    from hubrepro.inference import paired_bootstrap

    rows = []
    t = result.table
    for (ds, direction), g in t.groupby(["dataset", "direction"], sort=False):
        if reference not in set(g.method):
            continue
        ref = _hits(result, (ds, direction, reference), metric)
        for key in g.method:
            if key == reference:
                continue
            iv = paired_bootstrap(
                ref,
                _hits(result, (ds, direction, key), metric),
                n_boot=n_boot,
                seed=seed,
            )
            rows.append({"dataset": ds, "direction": direction, "method": key,
                         "delta": iv.estimate, "low": iv.low, "high": iv.high, "interval": iv})  # fmt: skip
    return pd.DataFrame(rows)


def leaders(
    result: MainResult, metric: str = "R@1", *, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """The best post-hoc method of each dataset and direction, and its lead over the runner-up.

    Post-hoc methods are all but the baseline ``none``. Columns: ``dataset``,
    ``direction``, ``best`` and ``runner_up`` (method keys), their ``metric`` values,
    and ``lead`` (an :class:`~hubrepro.inference.Interval`, best − runner-up, paired
    bootstrap over the ranked items).
    """
    from hubrepro.inference import paired_bootstrap

    rows = []
    for (ds, direction), g in result.table.groupby(
        ["dataset", "direction"], sort=False
    ):
        g = g[g.method != "none"].sort_values(metric, ascending=False, kind="stable")
        if len(g) < 2:
            continue
        best, second = g.iloc[0], g.iloc[1]
        lead = paired_bootstrap(
            _hits(result, (ds, direction, second.method), metric),
            _hits(result, (ds, direction, best.method), metric),
            n_boot=n_boot,
            seed=seed,
        )
        rows.append({"dataset": ds, "direction": direction, "best": best.method,
                     f"best {metric}": float(best[metric]), "runner_up": second.method,
                     f"runner-up {metric}": float(second[metric]), "lead": lead})  # fmt: skip
    return pd.DataFrame(rows)


def _skewness_of(n_cols: int) -> Any:
    from hubrepro.hubness import skewness

    def stat(topk: np.ndarray) -> float:
        return skewness(np.bincount(topk.ravel(), minlength=n_cols).astype(np.float64))

    return stat


def skew_interval(
    result: MainResult,
    dataset: str,
    direction: str,
    method: str,
    *,
    reference: str = "none",
    n_boot: int = 2000,
    seed: int = 0,
) -> Any:
    """Skewness of :math:`N_k` under ``method`` minus under ``reference``, with its interval.

    :func:`hubrepro.inference.paired_bootstrap_statistic` over the ranked test items:
    each resample of items recounts :math:`N_k` from their top-k lists under both
    methods. Returns an :class:`~hubrepro.inference.Interval`.
    """
    from hubrepro.inference import paired_bootstrap_statistic

    a = result.items[(dataset, direction, reference)]
    b = result.items[(dataset, direction, method)]
    return paired_bootstrap_statistic(
        a["topk"], b["topk"], _skewness_of(a["n_cols"]), n_boot=n_boot, seed=seed
    )


def interval_headlines(
    result: MainResult,
    cfg: Any,
    *,
    direction: str = "query_to_gallery",
    lead: pd.DataFrame | None = None,
) -> dict[str, Any]:
    r"""The differences the chapter states, each with its 95 % interval (glue-key suffixes).

    From the first dataset in ``direction``: ``txt-delta-<method>`` (R@1 over the
    baseline, e.g. ``"+2.6 [1.8, 3.4]"``), ``txt-skew-delta-<method>`` (skewness of
    :math:`N_k` over the baseline's), ``txt-dualis-vs-is`` and its verdict
    ``txt-dualis-vs-is-verdict`` (DualIS − IS, claim "greater"), ``txt-lead`` (the
    best post-hoc method's R@1 over the runner-up's) and ``txt-beta-gallery-dualis-where``
    (where DualIS's chosen :math:`\beta_g` sits in ``cfg.beta_gallery_grid``). Over
    every dataset and direction: ``txt-best-everywhere`` (one sentence) and
    ``val-n-settings``.
    """
    from hubrepro.inference import paired_bootstrap, verdict

    t = result.table
    first = t["dataset"].iloc[0]
    here = t[(t.dataset == first) & (t.direction == direction)].set_index("method")
    out: dict[str, Any] = {}
    if lead is None:
        lead = leaders(result, n_boot=cfg.n_boot, seed=cfg.seed)
    out["txt-best-everywhere"] = _best_everywhere(lead)
    out["val-n-settings"] = len(lead)
    mine = lead[(lead.dataset == first) & (lead.direction == direction)]
    if len(mine):
        out["txt-lead"] = mine["lead"].iloc[0].format(1)
    if "none" in here.index:
        base = _hits(result, (first, direction, "none"), "R@1")
        for key in here.index.drop("none"):
            iv = paired_bootstrap(base, _hits(result, (first, direction, key), "R@1"),
                                  n_boot=cfg.n_boot, seed=cfg.seed)  # fmt: skip
            out[f"txt-delta-{key}"] = iv.format(1)
            sk = skew_interval(
                result, first, direction, key, n_boot=cfg.n_boot, seed=cfg.seed
            )
            out[f"txt-skew-delta-{key}"] = sk.format(2)
    if {"is", "dualis"} <= set(here.index):
        iv = paired_bootstrap(
            _hits(result, (first, direction, "is"), "R@1"),
            _hits(result, (first, direction, "dualis"), "R@1"),
            n_boot=cfg.n_boot,
            seed=cfg.seed,
        )
        out["txt-dualis-vs-is"] = iv.format(1)
        out["txt-dualis-vs-is-verdict"] = verdict(iv)
    if "dualis" in here.index and "param_beta_gallery" in here.columns:
        bg, grid = (
            float(here.loc["dualis", "param_beta_gallery"]),
            cfg.beta_gallery_grid,
        )
        out["txt-beta-gallery-dualis-where"] = (
            "the smallest value of the grid" if bg <= min(grid)
            else "the largest value of the grid" if bg >= max(grid)
            else "inside the grid"
        )  # fmt: skip
    return out


def _best_everywhere(lead: pd.DataFrame) -> str:
    """One sentence: which post-hoc method is best, in how many settings."""
    if lead.empty:
        return "no post-hoc method was run"
    counts = lead["best"].value_counts()
    top = str(counts.index[0])
    n, total = int(counts.iloc[0]), len(lead)
    if n == total:
        return (
            f"{method_label(top)} is the best post-hoc method in all {total} settings"
        )
    others = lead[lead.best != top]
    where = "; ".join(f"{method_label(r.best)} on {r.dataset}, {_DIRECTION_WORDS.get(r.direction, r.direction)}"
                      for r in others.itertuples())  # fmt: skip
    return (
        f"{method_label(top)} is the best post-hoc method in {n} of {total} settings "
        f"(elsewhere: {where})"
    )


_DIRECTION_WORDS = {
    "query_to_gallery": "query→gallery",
    "gallery_to_query": "gallery→query",
}


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
