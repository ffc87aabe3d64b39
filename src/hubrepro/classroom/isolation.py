"""What the grading child process can see: Python without hubrepro, and bubblewrap.

- :func:`link_farm` builds the folder of links to the grader's site-packages entries,
  hubrepro's left out, that is the child's only source of third-party packages
  (started with ``python -I -S``, the child reads no other site folder and no
  ``.pth`` file of the grader's);
- :func:`bwrap_argv` wraps the child in `bubblewrap
  <https://github.com/containers/bubblewrap>`_: a mount namespace holding only the
  system libraries, the Python installation (read-only, hubrepro's files hidden by
  empty mounts) and the sandbox folder; no network, its own PID namespace, no
  capabilities, killed with the grader;
- :func:`resolve_isolation` picks ``"bwrap"`` where a probe shows that it runs this
  Python (:func:`bwrap_status`, once per process), else ``"none"``.

Book: :ref:`sec-classroom-protects`.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hubrepro._validation import fail

__all__ = [
    "ISOLATIONS",
    "bwrap_argv",
    "bwrap_status",
    "describe",
    "library_dir",
    "link_farm",
    "resolve_isolation",
]

ISOLATIONS = ("auto", "bwrap", "none")


def library_dir() -> Path:
    import hubrepro

    return Path(hubrepro.__file__).resolve().parent


def _site_dirs() -> list[Path]:
    """The grader's site-packages folders, in ``sys.path`` order."""
    out: list[Path] = []
    for p in sys.path:
        path = Path(p) if p else None
        if (
            path is not None
            and path.name in ("site-packages", "dist-packages")
            and path.is_dir()
            and path not in out
        ):
            out.append(path)
    return out


def _is_library(entry: Path, library: Path) -> bool:
    """Whether a site-packages entry is (or leads to) hubrepro."""
    name = entry.name.lower()
    if name.startswith(("hubrepro", "__editable__")):
        return True
    if name.endswith((".pth", ".egg-link")):
        try:
            text = entry.read_text(errors="replace")
        except OSError:
            return True
        return "hubrepro" in text or str(library.parent) in text
    try:
        return entry.resolve() == library
    except OSError:
        return True


def link_farm(dest: Path, library: Path) -> tuple[list[Path], list[Path]]:
    """Fill ``dest`` with links to every site-packages entry but hubrepro's.

    Returns the site folders linked and the entries left out.
    """
    dest.mkdir()
    sites, left_out = _site_dirs(), []
    for site in sites:
        for entry in sorted(site.iterdir()):
            if _is_library(entry, library):
                left_out.append(entry)
            elif not (dest / entry.name).exists():
                (dest / entry.name).symlink_to(entry)
    return sites, left_out


# ------------------------------------------------------------------ bubblewrap

_ETC = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/fonts",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
)
_BWRAP_BASE = (
    "--die-with-parent",
    "--new-session",
    "--unshare-all",
    "--cap-drop",
    "ALL",
)
_NOBODY = ("--uid", "65534", "--gid", "65534")


def _outermost(paths: list[Path]) -> list[Path]:
    """Drop the paths that lie inside another one of the list."""
    uniq = sorted({p for p in paths if p.exists()}, key=lambda p: len(p.parts))
    keep: list[Path] = []
    for p in uniq:
        if not any(p == q or q in p.parents for q in keep):
            keep.append(p)
    return keep


def _python_paths() -> list[Path]:
    exe = Path(sys.executable)
    paths = [
        Path(sys.base_prefix),
        Path(sys.base_exec_prefix),
        Path(sys.prefix),
        Path(sys.exec_prefix),
        exe.parent,
        exe.resolve().parent,
        *_site_dirs(),
    ]
    return [p.resolve() for p in paths] + paths


def bwrap_argv(
    uid: tuple[str, ...], root: Path, work: Path, masks: list[Path]
) -> list[str]:
    argv = ["bwrap", *_BWRAP_BASE, *uid, "--proc", "/proc", "--dev", "/dev"]
    argv += ["--tmpfs", "/tmp"]
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        p = Path(top)
        if p.is_symlink():
            argv += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            argv += ["--ro-bind", top, top]
    for f in _ETC:
        argv += ["--ro-bind-try", f, f]
    system = [Path(t) for t in ("/usr", "/bin", "/sbin", "/lib", "/lib64")]
    for p in _outermost(_python_paths()):
        if not any(p == s or s in p.parents for s in system):
            argv += ["--ro-bind", str(p), str(p)]
    argv += ["--ro-bind", str(root), str(root), "--bind", str(work), str(work)]
    bound = _outermost(_python_paths())
    for m in masks:  # hubrepro's files inside a bound folder: hidden by an empty mount
        if any(b == m or b in m.parents for b in bound):
            argv += (
                ["--tmpfs", str(m)]
                if m.is_dir()
                else ["--ro-bind", "/dev/null", str(m)]
            )
    return [*argv, "--chdir", str(work)]


@functools.cache
def bwrap_status() -> tuple[tuple[str, ...] | None, str]:
    """Whether bubblewrap can run this Python here: ``(uid flags, "")`` or ``(None, why not)``.

    Tried once per process: with an unprivileged user (``nobody``) first, then without.
    """
    if not sys.platform.startswith("linux"):
        return None, "bubblewrap exists on Linux only"
    if shutil.which("bwrap") is None:
        return None, "bwrap is not installed (apt install bubblewrap)"
    why = ""
    with tempfile.TemporaryDirectory(prefix="hubrepro-probe-") as tmp:
        root = Path(tmp)
        (root / "work").mkdir()
        for uid in (_NOBODY, ()):
            argv = bwrap_argv(uid, root, root / "work", [])
            argv += [sys.executable, "-I", "-S", "-c", "import os; os.listdir('.')"]
            try:
                proc = subprocess.run(
                    argv, capture_output=True, text=True, timeout=60, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as err:
                why = str(err)
                continue
            if proc.returncode == 0:
                return uid, ""
            why = (
                proc.stderr.strip().splitlines()
                or ["exit status " + str(proc.returncode)]
            )[-1]
    return None, f"bwrap does not run here ({why})"


def resolve_isolation(requested: str, func: str = "grade") -> str:
    """``"bwrap"`` or ``"none"`` for a requested ``"auto"``, ``"bwrap"`` or ``"none"``."""
    if requested not in ISOLATIONS:
        fail(func, "sandbox", "one of " + ", ".join(ISOLATIONS), repr(requested))
    if requested == "none":
        return "none"
    uid, why = bwrap_status()
    if uid is not None:
        return "bwrap"
    if requested == "bwrap":
        fail(
            func,
            "sandbox",
            "usable on this machine",
            f"'bwrap', but {why}",
            "Install bubblewrap, or pass `--sandbox none` (weaker, see the book).",
        )
    return "none"


def describe(isolation: str) -> str:
    """One line for the report: what the sandbox hid."""
    if isolation == "bwrap":
        return (
            "bwrap (only the Python installation, read-only, and a fresh folder are "
            "visible; no network; own process tree)"
        )
    _, why = bwrap_status()
    return (
        "none ("
        + (why + "; " if why else "")
        + "the submission ran as you, in a fresh folder, without the library and "
        "with limits, but could read your files by absolute path and use the network)"
    )
