r"""Intervals and verdicts for the claims the book checks.

Every claim the book makes about a paper gets a verdict and the interval that decides
it:

- a **post-hoc** difference (method B against method A on the same model and the same
  test items, e.g. DualIS − IS) is paired over the ranked items: the per-item values
  (:func:`recall_hits` of each item's rank) are resampled *jointly*, and
  :func:`paired_bootstrap` returns the percentile interval of the mean difference;
- a difference in a statistic of the whole sample (the skewness of :math:`N_k`) is
  bootstrapped the same way by :func:`paired_bootstrap_statistic`;
- a **trained** difference (condition B against condition A, one run per seed, both
  trained with the same seeds) is paired over seeds: :func:`paired_t_interval` returns
  the Student-t interval of the mean per-seed difference;
- :func:`verdict` turns an interval into one of :data:`VERDICTS` for a directional
  claim ("B is greater than A"): *supported* when the whole interval lies on the
  claimed side of zero, *not supported* when it lies on the other side (or, given an
  equivalence margin, inside it: no difference that matters), *inconclusive*
  otherwise. A difference whose interval covers zero is never a win.

:class:`Claim` records one row of a claims ledger and :func:`ledger_frame` lays rows
out as a table. A notebook that decides claims writes them with :func:`save_claims`
into its artifact folder (``claims.csv``); the ledger is assembled from those files
with :func:`load_claims`, so no verdict is typed twice.

Book: :ref:`sec-intro` (the claims ledger).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hubrepro._validation import check_int, check_positive, fail

__all__ = [
    "VERDICTS",
    "Interval",
    "Claim",
    "recall_hits",
    "paired_bootstrap",
    "paired_bootstrap_statistic",
    "paired_t_interval",
    "verdict",
    "ledger_frame",
    "save_claims",
    "load_claims",
]

#: The four verdicts a claim can get.
VERDICTS = (
    "supported",
    "not supported",
    "inconclusive",
    "needs data we cannot ship",
)


@dataclass(frozen=True)
class Interval:
    """A point estimate of a difference with its confidence interval.

    Attributes
    ----------
    estimate : float
        The mean difference (B − A).
    low, high : float
        The interval's bounds.
    confidence : float
        Its nominal coverage, e.g. 0.95.
    n : int
        Number of paired units (items or seeds).
    method : str
        How it was computed, in words (shown beside the interval).
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    method: str

    def __str__(self) -> str:
        return self.format()

    def format(self, decimals: int = 2) -> str:
        """``"+1.23 [0.45, 2.01]"``: the estimate with its interval.

        Examples
        --------
        >>> Interval(1.234, 0.5, 2.0, 0.95, 10, "paired t over seeds").format(1)
        '+1.2 [0.5, 2.0]'

        A value that rounds to zero prints without a sign ("-0.0" reads like a defect):

        >>> Interval(-0.01, -0.04, 0.02, 0.95, 10, "paired t over seeds").format(1)
        '+0.0 [0.0, 0.0]'
        """
        d = int(decimals)

        def num(x: float, sign: str = "") -> str:
            return f"{round(float(x), d) or 0.0:{sign}.{d}f}"  # -0.0 is falsy

        return f"{num(self.estimate, '+')} [{num(self.low)}, {num(self.high)}]"


@dataclass(frozen=True)
class Claim:
    """One row of a claims ledger.

    Attributes
    ----------
    paper : str
        ``"DBNorm"``, ``"NeighborRetr"``, ...
    claim : str
        The claim in one line, as the paper makes it.
    verdict : str
        One of :data:`VERDICTS`.
    interval : Interval or None
        The interval that decides it (``None`` for *needs data we cannot ship*, or a
        claim decided by a non-interval criterion stated in ``evidence``).
    evidence : str
        Where the reader finds the evidence: a book label (``sec-...``, ``fig-...``)
        or words.
    key : str
        A short stable identifier (e.g. ``"nr-r1"``), unique within a ledger.
    """

    paper: str
    claim: str
    verdict: str
    interval: Interval | None = None
    evidence: str = ""
    key: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            fail("Claim", "verdict", f"one of {list(VERDICTS)}", repr(self.verdict))


