"""The book's machinery: the notebook runner's cache and failure report, run timings,
and the consistency of the table of contents, glue keys and classroom page.

The runner tests execute throw-away notebooks from a temporary ``--notebooks-dir``
(pure Python, no torch), so they take seconds and never touch ``book/executed``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _book_html import css_loads, external_resources, page_loads
from hubrepro import _runinfo as runinfo

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "scripts" / "run_notebooks.py"
EXTENSION = REPO / "book" / "_ext" / "hubrepro_book.py"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_notebooks = _load("run_notebooks", RUNNER)
book_extension = _load("hubrepro_book", EXTENSION)

HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  name: python3
  display_name: Python 3
  language: python
---

# A throw-away notebook
"""


def _notebook(*cells: str, params: str = "x = 1  # a parameter") -> str:
    body = f"\n```{{code-cell}} ipython3\n:tags: [parameters]\n\n{params}\nartifact_dir = ''  # unused\n```\n"
    for c in cells:
        body += f"\n```{{code-cell}} ipython3\n{c}\n```\n"
    return HEADER + body


def _run(nb_dir: Path, root: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(RUNNER),
            "--notebooks-dir",
            str(nb_dir),
            "--root",
            str(root),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def nb_dir(tmp_path) -> Path:
    d = tmp_path / "notebooks"
    (d / "params" / "small").mkdir(parents=True)
    (d / "10_ok.md").write_text(
        _notebook("from myst_nb import glue\nglue('nb10-val-x', x * 2, display=False)")
    )
    return d


# ------------------------------------------------------------------ cache


@pytest.mark.notebook
def test_cache_reruns_exactly_when_an_input_changes(nb_dir, tmp_path):
    root = tmp_path / "root"
    first = _run(nb_dir, root, "--params", "small")
    assert first.returncode == 0, first.stderr
    assert "[done]    10_ok" in first.stdout
    executed = root / "book" / "executed" / "10_ok.ipynb"
    assert executed.exists() and (root / "book" / "executed" / ".10_ok.sha256").exists()

    again = _run(nb_dir, root, "--params", "small")
    assert "[cached]  10_ok" in again.stdout and "[running]" not in again.stdout

    # a new parameter file for the set invalidates, and its value reaches the notebook
    (nb_dir / "params" / "small" / "10_ok.yml").write_text("x: 21\n")
    listed = _run(nb_dir, root, "--params", "small", "--list")
    assert "[stale]   10_ok" in listed.stdout and not listed.stderr.strip().startswith(
        "Traceback"
    )
    rerun = _run(nb_dir, root, "--params", "small")
    assert "[done]    10_ok" in rerun.stdout, rerun.stderr
    assert '"x": 21' in executed.read_text() or "x = 21" in executed.read_text()

    # the source changes: re-run; nothing changes: cached
    src = nb_dir / "10_ok.md"
    src.write_text(src.read_text().replace("x * 2", "x * 3"))
    assert "[stale]   10_ok" in _run(nb_dir, root, "--params", "small", "--list").stdout
    # another parameter set is another cache key
    assert (
        "[stale]   10_ok" in _run(nb_dir, root, "--params", "default", "--list").stdout
    )
    timings = json.loads(
        (root / "book" / "executed" / "timings-small.json").read_text()
    )
    assert set(timings) == {"10_ok"} and timings["10_ok"] > 0


def test_environment_hash_follows_library_code_and_packaged_data(tmp_path):
    lib = tmp_path / "src" / "hubrepro"
    (lib / "sub").mkdir(parents=True)
    (lib / "a.py").write_text("x = 1\n")
    (lib / "sub" / "table.json").write_text("{}\n")
    h0 = run_notebooks.environment_hash(tmp_path)
    assert run_notebooks.environment_hash(tmp_path) == h0
    (lib / "__pycache__").mkdir()
    (lib / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0junk")
    assert run_notebooks.environment_hash(tmp_path) == h0  # compiled files do not count
    # the classroom runs in no notebook (the book's Sphinx extension is not in the library)
    (lib / "classroom").mkdir()
    (lib / "classroom" / "grading.py").write_text("z = 1\n")
    assert run_notebooks.environment_hash(tmp_path) == h0
    (lib / "a.py").write_text("x = 2\n")
    h1 = run_notebooks.environment_hash(tmp_path)
    assert h1 != h0
    (lib / "sub" / "table.json").write_text('{"a": 1}\n')
    h2 = run_notebooks.environment_hash(tmp_path)
    assert h2 != h1
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.yml").write_text("a: 1\n")
    h3 = run_notebooks.environment_hash(tmp_path)
    assert h3 != h2
    # published numbers live one folder down; benchmark results are read by notebook 45
    (tmp_path / "data" / "published").mkdir()
    (tmp_path / "data" / "published" / "dbnorm.csv").write_text("a\n1\n")
    h4 = run_notebooks.environment_hash(tmp_path)
    assert h4 != h3
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "bench.json").write_text("{}\n")
    assert run_notebooks.environment_hash(tmp_path) != h4


def test_content_hash_inputs(tmp_path):
    src = tmp_path / "10_a.md"
    src.write_text("x")
    p = tmp_path / "10_a.yml"
    p.write_text("a: 1\n")
    base = run_notebooks.content_hash(src, p, "tiny", "env")
    assert base == run_notebooks.content_hash(src, p, "tiny", "env")
    assert base != run_notebooks.content_hash(src, p, "paper", "env")
    assert base != run_notebooks.content_hash(src, p, "tiny", "env2")
    assert base != run_notebooks.content_hash(src, None, "tiny", "env")
    p.write_text("a: 2\n")
    assert base != run_notebooks.content_hash(src, p, "tiny", "env")


def test_report_notebooks_depend_on_the_other_notebooks_timings():
    t = {"10_a": 1.0, "20_b": 2.0, "70_environment": 5.0}
    assert run_notebooks._report_extra("10_a", t) == ""
    extra = run_notebooks._report_extra("70_environment", t)
    assert extra == run_notebooks._report_extra(
        "70_environment", {**t, "70_environment": 9.9}
    )
    assert extra != run_notebooks._report_extra("70_environment", {**t, "20_b": 2.5})


def test_the_ledger_reruns_when_a_claims_file_changes(tmp_path):
    t = {"40_a": 1.0, "75_claims_ledger": 0.5}
    arts = tmp_path / "artifacts"
    none = run_notebooks._report_extra("75_claims_ledger", t, arts)
    (arts / "40_a").mkdir(parents=True)
    (arts / "40_a" / "claims.csv").write_text("key\ndb-a\n")
    one = run_notebooks._report_extra("75_claims_ledger", t, arts)
    assert one != none
    (arts / "40_a" / "claims.csv").write_text("key\ndb-b\n")
    assert run_notebooks._report_extra("75_claims_ledger", t, arts) != one
    # its own output folder does not count, and other notebooks ignore claims
    (arts / "75_claims_ledger").mkdir()
    (arts / "75_claims_ledger" / "claims.csv").write_text("x\n")
    two = run_notebooks._report_extra("75_claims_ledger", t, arts)
    (arts / "75_claims_ledger" / "claims.csv").write_text("y\n")
    assert run_notebooks._report_extra("75_claims_ledger", t, arts) == two
    assert run_notebooks._report_extra("40_a", t, arts) == ""


# ------------------------------------------------------------------ failures


@pytest.mark.notebook
def test_failing_notebook_names_notebook_cell_and_error(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    (d / "10_first.md").write_text(_notebook("y = x + 1"))
    (d / "20_broken.md").write_text(
        _notebook("y = x + 1", "z = y\nraise ValueError(f'boom {z}')", "never = True")
    )
    (d / "30_after.md").write_text(_notebook("w = 0"))
    root = tmp_path / "root"
    proc = _run(d, root, "--params", "default")
    assert proc.returncode == 1
    err = proc.stderr
    assert "20_broken.md failed (default)" in err
    assert "ValueError: boom 2" in err
    assert (
        "code cell 3 of the source" in err
    )  # parameters cell, `y = x + 1`, the raising cell
    assert "cell begins: z = y" in err
    assert str(root / "book" / "executed" / "20_broken.ipynb") in err
    # the run stopped there: 30 never ran; the broken notebook has no stamp, so it re-runs
    assert "[done]    10_first" in proc.stdout and "30_after" not in proc.stdout
    assert not (root / "book" / "executed" / ".20_broken.sha256").exists()
    assert not (root / "book" / "executed" / "30_after.ipynb").exists()


@pytest.mark.notebook
def test_keep_going_in_parallel_runs_the_rest_and_names_every_failure(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    (d / "10_broken.md").write_text(_notebook("raise RuntimeError('first')"))
    (d / "20_fine.md").write_text(
        _notebook("from myst_nb import glue\nglue('nb20-val-x', x, display=False)")
    )
    (d / "70_report.md").write_text(_notebook("y = 1"))
    root = tmp_path / "root"
    proc = _run(d, root, "--jobs", "2", "--keep-going")
    assert proc.returncode == 1
    assert "RuntimeError: first" in proc.stderr and "failed: 10_broken" in proc.stderr
    assert "[done]    20_fine" in proc.stdout and "[done]    70_report" in proc.stdout
    assert (root / "book" / "executed" / ".20_fine.sha256").exists()
    assert not (root / "book" / "executed" / ".10_broken.sha256").exists()


def test_describe_failure_counts_source_cells_not_the_injected_one(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "# t"},
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "x = 1"},
        {
            "cell_type": "code",
            "metadata": {"tags": ["injected-parameters"]},
            "source": "x = 2",
        },
        {"cell_type": "code", "metadata": {}, "source": "import math"},
        {"cell_type": "code", "metadata": {}, "source": "\n1 / 0"},
    ]
    executed = tmp_path / "nb.ipynb"
    executed.write_text(json.dumps({"cells": cells}))
    err = PapermillExecutionError(
        4, 3, "\n1 / 0", "ZeroDivisionError", "division by zero", ["tb"]
    )
    text = run_notebooks.describe_failure(executed, err)
    assert text.startswith("ZeroDivisionError: division by zero")
    assert "code cell 3 of the source, In [3]" in text
    assert "cell begins: 1 / 0" in text
    # any other exception (a kernel death, a timeout) is still named
    other = run_notebooks.describe_failure(
        tmp_path / "missing.ipynb", TimeoutError("cell timed out")
    )
    assert other.startswith("TimeoutError: cell timed out") and "in a cell" in other


def _injected_source(executed: Path) -> str:
    cells = json.loads(executed.read_text())["cells"]
    injected = [
        c
        for c in cells
        if "injected-parameters" in c.get("metadata", {}).get("tags", [])
    ]
    assert len(injected) == 1, "papermill injects exactly one parameters cell"
    src = injected[0]["source"]
    return "".join(src) if isinstance(src, list) else src


@pytest.mark.notebook
def test_injected_artifact_dir_is_relative_to_the_notebooks_folder(tmp_path):
    """The rendered notebook shows no folder of the build machine, and the path works."""
    d = tmp_path / "notebooks"
    d.mkdir()
    (d / "10_art.md").write_text(
        _notebook(
            "from pathlib import Path\n"
            "Path(artifact_dir).mkdir(parents=True, exist_ok=True)\n"
            "(Path(artifact_dir) / 'made.txt').write_text('here')"
        )
    )
    root = tmp_path / "root"
    proc = _run(d, root)
    assert proc.returncode == 0, proc.stderr
    source = _injected_source(root / "book" / "executed" / "10_art.ipynb")
    value = re.search(r'^artifact_dir = "(.*)"$', source, flags=re.M).group(1)
    assert not Path(value).is_absolute() and str(tmp_path) not in source, source
    assert value == "../root/_build/artifacts/10_art"
    # the notebook ran in the notebooks' folder, so the relative path reached the root
    assert (root / "_build" / "artifacts" / "10_art" / "made.txt").read_text() == "here"


def test_kernel_path_is_relative_to_the_kernels_folder(tmp_path):
    assert (
        run_notebooks.kernel_path(
            REPO / "_build" / "artifacts" / "40_x", REPO / "notebooks"
        )
        == "../_build/artifacts/40_x"
    )
    assert run_notebooks.kernel_path(tmp_path / "a" / "b", tmp_path) == "a/b"


def test_runner_usage_errors(nb_dir, tmp_path):
    proc = _run(nb_dir, tmp_path / "r", "--params", "nosuchset")
    assert (
        proc.returncode == 2
        and "unknown parameter set 'nosuchset'; known: ['small']" in proc.stderr
    )
    proc = _run(nb_dir, tmp_path / "r", "--only", "99_missing")
    assert proc.returncode == 2 and "99_missing" in proc.stderr


# ------------------------------------------------------------------ run timings


def test_read_timings_is_robust(tmp_path):
    p = tmp_path / "timings-tiny.json"
    assert runinfo.read_timings(p).empty  # missing
    p.write_text("{not json")
    assert runinfo.read_timings(p).empty  # damaged
    p.write_text(
        json.dumps(
            {
                "20_b": 2.5,
                "10_a": 1,
                "30_c": "fast",
                "40_d": -1,
                "50_e": True,
                "70_environment": 0.4,
            }
        )
    )
    df = runinfo.read_timings(p, exclude=("70_environment",))
    assert list(df.columns) == ["notebook", "seconds"]
    assert df.notebook.tolist() == ["10_a", "20_b"] and df.seconds.tolist() == [
        1.0,
        2.5,
    ]
    s = runinfo.timings_summary(df)
    assert s == {
        "n_notebooks": 2,
        "total_seconds": 3.5,
        "slowest": "20_b",
        "slowest_seconds": 2.5,
    }
    assert (
        runinfo.timings_summary(runinfo.read_timings(tmp_path / "none.json"))["slowest"]
        is None
    )
    with pytest.raises(TypeError, match="`timings` must be a DataFrame"):
        runinfo.timings_summary({"a": 1})


def test_timings_file_round_trip_is_what_the_runner_and_notebook_70_share(tmp_path):
    p = runinfo.timings_path(tmp_path, "tiny")
    assert p == tmp_path / "timings-tiny.json" and runinfo.load_timings(p) == {}
    runinfo.write_timings(p, {"20_b": 2.5, "10_a": 1.0})
    assert p.read_text().splitlines()[1] == ' "10_a": 1.0,'  # sorted, one per line
    assert runinfo.load_timings(p) == {"10_a": 1.0, "20_b": 2.5}
    p.write_text('{"10_a": 1.0, "20_b": ')  # an interrupted write
    assert runinfo.load_timings(p) == {}
    p.write_text("[1, 2]")
    assert runinfo.load_timings(p) == {}


def test_timings_path_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv(runinfo.ENV_EXECUTED_DIR, raising=False)
    monkeypatch.delenv(runinfo.ENV_PARAMS_SET, raising=False)
    assert (
        runinfo.timings_path()
        == Path("..") / "book" / "executed" / "timings-default.json"
    )
    monkeypatch.setenv(runinfo.ENV_EXECUTED_DIR, str(tmp_path))
    monkeypatch.setenv(runinfo.ENV_PARAMS_SET, "tiny")
    assert runinfo.timings_path() == tmp_path / "timings-tiny.json"
    assert (
        runinfo.timings_path(tmp_path / "x", "paper")
        == tmp_path / "x" / "timings-paper.json"
    )


# ------------------------------------------------------------------ consistency of the book


def _toc_files() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def test_toc_lists_existing_pages_and_every_notebook():
    files = _toc_files()
    assert len(files) == len(set(files))
    for f in files:
        if f.startswith("book/executed/"):
            assert (REPO / "notebooks" / f"{Path(f).name}.md").exists(), (
                f"_toc.yml lists {f}, but notebooks/{Path(f).name}.md does not exist"
            )
        else:
            assert (REPO / f"{f}.md").exists(), (
                f"_toc.yml lists {f}, which does not exist"
            )
    executed = {Path(f).name for f in files if f.startswith("book/executed/")}
    sources = {p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.md")}
    assert sources <= executed, (
        f"notebooks missing from _toc.yml: {sorted(sources - executed)}"
    )


_GLUE_USE = re.compile(
    r"(?:\{glue:(?:text|figure|any|math)\}`|```\{glue:(?:figure|table|math)\}\s+)(?:executed/(?P<nb1>\d\d_[\w-]+)\.ipynb::)?(?P<key>nb\d\d-[\w-]+)(?:[^\n]*\n:doc: executed/(?P<nb2>\d\d_[\w-]+)\.ipynb)?"
)
# glue("key", ...), reporting.publish("key", ...), reporting.record_provenance(cfg, "key")
_GLUE_DEF = re.compile(
    r"(?:glue\(|publish\(|record_provenance\([^,()]*,)\s*(f?)([\"'])(nb\d\d-[^\"']+)\2"
)


def _defined_key_patterns(stem: str) -> list[re.Pattern]:
    src = (REPO / "notebooks" / f"{stem}.md").read_text()
    pats = []
    for is_f, _, key in _GLUE_DEF.findall(src):
        pats.append(
            re.compile(re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(key)) + "$")
            if is_f
            else re.compile(re.escape(key) + "$")
        )
    return pats


def test_pasted_glue_keys_are_produced_by_the_named_notebook():
    """A static check of every chapter's glue (the book build re-checks it after execution)."""
    problems = []
    for page in sorted((REPO / "book").rglob("*.md")):
        if "executed" in page.parts:
            continue
        for m in _GLUE_USE.finditer(page.read_text()):
            stem = m["nb1"] or m["nb2"]
            key = m["key"]
            if stem is None:
                continue  # a same-page paste; the build checks those
            if not (REPO / "notebooks" / f"{stem}.md").exists():
                problems.append(f"{page.name}: {key} from missing notebook {stem}")
            elif not any(p.match(key) for p in _defined_key_patterns(stem)):
                problems.append(f"{page.name}: {stem} glues no {key}")
            elif not key.startswith(f"nb{stem[:2]}-"):
                problems.append(
                    f"{page.name}: {key} does not carry the prefix of {stem}"
                )
    assert not problems, "\n".join(problems)


def test_classroom_page_lists_every_assignment():
    from hubrepro.classroom import ASSIGNMENTS

    page = (REPO / "book" / "09_classroom.md").read_text()
    missing = [name for name in ASSIGNMENTS if name not in page]
    assert not missing, f"book/09_classroom.md does not mention {missing}"


# ------------------------------------------------------------------ cross-document glue


MINI_NOTEBOOK = (
    HEADER
    + """
```{code-cell} ipython3
:tags: [parameters]

n = 3  # a parameter
artifact_dir = ""  # unused
```

```{code-cell} ipython3
import matplotlib.pyplot as plt
import pandas as pd
from myst_nb import glue

fig, ax = plt.subplots()
ax.plot(range(n))
glue("nb10-fig-line", fig, display=False)
glue("nb10-tbl-small", pd.DataFrame({"a": [1, 2]}), display=False)
from hubrepro import reporting
ledger = pd.DataFrame({"claim": ["a line rises"], "evidence": ["fig-mini-line"],
                       "where": ["sec-mini-more"]})
glue("nb10-tbl-ledger", reporting.table(ledger, links=["evidence", "where"]), display=False)
glue("nb10-val-pi", 3.14159, display=False)
glue("nb10-txt-word", "hubness", display=False)
glue("nb10-val-n", n * 1000 + 7, display=False)
```
"""
)

CHAPTER = """(sec-mini)=
# Chapter

The word is {glue:text}`executed/10_mini.ipynb::nb10-txt-word`, the count is
{glue:text}`executed/10_mini.ipynb::nb10-val-n:d` and pi is
{glue:text}`executed/10_mini.ipynb::nb10-val-pi:.2f`; see {numref}`fig-mini-line`.

```{glue:figure} nb10-fig-line
:doc: executed/10_mini.ipynb
:name: fig-mini-line
:alt: a rising straight line

A line.
```

```{glue:figure} nb10-tbl-small
:doc: executed/10_mini.ipynb
:name: tbl-mini

A table.
```

(sec-mini-more)=
## More

```{glue:table} nb10-tbl-ledger
:doc: executed/10_mini.ipynb
:name: tbl-mini-ledger

A ledger, see {numref}`tbl-mini-ledger`.
```
"""


@pytest.mark.book
def test_cross_document_glue_figures_build_with_warnings_as_errors(tmp_path):
    nb = tmp_path / "notebooks"
    nb.mkdir()
    (nb / "10_mini.md").write_text(MINI_NOTEBOOK)
    root = tmp_path / "root"
    (root / "book").mkdir(parents=True)
    assert _run(nb, root).returncode == 0
    (root / "_config.yml").write_text((REPO / "_config.yml").read_text())
    (root / "references.bib").write_text((REPO / "references.bib").read_text())
    for folder in ("_static", "_ext"):
        shutil.copytree(REPO / "book" / folder, root / "book" / folder)
    (root / "book" / "intro.md").write_text("# Mini\n\nA test book.\n")
    (root / "book" / "chapter.md").write_text(CHAPTER)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/chapter\n  - file: book/executed/10_mini\n"
    )
    jb = str(Path(sys.executable).with_name("jupyter-book"))
    proc = subprocess.run(
        [jb, "build", str(root), "--warningiserror", "--nitpick", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    html = (root / "_build" / "html" / "book" / "chapter.html").read_text()
    assert "The word is <span" in html and "hubness" in html and "3.14" in html
    assert 'id="fig-mini-line"' in html and 'alt="a rising straight line"' in html
    assert "A line." in html and 'class="dataframe"' in html
    assert "3007" in html
    # {glue:table}: numbered as a table, caption above the table; its book labels are
    # numbered links to the figure and the section they name
    cap = html.index("A ledger, see")
    assert html.rfind("Table 1", 0, cap) > html.rfind("<figure", 0, cap)
    assert html.index('class="hubrepro-table"', cap) > cap
    # the caption is closed before the table: the table is not styled as a caption
    assert html.index("</figcaption>", cap) < html.index('class="hubrepro-table"', cap)
    assert '<span class="std std-numref">Table 1</span>' in html
    assert re.search(r'href="#fig-mini-line"[^>]*>Fig\. 1<', html), html[cap:][:3000]
    assert re.search(r'href="#sec-mini-more"[^>]*>More<', html)
    # the notebook re-runs with another parameter: an incremental build updates the chapter
    assert _run(nb, root, "-p", "n", "5").returncode == 0
    proc = subprocess.run(
        [jb, "build", str(root), "--warningiserror", "--nitpick", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    html = (root / "_build" / "html" / "book" / "chapter.html").read_text()
    assert "5007" in html and "3007" not in html
    # a key the notebook does not glue fails the build, naming the key
    (root / "book" / "chapter.md").write_text(
        CHAPTER.replace("nb10-fig-line", "nb10-fig-gone")
    )
    proc = subprocess.run(
        [jb, "build", str(root), "--warningiserror", "--nitpick", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode != 0
    assert "nb10-fig-gone" in proc.stdout + proc.stderr
    # and fails again when nothing changed (warnings are not forgotten by the cache)
    proc = subprocess.run(
        [jb, "build", str(root), "--warningiserror", "--nitpick", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode != 0 and "nb10-fig-gone" in proc.stdout + proc.stderr
    # a label in a table that names nothing in the book fails the build as well
    (root / "book" / "chapter.md").write_text(
        CHAPTER.replace("sec-mini-more)=", "sec-mini-renamed)=")
    )
    proc = subprocess.run(
        [jb, "build", str(root), "--warningiserror", "--nitpick", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode != 0
    assert "unknown label 'sec-mini-more'" in proc.stdout + proc.stderr


# ------------------------------------------------------------------ offline book, editions

OFFLINE_PAGE = """(sec-offline)=
# Offline $N_k$

Inline $\\kappa$ and $\\R^d$, a display:

$$
\\E[x] = \\LSE(y)
$$

:::{exercise}
:label: ex-offline

What is the mean k-occurrence of a gallery item?
:::

:::{solution} ex-offline
:class: dropdown

Exactly k, because the zebra quartz of every query lands somewhere.

```python
print("the solution's code is part of the solution")
```
:::
"""


def _small_book(root: Path) -> None:
    """A two-page book with the repository's configuration and static files."""
    (root / "book").mkdir(parents=True)
    for name in ("_config.yml", "references.bib"):
        (root / name).write_text((REPO / name).read_text())
    for folder in ("_static", "_ext"):
        shutil.copytree(REPO / "book" / folder, root / "book" / folder)
    (root / "book" / "intro.md").write_text(OFFLINE_PAGE)
    (root / "book" / "plain.md").write_text("# A page without formulas\n\nProse.\n")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/plain\n"
    )


def _build(root: Path, *extra: str, env: dict | None = None) -> Path:
    jb = str(Path(sys.executable).with_name("jupyter-book"))
    proc = subprocess.run(
        [
            jb,
            "build",
            str(root),
            "--warningiserror",
            "--nitpick",
            "--keep-going",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return root


@pytest.mark.book
def test_built_book_loads_nothing_from_outside_and_ships_mathjax(tmp_path):
    root = tmp_path / "root"
    _small_book(root)
    html = _build(root) / "_build" / "html"
    assert external_resources(html) == []
    mathjax = html / "_static" / "mathjax"
    assert (mathjax / "tex-mml-chtml.js").is_file() and (mathjax / "LICENSE").is_file()
    assert list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert not (mathjax / "latest.js").exists()  # it would load MathJax from a CDN
    for page in ("book/intro.html", "book/plain.html"):
        text = (html / page).read_text()
        # every page (the sidebar shows formulas in titles), with the book's macros
        assert 'src="../_static/mathjax/tex-mml-chtml.js"' in text, page
        assert '"LSE": "\\\\operatorname{LSE}"' in text, page
    assert "sphinx-thebe.js" not in (html / "book" / "intro.html").read_text()


@pytest.mark.parametrize(
    ("page", "found"),
    [
        ('<script src="https://cdn.example/mathjax.js"></script>', 1),
        ('<link rel="stylesheet" href="//fonts.example/css">', 1),
        ('<link rel="preload" as="font" href="http://x.example/f.woff2">', 1),
        ('<img srcset="a.png 1x, https://x.example/b.png 2x">', 1),
        ('<iframe src="https://video.example/embed"></iframe>', 1),
        ("<script>const URL = 'https://unpkg.com/thebe/index.js';</script>", 1),
        ('<a href="https://arxiv.org/abs/2310.11612">a link is not a load</a>', 0),
        (
            '<script src="../_static/x.js"></script><img src="data:image/png;base64,AA">',
            0,
        ),
    ],
)
def test_page_loads_finds_remote_resources(page, found):
    assert len(page_loads(page)) == found


def test_css_loads_finds_remote_imports_and_urls(tmp_path):
    assert css_loads('@import "https://fonts.example/a.css";') == [
        "@import https://fonts.example/a.css"
    ]
    assert css_loads("a{background:url('//img.example/x.png')}") == [
        "url(//img.example/x.png)"
    ]
    assert (
        css_loads("a{background:url(../x.png)} b{src:url(data:font/woff2;base64,AA)}")
        == []
    )
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "a.css").write_text("@import url(https://f.example/x);")
    (tmp_path / "p.html").write_text('<script src="https://c.example/m.js"></script>')
    assert external_resources(tmp_path) == [
        "p.html: <script> https://c.example/m.js",
        "_static/a.css: @import https://f.example/x",
    ]


@pytest.mark.book
def test_student_edition_leaves_the_solutions_out(tmp_path):
    """``make book-student``: no solution text anywhere in the output, not hidden."""
    root = tmp_path / "root"
    _small_book(root)
    student = tmp_path / "student"
    _build(
        root, "--path-output", str(student), env={"HUBREPRO_BOOK_EDITION": "student"}
    )
    teacher = _build(root) / "_build" / "html"
    html = student / "_build" / "html"

    def files_with(text: str, where: Path) -> list[str]:
        return sorted(
            p.relative_to(where).as_posix()
            for p in where.rglob("*")
            if p.is_file() and text in p.read_text(encoding="utf-8", errors="replace")
        )

    for text in ("zebra quartz", "the solution's code is part of the solution"):
        assert files_with(text, teacher), f"the full edition lost {text!r}"
        assert files_with(text, html) == [], text
    assert files_with("What is the mean k-occurrence", html)  # the exercise stays
    assert files_with("(student edition)", html)
    assert "Solution to" not in (html / "book" / "intro.html").read_text()
    # the downloadable source keeps the exercise and loses the solution
    source = (html / "_sources" / "book" / "intro.md").read_text()
    assert "{exercise}" in source and "{solution}" not in source


def test_missing_mathjax_package_is_named(monkeypatch):
    from sphinx.errors import ExtensionError

    ext = book_extension
    assert (ext.mathjax_distribution() / "tex-mml-chtml.js").is_file()
    monkeypatch.setattr(ext.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        ExtensionError, match="django-static-mathjax, which is not installed"
    ):
        ext.mathjax_distribution()


def test_unknown_edition_is_refused(tmp_path):
    root = tmp_path / "root"
    _small_book(root)
    jb = str(Path(sys.executable).with_name("jupyter-book"))
    proc = subprocess.run(
        [jb, "build", str(root)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HUBREPRO_BOOK_EDITION": "teacher"},
    )
    assert proc.returncode != 0
    assert (
        "must be one of ['full', 'student'], not 'teacher'" in proc.stdout + proc.stderr
    )


def test_book_extension_is_enabled_from_next_to_the_book_and_its_doctests_pass():
    import doctest

    cfg = yaml.safe_load((REPO / "_config.yml").read_text())["sphinx"]
    assert cfg["local_extensions"] == {"hubrepro_book": "book/_ext"}
    assert "hubrepro_book" not in cfg["extra_extensions"]
    assert doctest.testmod(book_extension).attempted >= 1
    assert doctest.testmod(book_extension).failed == 0


def test_strip_solutions_keeps_everything_else():
    strip_solutions = book_extension.strip_solutions

    text = (
        "Intro.\n\n::::{solution} ex-a\n:class: dropdown\n\n"
        ":::{note}\ninner\n:::\n\n```python\nx = 1\n```\n::::\n\n"
        "```{solution} ex-b\nB.\n```\n\n:::{exercise}\n:label: ex-c\nAsk.\n:::\n"
    )
    assert strip_solutions(text) == (
        "Intro.\n\n\n\n:::{exercise}\n:label: ex-c\nAsk.\n:::\n"
    )


_FENCED = re.compile(
    r"^[ \t]*(`{3,}|:{3,})\{(exercise|solution)\}[ \t]*(\S*)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$",
    flags=re.M | re.S,
)


def _exercises_and_solutions() -> tuple[
    dict[str, str], dict[str, list[str]], list[str]
]:
    """Exercise label -> page; solution target -> pages; exercises without a label."""
    exercises: dict[str, str] = {}
    solutions: dict[str, list[str]] = {}
    unlabelled = []
    for page in sorted((REPO / "book").rglob("*.md")):
        if "executed" in page.parts:
            continue
        rel = page.relative_to(REPO).as_posix()
        for m in _FENCED.finditer(page.read_text()):
            kind, arg, body = m.group(2), m.group(3), m.group(4)
            if kind == "solution":
                solutions.setdefault(arg, []).append(rel)
                continue
            label = re.search(r"^:label:\s*(\S+)", body, flags=re.M)
            if label:
                exercises[label.group(1)] = rel
            else:
                unlabelled.append(f"{rel}: {body.strip().splitlines()[0][:60]}")
    return exercises, solutions, unlabelled


def test_every_exercise_has_a_solution():
    """Chapter 9 promises a solution for every exercise (hidden in the full edition)."""
    exercises, solutions, unlabelled = _exercises_and_solutions()
    assert len(exercises) >= 20, "the exercise parser found too few exercises"
    assert not unlabelled, (
        f"exercises without a :label: (a solution needs one): {unlabelled}"
    )
    missing = sorted(
        f"{page}: {label}"
        for label, page in exercises.items()
        if label not in solutions
    )
    assert not missing, f"exercises without a {{solution}}: {missing}"
    orphans = sorted(t for t in solutions if t not in exercises)
    assert not orphans, f"solutions of no exercise: {orphans}"
    doubles = sorted(t for t, pages in solutions.items() if len(pages) > 1)
    assert not doubles, f"exercises with more than one solution: {doubles}"


# ------------------------------------------------------------------ notebook conventions

SOURCES = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.md"))


def test_every_glued_table_goes_through_the_formatting_helper():
    """Tables reach the book only through reporting.publish, which glues a reporting.Table.

    A bare ``glue("nbNN-tbl-...", frame)`` would paste pandas' own HTML (truncated,
    raw column keys); :func:`hubrepro.reporting.publish` formats every table key.
    """
    bare = []
    for src in SOURCES:
        for m in re.finditer(
            r"\bglue\(\s*f?[\"'](nb\d\d-tbl-[^\"']*)", src.read_text()
        ):
            bare.append(f"{src.name}: {m.group(1)}")
    assert not bare, f"tables glued without reporting.publish: {bare}"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_notebook_has_a_tiny_set_and_a_parameters_cell(src):
    import jupytext

    assert (REPO / "notebooks" / "params" / "tiny" / f"{src.stem}.yml").exists(), (
        f"notebooks/params/tiny/{src.stem}.yml is missing: the tests run every notebook with it"
    )
    nb = jupytext.read(src)
    tagged = [
        c
        for c in nb.cells
        if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])
    ]
    assert len(tagged) == 1, (
        f"{src.name}: exactly one code cell must be tagged `parameters`; found {len(tagged)}"
    )
    names = set(re.findall(r"^([A-Za-z_]\w*)\s*=", tagged[0].source, flags=re.M))
    for required in ("seed", "artifact_dir"):
        assert required in names, (
            f"{src.name}: the parameters cell must define `{required}`"
        )
    for set_dir in (REPO / "notebooks" / "params").iterdir():
        f = set_dir / f"{src.stem}.yml"
        if f.exists():
            values = yaml.safe_load(f.read_text()) or {}
            assert isinstance(values, dict), f"{f} must hold a mapping"
            unknown = sorted(set(values) - names)
            assert not unknown, (
                f"{f.relative_to(REPO)} sets parameters that {src.name} does not have: {unknown}"
            )


def test_api_reference_documents_every_public_module():
    import pkgutil

    import hubrepro

    page = (REPO / "book" / "api.md").read_text()
    documented = set(
        re.findall(r"^\.\. automodule:: (hubrepro[\w.]*)$", page, flags=re.M)
    )
    public = {
        m.name
        for m in pkgutil.iter_modules(hubrepro.__path__, "hubrepro.")
        if not m.name.rsplit(".", 1)[1].startswith("_") and m.name != "hubrepro.cli"
    }
    missing = sorted(public - documented)
    assert not missing, f"book/api.md has no automodule for {missing}"


_FIGURE = re.compile(
    r"^(`{3,}|:{3,})\{glue:(figure|table)\}\s+(\S+)\n(.*?)^\1\s*$", flags=re.M | re.S
)


def test_pasted_figures_have_a_name_a_caption_and_alt_text():
    """Every pasted figure is labelled (cross-referenced by name), captioned, and an image
    (a ``-fig-`` key) carries alt text for screen readers."""
    problems = []
    n = 0
    for page in sorted((REPO / "book").rglob("*.md")):
        if "executed" in page.parts:
            continue
        for m in _FIGURE.finditer(page.read_text()):
            n += 1
            kind, key, body = m.group(2), m.group(3), m.group(4)
            opts = dict(re.findall(r"^:([\w-]+):\s*(.*)$", body, flags=re.M))
            caption = " ".join(
                ln for ln in body.splitlines() if ln.strip() and not ln.startswith(":")
            )
            if "name" not in opts:
                problems.append(f"{page.name}: {key} has no :name:")
            if not caption.strip():
                problems.append(f"{page.name}: {key} has no caption")
            if "-fig-" in key and not opts.get("alt", "").strip():
                problems.append(f"{page.name}: {key} has no :alt: text")
            # a table is numbered as a table ("Table 5.1"), a figure as a figure
            if "-tbl-" in key and kind == "figure":
                problems.append(
                    f"{page.name}: the table {key} is pasted with {{glue:figure}}; "
                    "use {glue:table}, which numbers it as a table"
                )
            if "-fig-" in key and kind == "table":
                problems.append(f"{page.name}: the figure {key} is pasted as a table")
        # a figure pasted with the bare {glue} / {glue:any} directive has no caption or alt
        for m in re.finditer(
            r"^(?:`{3,}|:{3,})\{glue(?::any)?\}\s+(nb\d\d-fig-[\w-]+)",
            page.read_text(),
            flags=re.M,
        ):
            problems.append(
                f"{page.name}: {m.group(1)} is pasted with {{glue}}; use {{glue:figure}} (with :doc:, :name:, :alt: and a caption)"
            )
    assert n > 0
    assert not problems, "\n".join(problems)
