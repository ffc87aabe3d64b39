r"""Notebook 41: the published numbers of DBNorm and its neighbours beside ours.

Runs the main table (:func:`~hubrepro.experiments.dbnorm.main.run_many`) on the data
of the config and sets it beside the published numbers of
``data/published/dbnorm.csv`` with the tables of :mod:`hubrepro.published`.

Book: :ref:`sec-dbnorm-published`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from hubrepro import published

from .claims import DecidedClaims, decide_claims
from .config import DBNormConfig
from .main import MainResult, run_many
from .matrices import load_data

__all__ = [
    "ComparisonResult",
    "run",
    "headlines",
    "closest_on_embedded",
    "QBNORM_TABLES",
]

#: Groups of ``data/published/dbnorm.csv`` shown as QB-Norm's own numbers.
QBNORM_TABLES = ("qbnorm-readme", "qbnorm-paper", "qbnorm-bank", "qbnorm-robustness")


@dataclass(frozen=True, eq=False)
class ComparisonResult:
    """Output of :func:`run` (notebook 41).

    Attributes
    ----------
    published : DataFrame
        :func:`hubrepro.published.load_published` of ``"dbnorm"``.
    ours : MainResult
        Our main table on the data of the config.
    side : DataFrame
        :func:`hubrepro.published.published_vs_reproduced` (filled from ``ours`` for
        ``cfg.setting`` when the data are the user's).
    claims : DataFrame
        :func:`hubrepro.published.claims_table` (counts on the published numbers).
    mismatch : DataFrame
        :func:`hubrepro.published.baseline_mismatch`.
    qbnorm, nnn : DataFrame
        :func:`hubrepro.published.published_wide` of :data:`QBNORM_TABLES` and of
        NNN's re-run of DBNorm.
    decided : DecidedClaims
        :func:`~hubrepro.experiments.dbnorm.claims.decide_claims`: every claim with
        its 95 % interval and verdict on every dataset of ``ours``.
    closest : DataFrame
        :func:`closest_on_embedded`: beside each published method, the same method's
        gain over the baseline on our first dataset, with its interval.
    """

    published: pd.DataFrame
    ours: MainResult
    side: pd.DataFrame
    claims: pd.DataFrame
    mismatch: pd.DataFrame
    qbnorm: pd.DataFrame
    nnn: pd.DataFrame
    decided: DecidedClaims | None = None
    closest: pd.DataFrame | None = None


def run(cfg: DBNormConfig) -> ComparisonResult:
    """Notebook 41: our runs on the data of ``cfg`` and every published-number table."""
    pub = published.load_published("dbnorm")
    ours = run_many(load_data(cfg), cfg)
    user = cfg.dataset == "user" or bool(cfg.data_dir)
    side = published.published_vs_reproduced(
        pub, ours.table if user else None, setting=cfg.setting
    )
    return ComparisonResult(
        published=pub,
        ours=ours,
        side=side,
        claims=published.claims_table(pub, ours.table),
        mismatch=published.baseline_mismatch(pub),
        qbnorm=published.published_wide(pub, tables=QBNORM_TABLES),
        nnn=published.published_wide(pub, tables=("nnn-rerun",)),
        decided=decide_claims(ours, cfg, pub),
        closest=closest_on_embedded(pub, ours, cfg),
    )


def closest_on_embedded(
    pub: pd.DataFrame,
    ours: MainResult,
    cfg: DBNormConfig,
    *,
    direction: str = "query_to_gallery",
    metric: str = "R@1",
    datasets: Any = None,
) -> pd.DataFrame:
    """The closest thing the book can show beside each published setting.

    For each published setting of DBNorm's main table, one row per method: its
    published gain in ``metric`` over the setting's published baseline, and beside it
    the same method's gain over the baseline in the same direction on each of our
    datasets, with its 95 % interval (paired bootstrap over the queries). The
    datasets differ, so the two are comparable in sign and rough size, not digits.
    ``datasets`` (default: the first dataset of ``ours``, the real benchmark by
    default) names the datasets shown.
    """
    from .main import delta_intervals

    p = pub[
        (pub.table == "dbnorm-main")
        & (pub.metric == metric)
        & (pub.direction == direction)
    ]
    deltas = delta_intervals(ours, metric, n_boot=cfg.n_boot, seed=cfg.seed)
    deltas = deltas[deltas.direction == direction] if len(deltas) else deltas
    rows = []
    for setting, g in p.groupby("setting", sort=False):
        keys = {
            published.method_key(m): float(v)
            for m, v in zip(g.method, g.value, strict=True)
        }
        base = keys.get("none")
        for m, v in zip(g.method, g.value, strict=True):
            key = published.method_key(m)
            if key in (None, "none"):
                continue
            row: dict[str, Any] = {
                "setting": setting,
                "method": published.published_label(m),
                "published gain": float(v) - base if base is not None else float("nan"),
            }
            shown = (
                list(dict.fromkeys(ours.table.dataset))[:1]
                if datasets is None
                else datasets
            )
            for ds in shown:
                hit = (
                    deltas[(deltas.dataset == ds) & (deltas.method == key)]
                    if len(deltas)
                    else deltas
                )
                row[f"ours, {ds}"] = hit["interval"].iloc[0] if len(hit) else None
            rows.append(row)
    return (
        pd.DataFrame(rows).set_index(["setting", "method"]) if rows else pd.DataFrame()
    )


def headlines(result: ComparisonResult) -> dict[str, Any]:
    """Numbers the chapter pastes from notebook 41 (glue-key suffixes).

    ``val-n-published`` (rows of the file), ``val-n-dbnorm`` (DBNorm's own),
    ``txt-claim<i>-published`` for each claim of :data:`hubrepro.published.CLAIMS`
    (1-based; "k of n settings" on the published numbers), ``val-mismatch-max``
    (largest baseline difference, R@1 points); from the decided claims
    (:func:`~hubrepro.experiments.dbnorm.claims.decide_claims`) ``val-n-datasets``,
    ``txt-datasets`` (their names, "a, b and c"), and for each claim key ``db-<x>``
    ``txt-verdict-<x>`` and ``txt-interval-<x>`` (e.g. ``"+0.1 [-0.4, 0.6]"``).
    """
    pub = result.published
    out: dict[str, Any] = {
        "val-n-published": len(pub),
        "val-n-dbnorm": int((pub.table == "dbnorm-main").sum()),
    }
    for i, row in result.claims.iterrows():
        out[f"txt-claim{i + 1}-published"] = row["published"]
    out["val-mismatch-max"] = float(result.mismatch["difference"].abs().max())
    if result.decided is not None:
        ds = result.decided.datasets
        out["val-n-datasets"] = len(ds)
        out["txt-datasets"] = (
            ds[0] if len(ds) == 1 else f"{', '.join(ds[:-1])} and {ds[-1]}"
        )
        for c in result.decided.claims:
            out[f"txt-verdict-{c.key.removeprefix('db-')}"] = c.verdict
            if c.interval is not None:
                out[f"txt-interval-{c.key.removeprefix('db-')}"] = c.interval.format(1)
    return out


def side_wide(side: pd.DataFrame) -> pd.DataFrame:
    """:attr:`ComparisonResult.side` pivoted: one row per published setting, one column per method.

    Published R@1 per method, then the setting's sources (and their confidence). A setting
    whose numbers were reproduced from the reader's data gets a second row,
    "<setting>, reproduced", with ours; the others need data that cannot ship and get
    none, so the table stays one line per setting.
    """

    def num(v: Any) -> float:
        try:
            return float(v)
        except (TypeError, ValueError):
            return float("nan")

    rows = []
    for setting, g in side.groupby("setting", sort=False):
        row: dict[str, Any] = {"setting": setting}
        row.update({m: num(v) for m, v in zip(g.method, g.published, strict=True)})
        tags = ", ".join(dict.fromkeys(t for v in g.source for t in str(v).split(";")))
        row["source (confidence)"] = (
            f"{tags} ({', '.join(dict.fromkeys(g.confidence))})"
        )
        rows.append(row)
        if (g.reproduced != "needs your data").any():
            mine = {m: num(v) for m, v in zip(g.method, g.reproduced, strict=True)}
            rows.append({"setting": f"{setting}, reproduced", **mine})
    methods = list(dict.fromkeys(side.method))
    out = pd.DataFrame(rows).set_index("setting")
    return out[[*methods, "source (confidence)"]]
