"""Tests of hubrepro.experiments.synthetic_generator (notebook 31's driver)."""

from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import pytest

from hubrepro import config
from hubrepro.experiments import synthetic_generator as sg

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    """Every figure a test draws is closed after it (pyplot keeps them otherwise)."""
    yield
    plt.close("all")


def test_knob_sweep_and_plots():
    frame = sg.knob_sweep(
        {"gap": [0.2, 0.6], "dim": [8]}, base={"n_gallery": 30, "n_concepts": 4}, k=3
    )
    assert frame["knob"].tolist() == ["gap", "gap", "dim"]
    assert frame.loc[frame.knob == "gap", "gap_norm"].tolist() == pytest.approx(
        [0.2, 0.6], abs=1e-3
    )
    fig = sg.plot_knob_sweep(frame)
    assert len(fig.axes) == 2 * 4


def test_notebook_config_grid():
    sweep = config.from_params(
        sg.SyntheticSweepConfig, {"dims": [8], "gaps": [], "zipfs": [0, 1.5]}
    )
    assert sweep.grid()["dim"] == [8] and "gap" not in sweep.grid()
    with pytest.raises(ValueError, match="unknown"):
        config.from_params(sg.SyntheticSweepConfig, {"dimz": [8]})


def test_run_and_headlines_first_and_last_of_each_knob():
    cfg = sg.SyntheticSweepConfig(
        n_gallery=40,
        k=3,
        dims=(8, 16),
        noises=(),
        gaps=(0.2, 0.6),
        cones=(),
        zipfs=(),
        captions=(),
    )
    result = sg.run(cfg)
    assert list(result.default.index) == ["synthetic (defaults)"]
    heads = sg.headlines(result)
    assert heads["val-gap-first"] == 0.2 and heads["val-gap-last"] == 0.6
    assert heads["val-dim-first"] == 8.0 and heads["val-dim-last"] == 16.0
    assert heads["val-r1-gap-last"] == float(result.sweep["R@1"].iloc[-1])
    assert heads["val-default-r1"] == float(result.default["R@1"].iloc[0])
    # a knob the sweep leaves out gives NaN, so every glue key exists for every set
    assert math.isnan(heads["val-noise-first"]) and math.isnan(
        heads["val-cos-cone-last"]
    )
