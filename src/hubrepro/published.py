"""Published numbers of the reproduced papers, with their source and confidence.

The compendium never types a paper's number into a chapter. Every published value
lives in one tidy CSV file under ``data/published/`` (one row per number) together
with where it was read and how much it can be trusted; notebooks load it with
:func:`load_published` and glue it beside the reproduced value.

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
    ``R@1``, ``R@5``, ``R@10`` (percent), ``MdR``, ``MnR`` (ranks); the method name
    of :data:`hubrepro.normalize.METHODS` where one exists;
``source`` / ``confidence`` / ``note``
    where the number was read (:data:`SOURCES`, ``;``-separated), a confidence
    label (:data:`CONFIDENCE`) and a free-text remark.

Book: :ref:`sec-dbnorm`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hubrepro._validation import fail
from hubrepro.normalize import DIRECTIONS

__all__ = [
    "COLUMNS",
    "CONFIDENCE",
    "SOURCES",
    "DATASETS",
    "published_path",
    "load_published",
    "validate_published",
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

#: Where a number was read. The tags are those of the DBNorm specification, §0.
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
_METHODS = (
    "none",
    "is",
    "dis",
    "csls",
    "gc",
    "dualis",
    "dualdis",
    "dualis_or_dualdis",
    "dbnorm",
    "nnn",
    "sn",
    "dbsn",
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
        re-run of DBNorm (DBNorm specification, §7).
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
