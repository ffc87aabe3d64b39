"""The published-numbers file validates, and the validator rejects bad rows."""

from __future__ import annotations

import pandas as pd
import pytest

from hubrepro.published import (
    COLUMNS,
    CONFIDENCE,
    SOURCES,
    load_published,
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


def test_known_spec_numbers(published):
    # spot checks against the specification's §7.1 table, typed from the spec
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
