"""The published-numbers file validates, the validator rejects bad rows, the comparison tables count by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from hubrepro.normalize.variants import VARIANTS
from hubrepro.published import (
    CLAIMS,
    COLUMNS,
    CONFIDENCE,
    PUBLISHED_CATEGORIES,
    SOURCES,
    baseline_mismatch,
    claims_table,
    load_published,
    method_key,
    published_label,
    published_vs_reproduced,
    published_wide,
    validate_published,
)


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    return load_published("dbnorm")


def test_every_number_has_source_and_confidence(published):
    assert len(published) > 50
    assert (published["source"].str.len() > 0).all()
    assert set(published["confidence"]) <= set(CONFIDENCE)
    for tags in published["source"]:
        assert all(t in SOURCES for t in tags.split(";"))


def test_values_in_range(published):
    pct = published["metric"].str.startswith("R@")
    assert published.loc[pct, "value"].between(0, 100).all()
    assert (published.loc[~pct, "value"] >= 1).all()


def test_known_published_numbers(published):
    # spot checks typed separately from the CSV: an edit that changes these numbers
    # must be a deliberate correction of this test too
    def get(setting, method, table="dbnorm-main"):
        sel = published[
            (published.table == table)
            & (published.setting == setting)
            & (published.method == method)
        ]
        assert len(sel) == 1
        return float(sel["value"].iloc[0])

    assert get("MSCOCO 5k CLIP", "dualis") == 37.93
    assert get("MSCOCO 5k CLIP", "dualdis") == 37.92
    assert get("Flickr30k Oscar", "none") == 71.60
    assert (
        get(
            "MSR-VTT full TT-CE+ LSMDC bank (far domain)",
            "is",
            table="qbnorm-robustness",
        )
        == 11.6
    )


def test_baseline_mismatch_pairs_exist(published):
    mism = published[published.table == "baseline-mismatch"]
    for _, row in mism.iterrows():
        dbn = published[
            (published.table == "dbnorm-main")
            & (published.dataset == row.dataset)
            & (
                published.backbone.str.replace("MMT-", "")
                == row.backbone.replace("MMT-", "")
            )
            & (published.method == "none")
        ]
        assert len(dbn) == 1, row.setting
        assert dbn["value"].iloc[0] != row.value


def _good_row(**over):
    row = dict(
        paper="wang2023balance",
        table="t",
        setting="s",
        dataset="msrvtt-1ka",
        backbone="b",
        direction="query_to_gallery",
        metric="R@1",
        method="is",
        value=10.0,
        source="SEC-A",
        confidence="medium",
        note="",
    )
    row.update(over)
    return pd.DataFrame([row], columns=list(COLUMNS))


@pytest.mark.parametrize(
    ("column", "bad"),
    [
        ("confidence", "sure"),
        ("source", "blog"),
        ("source", ""),
        ("metric", "R@3"),
        ("method", "magic"),
        ("direction", "sideways"),
        ("dataset", "imagenet"),
        ("value", 101.0),
        ("value", -1.0),
        ("paper", ""),
    ],
)
def test_validator_rejects_bad_rows(column, bad):
    with pytest.raises(ValueError, match=column if column != "paper" else "paper"):
        validate_published(_good_row(**{column: bad}))


def test_validator_rejects_rank_below_one_and_duplicates():
    with pytest.raises(ValueError, match="value"):
        validate_published(_good_row(metric="MdR", value=0.5))
    with pytest.raises(ValueError, match="duplicate"):
        validate_published(pd.concat([_good_row(), _good_row()]))
    assert len(validate_published(_good_row())) == 1


def test_missing_file_and_columns(tmp_path):
    with pytest.raises(ValueError, match="existing CSV"):
        load_published(path=tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="columns"):
        validate_published(pd.DataFrame({"paper": ["x"]}))


def test_every_published_method_is_a_variant_or_a_category(published):
    for m in set(published["method"]):
        key = method_key(m)
        assert key is None or key in VARIANTS, m
        assert published_label(m)  # a display name for every method
    assert set(PUBLISHED_CATEGORIES) & set(VARIANTS) == set()
    # labels the tables print (a published IS does not name its bank)
    assert published_label("is") == "IS" and published_label("none") == "baseline"


def test_validator_accepts_variant_keys_and_categories():
    for m in ("is-g", "dualdis-faithful", "dualis_or_dualdis", "dbnorm"):
        assert len(validate_published(_good_row(method=m))) == 1


def _pub(rows):
    base = dict(paper="wang2023balance", table="dbnorm-main", dataset="msrvtt-1ka", backbone="b",
                direction="query_to_gallery", metric="R@1", source="SEC-A", confidence="medium", note="")  # fmt: skip
    return pd.DataFrame([{**base, **r} for r in rows], columns=list(COLUMNS))


def test_published_vs_reproduced_fills_only_the_named_setting():
    pub = _pub([dict(setting="A", method="none", value=10.0), dict(setting="A", method="dualis_or_dualdis", value=12.0),
                dict(setting="A", method="dbnorm", value=12.5), dict(setting="B", method="none", value=20.0)])  # fmt: skip
    ours = pd.DataFrame(
        {
            "direction": ["query_to_gallery"] * 2,
            "method": ["none", "dualis"],
            "R@1": [11.0, 13.5],
        }
    )
    side = published_vs_reproduced(pub, ours, setting="A")
    assert list(side["reproduced"]) == ["11.00", "13.50", "not run", "needs your data"]
    assert list(side["published"]) == ["10.00", "12.00", "12.50", "20.00"]
    assert list(side["method"]) == [
        "baseline",
        "DualIS or DualDIS",
        "DBNorm (variant not stated)",
        "baseline",
    ]
    assert set(published_vs_reproduced(pub)["reproduced"]) == {"needs your data"}
    with pytest.raises(ValueError, match="setting"):
        published_vs_reproduced(pub, ours, setting="C")


def test_claims_table_counts_by_hand():
    pub = _pub([dict(setting="A", method="none", value=10.0), dict(setting="A", method="is", value=11.0),
                dict(setting="A", method="dualis", value=12.0), dict(setting="A", method="dualdis", value=12.4),
                dict(setting="B", method="none", value=20.0), dict(setting="B", method="is", value=19.0),
                dict(setting="B", method="dualis_or_dualdis", value=19.5),
                dict(setting="B", method="dbnorm", value=30.0)])  # fmt: skip
    ours = pd.DataFrame({"dataset": ["x"] * 3, "direction": ["query_to_gallery"] * 3,
                         "method": ["none", "is", "dualis"], "R@1": [5.0, 6.0, 5.5]})  # fmt: skip
    t = claims_table(pub, ours).set_index("claim")
    assert list(t.index) == [c[0] for c in CLAIMS]
    assert t.loc["IS beats the baseline", "published"] == "1 of 2 settings"
    assert t.loc["DualIS beats IS", "published"] == "2 of 2 settings"
    assert t.loc["DualIS beats the baseline", "published"] == "1 of 2 settings"
    assert (
        t.loc["DualDIS matches DualIS (within the tolerance)", "published"]
        == "1 of 1 settings"
    )
    assert (
        t.loc["DIS matches IS (within the tolerance)", "published"] == "0 of 0 settings"
    )
    assert t.loc["DualIS beats IS", "ours"] == "0 of 1 datasets"
    assert t.loc["IS beats the baseline", "ours"] == "1 of 1 datasets"


def test_baseline_mismatch_and_wide_tables(published):
    mism = baseline_mismatch(published)
    assert len(mism) == int((published.table == "baseline-mismatch").sum())
    assert (mism["difference"] == mism["DBNorm"] - mism["QB-Norm README"]).all()
    wide = published_wide(published, tables=("nnn-rerun",))
    rows = published[published.table == "nnn-rerun"]
    assert wide.drop(columns=["source", "confidence"]).notna().sum().sum() == len(rows)
    assert set(wide.columns) - {"source", "confidence"} == {
        published_label(m) for m in rows["method"]
    }
