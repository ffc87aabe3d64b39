"""The paper's published numbers, each with where it was read and how sure we are of it.

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hubrepro import _validation as V

__all__ = ["published_numbers"]


def published_numbers(path: str | None = None) -> pd.DataFrame:
    """Load ``data/published/neighborretr.csv`` (quantity, value, source, confidence, note).

    Every published NeighborRetr number with where it was read and a confidence label
    (the table of :ref:`sec-neighborretr`). Raises ``ValueError`` on a missing column, an empty
    source or an unknown confidence label.
    """
    from hubrepro.published import CONFIDENCE

    p = (
        Path(path)
        if path
        else Path(__file__).resolve().parents[4]
        / "data"
        / "published"
        / "neighborretr.csv"
    )
    df = pd.read_csv(p)
    cols = ["quantity", "value", "source", "confidence", "note"]
    if list(df.columns) != cols:
        V.fail(
            "published_numbers",
            "path",
            f"a CSV with the columns {cols}",
            list(df.columns),
        )
    bad = df[~df["confidence"].isin(CONFIDENCE) | df["source"].isna()]
    if len(bad):
        V.fail(
            "published_numbers",
            "path",
            f"rows with a source and a confidence in {CONFIDENCE}",
            f"row {int(bad.index[0]) + 1}",
        )
    return df.set_index("quantity")
