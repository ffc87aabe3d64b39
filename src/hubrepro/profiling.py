"""Wall time and peak memory: of a whole program (a child process) or of a call.

:func:`run_child` is the measurement to trust for memory: it runs a command
as a separate process and reads the child's wall time and **peak resident set
size** from the kernel (``wait4``'s ``ru_maxrss``), everything included
(interpreter, imports, memory the allocator keeps). A rise of the resident set
inside a warm process (:func:`measure` on CPU) is *not* a peak: memory freed
earlier and reused by the allocator does not show, so it only bounds the extra
memory from below; the benchmarks and notebook 45 report child processes.

:func:`measure` times a call in this process and, on CPU, samples the RSS in a
background thread (the rise over the start); on CUDA it reports
``torch.cuda.max_memory_allocated`` after resetting the peak counter.

Book: :ref:`sec-normalisation`, section "Streaming design".
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hubrepro._validation import check_int, fail

__all__ = [
    "Measurement",
    "measure",
    "rss_bytes",
    "ChildRun",
    "run_child",
    "median_run",
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
class ChildRun:
    """Result of :func:`run_child`: one whole program, measured from its parent."""

    wall_s: float
    peak_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str

    @property
    def peak_rss_mib(self) -> float:
        """Peak resident set in MiB."""
        return self.peak_rss_bytes / 2**20


def run_child(
    cmd: Sequence[str],
    *,
    cwd: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    address_space_limit: int | None = None,
    timeout: float | None = None,
) -> ChildRun:
    """Run ``cmd`` as a child process; return its wall time and peak RSS.

    The peak is the kernel's high-water mark of the child's resident set
    (``ru_maxrss`` from ``wait4``; Linux reports KiB), which counts every page
    the program touched: interpreter, libraries, memory-mapped file pages, and
    what its allocator kept. The program is forked by a small launcher process,
    because a child forked from this process would count this process's
    resident set in its high-water mark. The wall time runs from the
    launcher's fork of the program to the program's exit.

    Parameters
    ----------
    cmd : sequence of str
        The program and its arguments (no shell).
    cwd, env : optional
        Working directory and environment of the child.
    address_space_limit : int, optional
        ``RLIMIT_AS`` of the child in bytes: allocations beyond it fail (in
        NumPy as ``MemoryError``), so a program that would need more memory than
        the machine can spare fails safely instead of swapping or being killed.
    timeout : float, optional
        Seconds after which the child is killed (``returncode`` is then -9).

    Returns
    -------
    ChildRun

    Examples
    --------
    >>> import sys
    >>> from hubrepro.profiling import run_child
    >>> r = run_child([sys.executable, "-c", "x = bytearray(64 * 2**20)"])
    >>> r.returncode, r.peak_rss_bytes > 64 * 2**20
    (0, True)
    """
    if not hasattr(os, "wait4"):  # pragma: no cover - Linux/macOS have it
        fail("run_child", "platform", "one with os.wait4 (Linux, macOS)", os.name)
    spec = json.dumps({"cmd": list(map(str, cmd)), "as": address_space_limit})
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        with (
            open(Path(tmp) / "out", "wb+") as out,
            open(Path(tmp) / "err", "wb+") as err,
        ):
            # A small launcher forks the program: a child forked from this (possibly
            # large) process would count this process's pages in its `ru_maxrss`.
            proc = subprocess.Popen(
                [sys.executable, "-S", "-c", _LAUNCHER, spec, str(report)],
                cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True,
            )  # fmt: skip
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
        try:
            rec = json.loads(report.read_text())
        except (OSError, ValueError):
            rec = {}
    if "rc" not in rec:  # the launcher itself failed or was killed
        return ChildRun(float("nan"), 0, proc.returncode or -9, stdout, stderr)
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return ChildRun(rec["wall"], int(rec["maxrss"]) * scale, rec["rc"], stdout, stderr)


_LAUNCHER = """
import json, os, subprocess, sys, time
spec = json.loads(sys.argv[1])
if spec["as"] is not None:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (spec["as"], spec["as"]))
t0 = time.perf_counter()
proc = subprocess.Popen(spec["cmd"])
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - t0
with open(sys.argv[2], "w") as fh:
    json.dump({"wall": wall, "maxrss": usage.ru_maxrss,
               "rc": os.waitstatus_to_exitcode(status)}, fh)
"""


def median_run(runs: Sequence[ChildRun]) -> dict[str, float]:
    """Median wall time and median peak RSS of repeated child runs (they must all succeed)."""
    import statistics

    for r in runs:
        if r.returncode != 0:
            raise RuntimeError(
                f"median_run: a child failed with exit status {r.returncode}: {r.stderr[-500:]}"
            )
    return {
        "wall_s": statistics.median(r.wall_s for r in runs),
        "peak_rss_bytes": int(statistics.median(r.peak_rss_bytes for r in runs)),
        "runs": len(runs),
    }