def _paired(a: Any, b: Any, func: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a.detach().cpu() if hasattr(a, "detach") else a, dtype=np.float64)
    y = np.asarray(b.detach().cpu() if hasattr(b, "detach") else b, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        fail(
            func,
            "a, b",
            "two 1-D vectors of the same length (one value per paired unit)",
            f"shapes {x.shape} and {y.shape}",
        )
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if x.size < 2:
        fail(func, "a, b", "at least 2 paired units without NaN", x.size)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        fail(func, "a, b", "finite values", "an infinite value")
    return x, y


def _confidence(confidence: float, func: str) -> float:
    c = check_positive(confidence, "confidence", func)
    if c >= 1:
        fail(func, "confidence", "in (0, 1)", confidence)
    return float(c)


def recall_hits(ranks: Any, k: int) -> np.ndarray:
    r"""Per-item R@K contributions (0 or 100) of 0-based ranks; NaN stays NaN.

    The mean over items equals :func:`hubrepro.retrieval.metrics_from_ranks`' R@K,
    with its rule for averaged ranks (R@1 counts :math:`r = 0`, R@K for
    :math:`K\ge2` counts :math:`r < K`), so a paired bootstrap of these values is a
    bootstrap of the reported R@K.

    Examples
    --------
    >>> recall_hits([0.0, 0.5, 3.0, float("nan")], 1).tolist()
    [100.0, 0.0, 0.0, nan]
    >>> recall_hits([0.0, 0.5, 3.0], 5).tolist()
    [100.0, 100.0, 100.0]
    """
    func = "recall_hits"
    k = check_int(k, "k", func, low=1)
    r = np.asarray(
        ranks.detach().cpu() if hasattr(ranks, "detach") else ranks, dtype=np.float64
    )
    if r.ndim != 1:
        fail(func, "ranks", "a 1-D vector", f"shape {r.shape}")
    hit = (r == 0) if k == 1 else (r < k)
    out = np.where(hit, 100.0, 0.0)
    out[np.isnan(r)] = np.nan
    return out


def paired_bootstrap(
    a: Any,
    b: Any,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 256,
    strata: Any = None,
) -> Interval:
    r"""Percentile bootstrap interval of :math:`\overline{b - a}` over paired units.

    Units (queries, or gallery items for the reverse direction) are resampled with
    replacement, the same draw for ``a`` and ``b``, ``n_boot`` times; the interval is
    the :math:`(1\pm\text{confidence})/2` quantiles of the resampled mean
    differences. Pairs with a NaN on either side are dropped first.

    With ``strata`` (one label per unit, e.g. the dataset and direction of each
    ranked item) the difference is the **mean over strata of each stratum's mean
    difference**, every stratum weighing the same whatever its size, and units are
    resampled within their stratum: the interval of a claim pooled over several
    settings.

    Parameters
    ----------
    a, b : array-like of shape (n,)
        Per-unit values of method A and method B on the same units (e.g.
        :func:`recall_hits`).
    n_boot : int, default 2000
        Bootstrap resamples.
    confidence : float, default 0.95
        Nominal coverage.
    seed : int, default 0
        Seed of the resampling (same inputs and seed, same interval).
    chunk : int, default 256
        Resamples drawn at once (bounds the memory to ``chunk * n`` indices).
    strata : array-like of shape (n,), optional
        A label per unit; the difference is averaged within, then over, strata.

    Returns
    -------
    Interval

    Examples
    --------
    >>> iv = paired_bootstrap([0, 0, 100, 100], [0, 100, 100, 100], n_boot=500)
    >>> iv.estimate, iv.low, iv.high  # 4 items: resampled means are multiples of 25
    (25.0, 0.0, 75.0)
    >>> iv = paired_bootstrap([0, 0, 0, 0, 0, 0], [100, 100, 0, 0, 0, 0],
    ...                       strata=["a", "a", "b", "b", "b", "b"], n_boot=200)
    >>> iv.estimate  # mean of the two settings' means, 100 and 0
    50.0
    """
    func = "paired_bootstrap"
    if strata is not None:
        return _stratified_bootstrap(a, b, strata, n_boot, confidence, seed, chunk)
    x, y = _paired(a, b, func)
    n_boot = check_int(n_boot, "n_boot", func, low=10)
    chunk = check_int(chunk, "chunk", func, low=1)
    conf = _confidence(confidence, func)
    d = y - x
    rng = np.random.default_rng(check_int(seed, "seed", func, low=0))
    means = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        idx = rng.integers(0, d.size, size=(m, d.size))
        means[start : start + m] = d[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - conf) / 2, (1 + conf) / 2])
    return Interval(
        float(d.mean()),
        float(lo),
        float(hi),
        conf,
        int(d.size),
        f"paired bootstrap over {d.size} items ({n_boot} resamples)",
    )


