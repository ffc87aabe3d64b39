"""Every notebook runs with the `tiny` parameter set, then the whole book builds.

The notebooks are executed by the same runner as `make book`
(``scripts/run_notebooks.py``) into a temporary copy of the book, so the user's
``book/executed/`` is never touched. The book is then built with warnings as
errors: a pasted glue key that a notebook no longer produces fails the build.

Budget: the tiny runs and the build must stay well within the CI's 15 minutes;
``tests/test_book_machinery.py`` tests the runner itself (cache, failures) and the
static consistency of the table of contents and the glue keys.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _book_html import external_resources

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.md"))


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tinybook")
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(
        REPO / "book",
        root / "book",
        ignore=shutil.ignore_patterns("executed", "_build"),
    )
    return root


def _glue_outputs(ipynb: Path) -> dict[str, set[str]]:
    """Glue key -> the MIME types stored for it in an executed notebook."""
    nb = json.loads(ipynb.read_text())
    glued: dict[str, set[str]] = {}
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                prefix = "application/papermill.record/"
                glued[name] = {m.removeprefix(prefix) for m in out.get("data", {})}
    return glued


@pytest.fixture(scope="session")
def tiny_run(tiny_root, request) -> subprocess.CompletedProcess:
    """Run the selected notebooks (all, when the book test is selected) in one runner call.

    One call with ``--jobs`` (``NB_JOBS``, default 2) and ``--keep-going`` executes the
    notebooks side by side and names every failure; each notebook's test then reads its
    own outcome. Notebooks 70-79 run last, after the timings they report exist.
    """
    items = request.session.items
    wanted = {
        it.callspec.params["stem"]
        for it in items
        if getattr(it, "originalname", None)
        == "test_notebook_runs_with_tiny_parameters"
    }
    if any(
        getattr(it, "originalname", None) == "test_book_builds_with_warnings_as_errors"
        for it in items
    ):
        wanted = set(NOTEBOOKS)
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "run_notebooks.py"),
            "--params",
            "tiny",
            "--root",
            str(tiny_root),
            "--force",
            "--keep-going",
            "--jobs",
            os.environ.get("NB_JOBS", "2"),
            "--only",
            *sorted(wanted),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )


def _failure_of(stem: str, stderr: str) -> str:
    """The runner's report for ``stem`` (from its stderr), or the stderr's tail."""
    marker = f"notebook notebooks/{stem}.md failed"
    i = stderr.find(marker)
    if i == -1:
        return stderr[-6000:]
    j = stderr.find("run_notebooks: notebook ", i + len(marker))
    return stderr[i : j if j != -1 else None][:6000]


@pytest.mark.notebook
@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_runs_with_tiny_parameters(stem, tiny_root, tiny_run):
    stamp = tiny_root / "book" / "executed" / f".{stem}.sha256"
    assert stamp.exists(), f"{stem} failed:\n{_failure_of(stem, tiny_run.stderr)}"
    executed = tiny_root / "book" / "executed" / f"{stem}.ipynb"
    assert executed.exists()
    glued = _glue_outputs(executed)
    prefix = f"nb{stem[:2]}-"
    assert glued, f"{stem} glued nothing"
    bad = sorted(k for k in glued if not k.startswith(prefix))
    assert not bad, f"{stem}: glue keys must start with {prefix!r}: {bad}"
    # a figure glued while a non-inline matplotlib backend was active is stored as text
    not_images = sorted(
        k
        for k, m in glued.items()
        if "-fig-" in k and not m & {"image/png", "image/svg+xml"}
    )
    assert not not_images, f"{stem}: glued figures without an image: {not_images}"
    not_tables = sorted(
        k for k, m in glued.items() if "-tbl-" in k and "text/html" not in m
    )
    assert not not_tables, (
        f"{stem}: glued tables without HTML (glue a DataFrame): {not_tables}"
    )
    # the rendered notebook shows no folder of the build machine
    injected = [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in json.loads(executed.read_text())["cells"]
        if "injected-parameters" in c.get("metadata", {}).get("tags", [])
    ]
    absolute = re.findall(r'^artifact_dir = "(/[^"]*)"', "".join(injected), flags=re.M)
    assert not absolute, f"{stem}: absolute artifact_dir injected: {absolute}"


@pytest.mark.book
def test_book_builds_with_warnings_as_errors(tiny_root, tiny_run):
    # `tiny_run` executes every notebook when this test is selected, also on its own
    # (`pytest -m book`, `-m "not notebook"`)
    missing = [
        s
        for s in NOTEBOOKS
        if not (tiny_root / "book" / "executed" / f".{s}.sha256").exists()
    ]
    if missing:
        pytest.fail(
            f"notebooks did not run, so the book cannot build: {missing}\n"
            + tiny_run.stderr[-4000:]
        )
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("jupyter-book")),
            "build",
            str(tiny_root),
            "--warningiserror",
            "--nitpick",
            "--keep-going",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    html = tiny_root / "_build" / "html"
    assert (html / "index.html").exists()
    # exercises' solutions are folded away in the HTML (sphinx-exercise + dropdown)
    shown = []
    for page in html.rglob("*.html"):
        for m in re.finditer(r'class="solution([^"]*)"', page.read_text()):
            if "dropdown" not in m.group(1):
                shown.append(page.relative_to(html).as_posix())
    assert not shown, (
        f"solutions not hidden (add `:class: dropdown` to the solution): {sorted(set(shown))}"
    )
    # offline: no page loads a script, stylesheet, font, image or frame from outside
    remote = external_resources(html)
    assert not remote, "pages load remote resources:\n" + "\n".join(remote[:20])
    assert (html / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()


# ------------------------------------------------------------------ "Your data" snippets

_YOUR_DATA = re.compile(r"\*\*Your data\.\*\*.*?^```bash\n(.*?)^```", flags=re.M | re.S)


def _your_data_snippets() -> list[tuple[str, str]]:
    """(notebook stem, command) of each notebook's "Your data" snippet."""
    found = []
    for src in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.md")):
        for m in _YOUR_DATA.finditer(src.read_text()):
            found.append((src.stem, m.group(1).replace("\\\n", " ").strip()))
    return found


