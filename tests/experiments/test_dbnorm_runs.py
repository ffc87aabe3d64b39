"""The notebook drivers of the DBNorm package: one ``run(cfg)`` and ``headlines(result)`` each."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hubrepro import inference, published
from hubrepro.experiments import dbnorm as X
from hubrepro.experiments.dbnorm import ablations, comparison, pictures, released

TINY = {"tiny": {"dim": 16, "n_gallery": 60, "n_bank_gallery": 160, "n_concepts": 20}}


@pytest.fixture(scope="module")
def cfg():
    return X.DBNormConfig(dataset="synthetic", synthetic_settings=TINY, n_val=40,
                          beta_query_grid=(5.0, 20.0), beta_gallery_grid=(5.0, 20.0),
                          alpha_grid=(0.5,), directions=("query_to_gallery",),
                          bank_fractions=(0.5, 1.0), k_values=(1, 5), shift_values=(0.0, 1.0),
                          n_examples=40, methods=("none", "is", "dualis", "csls"))  # fmt: skip


def test_main_run_records_the_data_sizes(cfg):
    result = X.run(cfg)
    h = X.headlines(result)
    assert h == {**X.headlines(result.table), "val-n-query": h["val-n-query"],
                 "val-n-gallery": 60, "val-n-bank-gallery": 160}  # fmt: skip
    assert h["val-n-query"] == int(result.data["n_query"].iloc[0])
    assert h["val-rsum-is"] == float(
        result.table.set_index("method").loc["is", X.RECALL_SUM]
    )


def _naive_gated_pct(m, k: int) -> float:
    """Share (%) of queries whose top-1 is among some bank row's k nearest gallery items."""
    active = set()
    for row in m.bank_query_sims:
        active |= set(row.topk(k).indices.tolist())
    top1 = m.sims.argmax(dim=1).tolist()
    return 100 * sum(t in active for t in top1) / len(top1)


def test_ablations_run_and_headlines(cfg):
    result = ablations.run(cfg)
    h = ablations.headlines(result)
    assert h["txt-dataset"] == "synthetic: tiny"
    agg = result.aggregation.set_index("method")
    assert h["val-r1-dualis-sum"] == agg.loc["dualis-sum", "R@1"]
    choice = result.bank_choice.set_index("method")
    assert h["val-r1-is-g"] == choice.loc["is-g", "R@1"]
    heat = result.beta_test.to_numpy()
    assert h["val-beta-spread"] == pytest.approx(heat.max() - heat.min())
    assert result.beta_val is not None and result.beta_val.shape == heat.shape
    assert h["val-smallest-fraction"] == 0.5
    assert h["val-shift-max"] == 1.0 and "val-delta-dualis-shift-none" in h
    # the gate share is the query bank's activation set, checked naively
    m = X.prepare(X.load_data(cfg)["synthetic: tiny"], cfg)[
        ("test", "query_to_gallery")
    ]
    for k in cfg.k_values:
        got = result.k[(result.k.method == "dis") & (result.k.k == k)]["gated_pct"]
        assert float(got.iloc[0]) == pytest.approx(_naive_gated_pct(m, k))
    assert h["val-gated-k1"] == pytest.approx(_naive_gated_pct(m, 1))


def test_pictures_run_and_headlines(cfg):
    result = pictures.run(cfg)
    h = pictures.headlines(result)
    assert list(result.occurrences.columns) == list(cfg.methods)
    assert h["val-k"] == cfg.hubness_k
    for key in cfg.methods:
        assert h[f"val-max-nk-{key}"] == int(result.occurrences[key].max())
        assert 0.0 <= h[f"val-antihubs-{key}"] <= 100.0
    assert set(k for k in h if k.startswith("val-demoted-")) == {
        f"val-demoted-{m}" for m in cfg.methods if m != "none"
    }
    # the synthetic data have no texts: the examples table says so
    assert list(result.examples.columns) == ["note"]