def _stratified_bootstrap(
    a: Any, b: Any, strata: Any, n_boot: int, confidence: float, seed: int, chunk: int
) -> Interval:
    func = "paired_bootstrap"
    x = np.asarray(a.detach().cpu() if hasattr(a, "detach") else a, dtype=np.float64)
    y = np.asarray(b.detach().cpu() if hasattr(b, "detach") else b, dtype=np.float64)
    labels = np.asarray(strata)
    if labels.ndim != 1 or labels.shape != x.shape:
        fail(func, "strata", "one label per paired unit", f"shape {labels.shape}")
    n_boot = check_int(n_boot, "n_boot", func, low=10)
    chunk = check_int(chunk, "chunk", func, low=1)
    conf = _confidence(confidence, func)
    rng = np.random.default_rng(check_int(seed, "seed", func, low=0))
    diffs = []
    for lab in dict.fromkeys(labels.tolist()):  # first-seen order
        keep = labels == lab
        xs, ys = _paired(x[keep], y[keep], func)
        diffs.append(ys - xs)
    means = np.zeros(n_boot)
    for d in diffs:
        for start in range(0, n_boot, chunk):
            m = min(chunk, n_boot - start)
            idx = rng.integers(0, d.size, size=(m, d.size))
            means[start : start + m] += d[idx].mean(axis=1)
    means /= len(diffs)
    lo, hi = np.quantile(means, [(1 - conf) / 2, (1 + conf) / 2])
    n = int(sum(d.size for d in diffs))
    return Interval(
        float(np.mean([d.mean() for d in diffs])),
        float(lo),
        float(hi),
        conf,
        n,
        f"paired bootstrap over {n} items in {len(diffs)} settings, each weighing "
        f"the same ({n_boot} resamples)",
    )


