r"""DBNorm's claims decided on the embedded data, each with a 95 % interval (notebook 41).

Each claim of :data:`hubrepro.published.CLAIMS` ("DualIS beats IS", "DIS matches IS",
...) compares two methods' R@1 in the direction the paper reports (text → gallery).
On every dataset of the main table the difference is bootstrapped over the ranked
queries (:func:`hubrepro.inference.paired_bootstrap`, both methods rank the same
queries); the claim's verdict is decided by the difference **pooled over the
datasets**, each dataset weighing the same (the stratified form of the same
bootstrap), so one dataset cannot decide it alone and none is left out. A "gain" claim
is *supported* when the interval lies above zero and *inconclusive* when it covers
zero; a "match" claim is *supported* when the interval lies inside
``(-cfg.equivalence, +cfg.equivalence)`` points. The hubness claim ("DualIS reduces
hubness") bootstraps the skewness of :math:`N_k` the same way. The published numbers
themselves cannot be matched without the paper's datasets: that claim *needs data we
cannot ship*.

Book: :ref:`sec-dbnorm-published`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hubrepro import published

from .config import method_label
from .main import MainResult, _hits, _skewness_of

__all__ = [
    "DecidedClaims",
    "decide_claims",
    "claims_long",
    "CLAIM_KEYS",
    "EXTRA_CLAIMS",
    "EVIDENCE",
]

#: The ledger key of each claim of :data:`hubrepro.published.CLAIMS`, by (A, B, kind).
CLAIM_KEYS = {
    ("none", "is", "gain"): "db-is-gain",
    ("is", "dis", "tie"): "db-dis-matches-is",
    ("is", "dualis", "gain"): "db-dualis-beats-is",
    ("none", "dualis", "gain"): "db-dualis-gain",
    ("dualis", "dualdis", "tie"): "db-dualdis-matches-dualis",
}
#: Claims the paper makes in words beyond :data:`hubrepro.published.CLAIMS` (same form).
EXTRA_CLAIMS = (("DualDIS beats DIS", "dis", "dualdis", "gain"),)
CLAIM_KEYS[("dis", "dualdis", "gain")] = "db-dualdis-beats-dis"
#: where the book shows the evidence of the claims decided here
EVIDENCE = "tbl-dbnorm-claims"


@dataclass(frozen=True, eq=False)
class DecidedClaims:
    """Output of :func:`decide_claims`.

    Attributes
    ----------
    claims : list of hubrepro.inference.Claim
        One per claim, for ``claims.csv`` and the ledger.
    table : DataFrame
        One row per claim (index ``claim``): ``published`` ("k of n settings" on the
        published numbers), one column per dataset holding that dataset's
        :class:`~hubrepro.inference.Interval` of B − A, ``pooled`` (the interval over
        all datasets, each weighing the same), ``verdict`` and ``kind`` (the claim's
        direction for :func:`hubrepro.inference.verdict`).
    datasets : list of str
        The datasets the claims were decided on, in the main table's order.
    """

    claims: list
    table: pd.DataFrame
    datasets: list[str]


def _pooled_skew(
    result: MainResult,
    datasets: list[str],
    direction: str,
    a: str,
    b: str,
    n_boot: int,
    seed: int,
) -> Any:
    """Skewness of :math:`N_k` under ``b`` minus under ``a``, mean over datasets, with its interval."""
    from hubrepro.inference import Interval

    rng = np.random.default_rng(seed)
    draws = np.zeros(n_boot)
    est = 0.0
    n = 0
    for ds in datasets:
        ia, ib = result.items[(ds, direction, a)], result.items[(ds, direction, b)]
        stat = _skewness_of(ia["n_cols"])
        m = ia["topk"].shape[0]
        n += m
        est += stat(ib["topk"]) - stat(ia["topk"])
        for r in range(n_boot):
            idx = rng.integers(0, m, size=m)
            draws[r] += stat(ib["topk"][idx]) - stat(ia["topk"][idx])
    k = len(datasets)
    lo, hi = np.quantile(draws / k, [0.025, 0.975])
    return Interval(
        est / k,
        float(lo),
        float(hi),
        0.95,
        n,
        f"paired bootstrap over {n} queries in {k} datasets, each weighing the same "
        f"({n_boot} resamples)",
    )


def decide_claims(
    result: MainResult,
    cfg: Any,
    published_numbers: pd.DataFrame | None = None,
    *,
    direction: str = "query_to_gallery",
    metric: str = "R@1",
) -> DecidedClaims:
    """Decide DBNorm's claims on every dataset of ``result`` (see the module docstring).

    Parameters
    ----------
    result : MainResult
        The main table with its per-query ranks (:func:`~hubrepro.experiments.dbnorm.main.run_many`).
    cfg : DBNormConfig
        ``n_boot``, ``seed`` and ``equivalence`` are read.
    published_numbers : DataFrame, optional
        :func:`hubrepro.published.load_published` of ``"dbnorm"``; default: the
        shipped file.

    Returns
    -------
    DecidedClaims
    """
    from hubrepro.inference import Claim, paired_bootstrap, verdict

    pub = (
        published.load_published("dbnorm")
        if published_numbers is None
        else published_numbers
    )
    t = result.table[result.table.direction == direction]
    datasets = list(dict.fromkeys(t.dataset))
    every = (*published.CLAIMS, *EXTRA_CLAIMS)
    counted = published.claims_table(
        pub, result.table, metric=metric, direction=direction, claims=every
    )
    counted = counted.set_index("claim")["published"]
    named = ", ".join(datasets)
    rows, claims = [], []
    for label, a, b, kind in every:
        have = [ds for ds in datasets if {a, b} <= set(t[t.dataset == ds].method)]
        row: dict[str, Any] = {
            "claim": label.replace(
                "(within the tolerance)", f"(within ±{cfg.equivalence:g})"
            ),
            "published": counted.get(label, "—"),
        }
        if not have:
            continue
        xs, ys, strata = [], [], []
        for ds in have:
            x = _hits(result, (ds, direction, a), metric)
            y = _hits(result, (ds, direction, b), metric)
            row[ds] = paired_bootstrap(x, y, n_boot=cfg.n_boot, seed=cfg.seed)
            xs.append(x)
            ys.append(y)
            strata += [ds] * len(x)
        pooled = paired_bootstrap(
            np.concatenate(xs),
            np.concatenate(ys),
            strata=strata,
            n_boot=cfg.n_boot,
            seed=cfg.seed,
        )
        if kind == "gain":
            v = verdict(pooled, claim="greater")
        else:
            v = verdict(pooled, claim="equal", equivalence=cfg.equivalence)
        row["pooled"], row["verdict"] = pooled, v
        row["kind"] = "greater" if kind == "gain" else "equal"
        rows.append(row)
        where = named if len(have) == len(datasets) else ", ".join(have)
        base = label.replace(" (within the tolerance)", "")
        what = (
            f"{base}: text→gallery {metric}"
            if kind == "gain"
            else f"{base} within ±{cfg.equivalence:g} points of text→gallery {metric}"
        )
        claims.append(Claim("DBNorm", f"{what} ({where})", v, pooled, EVIDENCE,
                            CLAIM_KEYS.get((a, b, kind), f"db-{b}-vs-{a}")))  # fmt: skip
    # hubness: DualIS lowers the skewness of N_k against the raw similarities
    have = [
        ds for ds in datasets if {"none", "dualis"} <= set(t[t.dataset == ds].method)
    ]
    if have:
        row = {"claim": "DualIS reduces hubness (skewness of N_k)", "published": "—"}
        for ds in have:
            from .main import skew_interval

            row[ds] = skew_interval(
                result, ds, direction, "dualis", n_boot=cfg.n_boot, seed=cfg.seed
            )
        iv = _pooled_skew(
            result, have, direction, "none", "dualis", cfg.n_boot, cfg.seed
        )
        row["pooled"], row["verdict"] = iv, verdict(iv, claim="less")
        row["kind"] = "less"
        rows.append(row)
        claims.append(Claim("DBNorm", f"{method_label('dualis')} reduces hubness (skewness of "
                            f"N_k against the raw similarities; {', '.join(have)})",
                            row["verdict"], iv, EVIDENCE, "db-dualis-less-hubness"))  # fmt: skip
    claims.append(
        Claim(
            "DBNorm",
            "the published R@1 of DBNorm's main table (MSCOCO, Flickr30k, MSR-VTT, "
            "AudioCaps ...) is reproduced",
            "needs data we cannot ship",
            None,
            "tbl-dbnorm-published",
            "db-published-numbers",
        )
    )
    table = pd.DataFrame(rows).set_index("claim")
    table = table[
        [
            "published",
            *[d for d in datasets if d in table.columns],
            "pooled",
            "verdict",
            "kind",
        ]
    ]
    return DecidedClaims(claims, table, datasets)


def claims_long(decided: DecidedClaims, *, equivalence: float = 1.0) -> pd.DataFrame:
    """:attr:`DecidedClaims.table` in long form, narrow enough for a page.

    Index (claim, on): for every claim (its label followed by its count on the
    published numbers) one row per dataset and a last row "all datasets (pooled)";
    columns ``interval`` (B − A with its 95 % interval) and ``verdict`` (that of each
    row's interval; the pooled row's decides the claim).
    A "match" claim is judged with ``equivalence`` (its label says so).
    """
    from hubrepro.inference import verdict

    rows = []
    for claim, r in decided.table.iterrows():
        kind = r["kind"]
        for ds in [*decided.datasets, "pooled"]:
            iv = r.get(ds)
            if iv is None or (isinstance(iv, float) and np.isnan(iv)):
                continue
            v = r["verdict"] if ds == "pooled" else verdict(
                iv, claim=kind, equivalence=equivalence if kind == "equal" else None)  # fmt: skip
            label = claim if r["published"] in (None, "—") else (
                f"{claim}; published: {r['published']} agree")  # fmt: skip
            rows.append({"claim": label, "on": "all datasets (pooled)" if ds == "pooled" else ds,
                         "interval": iv, "verdict": v})  # fmt: skip
    return pd.DataFrame(rows).set_index(["claim", "on"])
