"""hubrepro.profiling: timing, peak memory and the notebook-45 cost sweep."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from hubrepro.profiling import measure, median_run, rss_bytes, run_child


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


def test_run_child_reports_the_childs_own_peak_not_the_parents():
    if rss_bytes() == 0:
        pytest.skip("no /proc on this platform")
    ballast = torch.ones(128 * 2**20 // 4)  # this process holds 128 MiB more
    ballast.add_(1)
    small = run_child([sys.executable, "-c", "pass"])
    big = run_child(
        [
            sys.executable,
            "-c",
            "b = bytearray(96 * 2**20); b[::4096] = b'x' * len(b[::4096])",
        ]
    )
    assert small.returncode == 0 and big.returncode == 0
    assert small.peak_rss_bytes < 64 * 2**20  # a bare interpreter, not this process
    assert big.peak_rss_bytes - small.peak_rss_bytes >= 90 * 2**20
    assert small.wall_s > 0
    del ballast


def test_run_child_address_space_cap_turns_a_large_allocation_into_memory_error():
    code = "import numpy as np\nnp.ones(2**31)"  # 16 GiB
    r = run_child([sys.executable, "-c", code], address_space_limit=2 * 2**30)
    assert r.returncode == 1 and "MemoryError" in r.stderr


def test_run_child_exit_status_output_and_median():
    r = run_child([sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"])
    assert r.returncode == 3 and r.stdout.strip() == "hi"
    with pytest.raises(RuntimeError, match="exit status 3"):
        median_run([r])
    ok = [run_child([sys.executable, "-c", "pass"]) for _ in range(3)]
    m = median_run(ok)
    assert m["runs"] == 3 and m["wall_s"] > 0 and m["peak_rss_bytes"] > 0
