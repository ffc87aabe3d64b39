"""Tests of the theory notebooks' drivers (20, 21, 22) and their shared single-set grid.

The grids are checked on the claims they exist for, at toy scale (hubness grows with
dimension, the cosine caveat, the signs of T2), for seeding (a cell does not depend on
the rest of the grid), for their tidy columns and errors; each driver's ``run`` and
``headlines`` on a small configuration, against the frames they summarise.
"""

from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from hubrepro import inference as inf
from hubrepro import simulate as S
from hubrepro.config import from_params
from hubrepro.experiments import _theory
from hubrepro.experiments import hubness_vs_dimension as nb20
from hubrepro.experiments import hubs_both_modalities as nb22
from hubrepro.experiments import hubs_near_mean as nb21
from hubrepro.normalize.variants import variant_label

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    """Every figure a test draws is closed after it (pyplot keeps them otherwise)."""
    yield
    plt.close("all")


# --------------------------------------------------------------------------- the claims at toy scale


def _skew_by_dim(law, metric, dims, n=1000, replicates=2, seed=0):
    df = _theory.single_set_grid(
        [law], dims, n=n, metrics=[metric], replicates=replicates, seed=seed
    )
    sk = df[df.statistic == "skewness"].groupby("d")["value"].mean()
    return sk, df


def test_skewness_grows_with_dimension_for_iid_gaussian(seed):
    sk, df = _skew_by_dim("gaussian", "euclidean", [2, 20, 100], seed=seed)
    assert abs(sk[2]) < 0.8  # low d: near-symmetric N_k
    assert sk[2] < sk[20] < sk[100]
    assert sk[100] > 2.0
    rho = df[(df.statistic == "rho_centrality") & (df.d == 100)]["value"].mean()
    assert rho < -0.7  # R2: hubs sit near the mean


def test_cosine_caveat_centred_isotropic_has_no_hubness_but_uniform_has(seed):
    sk_gauss, _ = _skew_by_dim("gaussian", "cosine", [100], seed=seed)
    sk_unif, _ = _skew_by_dim("uniform", "cosine", [100], seed=seed)
    sk_cent, _ = _skew_by_dim("uniform", "cosine_centred", [100], seed=seed)
    assert sk_gauss[100] < 1.0 and sk_cent[100] < 1.0
    assert sk_unif[100] > 2.0


def test_two_modality_signs_follow_t2(seed):
    df = nb22.two_modality_grid(
        [0.0, 0.5],
        [0.0, 0.5],
        n=600,
        d=64,
        sigma=1.0,
        replicates=1,
        seed=seed,
        beta=None,
    )
    verdict, det = S.verdict_d1(df)
    det = det.set_index(["cone", "gap"])
    assert det.loc[(0.5, 0.0), "inside"]  # cone, no gap: hubs central to both banks
    # gap alone: query-side hubs are peripheral in the gallery
    assert det.loc[(0.0, 0.5), "rho_g"] < -0.3
    assert det.loc[(0.0, 0.5), "rho_q"] > 0.3
    assert verdict == "not supported"


def test_grid_cells_do_not_depend_on_the_rest_of_the_grid():
    grid = _theory.single_set_grid
    a = grid(["gaussian"], [3, 8], n=60, metrics=["euclidean"], replicates=1, seed=5)
    b = grid(
        ["uniform", "gaussian"], [8], n=60, metrics=["euclidean"], replicates=1, seed=5
    )
    pick = lambda f: f[(f.law == "gaussian") & (f.d == 8)].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(pick(a), pick(b))
    c = grid(["gaussian"], [8], n=60, metrics=["euclidean"], replicates=1, seed=6)
    assert not pick(a)["value"].equals(pick(c)["value"])


def test_tidy_columns_and_mixture_component_statistic():
    df = _theory.single_set_grid(
        ["mixture:components=3"],
        [10],
        n=200,
        ks=[5, 10],
        metrics=["euclidean"],
        replicates=1,
    )
    assert list(df.columns) == [
        "experiment",
        "law",
        "metric",
        "d",
        "k",
        "seed",
        "statistic",
        "value",
    ]
    assert set(df.k) == {5, 10}
    assert "rho_component_centrality" in set(df.statistic)
    # the statistics of one cell are those of the per-point frame of the same draw
    cell = df[(df.k == 5) & (df.statistic == "max_occurrence")]["value"].item()
    assert cell == float(cell) and cell >= 5


