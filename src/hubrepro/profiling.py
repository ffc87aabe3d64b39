"""Wall time and peak memory of a call, for cost plots and benchmarks.

On CPU, peak memory is measured with ``tracemalloc``, which sees the
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

__all__ = [
    "Measurement",
    "measure",
    "rss_bytes",
    "NormalizerCostConfig",
    "normalizer_cost_sweep",
]


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
    gc.collect()  # once: a full collection can take longer than the call being timed
    for _ in range(repeat):
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


@dataclass(frozen=True)
class NormalizerCostConfig:
    """Parameters of notebook 45 (cost of each normaliser against the bank size)."""

    methods: tuple[str, ...] = (
        "is",
        "dis",
        "csls",
        "gc",
        "dualis",
        "dualdis",
        "sn",
        "dbsn",
        "nnn",
    )
    bank_sizes: tuple[int, ...] = (
        1000,
        4000,
        16000,
    )  # query-bank sizes M_q (gallery bank M_q / 4)
    n_query: int = 1000  # test queries
    n_gallery: int = 1000  # test gallery
    dim: int = 128  # embedding dimension
    chunk_size: int = 4096  # bank rows per chunk
    repeat: int = 1  # best of `repeat` timings
    sn_iter: int = 3  # Sinkhorn iterations (SN, DBSN)
    seed: int = 0
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/45_normalizer_cost"
    bench_results: str = "../benchmarks/results/bench_normalize.json"


def normalizer_cost_sweep(cfg: NormalizerCostConfig) -> Any:
    """Time and peak extra memory of every method from embeddings, for each bank size.

    Random unit embeddings (the cost does not depend on the data); the gallery
    bank has a quarter of the query bank's size. Each row also carries the time
    of the bare bank matmuls (the floor) and the ratio to it.

    Returns
    -------
    pandas.DataFrame
        Columns ``method, bank_size, seconds, peak_mib, floor_seconds, ratio_to_floor``.

    Book: :ref:`sec-normalisation`, section "Streaming design".
    """
    import pandas as pd

    from hubrepro._compat import resolve_device
    from hubrepro.normalize import METHODS, normalize_embeddings

    func = "normalizer_cost_sweep"
    for m in cfg.methods:
        if m not in METHODS:
            fail(func, "methods", f"names from {sorted(METHODS)}", repr(m))
    for b in cfg.bank_sizes:
        check_int(b, "bank_sizes", func, low=4)
    dev = resolve_device(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)

    def unit(n: int) -> torch.Tensor:
        x = torch.randn(n, cfg.dim, generator=gen)
        return (x / x.norm(dim=1, keepdim=True)).to(dev)

    q, g = unit(cfg.n_query), unit(cfg.n_gallery)
    hyper = {
        "is": {"beta_query": 20.0},
        "dis": {"beta_query": 20.0},
        "dualis": {"beta_query": 20.0, "beta_gallery": 20.0},
        "dualdis": {"beta_query": 20.0, "beta_gallery": 20.0},
        "sn": {"beta_query": 20.0, "n_iter": cfg.sn_iter, "tol": 1e-12},
        "dbsn": {"beta_query": 20.0, "n_iter": cfg.sn_iter, "tol": 1e-12},
        "csls": {"k": 10},
        "nnn": {"k": 16},
    }
    rows = []
    for m_q in cfg.bank_sizes:
        bq, bg = unit(m_q), unit(max(m_q // 4, 1))
        gt = g.T.contiguous()

        def floor(bq=bq, bg=bg, gt=gt) -> None:
            for bank in (bq, bg):
                for a in range(0, bank.shape[0], cfg.chunk_size):
                    bank[a : a + cfg.chunk_size] @ gt

        t_floor = measure(floor, repeat=cfg.repeat, device=dev).seconds
        for name in cfg.methods:
            res = measure(
                lambda name=name, bq=bq, bg=bg: normalize_embeddings(
                    name,
                    q,
                    g,
                    bank_query=bq,
                    bank_gallery=bg,
                    chunk_size=cfg.chunk_size,
                    **hyper.get(name, {}),
                ),
                repeat=cfg.repeat,
                device=dev,
            )
            rows.append(
                {
                    "method": name,
                    "bank_size": m_q,
                    "seconds": res.seconds,
                    "peak_mib": res.peak_bytes / 2**20,
                    "floor_seconds": t_floor,
                    "ratio_to_floor": res.seconds / t_floor,
                }
            )
    return pd.DataFrame(rows)
