"""Published numbers of the reproduced papers, with their source and confidence.

The compendium never types a paper's number into a chapter. Every published value
lives in one tidy CSV file under ``data/published/`` (one row per number) together
with where it was read and how much it can be trusted; notebooks load it with
:func:`load_published` and glue it beside the reproduced value
(:func:`published_vs_reproduced`, :func:`claims_table`, :func:`baseline_mismatch`,
:func:`published_wide`).

Columns of every file (see :data:`COLUMNS`):

``paper``
    citation key in ``references.bib`` of the paper that *reports* the number;
``table``
    the group of numbers (e.g. ``dbnorm-main``, ``qbnorm-readme``);
``setting`` / ``dataset`` / ``backbone``
    human label, dataset key (:data:`DATASETS`) and backbone model;
``direction``
    ``query_to_gallery`` (text -> video/image/audio) or ``gallery_to_query``;
``metric`` / ``method`` / ``value``
    ``R@1``, ``R@5``, ``R@10`` (percent), ``MdR``, ``MnR`` (ranks); the method: a
    variant key of :data:`hubrepro.normalize.variants.VARIANTS`, or a published-only
    category of :data:`PUBLISHED_CATEGORIES` when the paper does not say which
    variant it ran;
``source`` / ``confidence`` / ``note``
    where the number was read (:data:`SOURCES`, ``;``-separated), a confidence
    label (:data:`CONFIDENCE`) and a free-text remark.

Book: :ref:`sec-dbnorm`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hubrepro._validation import fail
from hubrepro.normalize import DIRECTIONS
from hubrepro.normalize.variants import VARIANTS, variant_label

__all__ = [
    "COLUMNS",
    "CONFIDENCE",
    "SOURCES",
    "DATASETS",
    "PUBLISHED_CATEGORIES",
    "CLAIMS",
    "published_path",
    "load_published",
    "validate_published",
    "method_key",
    "published_label",
    "published_vs_reproduced",
    "claims_table",
    "baseline_mismatch",
    "published_wide",
]

#: Column names of every published-numbers file, in order.
COLUMNS = (
    "paper",
    "table",
    "setting",
    "dataset",
    "backbone",
    "direction",
    "metric",
    "method",
    "value",
    "source",
    "confidence",
    "note",
)

#: Confidence labels, from most to least trusted.
CONFIDENCE = ("high", "medium", "medium-low", "low")

#: Where a number was read: the tags of the ``source`` column (``;``-separated when
#: several sources agree). None of the third-party notes (``SEC-*``) was checked
#: against the paper's PDF.
SOURCES = {
    "PDF": "the paper's camera-ready PDF, read by the compendium's authors",
    "QB-README": "README of the QB-Norm code (ioanacroi/qb-norm), mean over seeds",
    "SEC-A": "third-party literature note whose author read DBNorm Tables 1-5",
    "SEC-B": "third-party note on hubness reduction (DBNorm, QB-Norm and NNN numbers)",
    "SEC-C": "third-party note giving CLIP4Clip R@1 and one ablation remark",
}

#: Dataset keys and whether the compendium can ship the data (``False``: "needs your data").
DATASETS = {
    "mscoco-5k": False,
    "flickr30k-1k": False,
    "msrvtt-1ka": False,
    "msrvtt-full": False,
    "msvd": False,
    "didemo": False,
    "lsmdc": False,
    "vatex": False,
    "queryd": False,
    "audiocaps": False,
}

_METRICS = {
    "R@1": (0.0, 100.0),
    "R@5": (0.0, 100.0),
    "R@10": (0.0, 100.0),
    "MdR": (1.0, None),
    "MnR": (1.0, None),
}
#: Published-only method categories -> the variant key our numbers are compared with
#: (``None``: none). A paper's single number for "DualIS or DualDIS" is compared with
#: DualIS; "DBNorm" with the variant not stated has no counterpart.
PUBLISHED_CATEGORIES: dict[str, str | None] = {
    "dualis_or_dualdis": "dualis",
    "dbnorm": None,
}

_METHODS = (*VARIANTS, *PUBLISHED_CATEGORIES)

# Display names of published methods where the paper's name is less specific than the
# variant's label (a published "IS" does not name its bank, a "DualDIS" not its mode)
_LABELS = {
    "is": "IS",
    "dis": "DIS (QB-Norm)",
    "dualdis": "DualDIS",
    "dualis_or_dualdis": "DualIS or DualDIS",
    "dbnorm": "DBNorm (variant not stated)",
}

#: Claims of the DBNorm paper checked on published and reproduced numbers:
#: (label, method a, method b, kind); ``gain``: b > a; ``tie``: ``abs(b - a) <= tolerance``.
CLAIMS = (
    ("IS beats the baseline", "none", "is", "gain"),
    ("DIS matches IS (within the tolerance)", "is", "dis", "tie"),
    ("DualIS beats IS", "is", "dualis", "gain"),
    ("DualIS beats the baseline", "none", "dualis", "gain"),
    ("DualDIS matches DualIS (within the tolerance)", "dualis", "dualdis", "tie"),
)


def published_path(name: str = "dbnorm") -> Path:
    """Path of the published-numbers file ``data/published/<name>.csv`` of the checkout."""
    return Path(__file__).resolve().parents[2] / "data" / "published" / f"{name}.csv"


def validate_published(
    df: pd.DataFrame, *, func: str = "validate_published"
) -> pd.DataFrame:
    """Check a published-numbers table and return it unchanged.

    Every row must carry a known source and confidence label, a known metric,
    direction and method, a dataset key of :data:`DATASETS`, a paper key, and a
    value inside the metric's range (percentages in [0, 100], ranks >= 1).

    Raises
    ------
    ValueError
        naming the first offending row (1-based data row of the CSV) and column.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        fail(
            func,
            "df",
            f"a table with the columns {list(COLUMNS)}",
            f"missing {missing}",
        )
    required = [c for c in COLUMNS if c != "note"]
    for i, row in enumerate(df.itertuples(index=False), start=1):
        r = row._asdict()
        for c in required:
            v = r[c]
            if (
                v is None
                or (isinstance(v, float) and pd.isna(v))
                or str(v).strip() == ""
            ):
                fail(
                    func, c, "filled in on every row", f"an empty cell on data row {i}"
                )
        checks = (
            ("confidence", r["confidence"] in CONFIDENCE, f"one of {CONFIDENCE}"),
            ("direction", r["direction"] in DIRECTIONS, f"one of {DIRECTIONS}"),
            ("metric", r["metric"] in _METRICS, f"one of {tuple(_METRICS)}"),
            ("method", r["method"] in _METHODS, f"one of {_METHODS}"),
            ("dataset", r["dataset"] in DATASETS, f"one of {tuple(DATASETS)}"),
            (
                "source",
                all(s in SOURCES for s in str(r["source"]).split(";")),
                f"';'-separated tags from {tuple(SOURCES)}",
            ),
        )
        for col, ok, expected in checks:
            if not ok:
                fail(func, col, expected, f"{r[col]!r} on data row {i}")
        lo, hi = _METRICS[r["metric"]]
        try:
            value = float(r["value"])
        except (TypeError, ValueError):
            fail(func, "value", "a number", f"{r['value']!r} on data row {i}")
        if not (value >= lo and (hi is None or value <= hi)):
            fail(
                func,
                "value",
                f"in [{lo}, {hi if hi is not None else 'inf'}] for {r['metric']}",
                f"{value} on data row {i}",
            )
    key = ["paper", "table", "setting", "direction", "metric", "method"]
    dup = df.duplicated(subset=key, keep=False)
    if bool(dup.any()):
        first = int(dup.to_numpy().nonzero()[0][0]) + 1
        fail(
            func,
            "df",
            f"one row per number (unique {key})",
            f"a duplicate on data row {first}",
        )
    return df


