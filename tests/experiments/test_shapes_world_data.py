"""The driver of notebook 32: tables add up, headlines agree with the world."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from hubrepro.config import from_params
from hubrepro.experiments import shapes_world_data as swd

matplotlib.use("Agg")

TINY = dict(
    n_train=40,
    n_bank=10,
    n_val=10,
    n_test=50,
    zipfs=[0.0, 2.0],
    sweep_images=200,
    n_samples=4,
)


@pytest.fixture(scope="module")
def result() -> swd.ShapesWorldDataResult:
    return swd.run(from_params(swd.ShapesWorldDataConfig, TINY))


def test_headlines_agree_with_the_world(result):
    h = swd.headlines(result)
    w = result.world
    assert h["n-test"] == 50 and h["n-train"] == 40
    assert h["vocab-size"] == len(w.vocab)
    rel = w.test.relevance()
    per_caption = rel.sum(1).double()
    assert h["images-per-caption"] == pytest.approx(float(per_caption.mean()))
    assert h["oracle-r1"] == pytest.approx(100 * float((1 / per_caption).mean()))
    assert h["unique-captions"] == pytest.approx(
        100 * float((per_caption == 1).double().mean())
    )
    assert 0 < h["oracle-r1"] <= 100
    assert h["top-pair"] >= h["last-pair"]
    assert all(k.replace("-", "").isalnum() for k in h)  # usable in glue keys


def test_tables_add_up(result):
    assert list(result.sizes.index) == ["test", "val", "bank", "train"]
    assert result.sizes.loc["train", "captions"] == 40 * 5
    sums = result.attributes.groupby(["split", "attribute"])["share"].sum()
    assert sums.to_numpy() == pytest.approx(1.0)
    assert result.long_tail["prior"].sum() == pytest.approx(1.0)
    assert result.long_tail["train"].sum() == pytest.approx(1.0)
    assert len(result.relevance) == result.world.test.n_captions
    sweep = result.sweep
    assert list(sweep.index) == [0.0, 2.0]
    assert sweep.loc[2.0, "top-5 pair share"] > sweep.loc[0.0, "top-5 pair share"]
    assert sweep.loc[2.0, "images per caption"] > sweep.loc[0.0, "images per caption"]
    ex = result.examples
    fits = result.world.test.relevance()[: len(ex)].sum(1)
    assert torch.equal(torch.tensor(ex["test images it fits"].to_list()), fits)


def test_figures(result):
    import matplotlib.pyplot as plt

    for fig in (
        swd.plot_samples(result.world, n=4),
        swd.plot_long_tail(result.long_tail, 1.0),
        swd.plot_attributes(result.attributes),
        swd.plot_relevance(result.relevance),
    ):
        assert fig.axes
        plt.close(fig)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="n_samples"):
        swd.ShapesWorldDataConfig(n_test=10, n_samples=20)
    with pytest.raises(ValueError, match="zipf"):
        swd.ShapesWorldDataConfig(zipf=-1.0)
    with pytest.raises(TypeError, match="ShapesWorldDataConfig"):
        swd.run({"seed": 0})
