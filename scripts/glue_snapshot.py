"""Snapshot the glued outputs of executed notebooks, and compare two snapshots.

A refactoring that must leave every executed table and figure unchanged is checked
by running the notebooks before and after it (``scripts/run_notebooks.py``) and
comparing what they glued::

    python scripts/glue_snapshot.py save book/executed before.json
    ... change the code, run the notebooks again ...
    python scripts/glue_snapshot.py save book/executed after.json
    python scripts/glue_snapshot.py diff before.json after.json [--rtol 1e-9] \
        [--ignore '^(45_normalizer_cost|70_environment)::']

``save`` records, for every glue key of every ``*.ipynb`` in the folder, the
``text/plain`` and ``text/html`` payloads and a SHA-256 of each image payload.
``diff`` lists the keys that appeared, disappeared or changed; numbers inside
``text/plain`` payloads are compared with the relative tolerance ``--rtol`` (default
0: identical text), images by hash; keys matching an ``--ignore`` regular expression
(timings, which differ from run to run) are skipped. Exit status 1 when anything
differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from pathlib import Path

PREFIX = "application/papermill.record/"
_NUM = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|nan|inf")


def snapshot(folder: Path) -> dict[str, dict[str, str]]:
    """Glue key (``notebook::key``) -> MIME type -> payload (images: their SHA-256)."""
    out: dict[str, dict[str, str]] = {}
    for ipynb in sorted(folder.glob("*.ipynb")):
        nb = json.loads(ipynb.read_text(encoding="utf-8"))
        for cell in nb.get("cells", []):
            for o in cell.get("outputs", []):
                name = o.get("metadata", {}).get("scrapbook", {}).get("name")
                if not name:
                    continue
                rec: dict[str, str] = {}
                for mime, payload in o.get("data", {}).items():
                    mime = mime.removeprefix(PREFIX)
                    text = "".join(payload) if isinstance(payload, list) else payload
                    if not isinstance(text, str):
                        text = json.dumps(text, sort_keys=True)
                    if mime.startswith("image/"):
                        text = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
                    rec[mime] = text
                out[f"{ipynb.stem}::{name}"] = rec
    return out


def _same_text(a: str, b: str, rtol: float) -> bool:
    if a == b:
        return True
    if rtol <= 0:
        return False
    na, nb = _NUM.findall(a), _NUM.findall(b)
    if _NUM.sub("#", a) != _NUM.sub("#", b) or len(na) != len(nb):
        return False
    for x, y in zip(na, nb, strict=True):
        fx, fy = float(x), float(y)
        if math.isnan(fx) and math.isnan(fy):
            continue
        if not math.isclose(fx, fy, rel_tol=rtol, abs_tol=rtol):
            return False
    return True


def diff(a: dict, b: dict, rtol: float = 0.0, ignore: str | None = None) -> list[str]:
    """Human-readable differences between two snapshots (empty when identical)."""
    if ignore:
        skip = re.compile(ignore)
        a = {k: v for k, v in a.items() if not skip.search(k)}
        b = {k: v for k, v in b.items() if not skip.search(k)}
    lines = [f"only before: {k}" for k in sorted(a.keys() - b.keys())]
    lines += [f"only after:  {k}" for k in sorted(b.keys() - a.keys())]
    for k in sorted(a.keys() & b.keys()):
        for mime in sorted(a[k].keys() | b[k].keys()):
            x, y = a[k].get(mime), b[k].get(mime)
            if x is None or y is None:
                lines.append(f"changed:     {k} [{mime}] present in one snapshot only")
            elif mime == "text/plain" and not _same_text(x, y, rtol):
                lines.append(f"changed:     {k} [{mime}] {x[:80]!r} -> {y[:80]!r}")
            elif mime != "text/plain" and x != y:
                lines.append(f"changed:     {k} [{mime}]")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser(
        "save", help="snapshot the glue outputs of a folder of notebooks"
    )
    s.add_argument("folder", type=Path)
    s.add_argument("out", type=Path)
    d = sub.add_parser("diff", help="compare two snapshots")
    d.add_argument("before", type=Path)
    d.add_argument("after", type=Path)
    d.add_argument("--rtol", type=float, default=0.0)
    d.add_argument("--ignore", help="regular expression of keys to skip (timings)")
    args = parser.parse_args(argv)
    if args.cmd == "save":
        if not args.folder.is_dir():
            parser.error(f"{args.folder} is not a folder of executed notebooks")
        snap = snapshot(args.folder)
        args.out.write_text(json.dumps(snap, indent=1, sort_keys=True))
        print(f"{len(snap)} glue outputs from {args.folder} -> {args.out}")
        return 0
    before = json.loads(args.before.read_text())
    after = json.loads(args.after.read_text())
    lines = diff(before, after, args.rtol, args.ignore)
    print("\n".join(lines) if lines else f"identical ({len(before)} glue outputs)")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
