"""DBNorm's claims with intervals: per-query ranks agree with the table, verdicts follow the intervals."""

from __future__ import annotations

import numpy as np
import pytest

from hubrepro import inference as inf
from hubrepro.datasets import load_dataset
from hubrepro.experiments import dbnorm as X

GRID = dict(beta_query_grid=(5.0, 20.0), beta_gallery_grid=(5.0, 20.0))


@pytest.fixture(scope="module")
def cfg():
    return X.DBNormConfig(dataset="synthetic", n_val=40, n_boot=200,
                          methods=("none", "is", "dis", "dualis", "dualdis", "sn"), **GRID)  # fmt: skip


@pytest.fixture(scope="module")
def result(cfg):
    data = {
        f"dim {d}": load_dataset(
            "synthetic", seed=3, n_gallery=60, n_bank_gallery=160, dim=d, n_concepts=20
        )
        for d in (8, 32)
    }
    return X.run_many(data, cfg)


def test_per_query_ranks_reproduce_the_table_and_deltas_are_differences(result, cfg):
    t = result.table.set_index(["dataset", "direction", "method"])
    for key, items in result.items.items():
        for k in (1, 5, 10):
            hits = inf.recall_hits(items["ranks"], k)
            assert hits.mean() == pytest.approx(t.loc[key, f"R@{k}"])
    d = X.delta_intervals(result, "R@1", n_boot=cfg.n_boot, seed=cfg.seed)
    assert "none" not in set(d.method)
    for r in d.itertuples():
        want = t.loc[(r.dataset, r.direction, r.method), "R@1"]
        want -= t.loc[(r.dataset, r.direction, "none"), "R@1"]
        assert r.delta == pytest.approx(want)
        assert r.low <= r.delta + 1e-9 and r.delta - 1e-9 <= r.high
    with pytest.raises(ValueError, match="recall"):
        X.delta_intervals(result, "MnR")


def test_skewness_interval_estimate_is_the_tables_skewness_difference(result, cfg):
    t = result.table.set_index(["dataset", "direction", "method"])
    ds, direction = "dim 32", "query_to_gallery"
    iv = X.skew_interval(result, ds, direction, "dualis", n_boot=50)
    want = t.loc[(ds, direction, "dualis"), "hub_skewness"]
    want -= t.loc[(ds, direction, "none"), "hub_skewness"]
    assert iv.estimate == pytest.approx(want, abs=1e-6)


def test_leaders_pick_the_best_post_hoc_method_of_each_setting(result, cfg):
    lead = X.leaders(result, n_boot=cfg.n_boot)
    t = result.table
    assert len(lead) == t.groupby(["dataset", "direction"]).ngroups
    for r in lead.itertuples():
        g = t[
            (t.dataset == r.dataset)
            & (t.direction == r.direction)
            & (t.method != "none")
        ]
        assert g.set_index("method").loc[r.best, "R@1"] == g["R@1"].max()
        assert r.lead.estimate >= 0
    heads = X.interval_headlines(result, cfg, lead=lead)
    assert heads["val-n-settings"] == len(lead)
    assert heads["txt-dualis-vs-is-verdict"] in inf.VERDICTS
    assert heads["txt-best-everywhere"].split(" is the best")[0] in {
        X.method_label(m) for m in lead.best
    }


def test_claims_are_decided_by_the_pooled_interval_on_every_dataset(
    result, cfg, tmp_path
):
    out = X.decide_claims(result, cfg)
    assert out.datasets == ["dim 8", "dim 32"]
    keys = [c.key for c in out.claims]
    assert all(k.startswith("db-") for k in keys) and len(set(keys)) == len(keys)
    assert {
        "db-dualis-beats-is",
        "db-dualdis-beats-dis",
        "db-dualis-less-hubness",
    } <= set(keys)
    by_key = {c.key: c for c in out.claims}
    # the pooled estimate is the mean of the two datasets' differences
    row = out.table.loc["DualIS beats IS"]
    assert row["pooled"].estimate == pytest.approx(
        np.mean([row["dim 8"].estimate, row["dim 32"].estimate])
    )
    c = by_key["db-dualis-beats-is"]
    assert c.verdict == inf.verdict(c.interval, claim="greater")
    assert "dim 8, dim 32" in c.claim and c.evidence == "tbl-dbnorm-claims"
    m = by_key["db-dis-matches-is"]
    assert m.verdict == inf.verdict(
        m.interval, claim="equal", equivalence=cfg.equivalence
    )
    h = by_key["db-dualis-less-hubness"]
    assert h.verdict == inf.verdict(h.interval, claim="less")
    assert by_key["db-published-numbers"].verdict == "needs data we cannot ship"
    assert by_key["db-published-numbers"].interval is None
    # claims round-trip through the ledger's file format
    back = {
        c.key: c
        for c in inf.load_claims([inf.save_claims(out.claims, tmp_path / "claims.csv")])
    }
    assert back["db-dualis-beats-is"].interval.estimate == pytest.approx(
        c.interval.estimate
    )


