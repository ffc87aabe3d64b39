"""Intervals and verdicts: hand-computed values, a coverage check, determinism."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hubrepro import inference as inf
from hubrepro.retrieval import metrics_from_ranks


def test_paired_t_interval_by_hand():
    # d = [1, 2, 3]: mean 2, sd 1, t_{2,0.975} = 4.302653 -> half 4.302653/sqrt(3)
    iv = inf.paired_t_interval([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert iv.estimate == pytest.approx(2.0)
    assert (iv.low, iv.high) == pytest.approx((2 - half, 2 + half), rel=1e-9)
    assert iv.n == 3 and iv.confidence == 0.95 and "3 seeds" in iv.method


def test_paired_t_interval_is_paired_not_two_sample():
    # a large common seed effect cancels in the paired difference
    a = np.array([10.0, 50.0, 90.0, 30.0])
    iv = inf.paired_t_interval(a, a + 1.0 + np.array([0.01, -0.01, 0.02, -0.02]))
    assert 0.9 < iv.low < iv.high < 1.1


def test_recall_hits_mean_equals_the_reported_recall():
    ranks = torch.tensor([0.0, 0.5, 1.0, 4.5, 9.0, 12.0, float("nan")])
    for k in (1, 5, 10):
        assert np.nanmean(inf.recall_hits(ranks, k)) == pytest.approx(
            metrics_from_ranks(ranks, ks=(k,))[f"R@{k}"]
        )


def test_paired_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, 300) * 100.0
    b = np.where(rng.random(300) < 0.2, 100.0, a)
    iv1 = inf.paired_bootstrap(a, b, n_boot=400, seed=3)
    iv2 = inf.paired_bootstrap(a, b, n_boot=400, seed=3)
    assert iv1 == iv2
    assert iv1.low <= iv1.estimate <= iv1.high
    assert iv1.estimate == pytest.approx((b - a).mean())
    assert iv1.n == 300


def test_paired_bootstrap_drops_pairs_with_nan_and_refuses_bad_input():
    iv = inf.paired_bootstrap([0, 100, float("nan"), 0], [100, 100, 0, 0], n_boot=50)
    assert iv.n == 3
    with pytest.raises(ValueError, match="same length"):
        inf.paired_bootstrap([0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="at least 2 paired units"):
        inf.paired_bootstrap([0.0], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        inf.paired_t_interval([0, 1, 2], [1, 2, 4], confidence=1.0)


def test_paired_bootstrap_covers_the_true_difference_about_95_percent():
    # 200 replicated experiments with a known mean difference of 5 points
    rng = np.random.default_rng(0)
    covered = 0
    for r in range(200):
        a = rng.normal(50, 20, 200)
        b = a + 5 + rng.normal(0, 10, 200)
        iv = inf.paired_bootstrap(a, b, n_boot=300, seed=r)
        covered += iv.low <= 5 <= iv.high
    assert 0.88 <= covered / 200 <= 0.99


@settings(max_examples=60, deadline=None)
@given(st.floats(-5, 5), st.floats(0, 3), st.sampled_from(["greater", "less"]))
def test_verdict_follows_the_side_of_zero(centre, half, claim):
    iv = inf.Interval(centre, centre - half, centre + half, 0.95, 10, "")
    v = inf.verdict(iv, claim=claim)
    sign = 1 if claim == "greater" else -1
    lo, hi = sorted((sign * (centre - half), sign * (centre + half)))
    if lo > 0:
        assert v == "supported"
    elif hi < 0:
        assert v == "not supported"
    else:
        assert v == "inconclusive"


def test_verdict_with_equivalence_margin_and_missing_data():
    inside = inf.Interval(0.0, -0.1, 0.1, 0.95, 5, "")
    assert inf.verdict(inside) == "inconclusive"
    assert inf.verdict(inside, equivalence=0.5) == "not supported"
    assert inf.verdict(None) == "needs data we cannot ship"
    with pytest.raises(ValueError, match="'greater', 'less' or 'equal'"):
        inf.verdict(inside, claim="better")


def test_equal_claims_need_a_margin_and_decide_by_it():
    iv = lambda lo, hi: inf.Interval((lo + hi) / 2, lo, hi, 0.95, 9, "")  # noqa: E731
    assert inf.verdict(iv(-0.4, 0.4), claim="equal", equivalence=0.5) == "supported"
    assert inf.verdict(iv(0.5, 0.9), claim="equal", equivalence=0.5) == "not supported"
    assert (
        inf.verdict(iv(-2.0, -0.6), claim="equal", equivalence=0.5) == "not supported"
    )
    assert inf.verdict(iv(0.2, 0.8), claim="equal", equivalence=0.5) == "inconclusive"
    assert inf.verdict(None, claim="equal", equivalence=0.5) == VERDICT_NO_DATA
    with pytest.raises(ValueError, match="`equivalence` must be a margin"):
        inf.verdict(iv(-0.1, 0.1), claim="equal")


VERDICT_NO_DATA = "needs data we cannot ship"


def test_stratified_bootstrap_weighs_settings_equally_and_resamples_within_them():
    # setting "a": 2 items that both gain 100; setting "b": 8 items that gain nothing.
    # Pooled over items the gain would be 20; each setting weighing the same, 50.
    a = np.zeros(10)
    b = np.array([100.0, 100.0] + [0.0] * 8)
    strata = ["a"] * 2 + ["b"] * 8
    iv = inf.paired_bootstrap(a, b, strata=strata, n_boot=300)
    # within-setting resampling keeps each setting's mean: every resample gives 50
    assert (iv.estimate, iv.low, iv.high) == (50.0, 50.0, 50.0)
    assert iv.n == 10 and "2 settings" in iv.method
    # one setting only: the same as the plain paired bootstrap
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 2, 50) * 100.0, rng.integers(0, 2, 50) * 100.0
    plain = inf.paired_bootstrap(x, y, n_boot=400, seed=5)
    one = inf.paired_bootstrap(x, y, strata=["s"] * 50, n_boot=400, seed=5)
    assert (one.estimate, one.low, one.high) == pytest.approx(
        (plain.estimate, plain.low, plain.high)
    )
    with pytest.raises(ValueError, match="`strata` must be one label per paired unit"):
        inf.paired_bootstrap(x, y, strata=["s"] * 3)


def test_bootstrap_of_a_statistic_by_hand():
    # statistic: the largest count of one gallery index among the rows' top-1
    a = np.array([[0], [1], [2], [3]])  # every item retrieved once
    b = np.array([[0], [0], [0], [0]])  # one hub
    peak = lambda rows: np.bincount(rows.ravel(), minlength=4).max()  # noqa: E731
    iv = inf.paired_bootstrap_statistic(a, b, peak, n_boot=500, seed=1)
    assert iv.estimate == 3.0  # 4 - 1
    # any resample gives b's peak 4 and a's peak between 1 and 4
    assert 0.0 <= iv.low <= iv.high <= 3.0 and iv.n == 4
    again = inf.paired_bootstrap_statistic(a, b, peak, n_boot=500, seed=1)
    assert (again.low, again.high) == (iv.low, iv.high)
    with pytest.raises(ValueError, match="same number"):
        inf.paired_bootstrap_statistic(a, b[:3], peak)


def test_claim_refuses_an_unknown_verdict_and_ledger_lays_out_rows():
    with pytest.raises(ValueError, match="verdict"):
        inf.Claim("DBNorm", "x", "a win")
    iv = inf.Interval(-1.234, -2.0, -0.5, 0.95, 30, "paired t over 30 seeds")
    table = inf.ledger_frame(
        [
            inf.Claim("NeighborRetr", "less hubness", "supported", iv, "Fig. 6.2"),
            inf.Claim("DBNorm", "needs MSR-VTT", "needs data we cannot ship"),
        ]
    )
    assert list(table.columns) == [
        "Paper", "Claim", "Verdict", "Difference [95 % interval]", "Evidence"
    ]  # fmt: skip
    assert table.iloc[0, 3] == "-1.23 [-2.00, -0.50]" and table.iloc[1, 3] == "—"


def test_claims_round_trip_through_a_file_with_and_without_an_interval(tmp_path):
    claims = [
        inf.Claim(
            "NeighborRetr",
            "higher R@1, with commas, than InfoNCE",
            "inconclusive",
            inf.Interval(0.3, -0.5, 1.1, 0.95, 5, "paired t over 5 seeds"),
            "fig-nr-r1",
            "nr-r1",
        ),
        inf.Claim("DBNorm", "MSR-VTT table", "needs data we cannot ship", key="db-x"),
    ]
    p = inf.save_claims(claims, tmp_path / "a" / "claims.csv")
    assert inf.load_claims([p]) == claims
    inf.save_claims(claims[:1], p)  # an artifact is replaced on re-run
    assert inf.load_claims([p]) == claims[:1]
    (tmp_path / "bad.csv").write_text("paper,claim\nx,y\n")
    with pytest.raises(ValueError, match="columns"):
        inf.load_claims([tmp_path / "bad.csv"])
