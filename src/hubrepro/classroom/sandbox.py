"""The child process a submission runs in: isolation, resource limits, the channel, the kill.

:class:`Sandbox` starts ``python -I -S`` on the harness
(:mod:`hubrepro.classroom._harness`) in a fresh temporary folder, with

- a **scrubbed environment** (no variable of the grader's is passed on; one thread per
  BLAS, no GPU, ``HOME`` and ``TMPDIR`` inside the folder);
- **no library**: the interpreter sees the standard library and the installed
  third-party packages through a folder of links that leaves ``hubrepro`` out (and the
  harness answers any import of ``hubrepro.*`` but ``hubrepro.classroom.student_data``
  with an error);
- **resource limits** set by the harness before the submission runs: CPU time, address
  space beyond the libraries already loaded, size of written files, number of
  processes, no core files;
- its own **process group**, killed at the time limit and at the end, after which every
  process the submission left behind and that was handed to the grader (Linux: the
  grader is a child subreaper while a submission runs) is killed too;
- when bubblewrap (``bwrap``) is installed and works, **OS isolation**
  (:mod:`hubrepro.classroom.isolation`): a mount namespace in which only the Python
  installation (read-only, without ``hubrepro``) and the temporary folder exist, no
  network, its own PID namespace (nothing of it survives the sandbox), no capabilities.

The grader talks to the harness over two pipes inherited as extra descriptors (not
stdout, which goes to a log that is never parsed). Book: :ref:`sec-classroom-protects`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubrepro._validation import fail
from hubrepro.classroom import _harness
from hubrepro.classroom._harness import ProtocolError, decode, encode, pack, unpack
from hubrepro.classroom.isolation import (
    bwrap_argv,
    bwrap_status,
    library_dir,
    link_farm,
)

__all__ = ["Limits", "Sandbox", "SandboxStopped"]

# the harness loading NumPy and PyTorch: not counted against the submission
STARTUP_S = 180.0
MAX_DATA_REQUESTS = 64  # student_data calls served per grading

HIDDEN_MESSAGE = (
    "{name} is not available while grading: the grader runs your code without the "
    "hubrepro library (only hubrepro.classroom.student_data); write it with torch or NumPy"
)


_BROKEN = (
    "the channel between the grader and the submission broke ({}): did the "
    "submission write to a file descriptor it does not own? Nothing after it was graded"
)


class SandboxStopped(Exception):
    """The child stopped answering: time limit, exit, crash or a broken channel."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """What a submission may use.

    ``timeout`` counts the seconds the child spends on the grader's requests (running
    the cells, calling the functions), not the grader's own work; ``memory_mb`` is the
    address space the submission may add to the libraries loaded before it runs.
    """

    timeout: float = 300.0
    memory_mb: int = 4096
    file_mb: int = 64
    processes: int = 64

    def check(self, func: str) -> None:
        """Refuse values that are not positive and finite (one-line ``ValueError``)."""
        t = self.timeout
        if (
            isinstance(t, bool)
            or not isinstance(t, int | float)
            or not (math.isfinite(t) and t > 0)
        ):
            fail(
                func,
                "timeout",
                "a positive number of seconds",
                repr(t),
                "A submission needs time to run; the default is 300.",
            )
        m = self.memory_mb
        if isinstance(m, bool) or not isinstance(m, int) or m < 256:
            fail(
                func,
                "memory_mb",
                "an integer of at least 256 (MB)",
                repr(m),
                "The default is 4096.",
            )

    def as_harness(self) -> dict[str, int]:
        return {
            "cpu_s": int(math.ceil(self.timeout)) + 10,
            "memory_bytes": self.memory_mb << 20,
            "file_bytes": self.file_mb << 20,
            "processes": self.processes,
        }


# ------------------------------------------------------------------ processes


_PR_SET_CHILD_SUBREAPER = 36
_LOCK = threading.Lock()
_ACTIVE: set[int] = set()  # pids of the children of the sandboxes open in this process


def _set_subreaper(on: bool) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _adopt_orphans(on: bool) -> bool:
    """Become (or stop being) the parent of the submissions' orphans, counting sandboxes."""
    with _LOCK:
        _adopt_orphans.users += 1 if on else -1  # type: ignore[attr-defined]
        if on and _adopt_orphans.users == 1:  # type: ignore[attr-defined]
            return _set_subreaper(True)
        if not on and _adopt_orphans.users == 0:  # type: ignore[attr-defined]
            _set_subreaper(False)
        return sys.platform.startswith("linux")


_adopt_orphans.users = 0  # type: ignore[attr-defined]