def load_published(
    name: str = "dbnorm", *, path: str | Path | None = None
) -> pd.DataFrame:
    """Load and validate the published numbers of one paper family.

    Parameters
    ----------
    name : str, default "dbnorm"
        File stem under ``data/published/``; ``"dbnorm"`` holds the DBNorm table, the
        baseline mismatch with QB-Norm, the QB-Norm sanity references and the NNN
        re-run of DBNorm (:ref:`sec-dbnorm-published`).
    path : str or Path, optional
        Read this CSV instead (same columns), e.g. numbers a reader checked against
        the PDF.

    Returns
    -------
    pandas.DataFrame
        One row per published number with the columns :data:`COLUMNS`; ``value`` is
        float, ``note`` is ``""`` where empty.

    Raises
    ------
    ValueError
        If the file is missing or fails :func:`validate_published`.

    Book
    ----
    :ref:`sec-dbnorm` (published vs reproduced), notebook 41.

    Examples
    --------
    >>> df = load_published("dbnorm")
    >>> sorted(df["confidence"].unique())[:1]
    ['high']
    """
    p = Path(path) if path is not None else published_path(name)
    if not p.is_file():
        fail(
            "load_published",
            "name" if path is None else "path",
            "an existing CSV file",
            str(p),
            "See data/published/.",
        )
    df = pd.read_csv(
        p, dtype={c: str for c in COLUMNS if c != "value"}, keep_default_na=False
    )
    df = validate_published(df, func="load_published")
    df["value"] = df["value"].astype(float)
    return df.reset_index(drop=True)


