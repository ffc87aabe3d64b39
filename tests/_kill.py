"""SIGKILL a child process at a chosen point of a file write (tests of atomic writes).

The child runs ``code`` after patching :func:`hubrepro.io.atomic_write` (the one writer
of the library and the command line) so that it stops at ``stage``:

- ``"write"``: half of the first chunk is in the temporary file (flushed to disk);
- ``"rename"``: the data are complete and synced, the rename has not happened;
- ``"after"``: the rename has happened.

The child creates ``ready`` when it gets there and sleeps; the parent kills it with
``SIGKILL``. A child that finishes without reaching the point fails the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

STAGES = ("write", "rename", "after")

_HOOK = textwrap.dedent(
    """
    import os, sys, time
    import hubrepro.io as hio

    STAGE, READY = sys.argv[1], sys.argv[2]

    def pause():
        with open(READY, "w"):
            pass
        time.sleep(600)

    _atomic, _replace = hio.atomic_write, os.replace

    class _Half:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            data = memoryview(data).cast("B")
            self.fh.write(data[: max(1, len(data) // 2)])
            self.fh.flush()
            os.fsync(self.fh.fileno())
            pause()

        def __getattr__(self, name):
            return getattr(self.fh, name)

    if STAGE == "write":
        hio.atomic_write = lambda p, w, **kw: _atomic(p, lambda fh: w(_Half(fh)), **kw)
    elif STAGE == "rename":
        os.replace = lambda a, b: pause()
    elif STAGE == "after":
        def _after(a, b):
            _replace(a, b)
            pause()
        os.replace = _after
    """
)


def kill_during_write(
    code: str, stage: str, workdir: Path, timeout: float = 180
) -> None:
    """Run ``code`` in a child that stops at ``stage`` of its first atomic write; SIGKILL it."""
    assert stage in STAGES
    ready = workdir / f".ready-{stage}-{time.monotonic_ns()}"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOOK + textwrap.dedent(code), stage, str(ready)],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready.exists():
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(
                    f"the child ended (status {proc.returncode}) without reaching the "
                    f"{stage!r} point of a write:\n{out}\n{err}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the child did not reach {stage!r} in {timeout} s"
                )
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    ready.unlink()


def temporaries(folder: Path) -> list[str]:
    """Hidden temporary files an interrupted write left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))
