"""Reading and writing arrays: ``.npy``, ``.pt``, ``.safetensors`` (and pickles on request).

Pickles (``.pkl``, ``.pickle``, and ``.npy`` files holding Python objects) can run
arbitrary code when loaded, so they are refused unless ``allow_pickle=True`` is
passed explicitly (``--allow-pickle`` on the command line). ``.pt`` files are read
with ``torch.load(weights_only=True)``, which refuses arbitrary objects.

The files of ``hubrepro normalize``, ``index search``, ``dbnorm`` and ``data`` (and
:func:`save_array`, the embeddings cache, saved statistics) go through
:func:`atomic_write`, under one rule: an existing path (a file, or a symbolic link,
even a dangling one) is never replaced unless ``overwrite=True`` (``--overwrite``),
and a folder never is. The data go to a temporary file in the target's folder, which
is flushed, synced and renamed onto the target, so a crash or a ``SIGKILL`` at any
point leaves either the old file or the new one, never a half-written one. The
rename replaces a symbolic link itself: a link at the target is never followed.
A kill can leave a hidden ``.NAME.PID-*.tmp`` beside the target; the next write of
that target removes it.

Large banks stored as ``.npy`` are opened with :func:`open_rows` (a
:class:`MappedRows`): the file is memory-mapped, rows are copied out one chunk at
a time and the chunk's pages are handed back to the kernel after use, so a bank
larger than RAM streams from disk with a resident set of one chunk.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import pickle
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "load_array",
    "save_array",
    "open_rows",
    "MappedRows",
    "atomic_write",
    "check_out",
    "array_sha256",
    "SUPPORTED_SUFFIXES",
]

SUPPORTED_SUFFIXES = (".npy", ".pt", ".pth", ".safetensors", ".pkl", ".pickle")


def _pick(obj: Any, path: Path, key: str | None) -> Any:
    """From a dict-like container, take ``key`` or the only entry."""
    if isinstance(obj, dict):
        if key is not None:
            if key not in obj:
                raise ValueError(
                    f"load_array: `key` must name an entry of {path}; got {key!r}, "
                    f"available: {sorted(map(str, obj))}."
                )
            return obj[key]
        if len(obj) == 1:
            return next(iter(obj.values()))
        raise ValueError(
            f"load_array: {path} holds several arrays {sorted(map(str, obj))}; "
            "pass `key` (--key on the command line) to choose one."
        )
    if key is not None:
        raise ValueError(
            f"load_array: `key` was given ({key!r}) but {path} holds a single array."
        )
    return obj


def _one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


#: NumPy dtype kinds that are numbers (bool, signed, unsigned, float, complex); the
#: callers' validation decides which of them they accept.
_NUMERIC_KINDS = "biufc"


def _read(p: Path, suffix: str, allow_pickle: bool) -> Any:
    """Parse ``p`` (already opened once, so permission errors have surfaced)."""
    if suffix == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except ValueError as err:
            if "allow_pickle" not in str(err):
                raise
            if not allow_pickle:
                raise _Refused(
                    f"load_array: {p.name!r} holds Python objects (a pickle inside .npy). "
                    "Pass allow_pickle=True (--allow-pickle) only if you trust the file."
                ) from None
        obj = np.load(p, allow_pickle=True)
        return obj.item() if obj.dtype == object and obj.shape == () else obj
    if suffix in (".pt", ".pth"):
        return torch.load(p, map_location="cpu", weights_only=True)
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    with p.open("rb") as fh:
        return pickle.load(fh)  # noqa: S301 - explicit opt-in by the caller


class _Refused(ValueError):
    """A file refused on purpose (not a parse failure)."""


def load_array(
    path: str | Path, *, allow_pickle: bool = False, key: str | None = None
) -> torch.Tensor:
    """Load one array from ``path`` as a tensor (no dtype conversion).

    Parameters
    ----------
    path : str or Path
        A ``.npy``, ``.pt``/``.pth``, ``.safetensors`` or (with ``allow_pickle``)
        ``.pkl``/``.pickle`` file.
    allow_pickle : bool, default False
        Permit pickles. Only for files you trust: unpickling can execute code.
    key : str, optional
        Which entry to take from a file holding a dict of arrays.

    Returns
    -------
    Tensor
        The array with its dtype and shape (a 0-d array stays 0-d); big-endian
        NumPy data are brought to the machine's byte order (same values).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    PermissionError
        If ``path`` cannot be read (the error names the file).
    ValueError
        If the suffix is unsupported, the file is a pickle and ``allow_pickle`` is
        false, the file is truncated or corrupt, or the content is not one array of
        numbers; every message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"load_array: `path` must be an existing file; got {str(p)!r}."
        )
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(
            f"load_array: `path` must end in one of {', '.join(SUPPORTED_SUFFIXES)}; got {p.name!r}."
        )
    if suffix in (".pkl", ".pickle") and not allow_pickle:
        raise ValueError(
            f"load_array: refusing to unpickle {p.name!r}: a pickle can run arbitrary code. "
            "Pass allow_pickle=True (--allow-pickle) only if you trust the file."
        )
    # opened here first, so that an unreadable file is reported as such (some
    # readers, e.g. safetensors, report a permission error as a missing file)
    with p.open("rb") as fh:
        head = fh.read(6)
    if suffix == ".npy" and head != b"\x93NUMPY" and not allow_pickle:
        raise ValueError(
            f"load_array: could not read {str(p)!r} as .npy: "
            f"{'it is empty' if not head else 'it does not start with the NumPy header'}. "
            "The file may be truncated or corrupt: write it again (a raw pickle needs "
            "allow_pickle=True, only for a file you trust)."
        )
    try:
        obj = _read(p, suffix, allow_pickle)
    except _Refused:
        raise
    except MemoryError as err:
        raise ValueError(
            f"load_array: {str(p)!r} does not fit in memory ({_one_line(err) or 'MemoryError'}); "
            "its header may be corrupt, or the array is larger than this machine's memory."
        ) from err
    except Exception as err:  # noqa: BLE001 - any parse failure is a bad file
        raise ValueError(
            f"load_array: could not read {str(p)!r} as {suffix}: "
            f"{_one_line(err).rstrip('.')}. The file may be truncated or corrupt: write it again."
        ) from err
    obj = _pick(obj, p, key)
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _NUMERIC_KINDS:
            raise ValueError(
                f"load_array: {str(p)!r} must hold an array of numbers; got dtype "
                f"{obj.dtype} ({_KIND_NAMES.get(obj.dtype.kind, 'not numbers')})."
            )
        if not obj.dtype.isnative:
            obj = obj.astype(obj.dtype.newbyteorder("="))  # same values, native order
        if not obj.flags.c_contiguous:
            obj = obj.copy(order="C")  # np.ascontiguousarray would make 0-d arrays 1-d
        return torch.from_numpy(obj)
    if isinstance(obj, torch.Tensor):
        if obj.layout != torch.strided:
            raise ValueError(
                f"load_array: {str(p)!r} must hold a dense array; got a {obj.layout} tensor. "
                "Convert it with `.to_dense()` before saving."
            )
        return obj
    raise ValueError(
        f"load_array: {str(p)!r} must hold one numeric array; got {type(obj).__name__}."
    )