def test_grid_bad_arguments():
    grid = _theory.single_set_grid
    with pytest.raises(ValueError, match="`ks` must be at most n - 1"):
        grid(["gaussian"], [3], n=20, ks=[20])
    with pytest.raises(ValueError, match="`dims` must be at least the rank"):
        grid(["low_rank:rank=20"], [10], n=20)
    with pytest.raises(TypeError, match="`laws` must be a non-empty list"):
        grid([], [3])
    with pytest.raises(ValueError, match="`metrics` must be one of"):
        grid(["gaussian"], [3], n=20, metrics=["l1"])
    with pytest.raises(ValueError, match="`hub_fraction` must be in"):
        nb22.two_modality_grid([0.0], [0.0], n=20, d=4, hub_fraction=1.5)


# --------------------------------------------------------------------------- notebook 22's grids


def test_bank_benefit_uses_the_variant_vocabulary():
    df = nb22.bank_benefit_grid(
        [0.5],
        [0.0],
        n=120,
        d=16,
        replicates=1,
        bank_size=200,
        methods=["none", "is", "is-g", "dualis", "dualdis"],
    )
    r1 = df[df.statistic == "R@1"].set_index("method")["value"]
    assert list(r1.index) == ["none", "is", "is-g", "dualis", "dualdis"]
    assert ((r1 >= 0) & (r1 <= 100)).all()
    assert set(nb22.BANK_METHODS) >= {"none", "is", "is-g", "dualis", "csls"}
    assert (
        "dbsn" not in nb22.BANK_METHODS
    )  # it needs a bank-query x bank-gallery matrix
    with pytest.raises(ValueError, match="`methods` must be one of"):
        nb22.bank_benefit_grid([0.5], [0.0], n=20, d=4, methods=["is_q"])


def test_bank_benefit_is_the_normaliser_on_the_same_draw():
    from hubrepro.normalize import normalize_embeddings
    from hubrepro.retrieval import evaluate_retrieval

    df = nb22.bank_benefit_grid(
        [0.5],
        [0.5],
        n=80,
        d=16,
        replicates=1,
        bank_size=150,
        methods=["is-g"],
        beta=9.0,
    )
    g = (
        __import__("torch")
        .Generator()
        .manual_seed(S.derive_seed(0, "isotropic", "orthogonal", 0.5, 0.5, 16, 0))
    )
    w = S.sample_two_modality(80, 16, cone=0.5, gap=0.5, bank_size=150, generator=g)
    sims = normalize_embeddings(
        "is",
        w.query,
        w.gallery,
        bank_gallery=w.bank_gallery,
        bank="gallery",
        beta_gallery=9.0,
    )
    r1 = evaluate_retrieval(sims)["query_to_gallery"]["R@1"]
    assert df[df.statistic == "R@1"]["value"].item() == pytest.approx(float(r1))


def test_intrinsic_dimension_frame_has_both_curves():
    df = nb20.intrinsic_dimension_grid([2, 8], 8, n=80, replicates=1)
    assert set(df["law"]) == {"embedded in D = 8", "plain, d = m"}
    assert set(df["m"]) == {2, 8}
    with pytest.raises(ValueError, match="`ranks` must be at most embedding_dim"):
        nb20.intrinsic_dimension_grid([9], 8)


# --------------------------------------------------------------------------- drivers