def _parents() -> dict[int, int]:
    """``{pid: parent pid}`` of every process (Linux ``/proc``; empty elsewhere)."""
    table: dict[int, int] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            table[int(name)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return table


# ------------------------------------------------------------------ the sandbox


class Sandbox:
    """A submission's child process and the channel to it (a context manager).

    Parameters
    ----------
    isolation : {"bwrap", "none"}
        From :func:`resolve_isolation`.
    limits : Limits
        Time, memory, files and processes allowed to the submission.
    serve_data : callable
        ``serve_data(assignment, student_id) -> dict``: answers the submission's
        ``hubrepro.classroom.student_data`` calls (raise ``ValueError`` or ``TypeError``
        for bad arguments; the message reaches the submission).
    """

    def __init__(
        self,
        *,
        isolation: str,
        limits: Limits,
        serve_data: Callable[[Any, Any], dict[str, Any]],
    ) -> None:
        self.isolation = isolation
        self.limits = limits
        self._serve_data = serve_data
        self._data_cache: dict[tuple[str, str], tuple[dict[str, Any], list[bytes]]] = {}
        self._n_data = 0
        self._left = float(limits.timeout)
        self._deadline = 0.0
        self._proc: subprocess.Popen | None = None
        self._stopped: str | None = None
        self._tmp: Path | None = None
        self._log = None
        self._subreaper = False
        self._before: set[int] = set()

    # -- life cycle

    def __enter__(self) -> Sandbox:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        if os.name != "posix":
            raise RuntimeError(
                "grading needs a POSIX system (Linux or macOS) to limit and stop the submission"
            )
        self._tmp = Path(tempfile.mkdtemp(prefix="hubrepro-grade-"))
        root = self._tmp / "sandbox"
        work = root / "work"
        root.mkdir()
        work.mkdir()
        (work / "tmp").mkdir()
        harness = root / "harness.py"
        shutil.copyfile(_harness.__file__, harness)
        _, left_out = link_farm(root / "site", library_dir())
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(work),
            "TMPDIR": str(work / "tmp"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(work / ".matplotlib"),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "CUDA_VISIBLE_DEVICES": "",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        req_r, self._req_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        argv = [sys.executable, "-I", "-S", str(harness), str(req_r), str(resp_w)]
        if self.isolation == "bwrap":
            uid, _ = bwrap_status()
            argv = bwrap_argv(uid or (), root, work, [*left_out, library_dir()]) + argv
        self._log = tempfile.TemporaryFile()
        self._subreaper = _adopt_orphans(True)
        me = os.getpid()
        self._before = {pid for pid, ppid in _parents().items() if ppid == me}
        try:
            self._proc = subprocess.Popen(
                argv,
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                pass_fds=(req_r, resp_w),
                start_new_session=True,
            )
        finally:
            os.close(req_r)
            os.close(resp_w)
        with _LOCK:
            _ACTIVE.add(self._proc.pid)
        os.set_blocking(self._req_w, False)
        preload = [m for m in ("numpy", "torch") if importlib.util.find_spec(m)]
        init = {
            "op": "init",
            "site_dirs": [str(root / "site")],
            "preload": preload,
            "limits": self.limits.as_harness(),
            "hidden_message": HIDDEN_MESSAGE,
        }
        budget, self._left = self._left, STARTUP_S
        try:
            reply, _ = self._exchange(init)
        except SandboxStopped as stop:
            raise RuntimeError(f"the grading sandbox did not start: {stop}") from None
        if reply.get("op") != "ready":
            raise RuntimeError("the grading sandbox did not start: unexpected reply")
        self._left = budget
        # the child must import what the grader imports, or grades would suffer
        failed = reply.get("failed") or {}
        if failed:
            name, why = next(iter(failed.items()))
            raise RuntimeError(
                f"the grading sandbox ({self.isolation}) cannot import {name}: "
                f"{str(why)[:300]}"
                + (
                    "; pass `--sandbox none` if bwrap hides a folder your Python needs"
                    if self.isolation == "bwrap"
                    else ""
                )
            )

    def close(self) -> None:
        """Stop the child and everything it started; remove the temporary folder."""
        proc = self._proc
        if proc is not None and proc.poll() is None and not self._stopped:
            self._deadline = time.monotonic() + 2
            with contextlib.suppress(OSError, SandboxStopped):
                self._send({"op": "exit"}, [])
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        self._kill()
        if proc is not None:
            with _LOCK:
                _ACTIVE.discard(proc.pid)
        for fd in ("_req_w", "_resp_r"):
            if hasattr(self, fd):
                with contextlib.suppress(OSError):
                    os.close(getattr(self, fd))
                delattr(self, fd)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        if self._subreaper:
            self._sweep()
            _adopt_orphans(False)
            self._subreaper = False

    def _sweep(self) -> None:
        """Kill the processes the submission left behind (handed to us as orphans)."""
        me = os.getpid()
        own = self._proc.pid if self._proc is not None else -1
        for _ in range(200):
            table = _parents()
            with _LOCK:
                active = set(_ACTIVE)
            orphans = {
                pid
                for pid, ppid in table.items()
                if ppid == me and pid not in self._before | active and pid != own
            }
            if not orphans:
                return
            tree, frontier = set(orphans), set(orphans)
            while frontier:
                frontier = {p for p, pp in table.items() if pp in frontier} - tree
                tree |= frontier
            for pid in tree:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            for pid in orphans:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)

    # -- the channel

    def _stop(self, reason: str) -> SandboxStopped:
        self._stopped = reason
        self._kill()
        return SandboxStopped(reason)

    def _why_ended(self) -> str:
        proc = self._proc
        try:
            code = proc.wait(timeout=2) if proc is not None else None
        except subprocess.TimeoutExpired:
            return (
                "the submission closed the grader's channel (it closed file descriptors "
                "it does not own) and was stopped"
            )
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = {
                "SIGXCPU": " (CPU time limit)",
                "SIGXFSZ": " (file size limit)",
                "SIGKILL": " (killed; out of memory?)",
                "SIGSEGV": " (a crash in compiled code; out of memory?)",
            }.get(name, "")
            what = f"was killed by {name}{hint}"
        else:
            what = f"ended with exit status {code}"
        tail = self._log_tail()
        return f"the submission {what} before the grader finished" + (
            f"; its last output: {tail}" if tail else ""
        )

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        try:
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - 2000))
            text = self._log.read().decode(errors="replace")
        except OSError:
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return " | ".join(lines[-2:])[-300:]

    def _remaining(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise self._stop(self._timeout_reason())
        return left

    def _timeout_reason(self) -> str:
        return (
            f"the submission ran longer than {self.limits.timeout:g} s "
            "(an endless loop, or work too slow for the time limit) and was stopped"
        )

    def _wait(self, fd: int, event: int) -> bool:
        poller = select.poll()
        poller.register(fd, event)
        return bool(poller.poll(max(1, int(self._remaining() * 1000))))

    def _read_exact(self, n: int) -> bytes:
        chunks, left = [], n
        while left:
            if not self._wait(self._resp_r, select.POLLIN):
                continue
            chunk = os.read(self._resp_r, min(left, 1 << 20))
            if not chunk:
                raise self._stop(self._why_ended())
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _send(self, header: dict[str, Any], buffers: list[bytes]) -> None:
        data = memoryview(pack(header, buffers))
        while data:
            if not self._wait(self._req_w, select.POLLOUT):
                continue
            try:
                data = data[os.write(self._req_w, data) :]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise self._stop(self._why_ended()) from None

    def _exchange(
        self,
        header: dict[str, Any],
        buffers: list[bytes] = (),  # type: ignore[assignment]
    ) -> tuple[dict[str, Any], list[bytes]]:
        """Send a request; serve the child's data requests; return its reply."""
        if self._stopped:
            raise SandboxStopped(self._stopped)
        self._deadline = time.monotonic() + self._left
        try:
            self._send(header, list(buffers))
            while True:
                try:
                    reply, bufs = unpack(self._read_exact)
                except ProtocolError as err:
                    raise self._stop(_BROKEN.format(err)) from None
                if reply.get("op") != "data":
                    return reply, bufs
                self._send(*self._data_reply(reply, bufs))
        finally:
            self._left = max(0.0, self._deadline - time.monotonic())

    def _data_reply(
        self, request: dict[str, Any], bufs: list[bytes]
    ) -> tuple[dict[str, Any], list[bytes]]:
        self._n_data += 1
        if self._n_data > MAX_DATA_REQUESTS:
            return {
                "error": f"student_data called more than {MAX_DATA_REQUESTS} times"
            }, []
        try:
            assignment = decode(request.get("assignment"), bufs)
            student_id = decode(request.get("student_id"), bufs)
        except ProtocolError as err:
            return {
                "error": f"student_data: arguments the grader cannot read ({err})"
            }, []
        key = (repr(assignment)[:200], repr(student_id)[:200])
        if key not in self._data_cache:
            try:
                data = self._serve_data(assignment, student_id)
            except (ValueError, TypeError) as err:
                return {"error": str(err), "type": type(err).__name__}, []
            out: list[bytes] = []
            self._data_cache[key] = ({"data": encode(data, out)}, out)
        return self._data_cache[key]

    # -- requests

    def run_cells(self, cells: list[str]) -> list[str]:
        """Run the code cells in order; one line per cell that raised."""
        reply, _ = self._exchange({"op": "run", "cells": list(cells)})
        errors = reply.get("cell_errors")
        if reply.get("op") != "ran" or not isinstance(errors, list):
            raise self._stop(_BROKEN.format("a reply to a request it was not sent"))
        return [str(e)[:1000] for e in errors[:100]]

    def call(
        self,
        function: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        grad: tuple[int, ...] = (),
        return_args: bool = False,
    ) -> dict[str, Any]:
        """Call the submission's ``function``; the reply with its values still encoded."""
        buffers: list[bytes] = []
        header = {
            "op": "call",
            "function": function,
            "args": encode(tuple(args), buffers),
            "kwargs": encode(dict(kwargs), buffers),
            "grad": list(grad),
            "return_args": bool(return_args),
        }
        return self._result(*self._exchange(header, buffers))

    def value(self, name: str) -> dict[str, Any]:
        """Read the submission's variable ``name``; the reply with its value still encoded."""
        return self._result(*self._exchange({"op": "value", "name": name}))

    def _result(self, reply: dict[str, Any], bufs: list[bytes]) -> dict[str, Any]:
        if reply.get("op") != "result":
            raise self._stop(_BROKEN.format("a reply to a request it was not sent"))
        reply["_buffers"] = bufs
        return reply
