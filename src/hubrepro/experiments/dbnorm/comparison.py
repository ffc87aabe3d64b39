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

from .config import DBNormConfig
from .main import MainResult, run_many
from .matrices import load_data

__all__ = ["ComparisonResult", "run", "headlines", "QBNORM_TABLES"]

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
        :func:`hubrepro.published.claims_table`.
    mismatch : DataFrame
        :func:`hubrepro.published.baseline_mismatch`.
    qbnorm, nnn : DataFrame
        :func:`hubrepro.published.published_wide` of :data:`QBNORM_TABLES` and of
        NNN's re-run of DBNorm.
    """

    published: pd.DataFrame
    ours: MainResult
    side: pd.DataFrame
    claims: pd.DataFrame
    mismatch: pd.DataFrame
    qbnorm: pd.DataFrame
    nnn: pd.DataFrame


def run(cfg: DBNormConfig) -> ComparisonResult:
    """Notebook 41: our runs on the data of ``cfg`` and every published-number table."""
    pub = published.load_published("dbnorm")
    ours = run_many(load_data(cfg), cfg)
    user = cfg.dataset == "user" or bool(cfg.data_dir)
    return ComparisonResult(
        published=pub,
        ours=ours,
        side=published.published_vs_reproduced(
            pub, ours.table if user else None, setting=cfg.setting
        ),
        claims=published.claims_table(pub, ours.table),
        mismatch=published.baseline_mismatch(pub),
        qbnorm=published.published_wide(pub, tables=QBNORM_TABLES),
        nnn=published.published_wide(pub, tables=("nnn-rerun",)),
    )


def headlines(result: ComparisonResult) -> dict[str, Any]:
    """Numbers the chapter pastes from notebook 41 (glue-key suffixes).

    ``val-n-published`` (rows of the file), ``val-n-dbnorm`` (DBNorm's own),
    ``txt-claim<i>-published`` and ``txt-claim<i>-ours`` for each claim of
    :data:`hubrepro.published.CLAIMS` (1-based), ``val-mismatch-max`` (largest
    baseline difference, R@1 points).
    """
    pub = result.published
    out: dict[str, Any] = {
        "val-n-published": len(pub),
        "val-n-dbnorm": int((pub.table == "dbnorm-main").sum()),
    }
    for i, row in result.claims.iterrows():
        out[f"txt-claim{i + 1}-published"] = row["published"]
        out[f"txt-claim{i + 1}-ours"] = row["ours"]
    out["val-mismatch-max"] = float(result.mismatch["difference"].abs().max())
    return out