def test_notebook_20_run_and_headlines():
    cfg = from_params(
        nb20.DimensionSweepConfig,
        {
            "laws": ["gaussian", "exponential"],
            "dims": [3, 30],
            "n": 120,
            "ks": [3, 5],
            "replicates": 2,
            "hist_dims": [3],
            "embedding_dim": 16,
            "intrinsic_ranks": [4, 16],
        },
    )
    result = nb20.run(cfg)
    heads = nb20.headlines(result)
    assert heads["val-k"] == 5 and heads["val-d-low"] == 3 and heads["val-d-high"] == 30
    assert heads["txt-r1-verdict"] in ("supported", "not supported")
    expected = S.summary_value(
        result.summary, law="gaussian", metric="cosine", d=30, k=5, statistic="skewness"
    )
    assert heads["val-skew-gaussian-cosine-high"] == expected
    assert math.isnan(heads["val-skew-uniform-euclidean-low"])  # not in this grid
    assert list(result.histograms) == ["gaussian, d = 3"]
    assert int(result.histograms["gaussian, d = 3"].sum()) == 120 * 5
    assert heads["val-intrinsic-span"] >= 0
    (r1,) = nb20.claims(result)
    assert r1.key == "th-r1" and r1.interval is not None and r1.interval.n == 2
    assert r1.verdict == inf.verdict(r1.interval, claim="greater")
    assert "d = 3 to 30" in r1.claim and "least favourable case: law" in r1.claim
    for fig in (
        nb20.plot_skewness(result),
        nb20.plot_nk_histograms(result),
        nb20.plot_intrinsic(result),
    ):
        assert fig.axes
    with pytest.raises(TypeError, match="DimensionSweepConfig"):
        nb20.run(nb21.HubsNearMeanConfig())


def test_notebook_21_run_and_headlines():
    cfg = nb21.HubsNearMeanConfig(
        laws=("gaussian", "mixture"),
        dims=(3, 20),
        metrics=("euclidean",),
        n=150,
        replicates=1,
        scatter_laws=("gaussian",),
        scatter_dims=(3,),
        heatmap_d=20,
    )
    result = nb21.run(cfg)
    heads = nb21.headlines(result)
    assert heads["txt-r2-cosine-verdict"] == "not computed"  # cosine not in the grid
    assert heads["txt-r4-verdict"] in ("supported", "not supported")
    expected = S.summary_value(
        result.summary,
        law="gaussian",
        metric="euclidean",
        d=20,
        k=10,
        statistic="rho_centrality",
    )
    assert heads["val-rho-gaussian-euclidean"] == expected
    assert math.isnan(heads["val-rho-uniform-euclidean"])
    assert list(result.items) == [("gaussian", "d = 3")]
    # one replicate: no interval, so no verdict either way
    assert [(c.key, c.verdict, c.interval) for c in nb21.claims(result)] == [
        ("th-r2", "inconclusive", None), ("th-r4", "inconclusive", None)]  # fmt: skip
    assert result.rho_table.shape == (2, 2)
    for fig in (
        nb21.plot_scatter(result),
        nb21.plot_rho(result),
        nb21.plot_centrality_heatmap(result),
    ):
        assert fig.axes


def test_notebook_22_run_headlines_and_labels():
    cfg = from_params(
        nb22.TwoModalityConfig,
        {
            "cones": [0.0, 0.5],
            "gaps": [0.0, 0.5],
            "n": 80,
            "d": 16,
            "latents": ["isotropic"],
            "replicates": 1,
            "bank_size": 120,
            "hub_fraction": 0.05,
            "scatter_worlds": [[0.5, 0.0]],
        },
    )
    assert cfg.scatter_worlds == ((0.5, 0.0),)
    result = nb22.run(cfg)
    heads = nb22.headlines(result)
    assert heads["val-total-cells"] == 4 == len(result.region)
    assert heads["val-t3-cells"] == 2  # the bank cone 0.5 at both gaps
    assert heads["val-bank-cone"] == 0.5 and heads["val-hub-percent"] == 5.0
    gain = result.gain.set_index(["method", "gap"])["mean"]
    assert heads["val-isg-gain-gapmax"] == gain[("is-g", 0.5)]
    assert heads["val-isq-gain-gapmax"] == gain[("is", 0.5)]
    (d1,) = nb22.claims(result)
    assert d1.key == "th-d1" and d1.verdict == "inconclusive"  # one replicate
    t3 = nb22.t3_table(result)
    assert {variant_label("dualis"), variant_label("is")} <= set(t3.columns)
    fig = nb22.plot_bank_benefit(result)
    # the legend sits below the panels (a figure legend), covering no line
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [variant_label(m) for m in ("is", "is-g", "dualis")]
    for fig in (
        nb22.plot_scatter(result),
        nb22.plot_hub_boxes(result),
        nb22.plot_gap_heatmap(result),
    ):
        assert fig.axes
    with pytest.raises(ValueError, match="`bank_methods` must be one of"):
        nb22.TwoModalityConfig(bank_methods=("none", "is_q"))
    with pytest.raises(ValueError, match="pairs"):
        nb22.TwoModalityConfig(scatter_worlds=((0.5, 0.0, 1.0),))


