"""The DBNorm driver: plain metrics for "none", tuning on the bank split only, scores = the library's."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hubrepro.datasets import SimilarityData, load_dataset
from hubrepro.experiments import dbnorm as X
from hubrepro.normalize import normalize
from hubrepro.retrieval import evaluate_retrieval

GRID = dict(
    beta_query_grid=(5.0, 20.0), beta_gallery_grid=(5.0, 20.0), alpha_grid=(0.5, 1.0)
)


@pytest.fixture(scope="module")
def data():
    return load_dataset(
        "synthetic", seed=3, n_gallery=60, n_bank_gallery=160, dim=16, n_concepts=20
    )


@pytest.fixture(scope="module")
def cfg():
    return X.DBNormConfig(dataset="synthetic", n_val=40, methods=("none", "is", "dis", "dualis", "dualdis",
                          "dualdis-faithful", "csls", "nnn"), **GRID)  # fmt: skip


@pytest.fixture(scope="module")
def mats(data, cfg):
    return X.prepare(data, cfg)


def test_none_reproduces_plain_metrics(data, mats, cfg):
    plain = evaluate_retrieval(data.sims(), data.query_to_gallery)
    for direction in X.DIRECTIONS:
        got = X.evaluate_method("none", mats[("test", direction)], cfg, hubness=False)
        for key in ("R@1", "R@5", "R@10", "MdR", "MnR"):
            assert got[key] == pytest.approx(float(plain[direction][key]))
        # one direction's sum, not evaluate_retrieval's two-direction Rsum
        assert got[X.RECALL_SUM] == pytest.approx(
            sum(float(plain[direction][f"R@{k}"]) for k in (1, 5, 10))
        )
        assert "Rsum" not in got


def test_validation_split_is_carved_from_the_bank(data, mats, cfg):
    val, test = mats[("val", "query_to_gallery")], mats[("test", "query_to_gallery")]
    n_bank = data.bank_gallery.shape[0]
    assert val.sims.shape[1] == cfg.n_val
    assert test.sims.shape == data.sims().shape  # the test split is untouched
    assert test.bank_gallery_sims.shape[0] == n_bank - cfg.n_val
    assert val.bank_gallery_sims.shape[0] == n_bank - cfg.n_val
    # no validation gallery item is in the test gallery or the remaining bank: its
    # embedding's best cosine with those sets is below 1
    v_split, rest = data.split_bank(cfg.n_val, seed=cfg.seed)
    for other in (data.gallery, rest.bank_gallery):
        cos = v_split.gallery @ other.T
        assert float(cos.max()) < 1 - 1e-6


def test_tuned_beta_comes_from_the_grid_and_is_the_validation_argmax(mats, cfg):
    val = mats[("val", "query_to_gallery")]
    best, grid = X.tune_method("dualis", val, cfg)
    assert (
        best["beta_query"] in cfg.beta_query_grid
        and best["beta_gallery"] in cfg.beta_gallery_grid
    )
    assert len(grid) == len(cfg.beta_query_grid) * len(cfg.beta_gallery_grid)
    # naive re-evaluation of every grid point on validation
    scores = {}
    for bq in cfg.beta_query_grid:
        for bg in cfg.beta_gallery_grid:
            s = normalize(
                "dualis",
                val.sims,
                bank_query_sims=val.bank_query_sims,
                bank_gallery_sims=val.bank_gallery_sims,
                beta_query=bq,
                beta_gallery=bg,
            )
            scores[(bq, bg)] = float(
                evaluate_retrieval(s, val.query_to_gallery)["query_to_gallery"]["R@1"]
            )
    top = max(scores.values())
    first = next(k for k, v in scores.items() if v == top)
    assert (best["beta_query"], best["beta_gallery"]) == first


def test_faithful_uses_principled_betas(mats, cfg):
    val = mats[("val", "query_to_gallery")]
    assert (
        X.tune_method("dualdis-faithful", val, cfg)[0]
        == X.tune_method("dualdis", val, cfg)[0]
    )


@pytest.fixture(scope="module")
def cfg_all(cfg):
    return dataclasses.replace(cfg, methods=X.METHOD_KEYS, k=2, csls_k=5, nnn_k=20)


@pytest.fixture(scope="module")
def mats_all(data, cfg_all):
    return X.prepare(data, cfg_all)  # with DBSN's bank-query x bank-gallery matrix


_HYPER = {"beta_query": 7.0, "beta_gallery": 3.0, "alpha": 0.6}


@pytest.mark.parametrize("key", X.METHOD_KEYS)
@pytest.mark.parametrize("direction", X.DIRECTIONS)
def test_scores_are_the_estimators_own(key, direction, mats_all, cfg_all):
    """Every variant's scores are exactly those of the library's estimator."""
    m = mats_all[("test", direction)]
    name, fixed, tuned = X.method_spec(key, cfg_all)
    hyper = {t: _HYPER[t] for t in tuned}
    cross = {"bank_cross_sims": m.bank_cross_sims} if name == "dbsn" else {}
    direct = normalize(name, m.sims, bank_query_sims=m.bank_query_sims,
                       bank_gallery_sims=m.bank_gallery_sims, **cross, **fixed, **hyper)  # fmt: skip
    assert torch.equal(X.normalise(key, m, cfg_all, hyper), direct)
    # a second call reuses the fitted estimator and gives the same scores
    if name != "none":
        est = X.estimator(key, m, cfg_all, hyper)
        assert X.estimator(key, m, cfg_all, hyper) is est
        assert est.get_params() == {**est.get_params(), **fixed, **hyper}
    assert torch.equal(X.normalise(key, m, cfg_all, hyper), direct)


def test_config_neighbourhoods_reach_the_estimators(mats_all, cfg_all):
    m = mats_all[("test", "query_to_gallery")]
    hyper = {"beta_query": 5.0, "beta_gallery": 5.0}
    assert X.estimator("dis-g", m, cfg_all, {"beta_gallery": 5.0}).k == cfg_all.k
    assert X.estimator("dualdis-faithful", m, cfg_all, hyper).k == cfg_all.k
    assert X.estimator("csls", m, cfg_all).k == cfg_all.csls_k
    assert X.estimator("nnn", m, cfg_all, {"alpha": 0.5}).k == cfg_all.nnn_k
    # unset nnn_k: NNN's default neighbourhood (256) capped at the query bank
    cfg = dataclasses.replace(cfg_all, nnn_k=None)
    assert X.estimator("nnn", m, cfg, {"alpha": 0.5}).k == m.bank_query_sims.shape[0]


def test_logit_scaled_betas_reach_the_estimator_divided(data):
    sd = SimilarityData(sims=data.sims() * 100, bank_query_sims=data.bank_query_sims() * 100,
                        query_to_gallery=data.query_to_gallery, scale="logit")  # fmt: skip
    cfg = X.DBNormConfig(dataset="synthetic", methods=("is",), logit_scale=100.0)
    m = X.prepare(sd, cfg)[("test", "query_to_gallery")]
    assert X.estimator("is", m, cfg, {"beta_query": 20.0}).beta_query == pytest.approx(
        0.2
    )


def test_gallery_to_query_matches_the_library_direction_switch(data, mats, cfg):
    m = mats[("test", "gallery_to_query")]
    ours = X.normalise("dualis", m, cfg, {"beta_query": 5.0, "beta_gallery": 5.0})
    # the driver's banks are those of `rest`, so compare with the same banks
    _, rest = data.split_bank(cfg.n_val, seed=cfg.seed)
    lib = normalize("dualis", rest.sims(), direction="gallery_to_query",
                    bank_query_sims=rest.bank_gallery @ rest.query.T, bank_gallery_sims=rest.bank_query @ rest.query.T,
                    beta_query=5.0, beta_gallery=5.0)  # fmt: skip
    torch.testing.assert_close(ours.T, lib, atol=1e-5, rtol=1e-5)


def test_run_main_table(data, mats, cfg):
    res = X.run_main(data, cfg, name="toy", prepared=mats)
    t = res.table
    assert len(t) == len(cfg.methods) * len(cfg.directions)
    assert set(t["direction"]) == set(X.DIRECTIONS)
    assert t[["R@1", "R@5", "R@10"]].apply(lambda c: c.between(0, 100)).all().all()
    assert (t["R@1"] <= t["R@5"]).all() and (t["R@5"] <= t["R@10"]).all()
    assert (t.loc[t.method == "none", "tuned"] == False).all()  # noqa: E712
    assert (t.loc[t.method == "dualis", "tuned"]).all()
    assert "hub_skewness" in t.columns and "hub_antihub_rate" in t.columns
    assert set(res.tuning["method"]) == {"is", "dis", "dualis", "dualdis", "nnn"}
    disp = X.main_table(res)
    assert disp.index.nlevels == 3


def test_similarity_data_runs_query_to_gallery_with_fixed_betas(data):
    sd = SimilarityData(sims=data.sims() * 100, bank_query_sims=data.bank_query_sims() * 100,
                        bank_gallery_sims=data.bank_gallery_sims() * 100,
                        query_to_gallery=data.query_to_gallery, scale="logit")  # fmt: skip
    cfg = X.DBNormConfig(
        dataset="synthetic",
        methods=("none", "is", "dualis"),
        beta_query=20.0,
        beta_gallery=10.0,
    )
    res = X.run_main(sd, cfg)
    assert set(res.table["direction"]) == {"query_to_gallery"}
    assert not res.table["tuned"].any()
    dual = res.table.set_index("method").loc["dualis"]
    assert dual["param_beta_query"] == 20.0
    # betas are on the cosine scale: on logit matrices they are divided by logit_scale,
    # so the ranking equals the cosine-scale DualIS
    cos = normalize(
        "dualis",
        data.sims(),
        bank_query_sims=data.bank_query_sims(),
        bank_gallery_sims=data.bank_gallery_sims(),
        beta_query=20.0,
        beta_gallery=10.0,
    )
    r1 = float(
        evaluate_retrieval(cos, data.query_to_gallery)["query_to_gallery"]["R@1"]
    )
    assert dual["R@1"] == pytest.approx(r1)


def test_ablations_shapes_and_consistency(data, mats, cfg):
    heat = X.beta_grid(mats[("test", "query_to_gallery")], cfg)
    assert heat.shape == (2, 2)
    one = X.evaluate_method(
        "dualis",
        mats[("test", "query_to_gallery")],
        cfg,
        {"beta_query": 20.0, "beta_gallery": 5.0},
        hubness=False,
    )
    assert heat.loc[20.0, 5.0] == pytest.approx(one["R@1"])
    size = X.ablate_bank_size(mats, cfg, fractions=(0.5, 1.0), methods=("is",))
    assert len(size) == 6
    full = size[(size.fraction == 1.0)]
    assert (
        full["R@1"].nunique() == 1
    )  # the full bank does not depend on which side "varied"
    half = size[(size.fraction == 0.5) & (size.varied == "query")]
    assert int(half["n_bank_query"].iloc[0]) == round(
        0.5 * mats[("test", "query_to_gallery")].bank_query_sims.shape[0]
    )
    choice = X.ablate_bank_choice(mats, cfg)
    assert set(choice["banks"]) == {"none", "query bank", "gallery bank", "both banks"}
    agg = X.ablate_aggregation(mats, cfg)
    assert list(agg["method"]) == ["dualis", "dualis-sum"]
    ks = X.ablate_k(mats, cfg, ks=(1, 60), methods=("dis",))
    # with k = n_gallery every item is active, so every query is gated and DIS = IS
    assert ks.set_index("k").loc[60, "gated_pct"] == 100.0
    is_r1 = X.evaluate_method(
        "is",
        mats[("test", "query_to_gallery")],
        cfg,
        X.tune_method("dis", mats[("val", "query_to_gallery")], cfg)[0],
    )["R@1"]
    assert ks.set_index("k").loc[60, "R@1"] == pytest.approx(is_r1)


def test_occurrences_and_hub_changes(mats, cfg):
    occ = X.occurrence_table(mats, cfg, methods=("none", "dualis"))
    n_query = mats[("test", "query_to_gallery")].sims.shape[0]
    assert (
        occ.sum(axis=0) == cfg.hubness_k * n_query
    ).all()  # every query retrieves k items
    hubs = X.hub_changes(occ, top=5)
    assert list(hubs["none"]) == sorted(occ["none"], reverse=True)[:5]
    assert 0.0 <= hubs.attrs["demoted"]["dualis"] <= 1.0


def test_retrieval_examples_need_text(data, mats, cfg):
    with pytest.raises(ValueError, match="query_text"):
        X.retrieval_examples(data, mats, cfg)


def test_bad_config_values():
    with pytest.raises(ValueError, match="data_dir"):
        X.DBNormConfig(dataset="user")
    with pytest.raises(ValueError, match="methods"):
        X.DBNormConfig(methods=("magic",))
    with pytest.raises(ValueError, match="beta_query_grid"):
        X.DBNormConfig(beta_query_grid=())
    with pytest.raises(ValueError, match="tune_metric"):
        X.DBNormConfig(tune_metric="accuracy")


def test_similarity_data_refuses_reverse_direction(data):
    sd = SimilarityData(sims=data.sims(), query_to_gallery=data.query_to_gallery)
    with pytest.raises(ValueError, match="direction"):
        X.direction_matrices(sd, "gallery_to_query")


def test_inputs_not_mutated(data, cfg):
    before = [
        t.clone()
        for t in (data.query, data.gallery, data.bank_query, data.bank_gallery)
    ]
    X.run_main(data, dataclasses.replace(cfg, methods=("dualdis", "dualdis-faithful")))
    for b, a in zip(
        before,
        (data.query, data.gallery, data.bank_query, data.bank_gallery),
        strict=True,
    ):
        assert torch.equal(a, b)


def test_shift_headlines_keys():
    import pandas as pd

    shift = pd.DataFrame({"bank": ["stdlib random", "stdlib random", "synthetic shift 0", "synthetic shift 1"],
                          "method": ["none", "is", "is", "is"], "delta_R@1": [0.0, 1.5, 2.0, -3.0]})  # fmt: skip
    h = X.shift_headlines(shift)
    assert h == {"val-shift-max": 1.0, "val-delta-is-random": 1.5, "val-delta-is-shift-none": 2.0,
                 "val-delta-is-shift-max": -3.0}  # fmt: skip


def test_headlines_from_a_table():
    import pandas as pd

    t = pd.DataFrame({"dataset": ["d1"] * 3 + ["d2"] * 2, "direction": ["query_to_gallery"] * 5,
                      "method": ["none", "is", "dualis", "none", "dualis"], "R@1": [10.0, 12.0, 11.0, 5.0, 9.0],
                      X.RECALL_SUM: [1.0] * 5, "hub_skewness": [2.0, 1.0, 1.5, 3.0, 1.0]})  # fmt: skip
    h = X.headlines(t)
    assert (
        h["txt-dataset"] == "d1"
        and h["val-r1-is"] == 12.0
        and h["txt-best-method"] == X.method_label("is")
    )
    assert h["val-dualis-gain-min"] == 1.0 and h["val-dualis-gain-max"] == 4.0
    assert h["val-n-datasets"] == 2