def paired_bootstrap_statistic(
    a: Any,
    b: Any,
    statistic: Any,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    r"""Bootstrap interval of :math:`T(b) - T(a)` for a statistic of the whole sample.

    For a difference that is not a mean of per-unit values, such as the skewness of
    the k-occurrence of the items the queries retrieve: ``a`` and ``b`` hold one row
    per paired unit (e.g. each query's top-k gallery indices under method A and B),
    the units are resampled jointly, and ``statistic`` maps the resampled rows to a
    number. The estimate is ``statistic(b) - statistic(a)`` on the full sample; the
    interval is percentile.

    Parameters
    ----------
    a, b : array-like of shape (n, ...)
        Per-unit rows of method A and B (same first dimension).
    statistic : callable
        ``statistic(rows) -> float``.
    n_boot, confidence, seed
        As in :func:`paired_bootstrap`.

    Returns
    -------
    Interval

    Examples
    --------
    >>> import numpy as np
    >>> iv = paired_bootstrap_statistic(np.zeros(20), np.arange(20.0), np.max,
    ...                                 n_boot=200)
    >>> iv.estimate, iv.high
    (19.0, 19.0)
    """
    func = "paired_bootstrap_statistic"
    x = np.asarray(a.detach().cpu() if hasattr(a, "detach") else a)
    y = np.asarray(b.detach().cpu() if hasattr(b, "detach") else b)
    if x.ndim < 1 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
        fail(
            func,
            "a, b",
            "two arrays with the same number (at least 2) of rows, one per unit",
            f"shapes {x.shape} and {y.shape}",
        )
    if not callable(statistic):
        fail(func, "statistic", "a function of the resampled rows", repr(statistic))
    n_boot = check_int(n_boot, "n_boot", func, low=10)
    conf = _confidence(confidence, func)
    rng = np.random.default_rng(check_int(seed, "seed", func, low=0))
    n = x.shape[0]
    diffs = np.empty(n_boot)
    for r in range(n_boot):
        idx = rng.integers(0, n, size=n)
        diffs[r] = float(statistic(y[idx])) - float(statistic(x[idx]))
    lo, hi = np.quantile(diffs, [(1 - conf) / 2, (1 + conf) / 2])
    return Interval(
        float(statistic(y)) - float(statistic(x)),
        float(lo),
        float(hi),
        conf,
        int(n),
        f"paired bootstrap over {n} items ({n_boot} resamples)",
    )


def paired_t_interval(a: Any, b: Any, *, confidence: float = 0.95) -> Interval:
    r"""Student-t interval of the mean paired difference :math:`b - a` (e.g. over seeds).

    .. math::

        \bar d \pm t_{n-1,(1+\text{conf})/2}\, s_d/\sqrt n,\qquad d_i = b_i - a_i.

    Examples
    --------
    >>> iv = paired_t_interval([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    >>> iv.estimate, round(iv.low, 3), round(iv.high, 3)
    (2.0, -0.484, 4.484)
    """
    from scipy import stats

    func = "paired_t_interval"
    x, y = _paired(a, b, func)
    conf = _confidence(confidence, func)
    d = y - x
    n = d.size
    half = stats.t.ppf(0.5 + conf / 2, n - 1) * d.std(ddof=1) / math.sqrt(n)
    return Interval(
        float(d.mean()),
        float(d.mean() - half),
        float(d.mean() + half),
        conf,
        int(n),
        f"paired t over {n} seeds",
    )


def verdict(
    interval: Interval | None,
    *,
    claim: str = "greater",
    equivalence: float | None = None,
) -> str:
    """The verdict of a directional claim from the interval of its difference.

    Parameters
    ----------
    interval : Interval or None
        The interval of B − A; ``None`` means the data to decide it cannot be shipped.
    claim : {"greater", "less", "equal"}
        The paper claims B − A > 0 (``"greater"``), B − A < 0 (``"less"``, e.g.
        "less hubness"), or that A and B do not differ (``"equal"``, e.g. "DIS
        matches IS"; needs ``equivalence``).
    equivalence : float, optional
        A margin of no practical difference. For a directional claim an interval
        inside ``(-equivalence, equivalence)`` means *not supported* (the claimed
        effect is absent) rather than *inconclusive*. For ``"equal"`` the claim is
        *supported* when the interval lies inside the margin, *not supported* when it
        lies wholly outside it, *inconclusive* otherwise.

    Returns
    -------
    str
        One of :data:`VERDICTS`.

    Examples
    --------
    >>> verdict(Interval(1.0, 0.2, 1.8, 0.95, 5, ""))
    'supported'
    >>> verdict(Interval(0.3, -0.4, 1.0, 0.95, 5, ""))
    'inconclusive'
    >>> verdict(Interval(0.1, -0.2, 0.3, 0.95, 5, ""), equivalence=0.5)
    'not supported'
    >>> verdict(Interval(-1.0, -1.5, -0.5, 0.95, 5, ""), claim="less")
    'supported'
    >>> verdict(Interval(0.1, -0.2, 0.3, 0.95, 5, ""), claim="equal", equivalence=0.5)
    'supported'
    >>> verdict(Interval(1.0, 0.7, 1.3, 0.95, 5, ""), claim="equal", equivalence=0.5)
    'not supported'
    """
    if interval is None:
        return VERDICTS[3]
    if claim not in ("greater", "less", "equal"):
        fail("verdict", "claim", "'greater', 'less' or 'equal'", repr(claim))
    lo, hi = interval.low, interval.high
    if claim == "equal":
        if equivalence is None:
            fail(
                "verdict",
                "equivalence",
                "a margin for an 'equal' claim",
                None,
                "Say how large a difference still counts as equal.",
            )
        eq = check_positive(equivalence, "equivalence", "verdict")
        if -eq < lo and hi < eq:
            return VERDICTS[0]
        if lo >= eq or hi <= -eq:
            return VERDICTS[1]
        return VERDICTS[2]
    if claim == "less":
        lo, hi = -hi, -lo
    if lo > 0:
        return VERDICTS[0]
    if hi < 0:
        return VERDICTS[1]
    if equivalence is not None:
        eq = check_positive(equivalence, "equivalence", "verdict")
        if -eq < lo and hi < eq:
            return VERDICTS[1]
    return VERDICTS[2]


def ledger_frame(claims: Iterable[Claim], *, decimals: int = 2) -> Any:
    """A claims ledger as a table: paper, claim, verdict, difference [interval], evidence.

    Examples
    --------
    >>> c = Claim("DBNorm", "DualIS beats IS", "inconclusive",
    ...           Interval(0.1, -0.3, 0.5, 0.95, 100, "paired bootstrap"), "§5")
    >>> ledger_frame([c]).iloc[0]["Difference [95 % interval]"]
    '+0.10 [-0.30, 0.50]'
    """
    import pandas as pd

    claims = list(claims)
    confs = {c.interval.confidence for c in claims if c.interval is not None}
    col = (
        f"Difference [{100 * confs.pop():g} % interval]"
        if len(confs) == 1
        else "Difference [interval]"
    )
    rows: Sequence[dict[str, str]] = [
        {
            "Paper": c.paper,
            "Claim": c.claim,
            "Verdict": c.verdict,
            col: c.interval.format(decimals) if c.interval is not None else "—",
            "Evidence": c.evidence,
        }
        for c in claims
    ]
    return pd.DataFrame(rows, columns=["Paper", "Claim", "Verdict", col, "Evidence"])


_CLAIM_COLUMNS = (
    "key",
    "paper",
    "claim",
    "verdict",
    "estimate",
    "low",
    "high",
    "confidence",
    "n",
    "method",
    "evidence",
)


def save_claims(claims: Iterable[Claim], path: str | Any) -> Any:
    """Write claims as a CSV file (one row per claim; the interval in its own columns).

    The file is written atomically (a complete file or none). Returns the path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> c = Claim("DBNorm", "x", "inconclusive",
    ...           Interval(0.5, -1.0, 2.0, 0.95, 30, "paired t over 30 seeds"), key="k")
    >>> load_claims([save_claims([c], d / "claims.csv")]) == [c]
    True
    """
    import pandas as pd

    from hubrepro.io import atomic_write

    rows = []
    for c in claims:
        iv = c.interval
        rows.append(
            {
                "key": c.key,
                "paper": c.paper,
                "claim": c.claim,
                "verdict": c.verdict,
                "estimate": iv.estimate if iv else None,
                "low": iv.low if iv else None,
                "high": iv.high if iv else None,
                "confidence": iv.confidence if iv else None,
                "n": iv.n if iv else None,
                "method": iv.method if iv else "",
                "evidence": c.evidence,
            }
        )
    frame = pd.DataFrame(rows, columns=list(_CLAIM_COLUMNS))
    text = frame.to_csv(index=False).encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(text), overwrite=True)


def load_claims(paths: Iterable[str | Any]) -> list[Claim]:
    """Read the claims of :func:`save_claims` files, in file order; missing files are errors."""
    import pandas as pd

    out: list[Claim] = []
    for p in paths:
        frame = pd.read_csv(p, keep_default_na=False, na_values=[""])
        missing = [c for c in _CLAIM_COLUMNS if c not in frame.columns]
        if missing:
            fail("load_claims", "paths", f"claims files with columns {missing}", str(p))
        for r in frame.to_dict("records"):
            iv = None
            if not pd.isna(r["estimate"]):
                iv = Interval(
                    float(r["estimate"]),
                    float(r["low"]),
                    float(r["high"]),
                    float(r["confidence"]),
                    int(r["n"]),
                    str(r["method"]),
                )
            out.append(
                Claim(
                    str(r["paper"]),
                    str(r["claim"]),
                    str(r["verdict"]),
                    iv,
                    "" if pd.isna(r["evidence"]) else str(r["evidence"]),
                    "" if pd.isna(r["key"]) else str(r["key"]),
                )
            )
    return out
