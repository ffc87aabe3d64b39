"""hubrepro.profiling: timing, peak memory and the notebook-45 cost sweep."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from hubrepro.profiling import (
    NormalizerCostConfig,
    measure,
    normalizer_cost_sweep,
    rss_bytes,
)


def test_measure_returns_time_peak_and_result():
    m = measure(lambda: torch.arange(10).sum().item(), repeat=3)
    seconds, peak = m
    assert seconds > 0 and peak >= 0 and m.result == 45


def test_measure_sees_a_large_touched_allocation():
    if rss_bytes() == 0:
        pytest.skip("no /proc on this platform")
    # A fresh interpreter: in a long test session an allocator that keeps freed pages
    # (some imported libraries bring one) can serve 64 MiB without the RSS growing.
    code = (
        "import time, torch\n"
        "from hubrepro.profiling import measure\n"
        "def alloc():\n"
        "    x = torch.ones(64 * 2**20 // 4)  # 64 MiB, written so that the pages are resident\n"
        "    x.add_(1)\n"
        "    time.sleep(0.2)  # well past the 2 ms sampling interval\n"
        "    return float(x[0])\n"
        "m = measure(alloc)\n"
        "print(m.peak_bytes, m.result)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak, result = proc.stdout.split()
    assert int(peak) >= 32 * 2**20
    assert float(result) == 2.0


def test_measure_rejects_bad_arguments():
    with pytest.raises(TypeError, match="`fn` must be callable"):
        measure(42)
    with pytest.raises(ValueError, match=r"`repeat` must be an integer in \[1, inf\]"):
        measure(lambda: None, repeat=0)


def test_cost_sweep_rows_and_columns():
    cfg = NormalizerCostConfig(
        methods=("is", "dualdis", "gc"),
        bank_sizes=(40, 80),
        n_query=10,
        n_gallery=12,
        dim=8,
        repeat=1,
        sn_iter=1,
    )
    df = normalizer_cost_sweep(cfg)
    assert list(df.columns) == [
        "method",
        "bank_size",
        "seconds",
        "peak_mib",
        "floor_seconds",
        "ratio_to_floor",
    ]
    assert (
        len(df) == 6
        and set(df.method) == {"is", "dualdis", "gc"}
        and set(df.bank_size) == {40, 80}
    )
    assert (df.seconds > 0).all() and (df.ratio_to_floor > 0).all()


def test_cost_sweep_rejects_unknown_methods():
    with pytest.raises(ValueError, match="`methods` must be names from"):
        normalizer_cost_sweep(NormalizerCostConfig(methods=("qbnorm",)))
