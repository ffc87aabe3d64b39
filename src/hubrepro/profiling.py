"""Wall time and peak memory of a call, for cost plots and benchmarks.

On CPU, peak memory is measured with :mod:`tracemalloc`, which sees the
allocations of PyTorch's CPU allocator only where they go through Python's
allocator: it does **not** see tensor storage. This module therefore samples
the process's resident set size (RSS) in a background thread on CPU and
reports the peak increase over the RSS at the start; on CUDA it reports
``torch.cuda.max_memory_allocated`` after resetting the peak counter.

Book: :ref:`sec-normalisation`, section "Streaming design".
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from hubrepro._validation import check_int, fail

__all__ = ["Measurement", "measure", "rss_bytes"]


def rss_bytes() -> int:
    """Resident set size of this process in bytes (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass(frozen=True)
class Measurement:
    """Result of :func:`measure`: best wall time over repeats, peak extra bytes, last result."""

    seconds: float
    peak_bytes: int
    result: Any = None

    def __iter__(self):
        # allows `seconds, peak = measure(fn)`
        return iter((self.seconds, self.peak_bytes))


def measure(
    fn: Callable[[], Any],
    *,
    repeat: int = 1,
    device: str | torch.device = "cpu",
    interval: float = 0.002,
) -> Measurement:
    """Time ``fn()`` and measure the peak memory it allocates beyond what was in use before.

    Parameters
    ----------
    fn : callable
        Called with no arguments, ``repeat`` times.
    repeat : int, default 1
        The fastest wall time is reported; memory is the peak over all calls.
    device : str or torch.device, default "cpu"
        ``"cuda"``: synchronise around the call and read the CUDA allocator's peak;
        ``"cpu"``: sample the process RSS every ``interval`` seconds.
    interval : float, default 0.002
        RSS sampling period (CPU); allocations shorter than that may be missed.

    Returns
    -------
    Measurement
        ``(seconds, peak_bytes)`` unpackable, with ``result`` the last return value.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.profiling import measure
    >>> m = measure(lambda: torch.ones(1000, 1000).sum())
    >>> m.seconds > 0 and m.peak_bytes >= 0
    True
    """
    if not callable(fn):
        fail("measure", "fn", "callable", type(fn).__name__, exc=TypeError)
    check_int(repeat, "repeat", "measure", low=1)
    dev = torch.device(device)
    best, peak, result = float("inf"), 0, None
    for _ in range(repeat):
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            base = torch.cuda.memory_allocated(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            t0 = time.perf_counter()
            result = fn()
            torch.cuda.synchronize(dev)
            dt = time.perf_counter() - t0
            peak = max(peak, torch.cuda.max_memory_allocated(dev) - base)
        else:
            base = rss_bytes()
            top = [base]
            stop = threading.Event()

            def sample(top=top, stop=stop) -> None:
                while not stop.is_set():
                    top[0] = max(top[0], rss_bytes())
                    stop.wait(interval)

            th = threading.Thread(target=sample, daemon=True)
            th.start()
            t0 = time.perf_counter()
            try:
                result = fn()
            finally:
                dt = time.perf_counter() - t0
                stop.set()
                th.join()
            top[0] = max(top[0], rss_bytes())
            peak = max(peak, top[0] - base)
        best = min(best, dt)
    return Measurement(seconds=best, peak_bytes=int(peak), result=result)