def test_plots_return_figures():
    df = _theory.single_set_grid(
        ["gaussian"], [3, 8], n=60, metrics=["euclidean"], replicates=2
    )
    summ = S.summarize(df[df.statistic == "skewness"])
    items = S.single_set_items(S.sample("gaussian", 60, 4, seed=0), k=3)
    figs = [
        _theory.plot_lines(summ),
        _theory.plot_histograms({"a": items["n_k"]}, k=3),
        _theory.plot_scatter_grid({("a", "b"): items}),
        _theory.plot_heatmap(
            pd.DataFrame([[0.5, -0.5], [0.2, 0.1]]), zero_contour=True
        ),
    ]
    for fig in figs:
        assert fig.axes
        plt.close(fig)


@pytest.mark.gpu
def test_cuda_grid_equals_cpu_grid():
    import numpy as np

    a = _theory.single_set_grid(["gaussian"], [16], n=200, replicates=1, device="cpu")
    b = _theory.single_set_grid(["gaussian"], [16], n=200, replicates=1, device="cuda")
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-4, atol=1e-4)


def test_many_panels_wrap_into_rows_of_three():
    import numpy as np

    from hubrepro.experiments._theory import panel_grid, plot_histograms

    fig, axes = panel_grid(8, 3.0, 2.5)
    assert len(axes) == 8 and len(fig.axes) == 9  # a 3 x 3 grid, the last cell hidden
    assert [a.get_subplotspec().colspan.start for a in axes[:4]] == [0, 1, 2, 0]
    assert not fig.axes[8].get_visible()
    width, height = fig.get_size_inches()
    assert width < 3 * height  # a grid, not a strip
    fig = plot_histograms({f"d={d}": np.arange(20) % (d + 1) for d in range(5)}, k=3)
    assert sum(a.get_visible() for a in fig.axes) == 5


def test_replicate_claim_is_decided_on_the_least_favourable_case():
    # two laws, three seeds; the values minus the null 0.5: law a +0.4 +-0.1, law b ~ +0.05
    frame = pd.DataFrame({
        "law": ["a"] * 3 + ["b"] * 3, "seed": [0, 1, 2] * 2,
        "value": [0.8, 0.9, 1.0, 0.5, 0.6, 0.55],
    })  # fmt: skip
    c = _theory.replicate_claim(frame, ["law"], null=0.5, claim="greater", text="x",
                                key="th-x", evidence="sec-theory")  # fmt: skip
    assert "least favourable case: law b" in c.claim
    # law b: differences 0, 0.1, 0.05 -> mean 0.05, sd 0.05, t(0.975, 2) = 4.303
    half = 4.302652729911275 * 0.05 / math.sqrt(3)
    assert c.interval.estimate == pytest.approx(0.05)
    assert (c.interval.low, c.interval.high) == pytest.approx(
        (0.05 - half, 0.05 + half)
    )
    assert c.verdict == "inconclusive"  # the interval covers 0
    # paired over a column: high minus low per seed
    paired = pd.DataFrame({"law": ["a"] * 6, "seed": [0, 1, 2] * 2, "d": [3] * 3 + [30] * 3,
                           "value": [0.1, 0.2, 0.3, 1.1, 1.3, 1.2]})  # fmt: skip
    c = _theory.replicate_claim(paired, ["law"], null=0.0, claim="greater", text="y",
                                key="th-y", evidence="sec-theory", paired_on=("d", 3, 30))  # fmt: skip
    assert c.interval.estimate == pytest.approx(1.0) and c.verdict == "supported"