@pytest.fixture(scope="module")
def user_matrices(tmp_path_factory) -> Path:
    """A tiny folder of similarity matrices in the user layout (data chapter)."""
    import numpy as np

    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("userdata")
    n, m = 40, 60
    sims = 0.1 * rng.standard_normal((n, n)) + 0.3 * np.eye(n)
    np.save(d / "sims.npy", sims.astype(np.float32))
    for name in ("bank_query_sims", "bank_gallery_sims"):
        np.save(
            d / f"{name}.npy", (0.1 * rng.standard_normal((m, n))).astype(np.float32)
        )
    return d


def test_every_your_data_snippet_is_found():
    stems = [stem for stem, _ in _your_data_snippets()]
    assert {"40_dbnorm_main", "41_published_vs_reproduced"} <= set(stems), stems


@pytest.mark.notebook
@pytest.mark.parametrize(
    ("stem", "command"), _your_data_snippets(), ids=lambda v: v[:30]
)
def test_your_data_snippet_runs_as_shown(stem, command, user_matrices, tmp_path):
    """The command a notebook shows for the reader's own data runs as printed.

    Run from the repository root, as the snippet says, with the reader's folder (tiny
    similarity matrices) and the output root replaced by temporary ones; nothing is
    added, so the notebook runs with its own defaults, as it would for the reader.
    """
    import shlex

    args = shlex.split(command)
    assert args[:2] == [".venv/bin/python", "scripts/run_notebooks.py"], (
        f"{stem}: the snippet must use the runner, which runs the notebook from "
        f"notebooks/ as papermill needs: {command}"
    )
    assert "/path/to/msrvtt" in args and "--root" in args, command
    root = tmp_path / "root"
    args = [sys.executable] + args[1:]
    args = [str(user_matrices) if a == "/path/to/msrvtt" else a for a in args]
    args[args.index("--root") + 1] = str(root)
    proc = subprocess.run(
        args,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    executed = root / "book" / "executed" / f"{stem}.ipynb"
    text = executed.read_text()
    assert str(user_matrices) in text  # the reader's folder reached the notebook
    assert (root / "_build" / "artifacts" / stem).is_dir()
