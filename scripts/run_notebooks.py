#!/usr/bin/env python3
"""Execute the compendium's notebooks with papermill, with a content-hash cache.

Sources are MyST markdown notebooks in ``notebooks/NN_slug.md`` (jupytext). Each is
converted to ``.ipynb`` in ``<root>/_build/nbsrc/`` and executed by papermill into
``<root>/book/executed/NN_slug.ipynb`` with the parameter set
``notebooks/params/<set>/NN_slug.yml`` (an absent file means the notebook's own
defaults). Executed copies never go back into ``notebooks/``: papermill's
injected-parameters cell would override later runs. The kernel runs in the notebooks'
folder, and the runner injects ``artifact_dir`` relative to it
(``../_build/artifacts/NN_slug`` by default), so the rendered and downloadable
notebooks never show the build machine's folders.

Cache. A notebook is re-executed only when the hash of what it depends on changes:
its source, the name and file of its parameter set, the library code and packaged
data (``src/hubrepro/**``, except the classroom package, which no notebook runs;
the book's Sphinx extension lives in ``book/_ext/``, outside it), the repository's
``data/`` files (manifests, published numbers), the committed benchmark results, the
versions of the core numerical packages, and this script. The hash is stored beside the
executed copy (``.NN_slug.sha256``) only after a successful run. Notebooks 70-79
report on the run itself (the environment and the run time of every notebook), so
their hash also covers the other notebooks' recorded timings: they re-run exactly
when another notebook did.

Timings. The wall time of each executed notebook is recorded in
``book/executed/timings-<set>.json`` (cached notebooks keep their last time).
Notebooks find it through the environment variables ``HUBREPRO_EXECUTED_DIR`` and
``HUBREPRO_PARAMS_SET`` that the runner sets for the kernel. The file's name, format
and variables are defined once, in ``hubrepro._runinfo``, which notebook 70's driver
reads it with.

Parallelism. ``--jobs N`` (or ``NB_JOBS``) executes up to N notebooks at once, each in
its own kernel with one BLAS/OpenMP thread (``OMP_NUM_THREADS=1`` unless set);
notebooks 70-79 run after all the others. ``--jobs 2`` suits the 2-core reference
machine.

Failures. A failing notebook stops the run, exit status 1, with the notebook, the
cell (its number among the source's code cells, its first line and execution count)
and the error named; the partial output stays in ``book/executed/`` for inspection
and its stamp is removed, so the next run retries it. ``--keep-going`` runs the other
notebooks first and then names every failure.

Usage::

    python scripts/run_notebooks.py [--params default] [--only 10_hubness_metrics ...]
                                    [-p NAME VALUE ...] [--root DIR] [--notebooks-dir DIR] [--force]
                                    [--timeout SECONDS] [--list] [--jobs N] [--keep-going]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from importlib import metadata
from pathlib import Path

from hubrepro import _runinfo

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_GLOB = "[0-9][0-9]_*.md"
# packages whose version changes numbers in the book; a change re-runs every notebook
HASHED_PACKAGES = ("torch", "numpy", "scipy", "pandas", "matplotlib", "open_clip_torch")
# notebooks that report on the run itself (timings of the others): 70-79
RUN_REPORT_PREFIX = "7"


# library parts no notebook executes: the classroom machinery (editing it must not
# re-run every notebook); the book's Sphinx extension lives outside the library
NOT_HASHED = ("classroom",)


def _hash_tree(
    h, root: Path, patterns: tuple[str, ...], skip: tuple[str, ...] = ()
) -> None:
    if not root.is_dir():
        return
    for pattern in patterns:
        for p in sorted(root.glob(pattern)):
            rel = p.relative_to(root)
            if rel.parts and rel.parts[0] in skip:
                continue
            if p.is_file() and "__pycache__" not in p.parts:
                h.update(str(p.relative_to(root)).encode())
                h.update(p.read_bytes())


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "absent"


def environment_hash(repo: Path = REPO) -> str:
    """Hash what every notebook depends on: library, packaged and manifest data, versions, runner."""
    h = hashlib.sha256()
    _hash_tree(
        h,
        repo / "src" / "hubrepro",
        (
            "**/*.py",
            "**/*.json",
            "**/*.gz",
            "**/*.yml",
            "**/*.csv",
            "**/*.npz",
            "**/*.safetensors",
        ),
        skip=NOT_HASHED,
    )
    # data files the notebooks read: manifests, published numbers (data/published/), and
    # the committed benchmark results that notebook 45 pastes
    _hash_tree(h, repo / "data", ("**/*.yml", "**/*.csv", "**/*.json"))
    _hash_tree(h, repo / "benchmarks" / "results", ("*.json",))
    for pkg in HASHED_PACKAGES:
        h.update(f"{pkg}=={_version(pkg)}".encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def content_hash(
    src: Path,
    params_file: Path | None,
    params_name: str,
    env_digest: str,
    extra: str = "",
) -> str:
    """Hash everything one executed notebook depends on."""
    h = hashlib.sha256()
    h.update(src.read_bytes())
    h.update(params_name.encode())
    if params_file is not None and params_file.exists():
        h.update(params_file.read_bytes())
    h.update(env_digest.encode())
    h.update(extra.encode())
    return h.hexdigest()


def kernel_path(path: Path, cwd: Path) -> str:
    """``path`` as the kernel, running in ``cwd``, should be given it: relative to ``cwd``.

    The injected-parameters cell is part of the executed notebook the book renders and
    offers for download, so it must not show the build machine's folders; a relative
    path also stays valid when the notebook is re-run from ``notebooks/`` elsewhere.
    Falls back to the absolute path where none relative exists (another drive).

    Examples
    --------
    >>> kernel_path(Path("/r/_build/artifacts/10_x"), Path("/r/notebooks"))
    '../_build/artifacts/10_x'
    """
    path, cwd = Path(os.path.abspath(path)), Path(os.path.abspath(cwd))
    try:
        return Path(os.path.relpath(path, cwd)).as_posix()
    except ValueError:
        return str(path)


def load_params(params_dir: Path, stem: str) -> tuple[dict, Path | None]:
    """The parameters of ``stem`` in a set (``{}`` and ``None`` when it has no file)."""
    import yaml

    f = params_dir / f"{stem}.yml"
    if not f.exists():
        return {}, None
    data = yaml.safe_load(f.read_text()) or {}
    if not isinstance(data, dict):
        raise SystemExit(
            f"run_notebooks: {f} must hold a mapping of parameter names to values"
        )
    return data, f


def convert(src: Path, out: Path) -> None:
    """Write the jupytext source ``src`` as an ``.ipynb`` with the ``python3`` kernel."""
    import jupytext

    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, out)


def _source_cell_number(
    executed: Path, cell_index: int | None, source: str | None
) -> int | None:
    """1-based number among the *source's* code cells (papermill's injected cell not counted).

    papermill inserts its error banners into the executed copy after the failure, so
    the failing cell is found by its source text, and by ``cell_index`` among the
    cells that are not banners when the text is ambiguous or absent.
    """
    if not executed.exists():
        return None
    try:
        cells = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return None

    def text(c: dict) -> str:
        src = c.get("source", "")
        return ("".join(src) if isinstance(src, list) else str(src)).strip()

    plain = [
        c
        for c in cells
        if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])
    ]
    numbers: list[tuple[int, dict]] = []
    n = 0
    for i, cell in enumerate(plain):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") == "code" and "injected-parameters" not in tags:
            n += 1
            numbers.append((n, cell))
            if source is None and i == cell_index:
                return n
    if source is not None:
        hits = [num for num, c in numbers if text(c) == str(source).strip()]
        if len(hits) == 1:
            return hits[0]
        if cell_index is not None and 0 <= cell_index < len(plain):
            for num, c in numbers:
                if c is plain[cell_index]:
                    return num
    return None


def describe_failure(executed: Path, err: Exception) -> str:
    """Name the failing cell and error from papermill's ``PapermillExecutionError``.

    Gives the error type and message, the cell's number among the source's code cells,
    its execution count and first line, and where the partial output is.
    """
    ename = getattr(err, "ename", None) or type(err).__name__
    evalue = getattr(err, "evalue", None)
    if evalue is None:
        evalue = str(err).strip().splitlines()[-1] if str(err).strip() else ""
    source = getattr(err, "source", None)
    exec_count = getattr(err, "exec_count", None)
    number = _source_cell_number(executed, getattr(err, "cell_index", None), source)
    parts = []
    if number is not None:
        parts.append(f"code cell {number} of the source")
    if exec_count is not None:
        parts.append(f"In [{exec_count}]")
    where = ", ".join(parts) if parts else "a cell"
    first = ""
    if source:
        lines = [ln for ln in str(source).splitlines() if ln.strip()]
        if lines:
            first = f"\n  cell begins: {lines[0][:120]}"
    return (
        f"{ename}: {evalue}\n  in {where}{first}\n  the partial output is in {executed}"
    )


def _report_extra(stem: str, timings: dict, artifacts: Path | None = None) -> str:
    """Cache-key part of a 70-79 notebook: the others' timings and every claims file.

    The claims ledger (75) reads each ``claims.csv`` under the artifacts folder, so a
    changed claims file must re-run it even when no timing moved.
    """
    if not stem.startswith(RUN_REPORT_PREFIX):
        return ""
    others = {k: v for k, v in timings.items() if not k.startswith(RUN_REPORT_PREFIX)}
    claims = {}
    if artifacts is not None and artifacts.is_dir():
        from hubrepro.datasets.manifest import sha256_file

        claims = {
            str(p.relative_to(artifacts)): sha256_file(p)
            for p in sorted(artifacts.glob("*/claims.csv"))
            if not p.parent.name.startswith(RUN_REPORT_PREFIX)
        }
    if claims:
        others = {"timings": others, "claims": claims}
    return json.dumps(others, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--params",
        default=os.environ.get("PARAMS", "default"),
        help="parameter set (folder of notebooks/params)",
    )
    ap.add_argument(
        "--only", nargs="*", default=None, help="notebook stems to run (default: all)"
    )
    ap.add_argument(
        "--root",
        type=Path,
        default=REPO,
        help="where book/executed and _build live (default: the repository)",
    )
    ap.add_argument(
        "--notebooks-dir",
        type=Path,
        default=REPO / "notebooks",
        help="folder of NN_slug.md sources and params/ (default: notebooks)",
    )
    ap.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="override one parameter (VALUE read as YAML: 500, [3, 10], true, text); repeatable",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=int(os.environ.get("NB_JOBS", "1")),
        help="notebooks executed at once (default $NB_JOBS or 1); each uses one kernel",
    )
    ap.add_argument(
        "--keep-going",
        action="store_true",
        help="after a failure, run the other notebooks, then exit 1 naming every failure",
    )
    ap.add_argument("--force", action="store_true", help="ignore the cache")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    ap.add_argument(
        "--list",
        action="store_true",
        help="only say which notebooks would run and which are cached",
    )
    args = ap.parse_args(argv)

    nb_dir = args.notebooks_dir.resolve()
    root = args.root.resolve()
    params_root = nb_dir / "params"
    params_dir = params_root / args.params
    if args.params != "default" and not params_dir.is_dir():
        known = (
            sorted(p.name for p in params_root.iterdir() if p.is_dir())
            if params_root.is_dir()
            else []
        )
        print(
            f"run_notebooks: unknown parameter set {args.params!r}; known: {known}",
            file=sys.stderr,
        )
        return 2
    sources = sorted(nb_dir.glob(NOTEBOOK_GLOB))
    if args.only:
        wanted = set(args.only)
        missing = wanted - {s.stem for s in sources}
        if missing:
            print(
                f"run_notebooks: no such notebook(s) in {nb_dir}: {sorted(missing)}",
                file=sys.stderr,
            )
            return 2
        sources = [s for s in sources if s.stem in wanted]
    out_dir = root / "book" / "executed"
    out_dir.mkdir(parents=True, exist_ok=True)
    timings_file = _runinfo.timings_path(out_dir, args.params)
    # a missing or truncated file (an interrupted run) starts afresh
    timings = _runinfo.load_timings(timings_file)
    import yaml

    overrides = {name: yaml.safe_load(value) for name, value in args.parameter}
    env_digest = environment_hash()
    # The kernel must draw with the inline backend, or a glued matplotlib figure is stored
    # as text ("<Figure size ...>") and the book pastes no image. `make` and the tests
    # export MPLBACKEND=Agg for scripts; ipykernel keeps an inherited value.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ[_runinfo.ENV_EXECUTED_DIR] = str(out_dir)
    os.environ[_runinfo.ENV_PARAMS_SET] = args.params
    n_run = n_cached = 0
    failures: list[str] = []
    t_start = time.perf_counter()
    # two waves: the notebooks, then the ones reporting on the run (70-79), whose cache
    # key includes the timings the first wave records
    waves = [
        [s for s in sources if not s.stem.startswith(RUN_REPORT_PREFIX)],
        [s for s in sources if s.stem.startswith(RUN_REPORT_PREFIX)],
    ]
    for wave in waves:
        tasks = []
        for src in wave:
            stem = src.stem
            params, pfile = load_params(params_dir, stem)
            params = {**params, **overrides}
            digest = content_hash(
                src,
                pfile,
                args.params,
                env_digest,
                _report_extra(stem, timings, root / "_build" / "artifacts")
                + json.dumps(overrides, sort_keys=True, default=str),
            )
            executed = out_dir / f"{stem}.ipynb"
            stamp = out_dir / f".{stem}.sha256"
            fresh = (
                executed.exists()
                and stamp.exists()
                and stamp.read_text().strip() == digest
            )
            if fresh and not args.force:
                print(f"[cached]  {stem}  ({args.params})")
                n_cached += 1
                continue
            if args.list:
                print(f"[stale]   {stem}  ({args.params})")
                continue
            ipynb = root / "_build" / "nbsrc" / f"{stem}.ipynb"
            convert(src, ipynb)
            params = dict(params)
            params.setdefault(
                "artifact_dir",
                kernel_path(root / "_build" / "artifacts" / stem, nb_dir),
            )
            stamp.unlink(missing_ok=True)
            tasks.append(
                (
                    src,
                    digest,
                    (str(ipynb), str(executed), params, str(nb_dir), args.timeout),
                )
            )
        if not tasks:
            continue
        for src, digest, outcome in _execute(tasks, args, args.jobs):
            stem = src.stem
            executed = out_dir / f"{stem}.ipynb"
            if isinstance(outcome, BaseException):
                try:
                    shown = src.relative_to(REPO)
                except ValueError:
                    shown = src
                print(
                    f"\nrun_notebooks: notebook {shown} failed ({args.params}):\n"
                    f"  {describe_failure(executed, outcome)}",
                    file=sys.stderr,
                    flush=True,
                )
                failures.append(stem)
                if not args.keep_going:
                    return 1
                continue
            timings[stem] = round(outcome, 1)
            _runinfo.write_timings(timings_file, timings)
            # the stamp is the hash the notebook ran with, so a 70-79 notebook stays
            # valid until another notebook's timing changes
            (out_dir / f".{stem}.sha256").write_text(digest + "\n")
            n_run += 1
            print(f"[done]    {stem}  {outcome:.1f} s", flush=True)
    if failures:
        print(f"run_notebooks: failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    if not args.list:
        print(
            f"run_notebooks: {n_run} executed, {n_cached} cached, "
            f"{time.perf_counter() - t_start:.1f} s ({args.params}, {args.jobs} job(s))"
        )
    return 0


def _execute_one(job: tuple) -> float:
    """Execute one notebook with papermill; return its wall time in seconds."""
    import papermill as pm  # imported only when something runs: a cached rebuild stays fast

    ipynb, executed, params, cwd, timeout = job
    t0 = time.perf_counter()
    pm.execute_notebook(
        ipynb,
        executed,
        parameters=params,
        cwd=cwd,
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=timeout,
    )
    return time.perf_counter() - t0


def _execute(tasks: list, args: argparse.Namespace, jobs: int):
    """Yield ``(src, digest, seconds or exception)`` as notebooks finish.

    With ``jobs > 1`` notebooks run in worker processes (each starts its own kernel);
    after a failure without ``--keep-going`` the notebooks not yet started are cancelled.
    """
    serial = jobs <= 1 or len(tasks) == 1
    for src, _, job in tasks:
        if not serial:
            print(f"[queued]  {src.stem}  ({args.params}: {job[2]})", flush=True)
    if serial:
        for src, digest, job in tasks:
            print(f"[running] {src.stem}  ({args.params}: {job[2]})", flush=True)
            try:
                yield src, digest, _execute_one(job)
            except (
                Exception
            ) as err:  # papermill raises PapermillExecutionError with cell details
                yield src, digest, err
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # N kernels share the cores: one thread each unless the user chose otherwise
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {
            pool.submit(_execute_one, job): (src, digest) for src, digest, job in tasks
        }
        try:
            for fut in as_completed(futures):
                src, digest = futures[fut]
                try:
                    yield src, digest, fut.result()
                except Exception as err:
                    yield src, digest, err
        finally:
            for fut in futures:
                fut.cancel()


if __name__ == "__main__":
    sys.exit(main())