_KIND_NAMES = {
    "O": "Python objects",
    "U": "text",
    "S": "bytes",
    "V": "records",
    "M": "dates",
    "m": "time spans",
}


def save_array(
    x: torch.Tensor | np.ndarray, path: str | Path, *, overwrite: bool = False
) -> Path:
    """Save ``x`` to ``.npy``, ``.pt`` or ``.safetensors`` (by suffix), atomically.

    Follows the rule of :func:`atomic_write`: an existing ``path`` is refused
    unless ``overwrite``; a kill during the write leaves the old file or the new one.
    """
    p = check_out(
        path, overwrite=overwrite, suffixes=(".npy", ".pt", ".pth", ".safetensors"),
        func="save_array",
    )  # fmt: skip
    suffix = p.suffix.lower()
    t = torch.as_tensor(x).detach().cpu()
    if suffix == ".npy":
        if t.dtype == torch.bfloat16:
            t = t.float()
        arr = t.numpy()
        return atomic_write(p, lambda fh: np.save(fh, arr), overwrite=overwrite)
    if suffix in (".pt", ".pth"):
        return atomic_write(
            p, lambda fh: torch.save(t.contiguous(), fh), overwrite=overwrite
        )
    from safetensors.torch import save

    blob = save({"data": t.contiguous()})
    return atomic_write(p, lambda fh: fh.write(blob), overwrite=overwrite)


