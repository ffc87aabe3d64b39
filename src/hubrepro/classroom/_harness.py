"""The child side of the grader: run a submission's cells, call its functions on request.

This file is copied into the grading sandbox and started as
``python -I -S harness.py FD_IN FD_OUT`` by :mod:`hubrepro.classroom.sandbox`. It
imports nothing of :mod:`hubrepro` (the library is hidden from the child) and only the
standard library at the top; NumPy and PyTorch are imported when present.

The grader sends requests on ``FD_IN`` and reads replies on ``FD_OUT``, two pipes that
are not the child's stdout or stderr (those go to a log the grader never parses). A
message is a JSON header plus binary buffers holding ``.npy`` arrays written and read
with ``allow_pickle=False``: no object is ever unpickled, and anything that is not
plain data (numbers, strings, arrays, tensors and lists, tuples or dicts of them)
travels as the name of its type only. The child never receives the reference
implementation, the expected outputs or the points; it only answers

- ``run``: execute the code cells in one namespace, recording each cell that raises
  (``SystemExit`` included) and going on with the next;
- ``value``: send back a variable;
- ``call``: call a function on the arguments sent, and send back its result (and, on
  request, the arguments after the call and the gradients of a scalar result);
- ``exit``.

The same module gives the grader its half of the wire format (:func:`pack`,
:func:`unpack`, :func:`encode`, :func:`decode`), so both sides speak one format.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import struct
import sys
import types
from collections.abc import Callable
from typing import Any

MAGIC = b"HRG1"
MAX_JSON = 16 << 20  # bytes of one JSON header
MAX_BUFFERS = 4096  # arrays in one message
MAX_MESSAGE = 512 << 20  # bytes of one message
MAX_DEPTH = 32  # nesting of lists, tuples and dicts
MAX_TEXT = 600  # characters of one error message sent back


class ProtocolError(ValueError):
    """A message that does not follow the wire format (or breaks one of its limits)."""


class Unsupported:
    """Stands for a value that is not plain data; only its type name crossed over."""

    def __init__(self, type_name: object) -> None:
        self.type_name = str(type_name)[:200]

    def __repr__(self) -> str:
        return f"<{self.type_name} object>"


# ------------------------------------------------------------------ framing


def pack(header: dict[str, Any], buffers: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    """One message: ``MAGIC``, the sizes, the JSON header, then each buffer with its size."""
    body = json.dumps(header, allow_nan=True).encode()
    parts = [MAGIC, struct.pack("<II", len(body), len(buffers)), body]
    for b in buffers:
        parts += [struct.pack("<Q", len(b)), bytes(b)]
    return b"".join(parts)


def unpack(
    read_exact: Callable[[int], bytes], *, limit: int = MAX_MESSAGE
) -> tuple[dict[str, Any], list[bytes]]:
    """Read one message with ``read_exact(n)``; :class:`ProtocolError` when malformed."""
    head = read_exact(12)
    if head[:4] != MAGIC:
        raise ProtocolError("a message that is not in the grader's format")
    n_json, n_buf = struct.unpack("<II", head[4:])
    if n_json > MAX_JSON or n_buf > MAX_BUFFERS:
        raise ProtocolError("a message larger than the grader accepts")
    try:
        header = json.loads(read_exact(n_json))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ProtocolError(f"a message whose header is not JSON ({err})") from None
    if not isinstance(header, dict):
        raise ProtocolError("a message whose header is not a JSON object")
    total, buffers = n_json, []
    for _ in range(n_buf):
        (n,) = struct.unpack("<Q", read_exact(8))
        total += n
        if total > limit:
            raise ProtocolError(f"a message larger than {limit >> 20} MB")
        buffers.append(read_exact(n))
    return header, buffers


# ------------------------------------------------------------------ values


def _npy(arr: Any) -> bytes:
    import numpy as np

    out = io.BytesIO()
    np.lib.format.write_array(out, np.asarray(arr, order="C"), allow_pickle=False)
    return out.getvalue()


def _encode(x: Any, buffers: list[bytes], depth: int) -> dict[str, Any]:
    torch = sys.modules.get("torch")
    np = sys.modules.get("numpy")
    if depth > MAX_DEPTH:
        return {"t": "unsupported", "type": f"nesting deeper than {MAX_DEPTH}"}
    if x is None:
        return {"t": "py", "v": None}
    if isinstance(x, bool):
        return {"t": "py", "v": bool(x)}
    if isinstance(x, str):
        return {"t": "py", "v": str(x)}
    if isinstance(x, int):
        return {"t": "py", "v": int(x)}
    if isinstance(x, float):
        return {"t": "py", "v": float(x)}
    if isinstance(x, complex):
        return {"t": "complex", "re": x.real, "im": x.imag}
    if torch is not None and isinstance(x, torch.Tensor):
        t = x.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        t = t.cpu().resolve_conj().resolve_neg()
        dtype = str(t.dtype)
        if t.dtype == torch.bfloat16:
            t = t.float()
        buffers.append(_npy(t.numpy()))
        return {
            "t": "tensor",
            "buf": len(buffers) - 1,
            "dtype": dtype,
            "requires_grad": bool(x.requires_grad),
        }
    if np is not None and isinstance(x, np.ndarray | np.generic):
        arr = np.asarray(x)
        if arr.dtype.kind not in "biufc":
            return {"t": "unsupported", "type": f"numpy array of dtype {arr.dtype}"}
        buffers.append(_npy(arr))
        return {
            "t": "ndarray",
            "buf": len(buffers) - 1,
            "scalar": isinstance(x, np.generic),
        }
    if isinstance(x, list | tuple):
        return {
            "t": "list" if isinstance(x, list) else "tuple",
            "items": [_encode(v, buffers, depth + 1) for v in list(x)],
        }
    if isinstance(x, dict) and all(isinstance(k, str) for k in x):
        return {
            "t": "dict",
            "items": [[str(k), _encode(v, buffers, depth + 1)] for k, v in x.items()],
        }
    return {"t": "unsupported", "type": type(x).__qualname__}


def encode(x: Any, buffers: list[bytes]) -> dict[str, Any]:
    """Describe ``x`` as JSON, appending its arrays to ``buffers`` as ``.npy`` bytes."""
    try:
        return _encode(x, buffers, 0)
    except Exception as err:  # a value that breaks while being read is not plain data
        return {"t": "unsupported", "type": f"{type(x).__qualname__} ({_text(err)})"}


def _array(buffers: list[bytes], i: object) -> Any:
    import numpy as np

    if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(buffers):
        raise ProtocolError("an array reference out of range")
    try:
        arr = np.lib.format.read_array(io.BytesIO(buffers[i]), allow_pickle=False)
    except Exception as err:
        raise ProtocolError(f"an array that is not a valid .npy ({err})") from None
    if arr.dtype.kind not in "biufc" or arr.dtype.hasobject:
        raise ProtocolError(f"an array of unsupported dtype {arr.dtype}")
    return np.array(arr, dtype=arr.dtype.newbyteorder("="))


def _decode(node: Any, buffers: list[bytes], depth: int) -> Any:
    if depth > MAX_DEPTH or not isinstance(node, dict):
        raise ProtocolError("a value that is not in the grader's format")
    kind = node.get("t")
    if kind == "py":
        v = node.get("v")
        if v is None or isinstance(v, bool | int | float | str):
            return v
    elif kind == "complex":
        re, im = node.get("re"), node.get("im")
        if isinstance(re, int | float) and isinstance(im, int | float):
            return complex(re, im)
    elif kind in ("list", "tuple"):
        items = node.get("items")
        if isinstance(items, list):
            out = [_decode(v, buffers, depth + 1) for v in items]
            return out if kind == "list" else tuple(out)
    elif kind == "dict":
        items = node.get("items")
        if isinstance(items, list) and all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in items
        ):
            return {k: _decode(v, buffers, depth + 1) for k, v in items}
    elif kind == "ndarray":
        arr = _array(buffers, node.get("buf"))
        return arr[()] if node.get("scalar") is True and arr.ndim == 0 else arr
    elif kind == "tensor":
        import torch

        arr = _array(buffers, node.get("buf"))
        try:
            t = torch.from_numpy(arr)
            if node.get("dtype") == "torch.bfloat16":
                t = t.to(torch.bfloat16)
            if node.get("requires_grad") is True and t.is_floating_point():
                t.requires_grad_(True)
        except Exception as err:
            raise ProtocolError(f"an array torch cannot read ({err})") from None
        return t
    elif kind == "unsupported":
        return Unsupported(node.get("type"))
    raise ProtocolError("a value that is not in the grader's format")


def decode(node: Any, buffers: list[bytes]) -> Any:
    """Rebuild a value written by :func:`encode` (:class:`ProtocolError` when malformed)."""
    return _decode(node, buffers, 0)


# ------------------------------------------------------------------ the child


def _text(err: BaseException) -> str:
    try:
        msg = str(err)
    except Exception:
        msg = "(its message could not be read)"
    name = type(err).__name__
    return (f"{name}: {msg}" if msg else name)[:MAX_TEXT]


class _Channel:
    def __init__(self, fd_in: int, fd_out: int) -> None:
        self.fd_in, self.fd_out = fd_in, fd_out

    def _read_exact(self, n: int) -> bytes:
        chunks, left = [], n
        while left:
            chunk = os.read(self.fd_in, min(left, 1 << 20))
            if not chunk:  # the grader went away
                os._exit(3)
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def receive(self) -> tuple[dict[str, Any], list[bytes]]:
        return unpack(self._read_exact)

    def send(self, header: dict[str, Any], buffers: list[bytes] = ()) -> None:  # type: ignore[assignment]
        try:
            data = pack(header, buffers)
            if len(data) > MAX_MESSAGE or len(data) - sum(map(len, buffers)) > MAX_JSON:
                raise ValueError(f"larger than {MAX_MESSAGE >> 20} MB")
        except Exception as err:  # too large, or impossible to write down
            msg = f"the value cannot be sent back ({_text(err)})"
            data = pack({"op": "result", "raised": msg})
        data = memoryview(data)
        while data:
            data = data[os.write(self.fd_out, data) :]


def _limit(limits: dict[str, int]) -> None:
    try:
        import resource
    except ImportError:  # not a POSIX system: the grader refuses to run there
        return

    def cap(what: int, soft: int, hard: int | None = None) -> None:
        _, old_hard = resource.getrlimit(what)
        hard = soft if hard is None else hard
        if old_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, old_hard), min(hard, old_hard)
        try:
            resource.setrlimit(what, (soft, hard))
        except (ValueError, OSError):
            pass

    cap(resource.RLIMIT_CORE, 0)
    used = resource.getrusage(resource.RUSAGE_SELF)  # loading the libraries is free
    cpu = int(used.ru_utime + used.ru_stime) + limits["cpu_s"]
    cap(resource.RLIMIT_CPU, cpu, cpu + 5)
    cap(resource.RLIMIT_FSIZE, limits["file_bytes"])
    base = _status_kb("VmSize") * 1024
    if base:  # the libraries already loaded do not count against the submission
        cap(resource.RLIMIT_AS, base + limits["memory_bytes"])
    tasks = _tasks_of_this_user()
    if tasks and hasattr(resource, "RLIMIT_NPROC"):
        cap(resource.RLIMIT_NPROC, tasks + limits["processes"])


def _status_kb(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tasks_of_this_user() -> int:
    uid, n = os.getuid(), 0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                n += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return n


def _install_library_stand_in(chan: _Channel, message: str) -> None:
    """``hubrepro`` in the child: only ``hubrepro.classroom.student_data``, served by the grader."""
    import importlib.abc

    def hidden(name: str) -> str:
        return message.replace("{name}", name)

    class _HideLibrary(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):  # noqa: ARG002
            if (name == "hubrepro" or name.startswith("hubrepro.")) and (
                name not in sys.modules
            ):
                # no `name=`: `from hubrepro import x` would swallow the message
                raise ModuleNotFoundError(hidden(name))
            return None

    def student_data(assignment: str, student_id: str) -> dict[str, Any]:
        """Return the data variant of ``assignment`` for ``student_id`` (from the grader)."""
        buffers: list[bytes] = []
        chan.send(
            {
                "op": "data",
                "assignment": encode(assignment, buffers),
                "student_id": encode(student_id, buffers),
            },
            buffers,
        )
        header, bufs = chan.receive()
        if "error" in header:
            exc = TypeError if header.get("type") == "TypeError" else ValueError
            raise exc(str(header["error"]))
        return decode(header.get("data"), bufs)

    def attr(module: str) -> Callable[[str], Any]:
        def __getattr__(name: str) -> Any:
            raise AttributeError(hidden(f"{module}.{name}"))

        return __getattr__

    doc = "The grader's stand-in for hubrepro: only hubrepro.classroom.student_data."
    pkg = types.ModuleType("hubrepro", doc)
    classroom = types.ModuleType("hubrepro.classroom", doc)
    pkg.__path__, classroom.__path__ = [], []  # packages without files
    pkg.__getattr__ = attr("hubrepro")  # type: ignore[attr-defined]
    classroom.__getattr__ = attr("hubrepro.classroom")  # type: ignore[attr-defined]
    student_data.__module__ = "hubrepro.classroom"
    classroom.student_data = student_data  # type: ignore[attr-defined]
    pkg.classroom = classroom  # type: ignore[attr-defined]
    sys.modules["hubrepro"], sys.modules["hubrepro.classroom"] = pkg, classroom
    sys.meta_path.insert(0, _HideLibrary())


def _run_cells(ns: dict[str, Any], cells: list[str]) -> dict[str, Any]:
    errors = []
    for i, src in enumerate(cells, start=1):
        try:
            code = compile(str(src), f"<cell {i}>", "exec")
            exec(code, ns)  # noqa: S102 -- running the submission is the child's job
        except BaseException as err:  # SystemExit too: a cell cannot end the grading
            note = (
                " (sys.exit() does not stop the grader; the next cells ran)"
                if isinstance(err, SystemExit)
                else ""
            )
            errors.append(f"cell {i}: {_text(err)}{note}")
    return {"op": "ran", "cell_errors": errors}


def _call(
    ns: dict[str, Any], header: dict[str, Any], buffers: list[bytes]
) -> tuple[dict[str, Any], list[bytes]]:
    f = ns.get(str(header.get("function")))
    if not callable(f):
        return {"op": "result", "missing": True}, []
    args = list(decode(header.get("args"), buffers))
    kwargs = decode(header.get("kwargs"), buffers)
    grad = [int(i) for i in header.get("grad", [])]
    for i in grad:
        args[i].requires_grad_(True)
    try:
        value = f(*args, **kwargs)
    except BaseException as err:  # the student's error, reported as feedback
        return {"op": "result", "raised": _text(err)}, []
    out: list[bytes] = []
    reply: dict[str, Any] = {"op": "result"}
    if grad:
        torch = sys.modules.get("torch")
        grad_error = None
        if (
            torch is not None
            and isinstance(value, torch.Tensor)
            and value.requires_grad
            and value.numel() == 1
        ):
            try:
                value.backward()
            except BaseException as err:
                grad_error = _text(err)
        reply["grads"] = encode([args[i].grad for i in grad], out)
        reply["grad_error"] = grad_error
    reply["value"] = encode(value, out)
    if header.get("return_args"):
        reply["args"] = encode(tuple(args), out)
    return reply, out


def _value(
    ns: dict[str, Any], header: dict[str, Any]
) -> tuple[dict[str, Any], list[bytes]]:
    name = str(header.get("name"))
    if name not in ns:
        return {"op": "result", "missing": True}, []
    out: list[bytes] = []
    return {"op": "result", "value": encode(ns[name], out)}, out


def main(argv: list[str]) -> None:
    """Serve the grader's requests on the two descriptors named in ``argv``."""
    chan = _Channel(int(argv[1]), int(argv[2]))
    init, _ = chan.receive()
    import site

    for d in init.get("site_dirs", []):
        site.addsitedir(d)
    failed = {}
    for name in init.get(
        "preload", []
    ):  # before the limits: the libraries do not count
        try:
            __import__(name)
        except BaseException as err:
            failed[name] = _text(err)
    _limit(init["limits"])
    _install_library_stand_in(chan, init["hidden_message"])
    chan.send({"op": "ready", "failed": failed})
    ns: dict[str, Any] = {"__name__": "__submission__", "__builtins__": builtins}
    while True:
        header, buffers = chan.receive()
        op = header.get("op")
        if op == "exit":
            break
        try:
            if op == "run":
                reply, out = _run_cells(ns, list(header.get("cells", []))), []
            elif op == "call":
                reply, out = _call(ns, header, buffers)
            elif op == "value":
                reply, out = _value(ns, header)
            else:
                reply, out = {"op": "result", "raised": f"unknown request {op!r}"}, []
        except Exception as err:  # a request the child could not even start
            reply, out = {"op": "result", "raised": _text(err)}, []
        chan.send(reply, out)
    # no atexit handlers, no waiting for the submission's threads
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
