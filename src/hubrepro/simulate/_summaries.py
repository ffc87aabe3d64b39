"""Confidence intervals over seeds, paired differences and the acceptance-criterion verdicts.

Part of :mod:`hubrepro.simulate`; import from there. Book: :ref:`sec-theory`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hubrepro._validation import (
    check_positive,
    fail,
)


def summarize(
    frame: pd.DataFrame, by: Sequence[str] | None = None, *, confidence: float = 0.95
) -> pd.DataFrame:
    r"""Mean, standard deviation and a Student-t interval over seeded replicates.

    Groups the tidy ``frame`` by every column except ``seed`` and ``value`` (or by
    ``by``) and returns ``mean``, ``sd`` (ddof 1), ``n`` and
    ``ci_low``/``ci_high`` = :math:`\bar v\pm t_{n-1,(1+\text{conf})/2}\,s/\sqrt n`
    (NaN when :math:`n=1`). NaN values (e.g. an undefined correlation) are dropped
    within each group.

    Returns
    -------
    pandas.DataFrame
        One row per group, the group keys as columns.
    """
    from scipy import stats as _st

    func = "summarize"
    if not isinstance(frame, pd.DataFrame):
        fail(func, "frame", "a pandas DataFrame", type(frame).__name__, exc=TypeError)
    for col in ("value",):
        if col not in frame.columns:
            fail(
                func, "frame", "a tidy frame with a `value` column", list(frame.columns)
            )
    confidence = check_positive(confidence, "confidence", func)
    if confidence >= 1:
        fail(func, "confidence", "in (0, 1)", confidence)
    keys = (
        list(by)
        if by is not None
        else [c for c in frame.columns if c not in ("seed", "value")]
    )
    missing = [c for c in keys if c not in frame.columns]
    if missing:
        fail(func, "by", f"columns of `frame` ({list(frame.columns)})", missing)
    grp = frame.dropna(subset=["value"]).groupby(keys, sort=False)["value"]
    out = grp.agg(mean="mean", sd="std", n="count").reset_index()
    tq = np.array(
        [_st.t.ppf(0.5 + confidence / 2, n - 1) if n > 1 else np.nan for n in out["n"]]
    )
    half = tq * out["sd"].to_numpy() / np.sqrt(out["n"].to_numpy())
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    return out


def _word(ok: bool) -> str:
    return "supported" if ok else "not supported"


def verdict_r1(
    frame: pd.DataFrame,
    *,
    metric: str = "euclidean",
    d_low: int | None = None,
    d_high: int | None = None,
    min_fraction: float = 0.8,
) -> tuple[str, pd.DataFrame]:
    r"""Acceptance criterion R1: does :math:`S_{N_k}` grow from low to high :math:`d`?

    The criterion of chapter :ref:`sec-theory`, "Claim R1": *supported* when, for
    every law (and every :math:`k`) under ``metric``, the skewness at ``d_high``
    exceeds that at ``d_low`` in at least ``min_fraction`` of the replicates (4 of 5
    in the ``classroom`` and ``paper`` parameter sets). Defaults: the smallest and largest :math:`d`
    in ``frame``.

    Returns
    -------
    verdict : str
        ``"supported"`` or ``"not supported"``.
    detail : pandas.DataFrame
        Per law and :math:`k`: ``fraction`` of replicates with an increase, ``ok``.
    """
    func = "verdict_r1"
    sub = frame[(frame["statistic"] == "skewness") & (frame["metric"] == metric)]
    if sub.empty:
        fail(func, "frame", f"skewness rows for metric {metric!r}", "none")
    d_low = int(sub["d"].min()) if d_low is None else d_low
    d_high = int(sub["d"].max()) if d_high is None else d_high
    wide = sub[sub["d"].isin([d_low, d_high])].pivot_table(
        index=["law", "k", "seed"], columns="d", values="value"
    )
    if d_low not in wide.columns or d_high not in wide.columns or d_low == d_high:
        fail(
            func,
            "frame",
            "two distinct dimensions to compare",
            f"d_low={d_low}, d_high={d_high}",
        )
    inc = (
        (wide[d_high] > wide[d_low])
        .groupby(level=["law", "k"])
        .mean()
        .rename("fraction")
        .reset_index()
    )
    inc["ok"] = inc["fraction"] >= min_fraction
    return _word(bool(inc["ok"].all())), inc


def verdict_r2(
    frame: pd.DataFrame,
    *,
    metric: str = "euclidean",
    d_min: int = 20,
    threshold: float = -0.5,
    statistic: str = "rho_centrality",
) -> tuple[str, pd.DataFrame]:
    r"""Acceptance criterion R2: :math:`\rho(N_k,\text{centrality})<-0.5` at :math:`d\ge20`.

    The criterion of chapter :ref:`sec-theory`, "Claims R2 and R4": *supported* when
    the mean over replicates of ``statistic`` is below ``threshold`` for every law,
    :math:`k` and :math:`d\ge` ``d_min`` under ``metric``.

    Returns
    -------
    verdict : str
    detail : pandas.DataFrame
        Per law, :math:`d`, :math:`k`: ``mean`` and ``ok``.
    """
    func = "verdict_r2"
    sub = frame[
        (frame["statistic"] == statistic)
        & (frame["metric"] == metric)
        & (frame["d"] >= d_min)
    ]
    if sub.empty:
        fail(
            func,
            "frame",
            f"{statistic} rows for metric {metric!r} at d >= {d_min}",
            "none",
        )
    det = sub.groupby(["law", "d", "k"])["value"].mean().rename("mean").reset_index()
    det["ok"] = det["mean"] < threshold
    return _word(bool(det["ok"].all())), det


def verdict_d1(
    frame: pd.DataFrame, *, threshold: float = 0.5
) -> tuple[str, pd.DataFrame]:
    r"""Acceptance criterion D1/T2: where are hubs similar to *both* banks?

    The criterion of chapter :ref:`sec-theory`, "Claim D1": a grid cell
    :math:`(c,\gamma)` is inside the region
    when the replicate means of :math:`\rho(N_k,m_{B_q})` and of
    :math:`\rho(N_k,m_{B_g})` both exceed ``threshold``. The verdict is
    ``"supported"`` when every cell is inside and ``"not supported"`` otherwise (then
    ``detail`` says where it holds).

    Returns
    -------
    verdict : str
    detail : pandas.DataFrame
        One row per cell: ``rho_q``, ``rho_g``, ``inside``.
    """
    keys = [c for c in ("latent", "gap_along", "cone", "gap") if c in frame.columns]
    sub = frame[frame["statistic"].isin(["rho_q", "rho_g"])]
    if sub.empty:
        fail(
            "verdict_d1",
            "frame",
            "rho_q and rho_g rows (from the two-modality grid of notebook 22)",
            "none",
        )
    det = sub.pivot_table(
        index=keys, columns="statistic", values="value", aggfunc="mean"
    ).reset_index()
    det.columns.name = None
    det["inside"] = (det["rho_q"] > threshold) & (det["rho_g"] > threshold)
    return _word(bool(det["inside"].all())), det


def verdict_t3(
    region: pd.DataFrame, benefit: pd.DataFrame, *, margin: float = 0.0
) -> tuple[str, pd.DataFrame]:
    r"""Acceptance criterion T3: DualIS beats IS over the query bank in R@1 only inside the D1 region.

    ``region`` is the ``detail`` of :func:`verdict_d1`; ``benefit`` a tidy frame of
    R@1 per method, with the variant keys of :mod:`hubrepro.normalize.variants`
    (``dualis`` and ``is``, IS over the query bank), as notebook 22's bank-benefit
    grid produces. A cell *agrees* when "DualIS mean R@1 > IS mean R@1 + ``margin``"
    equals "the cell is inside the region". *Supported* when every cell that appears
    in both agrees (chapter :ref:`sec-theory`, conjecture T3).

    Returns
    -------
    verdict : str
    detail : pandas.DataFrame
        Per cell: ``dualis``, ``is``, ``dualis_wins``, ``inside``, ``agrees``.
    """
    func = "verdict_t3"
    keys = [
        c
        for c in ("latent", "gap_along", "cone", "gap")
        if c in benefit.columns and c in region.columns
    ]
    sub = benefit[
        (benefit["statistic"] == "R@1") & benefit["method"].isin(["dualis", "is"])
    ]
    if sub.empty or set(sub["method"]) != {"dualis", "is"}:
        fail(
            func,
            "benefit",
            "R@1 rows for methods 'dualis' and 'is'",
            sorted(set(benefit.get("method", []))),
        )
    det = sub.pivot_table(
        index=keys, columns="method", values="value", aggfunc="mean"
    ).reset_index()
    det.columns.name = None
    det = det.merge(region[[*keys, "inside"]], on=keys, how="inner")
    if det.empty:
        fail(func, "region", "cells shared with `benefit`", "none in common")
    det["dualis_wins"] = det["dualis"] > det["is"] + margin
    det["agrees"] = det["dualis_wins"] == det["inside"]
    return _word(bool(det["agrees"].all())), det


def summary_value(summary: pd.DataFrame, column: str = "mean", **where: Any) -> float:
    """The ``column`` of the one row of ``summary`` matching ``where``; NaN when none.

    A notebook helper for glued headline numbers, e.g.
    ``summary_value(s, law="gaussian", metric="cosine", d=100, k=10, statistic="skewness")``.
    A parameter set without that cell gives NaN instead of failing, so every glue key
    of a notebook exists for every parameter set.

    Raises
    ------
    ValueError
        When several rows match (a filter is missing) or a filter names no column.
    """
    func = "summary_value"
    mask = pd.Series(True, index=summary.index)
    for key, value in where.items():
        if key not in summary.columns:
            fail(
                func, key, f"a column of `summary` ({list(summary.columns)})", "absent"
            )
        mask &= summary[key] == value
    rows = summary.loc[mask, column]
    if len(rows) > 1:
        fail(
            func,
            "where",
            "filters that select at most one row",
            f"{len(rows)} rows for {where}",
        )
    return float(rows.iloc[0]) if len(rows) else math.nan


def paired_difference(
    frame: pd.DataFrame, *, reference: str = "none", column: str = "method"
) -> pd.DataFrame:
    """Subtract, within each cell and seed, the value of the ``reference`` method.

    For a tidy frame of methods applied to the same draws (notebook 22's bank-benefit
    grid): every method sees the same draws, so the per-seed difference to ``reference`` removes the
    world-to-world variation that dominates the raw R@1 (a paired comparison). The
    reference rows are dropped.

    Returns
    -------
    pandas.DataFrame
        The same columns, ``value`` replaced by the paired difference.
    """
    func = "paired_difference"
    if not isinstance(frame, pd.DataFrame) or column not in frame.columns:
        fail(
            func,
            "frame",
            f"a tidy DataFrame with a `{column}` column",
            type(frame).__name__,
            exc=TypeError,
        )
    if reference not in set(frame[column]):
        fail(
            func,
            "reference",
            f"one of the values of `{column}` ({sorted(set(frame[column]))})",
            repr(reference),
        )
    keys = [c for c in frame.columns if c not in (column, "value")]
    ref = (
        frame[frame[column] == reference]
        .drop(columns=column)
        .rename(columns={"value": "_ref"})
    )
    out = frame[frame[column] != reference].merge(ref, on=keys, how="left")
    out["value"] = out["value"] - out.pop("_ref")
    return out