def check_out(
    path: str | Path,
    *,
    overwrite: bool = False,
    suffixes: tuple[str, ...] | None = None,
    name: str = "path",
    func: str = "atomic_write",
) -> Path:
    """Check an output path before any work is done; return it as a ``Path``.

    The one overwrite rule of every command: an existing path (a file or a
    symbolic link, even a dangling one) is refused unless ``overwrite``; a
    folder is always refused; with ``suffixes``, the name must end in one of them.

    Parameters
    ----------
    path : str or Path
        The file to write.
    overwrite : bool, default False
        Accept an existing file (it is replaced only once the new one is complete).
    suffixes : tuple of str, optional
        Accepted endings (lower case, with the dot).
    name, func : str
        How the path and the caller are named in error messages (e.g. ``"--out"``).

    Raises
    ------
    ValueError
        For a wrong suffix.
    FileExistsError
        For a folder, or an existing file without ``overwrite``.
    """
    p = Path(path)
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise ValueError(
            f"{func}: `{name}` must end in {', '.join(suffixes)}; got {p.name!r}."
        )
    if p.is_dir():
        raise FileExistsError(
            f"{func}: `{name}` {str(p)!r} is a folder; name a file (e.g. inside it)."
        )
    if os.path.lexists(p) and not overwrite:
        link = (
            " (a symbolic link, which is replaced, not followed)"
            if p.is_symlink()
            else ""
        )
        raise FileExistsError(
            f"{func}: `{name}` {str(p)!r}{link} already exists; pass --overwrite "
            "(overwrite=True) to replace it, or choose another name."
        )
    return p


