"""Tests of hubrepro.experiments.primer (notebook 10's driver)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from hubrepro.config import from_params
from hubrepro.experiments import primer


def test_toy_ranks_by_hand():
    toy = primer.toy_retrieval_example()
    q = toy["query_ranks"]
    # caption 3 ties its video with a wrong one; caption 5's row is fully tied
    assert q["optimistic"].tolist() == [0, 1, 0, 0, 1, 0]
    assert q["pessimistic"].tolist() == [0, 1, 0, 1, 1, 2]
    assert q["average"].tolist() == [0, 1, 0, 0.5, 1, 1]
    # video 2's only caption (0.5) is beaten by caption 4 (0.6)
    assert toy["gallery_ranks"]["average"].tolist() == [0, 0, 1]
    m = toy["metrics"]
    # caption 3's tie at the top (rank 0.5) misses R@1, as in QB-Norm's evaluator
    assert m.loc[("average", "query_to_gallery"), "R@1"] == pytest.approx(200 / 6)
    assert m.loc[("average", "query_to_gallery"), "R@2"] == pytest.approx(100.0)
    assert m.loc[("optimistic", "query_to_gallery"), "R@1"] == pytest.approx(400 / 6)
    assert m.loc[("pessimistic", "query_to_gallery"), "MdR"] == 2.0
    assert m.loc[("average", "gallery_to_query"), "MnR"] == pytest.approx(4 / 3)


def test_hubness_by_dimension_seeded_and_consistent():
    table, n_k = primer.hubness_by_dimension(
        [3, 40], n_query=120, n_gallery=80, k=5, seed=1
    )
    assert list(table.index) == [3, 40]
    for d in (3, 40):
        assert int(n_k[d].sum()) == 120 * 5
        assert table.loc[d, "max_occurrence"] == int(n_k[d].max())
    assert (table["mean_occurrence"] == 120 * 5 / 80).all()
    # a dimension's numbers do not depend on the other dimensions of the sweep
    alone, n_k_alone = primer.hubness_by_dimension(
        [40], n_query=120, n_gallery=80, k=5, seed=1
    )
    assert torch.equal(n_k_alone[40], n_k[40])
    assert alone.loc[40].equals(table.loc[40])
    other, _ = primer.hubness_by_dimension([40], n_query=120, n_gallery=80, k=5, seed=2)
    assert not other.loc[40].equals(table.loc[40])


def test_skewness_grows_with_dimension():
    # claim R1 in its cross-set cosine form, at a size where it is far from noise
    table, _ = primer.hubness_by_dimension([3, 200], n_query=1000, n_gallery=1000, k=10)
    assert table.loc[200, "skewness"] > table.loc[3, "skewness"] + 0.5


def test_config_validation():
    cfg = from_params(primer.PrimerConfig, {"dims": [3, 10], "dim": 10})
    assert cfg.dims == (3, 10)
    with pytest.raises(ValueError, match="one of `dims`"):
        primer.PrimerConfig(dims=(3, 10), dim=512)
    with pytest.raises(ValueError, match="at most n_gallery"):
        primer.PrimerConfig(n_gallery=5, k=10)
    with pytest.raises(ValueError, match="unknown"):
        from_params(primer.PrimerConfig, {"n": 3})
    with pytest.raises(ValueError, match="dims"):
        primer.PrimerConfig(dims=())


def test_skewness_variants_example():
    v = primer.skewness_variants_example((0, 5, 50))
    # the variant ignores anti-hubs; the standard skewness does not
    assert v["skewness_nonzero"].nunique() == 1
    assert v.loc[0, "skewness"] == pytest.approx(v.loc[0, "skewness_nonzero"])
    assert v["skewness"].nunique() == 3
    assert v.loc[50, "antihub_rate"] == pytest.approx(50 / 58)


def test_sweep_draws_with_the_one_sampler_and_seed_derivation():
    from hubrepro.hubness import k_occurrence_from_embeddings
    from hubrepro.simulate import derive_seed, sample

    _, n_k = primer.hubness_by_dimension([7], n_query=50, n_gallery=40, k=3, seed=4)
    g = torch.Generator().manual_seed(derive_seed(4, "primer", 7))
    q, gal = (sample("uniform", n, 7, generator=g) for n in (50, 40))
    assert torch.equal(n_k[7], k_occurrence_from_embeddings(q, gal, k=3))


def test_run_and_headlines():
    cfg = primer.PrimerConfig(n_query=200, n_gallery=150, dims=(3, 50), dim=50, k=5)
    result = primer.run(cfg)
    heads = primer.headlines(result)
    high, low = result.by_dimension.loc[50], result.by_dimension.loc[3]
    assert heads["val-skew-high"] == float(high["skewness"])
    assert heads["val-skew-low"] == float(low["skewness"])
    assert heads["val-antihub-pct-high"] == 100 * float(high["antihub_rate"])
    assert heads["val-d-low"] == 3 and heads["val-d-high"] == 50 and heads["val-k"] == 5
    # caption 3's tie at the top misses R@1 under the average policy, not the optimistic one
    assert heads["val-toy-r1-average"] == pytest.approx(200 / 6)
    assert heads["val-toy-r1-optimistic"] == pytest.approx(400 / 6)
    fig = primer.plot_nk_histograms(result)
    assert fig.axes
    plt.close(fig)
    # the book's table: statistics as rows (human names), one column per dimension
    t = primer.by_dimension_table(result)
    assert list(t.columns) == ["d = 3", "d = 50"] and "k" not in t.index
    assert t.loc["skewness of N_k", "d = 50"] == float(high["skewness"])
    with pytest.raises(TypeError, match="PrimerConfig"):
        primer.run({"dims": [3]})