def test_a_method_that_was_not_run_leaves_its_claims_out(cfg):
    import dataclasses

    small = dataclasses.replace(cfg, methods=("none", "is"))
    data = load_dataset("synthetic", seed=1, n_gallery=40, n_bank_gallery=120, dim=8)
    out = X.decide_claims(X.run_many({"tiny": data}, small), small)
    assert [c.key for c in out.claims] == ["db-is-gain", "db-published-numbers"]


def test_heatmap_numbers_are_dark_on_light_cells_and_the_delta_legend_sits_below():
    import matplotlib.colors as mcolors
    import pandas as pd

    grid = pd.DataFrame(
        [[10.0, 20.0], [30.0, 40.0]], index=[5.0, 20.0], columns=[1.0, 10.0]
    )
    fig = X.plot_beta_heatmap(grid)
    ax = fig.axes[0]
    colours = {t.get_text(): mcolors.to_hex(t.get_color()) for t in ax.texts}
    assert colours["40.0"] == "#000000" and colours["10.0"] == "#ffffff"


def test_delta_chart_has_error_bars_and_a_legend_outside_the_axes(result, cfg):
    d = X.delta_intervals(result, "R@1", n_boot=50)
    fig = X.plot_delta(result.table, intervals=d)
    ax = fig.axes[0]
    from matplotlib.container import BarContainer, ErrorbarContainer

    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 2  # one bar series per dataset
    assert all(c.errorbar is not None for c in bars)
    assert sum(isinstance(c, ErrorbarContainer) for c in ax.containers) == 2
    box = ax.get_legend().get_bbox_to_anchor().transformed(ax.transAxes.inverted())
    assert box.y1 <= 0  # anchored below the axes
    assert "percentage points" in ax.get_xlabel()


def test_pivoted_tables_hold_the_main_tables_values(result):
    t = result.table.set_index(["dataset", "direction", "method"])
    wide = X.recall_table(result.table, "R@1")
    assert list(wide.index) == list(dict.fromkeys(result.table.method))
    assert wide.loc["dualis", ("dim 8", "gallery_to_query")] == t.loc[
        ("dim 8", "gallery_to_query", "dualis"), "R@1"]  # fmt: skip
    one = X.recall_table(result.table, "R@1", direction="query_to_gallery")
    assert list(one.columns) == ["dim 8", "dim 32"]
    assert one.loc["is", "dim 32"] == t.loc[("dim 32", "query_to_gallery", "is"), "R@1"]
    hub = X.hubness_pivot(result.table)
    assert hub.index.names == ["direction", "method"] and list(hub.columns) == [
        "dim 8",
        "dim 32",
    ]
    assert hub.loc[("gallery_to_query", "sn"), "dim 8"] == t.loc[
        ("dim 8", "gallery_to_query", "sn"), "hub_skewness"]  # fmt: skip


def test_long_claims_table_has_a_row_per_dataset_and_the_pooled_row_decides(
    result, cfg
):
    out = X.decide_claims(result, cfg)
    long = X.claims_long(out, equivalence=cfg.equivalence)
    claim = "DualIS beats IS"
    published = out.table.loc[claim, "published"]
    block = long.loc[f"{claim}; published: {published} agree"]
    assert list(block.index) == ["dim 8", "dim 32", "all datasets (pooled)"]
    assert (
        block.loc["all datasets (pooled)", "verdict"] == out.table.loc[claim, "verdict"]
    )
    for ds in ("dim 8", "dim 32"):
        iv = out.table.loc[claim, ds]
        assert block.loc[ds, "interval"] is iv
        assert block.loc[ds, "verdict"] == inf.verdict(iv, claim="greater")
    hub = long.loc["DualIS reduces hubness (skewness of N_k)"]
    assert hub.loc["dim 8", "verdict"] == inf.verdict(
        hub.loc["dim 8", "interval"], claim="less"
    )