def _default_mode() -> int:
    """``0o666`` minus the umask (read without changing it where Linux allows)."""
    try:
        with open("/proc/self/status") as fh:
            mask = next(int(x.split()[1], 8) for x in fh if x.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def _remove_stale_temps(p: Path) -> None:
    """Delete temporary files of ``p`` left by killed writers (their process is gone)."""
    prefix = f".{p.name}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(p.parent):
            rest = entry.name[len(prefix) :]
            if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
                continue
            pid = rest.split("-", 1)[0]
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            except OSError:
                pass  # alive, owned by another user


def atomic_write(
    path: str | Path, write: Callable[[Any], Any], *, overwrite: bool = False
) -> Path:
    """Write a file atomically: ``write(fh)`` into a temporary file, fsync, rename.

    The temporary file lives in the target's folder (so the rename is atomic on
    POSIX file systems); it is flushed and synced before the rename, and the
    folder is synced after it. On any error it is removed and the target is
    untouched; a ``SIGKILL`` at any point leaves the old file or the new one. A
    symbolic link at ``path`` is replaced, never followed. The new file gets the
    mode of the file it replaces (else the usual ``0o666`` minus the umask).

    Parameters
    ----------
    path : str or Path
        The file to create (missing folders above it are created).
    write : callable
        Called with a binary file handle open for writing.
    overwrite : bool, default False
        Replace an existing ``path``; otherwise refuse with ``FileExistsError``
        (see :func:`check_out`, the rule every command follows).

    Returns
    -------
    Path
        ``path``.
    """
    p = check_out(path, overwrite=overwrite)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        st = os.lstat(p)
        mode = stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None
    except FileNotFoundError:
        mode = None
    _remove_stale_temps(p)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{p.name}.{os.getpid()}-", suffix=".tmp", dir=p.parent
        )
    except OSError as err:  # name the file asked for, not the temporary one
        raise _renamed(err, p) from None
    try:
        os.fchmod(fd, _default_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename in (None, tmp):
            raise _renamed(err, p) from None
        raise
    _fsync_dir(p.parent)
    return p


def _renamed(err: OSError, p: Path) -> OSError:
    """``err`` about ``p`` (e.g. a full disk while writing its temporary file)."""
    if err.errno is None:
        return err
    return type(err)(err.errno, err.strerror or os.strerror(err.errno), str(p))


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the OS allows opening folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:  # some file systems cannot sync a folder
        if err.errno not in (errno.EINVAL, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(fd)


class MappedRows:
    """A 2-D ``.npy`` array memory-mapped from disk and read in row chunks.

    Never reads the whole file: :meth:`rows` copies rows ``[a, b)`` into a new
    tensor (optionally converted, e.g. float16 storage to float32), and
    :meth:`release` returns the pages of those rows to the kernel
    (``madvise(MADV_DONTNEED)``), so the resident set stays at one chunk however
    large the file is. The page cache may keep the file for the next reader.

    Parameters
    ----------
    path : str or Path
        A ``.npy`` file holding a C-ordered 2-D floating array.
    start, stop : int, optional
        Only rows ``[start, stop)`` (a shard of the file, e.g. one rank's).

    Attributes
    ----------
    shape : tuple of int
        ``(stop - start, d)``.
    dtype : torch.dtype
        The storage dtype (float16, float32 or float64).
    """

    device = torch.device("cpu")

    def __init__(
        self, path: str | Path, *, start: int = 0, stop: int | None = None
    ) -> None:
        p = Path(path)
        func = "open_rows"
        if not p.is_file():
            raise FileNotFoundError(
                f"{func}: `path` must be an existing file; got {str(p)!r}."
            )
        if p.suffix.lower() != ".npy":
            raise ValueError(
                f"{func}: `path` must be a .npy file to be memory-mapped; got {p.name!r}. "
                "Convert it with numpy.save, or load it whole with load_array."
            )
        try:
            head = np.load(p, mmap_mode="r", allow_pickle=False)
        except ValueError as err:
            raise ValueError(
                f"{func}: could not read {str(p)!r} as .npy: {err}"
            ) from None
        shape, dtype, offset = head.shape, head.dtype, int(getattr(head, "offset", 0))
        fortran = head.ndim == 2 and head.shape[0] > 1 and not head.flags.c_contiguous
        del head
        if len(shape) != 2 or fortran or dtype.kind != "f" or dtype.byteorder == ">":
            raise ValueError(
                f"{func}: {p.name!r} must hold a C-ordered 2-D little-endian floating "
                f"array; got shape {shape}, dtype {dtype}, fortran_order={fortran}."
            )
        n, d = shape
        stop = n if stop is None else stop
        if not 0 <= start <= stop <= n:
            raise ValueError(
                f"{func}: rows [{start}, {stop}) must lie within the {n} rows of {p.name!r}."
            )
        self.path, self.start, self.stop = p, start, stop
        self.shape = (stop - start, d)
        self._np_dtype = dtype
        self.dtype = torch.from_numpy(np.empty(0, dtype)).dtype
        self._row_bytes = d * dtype.itemsize
        self._offset = offset
        self._mm = None
        if n * d:
            with p.open("rb") as fh:
                self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        self._page = mmap.PAGESIZE

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (
            f"MappedRows({str(self.path)!r}, rows {self.start}:{self.stop}, "
            f"shape={self.shape}, dtype={self.dtype})"
        )

    def _view(self, a: int, b: int) -> np.ndarray:
        if self._mm is None or b <= a:
            return np.empty((max(b - a, 0), self.shape[1]), self._np_dtype)
        off = self._offset + (self.start + a) * self._row_bytes
        return np.frombuffer(
            self._mm, dtype=self._np_dtype, count=(b - a) * self.shape[1], offset=off
        ).reshape(b - a, self.shape[1])

    def rows(self, a: int, b: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Rows ``[a, b)`` (relative to the shard) as a new tensor, in ``dtype``."""
        out = torch.from_numpy(np.array(self._view(a, b)))
        return out if dtype is None else out.to(dtype)

    def release(self, a: int, b: int) -> None:
        """Hand the pages of rows ``[a, b)`` back to the kernel (they stay on disk)."""
        if self._mm is None or b <= a or not hasattr(mmap, "MADV_DONTNEED"):
            return
        lo = self._offset + (self.start + a) * self._row_bytes
        hi = self._offset + (self.start + b) * self._row_bytes
        lo -= lo % self._page
        with contextlib.suppress(OSError, ValueError):
            self._mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    def iter_rows(
        self, chunk_size: int, dtype: torch.dtype | None = None
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, rows)`` chunks, releasing each chunk's pages after use."""
        for a in range(0, self.shape[0], chunk_size):
            b = min(a + chunk_size, self.shape[0])
            yield a, self.rows(a, b, dtype)
            self.release(a, b)

    def sample(self, n: int) -> torch.Tensor:
        """Up to ``n`` rows spread evenly over the shard (for cheap checks)."""
        if self.shape[0] == 0:
            return self.rows(0, 0)
        idx = np.unique(
            np.linspace(0, self.shape[0] - 1, min(n, self.shape[0])).astype(int)
        )
        return torch.from_numpy(np.stack([self._view(i, i + 1)[0] for i in idx]))

    def load(self) -> torch.Tensor:
        """The whole shard as one tensor (only for small arrays)."""
        out = self.rows(0, self.shape[0])
        self.release(0, self.shape[0])
        return out

    def sha256(self, chunk_size: int = 1 << 16) -> str:
        """Hash of the shard's shape, dtype and bytes, read chunk by chunk."""
        import hashlib

        h = hashlib.sha256(_hash_header(self.shape, self.dtype))
        for a in range(0, self.shape[0], chunk_size):
            b = min(a + chunk_size, self.shape[0])
            h.update(memoryview(np.ascontiguousarray(self._view(a, b))).cast("B"))
            self.release(a, b)
        return h.hexdigest()


def _hash_header(shape: tuple[int, ...], dtype: torch.dtype) -> bytes:
    return f"hubrepro-array|{tuple(int(s) for s in shape)}|{dtype}|".encode()


def array_sha256(x: Any) -> str:
    """SHA-256 of an array's shape, dtype and bytes (C order); a :class:`MappedRows` streams."""
    import hashlib

    if isinstance(x, MappedRows):
        return x.sha256()
    t = torch.as_tensor(x).detach().cpu().contiguous()
    h = hashlib.sha256(_hash_header(tuple(t.shape), t.dtype))
    if t.numel():
        if t.dtype == torch.bfloat16:
            h.update(t.view(torch.int16).numpy().tobytes())
        else:
            h.update(memoryview(t.numpy()).cast("B"))
    return h.hexdigest()


def open_rows(
    path: str | Path, *, start: int = 0, stop: int | None = None
) -> MappedRows:
    """Memory-map a 2-D ``.npy`` bank for chunked reading (see :class:`MappedRows`).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from hubrepro.io import open_rows
    >>> path = os.path.join(tempfile.mkdtemp(), "bank.npy")
    >>> np.save(path, np.arange(12, dtype=np.float16).reshape(4, 3))
    >>> bank = open_rows(path)
    >>> bank.shape, bank.dtype
    ((4, 3), torch.float16)
    >>> [tuple(c.shape) for _, c in bank.iter_rows(3)]
    [(3, 3), (1, 3)]
    """
    return MappedRows(path, start=start, stop=stop)
