#!/usr/bin/env python3
"""Execute the compendium's notebooks with papermill, with a content-hash cache.

Sources are MyST markdown notebooks in ``notebooks/NN_slug.md`` (jupytext). Each is
converted to ``.ipynb`` in ``_build/nbsrc/`` and executed by papermill into
``<root>/book/executed/NN_slug.ipynb`` with the parameter set
``notebooks/params/<set>/NN_slug.yml`` (an absent file means the notebook's own
defaults). Executed copies never go back into ``notebooks/``: papermill's
injected-parameters cell would override later runs.

A notebook is re-executed only when the hash of its source, its parameters, the
library code (``src/hubrepro/**``), the embedded data and this script changes; the
hash is stored beside the executed copy. A failing notebook stops the run with the
notebook, the cell and the error named.

Usage::

    python scripts/run_notebooks.py [--params default] [--only 10_hubness_metrics ...]
                                    [--root DIR] [--force] [--jobs 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _hash_tree(h: "hashlib._Hash", root: Path, patterns: tuple[str, ...]) -> None:
    for pattern in patterns:
        for p in sorted(root.glob(pattern)):
            if p.is_file() and "__pycache__" not in p.parts:
                h.update(str(p.relative_to(REPO)).encode())
                h.update(p.read_bytes())


def content_hash(src: Path, params_file: Path | None, params_name: str) -> str:
    """Hash everything an executed notebook depends on."""
    h = hashlib.sha256()
    h.update(src.read_bytes())
    h.update(params_name.encode())
    if params_file is not None and params_file.exists():
        h.update(params_file.read_bytes())
    _hash_tree(h, REPO / "src" / "hubrepro", ("**/*.py", "**/*.json", "**/*.gz", "**/*.yml"))
    _hash_tree(h, REPO / "data", ("*.yml", "*.csv", "*.json"))
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def load_params(params_dir: Path, stem: str) -> tuple[dict, Path | None]:
    import yaml

    f = params_dir / f"{stem}.yml"
    if not f.exists():
        return {}, None
    data = yaml.safe_load(f.read_text()) or {}
    if not isinstance(data, dict):
        raise SystemExit(f"run_notebooks: {f} must hold a mapping of parameter names to values")
    return data, f


def convert(src: Path, out: Path) -> None:
    import jupytext

    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    out.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, out)


def describe_failure(executed: Path, err: Exception) -> str:
    """Name the failing cell from papermill's error."""
    cell = getattr(err, "exec_count", None)
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err))
    where = f"cell [{cell}]" if cell is not None else "a cell"
    return f"{ename}: {evalue}\n  in {where}; the partial output is in {executed}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=os.environ.get("PARAMS", "default"), help="parameter set (folder of notebooks/params)")
    ap.add_argument("--only", nargs="*", default=None, help="notebook stems to run (default: all)")
    ap.add_argument("--root", type=Path, default=REPO, help="where book/executed lives (default: the repository)")
    ap.add_argument("--force", action="store_true", help="ignore the cache")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = ap.parse_args(argv)

    import papermill as pm

    params_dir = REPO / "notebooks" / "params" / args.params
    if args.params != "default" and not params_dir.is_dir():
        known = sorted(p.name for p in (REPO / "notebooks" / "params").iterdir() if p.is_dir())
        print(f"run_notebooks: unknown parameter set {args.params!r}; known: {known}", file=sys.stderr)
        return 2
    sources = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.md"))
    if args.only:
        wanted = set(args.only)
        missing = wanted - {s.stem for s in sources}
        if missing:
            print(f"run_notebooks: no such notebook(s): {sorted(missing)}", file=sys.stderr)
            return 2
        sources = [s for s in sources if s.stem in wanted]
    out_dir = args.root / "book" / "executed"
    out_dir.mkdir(parents=True, exist_ok=True)
    timings = {}
    timings_file = out_dir / f"timings-{args.params}.json"
    if timings_file.exists():
        timings = json.loads(timings_file.read_text())
    for src in sources:
        stem = src.stem
        params, pfile = load_params(params_dir, stem)
        digest = content_hash(src, pfile, args.params)
        executed = out_dir / f"{stem}.ipynb"
        stamp = out_dir / f".{stem}.sha256"
        if not args.force and executed.exists() and stamp.exists() and stamp.read_text().strip() == digest:
            print(f"[cached]  {stem}  ({args.params})")
            continue
        ipynb = REPO / "_build" / "nbsrc" / f"{stem}.ipynb"
        convert(src, ipynb)
        params = dict(params)
        params.setdefault("artifact_dir", str((args.root / "_build" / "artifacts" / stem).resolve()))
        print(f"[running] {stem}  ({args.params}: {params if params else 'defaults'})", flush=True)
        t0 = time.perf_counter()
        stamp.unlink(missing_ok=True)
        try:
            pm.execute_notebook(
                str(ipynb),
                str(executed),
                parameters=params,
                cwd=str(REPO / "notebooks"),
                kernel_name="python3",
                progress_bar=False,
                execution_timeout=args.timeout,
            )
        except Exception as err:  # papermill raises PapermillExecutionError with cell details
            print(f"\nrun_notebooks: notebook {src.relative_to(REPO)} failed ({args.params}):\n  {describe_failure(executed, err)}", file=sys.stderr)
            return 1
        dt = time.perf_counter() - t0
        timings[stem] = round(dt, 1)
        stamp.write_text(digest + "\n")
        timings_file.write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
        print(f"[done]    {stem}  {dt:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
