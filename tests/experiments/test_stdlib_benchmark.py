"""Tests of hubrepro.experiments.stdlib_benchmark (notebook 30's driver): baselines
against naive loops, split sizes, example pairs."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch

from hubrepro import config
from hubrepro.datasets import PairedData, SimilarityData, make_synthetic
from hubrepro.experiments import stdlib_benchmark as report

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    """Every figure a test draws is closed after it (pyplot keeps them otherwise)."""
    yield
    plt.close("all")


def _naive_r1_and_skew(
    sims: torch.Tensor, gt: torch.Tensor, k: int
) -> tuple[float, float]:
    hits = 0
    n_k = [0] * sims.shape[1]
    for i in range(sims.shape[0]):
        row = sims[i].tolist()
        best = max(range(len(row)), key=lambda j: row[j])
        hits += best == int(gt[i])
        for j in sorted(range(len(row)), key=lambda j: -row[j])[:k]:
            n_k[j] += 1
    x = torch.tensor(n_k, dtype=torch.float64)
    z = (x - x.mean()) / x.std(unbiased=False)
    return 100.0 * hits / sims.shape[0], float((z**3).mean())


def test_baseline_table_matches_naive_loops():
    d = make_synthetic(
        seed=0,
        n_gallery=40,
        n_bank_gallery=10,
        dim=16,
        n_concepts=6,
        captions_per_item=2,
    )
    sims = d.sims()
    table = report.baseline_table(
        {"syn": d, "mat": SimilarityData(sims, query_to_gallery=d.query_to_gallery)},
        k=3,
    )
    r1, skew = _naive_r1_and_skew(sims, d.query_to_gallery, 3)
    for label in ("syn", "mat"):
        assert table.loc[label, "R@1"] == pytest.approx(r1)
        assert table.loc[label, "skewness"] == pytest.approx(skew, rel=1e-5)
        assert table.loc[label, "n_query"] == 80 and table.loc[label, "n_gallery"] == 40
    assert table.loc["syn", "n_bank"] == 20
    assert table.loc["syn", "gap_norm"] == pytest.approx(
        float((d.query.mean(0) - d.gallery.mean(0)).norm())
    )
    assert table["gap_norm"].isna().tolist() == [False, True]


def test_baseline_table_uses_the_query_mask():
    sims = torch.eye(3)
    sims[2] = torch.tensor([1.0, 0.0, 0.0])  # query 2 is wrong
    masked = SimilarityData(sims, query_mask=torch.tensor([True, True, False]))
    assert report.baseline_table({"m": masked}, k=1).loc["m", "R@1"] == pytest.approx(
        100.0
    )
    assert report.baseline_table({"u": SimilarityData(sims)}, k=1).loc[
        "u", "R@1"
    ] == pytest.approx(200 / 3)
    with pytest.raises(TypeError, match="PairedData or SimilarityData"):
        report.baseline_table({"x": sims})


def test_split_sizes_adds_up():
    pairs = [
        {"query": f"q{i % 7}", "code": f"c{i}", "module": f"m{i % 5}.x"}
        for i in range(40)
    ]
    sizes = report.split_sizes(pairs, ["random", "by-module"], seed=1, n_test=10)
    assert (sizes["n_test"] + sizes["n_bank"] + sizes["n_dropped"] == 40).all()
    assert (sizes["n_test"] == 10).all()
    assert (
        sizes.loc["by-module", "test_modules"] + sizes.loc["by-module", "bank_modules"]
        <= 5
    )


def test_example_pairs_ranks():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    d = PairedData(
        "t",
        q,
        g,
        query_text=("a", "b", "c"),
        gallery_text=("def a", "def b", "def c():\n  x"),
    )
    ex = report.example_pairs(d, 3, seed=0)
    assert ex["rank"].tolist() == [1, 1, 3]  # query c's code is the least similar
    assert ex["top hit"].tolist()[2] == "def a"
    with pytest.raises(TypeError, match="query_text"):
        report.example_pairs(PairedData("t", q, g), 1)


def test_nk_histograms_one_panel_per_dataset():
    d = make_synthetic(seed=0, n_gallery=30, n_bank_gallery=5, dim=8, n_concepts=4)
    fig = report.plot_nk_histograms({"a": d, "b": d}, k=3)
    assert len(fig.axes) == 2


def test_notebook_config_comes_from_params():
    cfg = config.from_params(
        report.StdlibBenchmarkConfig, {"protocols": ["random"], "n_query": 10}
    )
    assert cfg.protocols == ("random",)
    with pytest.raises(TypeError, match="StdlibBenchmarkConfig"):
        report.run({"protocols": ["random"]})


def test_run_and_headlines_on_the_synthetic_dataset():
    cfg = report.StdlibBenchmarkConfig(dataset="synthetic", k=5, n_examples=2)
    result = report.run(cfg)
    assert list(result.data) == ["synthetic"] and result.examples is None
    heads = report.headlines(result)
    assert heads["val-n-pairs"] == result.n_pairs > 1000
    assert heads["val-n-bank-random"] == int(result.sizes.loc["random", "n_bank"])
    row = result.baseline.loc["synthetic"]
    assert heads["val-r1-synthetic"] == float(row["R@1"])
    assert heads["val-n-query-synthetic"] == float(row["n_query"])