def method_key(method: str) -> str | None:
    """The variant key a published ``method`` is compared with (``None``: no counterpart).

    Examples
    --------
    >>> method_key("dualis_or_dualdis"), method_key("dis"), method_key("dbnorm")
    ('dualis', 'dis', None)
    """
    return PUBLISHED_CATEGORIES.get(method, method)


def published_label(method: str) -> str:
    """Display name of a published ``method`` (the variant's label unless the paper is vaguer).

    Examples
    --------
    >>> published_label("dis"), published_label("csls")
    ('DIS (QB-Norm)', 'CSLS')
    """
    return _LABELS.get(method, variant_label(method))


def _fmt(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def published_vs_reproduced(published: pd.DataFrame, ours: pd.DataFrame | None = None, *,
                            setting: str | None = None, table: str = "dbnorm-main", metric: str = "R@1",
                            direction: str = "query_to_gallery") -> pd.DataFrame:  # fmt: skip
    """Published numbers (with source and confidence) beside ours.

    Parameters
    ----------
    published : DataFrame
        :func:`load_published` output.
    ours : DataFrame, optional
        A main table (:attr:`hubrepro.experiments.dbnorm.main.MainResult.table`)
        computed on the user's data for ``setting``.
    setting : str, optional
        The published setting that ``ours`` reproduces; every other row reads
        "needs your data" (the datasets cannot ship).

    Returns
    -------
    DataFrame
        Columns ``setting``, ``method``, ``published``, ``source``, ``confidence``,
        ``reproduced`` (strings, 2 decimals).
    """
    if setting is not None and setting not in set(published["setting"]):
        fail("published_vs_reproduced", "setting", "a `setting` of the published file", repr(setting),
             f"Known: {sorted(set(published.loc[published.table == table, 'setting']))}.")  # fmt: skip
    pub = published[
        (published.table == table)
        & (published.metric == metric)
        & (published.direction == direction)
    ]
    mine: dict[str, float] = {}
    if ours is not None and setting is not None:
        o = ours[ours.direction == direction].set_index("method")
        mine = {k: float(o.loc[k, metric]) for k in o.index}
    rows = []
    for r in pub.itertuples(index=False):
        key = method_key(r.method)
        if r.setting == setting and key in mine:
            rep = _fmt(mine[key])
        elif r.setting == setting:
            rep = "not run"
        else:
            rep = "needs your data"
        rows.append({"setting": r.setting, "method": published_label(r.method), "published": _fmt(r.value),
                     "source": r.source, "confidence": r.confidence, "reproduced": rep})  # fmt: skip
    return pd.DataFrame(rows)


def _claim_holds(a: float, b: float, kind: str, tol: float) -> bool:
    return b > a if kind == "gain" else abs(b - a) <= tol


def claims_table(published: pd.DataFrame, ours: pd.DataFrame, *, metric: str = "R@1",
                 direction: str = "query_to_gallery", tolerance: float = 0.5,
                 claims: Sequence[tuple[str, str, str, str]] = CLAIMS) -> pd.DataFrame:  # fmt: skip
    """How often each claim of :data:`CLAIMS` holds: published settings vs our datasets.

    The published side reads the ``dbnorm-main`` rows (a published category counts as
    the variant of :func:`method_key`, e.g. "DualIS or DualDIS" as DualIS); our side
    reads every dataset of the main table ``ours``. Cells are "k of n" (settings or
    datasets where both methods have a number). ``claims`` defaults to :data:`CLAIMS`.
    """
    pub = published[(published.table == "dbnorm-main") & (published.metric == metric)
                    & (published.direction == direction)]  # fmt: skip
    pub_vals: dict[str, dict[str, float]] = {}
    for r in pub.itertuples(index=False):
        key = method_key(r.method)
        if key is not None:
            pub_vals.setdefault(r.setting, {}).setdefault(key, float(r.value))
    o = ours[ours.direction == direction]
    our_vals = {
        ds: dict(zip(g["method"], g[metric].astype(float), strict=True))
        for ds, g in o.groupby("dataset")
    }

    def count(
        vals: dict[str, dict[str, float]], a: str, b: str, kind: str
    ) -> tuple[int, int]:
        have = [v for v in vals.values() if a in v and b in v]
        return sum(_claim_holds(v[a], v[b], kind, tolerance) for v in have), len(have)

    rows = []
    for label, a, b, kind in claims:
        pk, pn = count(pub_vals, a, b, kind)
        ok, on = count(our_vals, a, b, kind)
        rows.append({"claim": label, "published": f"{pk} of {pn} settings", "ours": f"{ok} of {on} datasets",
                     "published_share": pk / pn if pn else np.nan, "ours_share": ok / on if on else np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def baseline_mismatch(published: pd.DataFrame) -> pd.DataFrame:
    """DBNorm's baselines beside QB-Norm's README for the same backbone (:ref:`sec-dbnorm-published`)."""
    q = published[published.table == "baseline-mismatch"]
    d = published[(published.table == "dbnorm-main") & (published.method == "none")]
    rows = []
    for r in q.itertuples(index=False):
        backbone = r.backbone.replace("MMT-", "")
        m = d[
            (d.dataset == r.dataset) & (d.backbone.str.replace("MMT-", "") == backbone)
        ]
        if len(m) != 1:
            continue
        v = float(m["value"].iloc[0])
        rows.append({"setting": r.setting, "QB-Norm README": r.value, "DBNorm": v, "difference": v - r.value,
                     "source": f"{r.source} / {m['source'].iloc[0]}"})  # fmt: skip
    return pd.DataFrame(rows).set_index("setting")


def published_wide(published: pd.DataFrame, *, tables: Sequence[str]) -> pd.DataFrame:
    """Published rows of ``tables`` as a wide table: one row per (setting, metric), one column per method."""
    p = published[published.table.isin(tables)].copy()
    p["method"] = p["method"].map(published_label)
    wide = p.pivot_table(
        index=["table", "setting", "metric"],
        columns="method",
        values="value",
        sort=False,
    )
    conf = p.groupby(["table", "setting", "metric"], sort=False)["confidence"].first()
    src = p.groupby(["table", "setting", "metric"], sort=False)["source"].first()
    wide["source"] = src
    wide["confidence"] = conf
    return wide
