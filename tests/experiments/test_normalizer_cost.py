"""Notebook 45's driver: the sweep (in-process time, child-process memory) and headlines."""

from __future__ import annotations

import json

import pytest

from hubrepro.experiments import normalizer_cost as nc

SMALL = dict(methods=("is", "dualdis", "gc"), bank_sizes=(40, 80), n_query=10,
             n_gallery=12, dim=8, repeat=1, sn_iter=1)  # fmt: skip


def test_sweep_rows_columns_and_child_memory_at_the_largest_bank():
    df = nc.sweep(nc.NormalizerCostConfig(**SMALL, child_memory="largest"))
    assert list(df.columns) == ["method", "bank_size", "seconds", "floor_seconds",
                                "ratio_to_floor", "peak_mib", "extra_mib"]  # fmt: skip
    assert len(df) == 6 and set(df.method) == {"is", "dualdis", "gc"}
    assert (df.seconds > 0).all() and (df.ratio_to_floor > 0).all()
    big, small = df[df.bank_size == 80], df[df.bank_size == 40]
    assert (big.peak_mib > 50).all() and (big.extra_mib >= 0).all()  # whole processes
    assert small.peak_mib.isna().all()


def test_each_method_is_measured_against_the_matmuls_of_the_banks_it_reads():
    # IS reads the query bank only; DualDIS both banks; DBSN the query bank and the
    # query-bank x gallery-bank matrix. A shared two-bank floor put IS "below" it.
    assert nc._banks("is") == ("query",)
    assert nc._banks("dualdis") == ("query", "gallery")
    assert nc._banks("dbsn") == ("query", "cross")
    df = nc.sweep(nc.NormalizerCostConfig(**{**SMALL, "methods": ("is", "dualdis")},
                                          child_memory="none"))  # fmt: skip
    for _, g in df.groupby("bank_size"):
        f = g.set_index("method").floor_seconds
        assert (
            f["dualdis"] > f["is"]
        )  # the same query-bank term plus the gallery bank's


def test_sweep_rejects_unknown_methods_and_modes():
    with pytest.raises(ValueError, match="`methods` must be names from"):
        nc.sweep(nc.NormalizerCostConfig(methods=("qbnorm",)))
    with pytest.raises(ValueError, match="child_memory"):
        nc.sweep(nc.NormalizerCostConfig(**SMALL, child_memory="some"))


def test_run_needs_the_benchmark_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="bench_normalize.py"):
        nc.run(
            nc.NormalizerCostConfig(**SMALL, bench_results=str(tmp_path / "no.json"))
        )


def test_headlines_read_the_sweep_and_every_benchmark_ratio(tmp_path):
    bench = {
        "ratios": {"dualis_speedup": 2.0, "dualis_memory": 0.1},
        "headline": {"dualis-mib": 300.0, "ten-x-cap-error": "MemoryError: x"},
        "machine": {"cpu_count": 2, "torch": "t", "numpy": "n", "load_before": 1.0},
        "created": "now",
        "race": [{"label": "a", "wall_s": 1.0, "peak_rss_bytes": 2**20}],
        "targets": [
            {
                "label": "x",
                "name": "dualis_speedup",
                "value": 2.0,
                "target": ">= 1.5",
                "met": True,
            }
        ],
    }
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bench))
    res = nc.run(
        nc.NormalizerCostConfig(**SMALL, child_memory="none", bench_results=str(path))
    )
    h = nc.headlines(res)
    assert h["val-largest-bank"] == 80 and h["val-bench-dualis-speedup"] == 2.0
    assert h["val-bench-dualis-mib"] == 300.0
    assert h["txt-bench-ten-x-cap-error"] == "MemoryError: x"
    assert h["txt-bench-dualis-speedup-verdict"] == "met"
    assert "2 CPU cores" in h["txt-bench-machine"]
    assert nc.table_ratios(res.bench).loc["x", "met"]
    assert nc.table_race(res.bench).loc["a", "peak RSS (MiB)"] == 1.0
