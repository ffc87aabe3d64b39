"""Tests of hubrepro.experiments.environment (notebook 70's driver)."""

from __future__ import annotations

import json

import pytest

from hubrepro.config import from_params
from hubrepro.experiments import environment as env


def test_environment_table_from_provenance():
    prov = {
        "python": "3.11.2",
        "platform": "Linux",
        "packages": {"torch": "2.13.0", "open_clip_torch": None},
        "torch_threads": 2,
        "cuda_available": False,
        "commit": "0123456789abcdef",
        "dirty": True,
    }
    df = env.environment_table(prov)
    rows = dict(zip(df.component, df.version, strict=True))
    assert rows["torch"] == "2.13.0" and rows["open_clip_torch"] == "not installed"
    assert rows["git commit"] == "0123456789ab (uncommitted changes)"
    assert rows["torch threads"] == "2" and rows["CUDA available"] == "False"
    with pytest.raises(TypeError, match="`prov` must be a mapping"):
        env.environment_table([1, 2])


def test_notebook_70_parameters_are_validated():
    cfg = from_params(env.EnvironmentConfig, {"params_set": "tiny", "seed": 3})
    assert cfg.params_set == "tiny" and cfg.seed == 3 and cfg.executed_dir == ""
    with pytest.raises(ValueError, match="params_sett"):
        from_params(env.EnvironmentConfig, {"params_sett": "tiny"})
    with pytest.raises(TypeError, match="EnvironmentConfig"):
        env.run({"params_set": "tiny"})


def test_run_reads_the_runners_timings_without_itself(tmp_path):
    (tmp_path / "timings-tiny.json").write_text(
        json.dumps({"10_a": 3.0, "20_b": 9.0, "70_environment": 0.5})
    )
    cfg = env.EnvironmentConfig(executed_dir=str(tmp_path), params_set="tiny")
    result = env.run(cfg)
    assert result.timings.notebook.tolist() == ["10_a", "20_b"]
    heads = env.headlines(result)
    assert heads["txt-params-set"] == "tiny"
    assert heads["val-n-timed"] == 2 and heads["val-total-seconds"] == 12.0
    assert heads["val-total-minutes"] == pytest.approx(0.2)
    assert heads["txt-slowest"] == "20_b" and heads["val-slowest-seconds"] == 9.0
    assert heads["txt-cuda"] in ("available", "not available")
    assert heads["txt-torch"] == result.provenance["packages"]["torch"]
    assert list(env.timings_table(result).index) == ["10_a", "20_b"]
    # no file yet (a first build): one placeholder row, no slowest notebook
    empty = env.run(env.EnvironmentConfig(executed_dir=str(tmp_path), params_set="x"))
    assert env.headlines(empty)["txt-slowest"] == "none"
    assert list(env.timings_table(empty).index) == ["(no timings recorded yet)"]