def test_released_run_and_headlines(cfg):
    result = released.run(cfg)
    h = released.headlines(result)
    modes = result.modes
    assert list(modes.index) == ["synthetic: tiny"]
    shares = modes[["gated_both_pct", "gated_one_pct", "gated_neither_pct"]].sum(axis=1)
    assert shares.iloc[0] == pytest.approx(100.0)
    assert h["val-max-r1-gap"] == pytest.approx(
        float((modes["r1_principled"] - modes["r1_faithful"]).max())
    )
    assert h["val-n-small"] == result.n_small <= cfg.n_examples
    assert h["txt-d2-error"].startswith("NameError")
    assert h["val-d5-released-beta20"] > 0.0  # the released code overflows at beta 20
    assert list(result.defects["defect"]) == ["D1", "D2", "D3", "D4", "D5", "D8"]


def test_faithful_vs_principled_gates_are_the_estimators(cfg):
    data = X.load_data(cfg)["synthetic: tiny"]
    mats = X.prepare(data, cfg)
    test = mats[("test", "query_to_gallery")]
    out = released.faithful_vs_principled(mats, cfg)
    hyper = {k[6:]: v for k, v in out.items() if k.startswith("param_")}
    gq, gg = X.estimator("dualdis", test, cfg, hyper).gates(test.sims)
    assert out["gated_neither_pct"] == pytest.approx(
        100 * float((~gq & ~gg).float().mean())
    )
    # the query gate is DIS's: a naive top-1 in the union of the bank rows' top-k
    assert 100 * float(gq.float().mean()) == pytest.approx(
        _naive_gated_pct(test, cfg.k)
    )


def test_comparison_run_and_headlines(cfg):
    result = comparison.run(
        dataclasses.replace(cfg, methods=("none", "is", "dis", "dualis", "dualdis"))
    )
    h = comparison.headlines(result)
    pub = published.load_published("dbnorm")
    assert h["val-n-published"] == len(pub)
    assert h["val-n-dbnorm"] == int((pub.table == "dbnorm-main").sum())
    assert [k for k in h if k.startswith("txt-claim")] == [
        f"txt-claim{i}-published" for i in range(1, len(published.CLAIMS) + 1)
    ]  # fmt: skip
    # on ours, every claim is a verdict from an interval, never a "k of n" count
    assert h["val-n-datasets"] == 1 and h["txt-datasets"] == result.decided.datasets[0]
    assert h["txt-verdict-dualis-beats-is"] in inference.VERDICTS
    assert h["txt-verdict-published-numbers"] == "needs data we cannot ship"
    assert "txt-interval-published-numbers" not in h
    # embedded data: no published row is filled
    assert set(result.side["reproduced"]) == {"needs your data"}
    wide = comparison.side_wide(result.side)
    assert list(wide.index) == list(
        dict.fromkeys(result.side.setting)
    )  # one row per setting
    first = result.side.iloc[0]
    assert wide.loc[first.setting, first.method] == float(first.published)
    assert wide.loc["MSCOCO 5k CLIP", "source (confidence)"] == "SEC-A, SEC-B (medium)"
    # a setting reproduced from the reader's data gets its own row
    side = result.side.copy()
    side.loc[side.setting == first.setting, "reproduced"] = "12.50"
    both = comparison.side_wide(side)
    assert both.loc[f"{first.setting}, reproduced", first.method] == 12.5
    assert len(both) == len(wide) + 1
    assert h["val-mismatch-max"] == pytest.approx(
        float(result.mismatch["difference"].abs().max())
    )


def test_gate_share_with_ties_goes_to_the_lowest_index():
    """The activation set and the gate break ties towards the lowest gallery index."""
    sims = torch.tensor([[0.5, 0.5, 0.1], [0.2, 0.9, 0.9]])
    bank = torch.tensor([[0.3, 0.3, 0.0]])  # row top-1 tie: item 0 is active
    m = X.Matrices(sims, bank, None, None, "query_to_gallery")
    cfg = X.DBNormConfig(methods=("dis",), k=1)
    gate = X.estimator("dis", m, cfg, {"beta_query": 10.0}).gate(sims)
    assert gate.tolist() == [
        True,
        False,
    ]  # query 0's top-1 is item 0; query 1's is item 1
