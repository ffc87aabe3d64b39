"""Notebooks 40 and 41 fill their tables from a user's folder with one parameter."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _write_user_folder(root: Path, *, matrices: bool) -> Path:
    rng = np.random.default_rng(0)
    n, m, d = 40, 150, 12

    def unit(x):
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    g, bg = unit(rng.normal(size=(n, d))), unit(rng.normal(size=(m, d)))
    q = unit(g + 0.8 * rng.normal(size=(n, d)))
    bq = unit(bg + 0.8 * rng.normal(size=(m, d)))
    root.mkdir(parents=True)
    if matrices:
        np.save(root / "sims.npy", q @ g.T)
        np.save(root / "bank_query_sims.npy", bq @ g.T)
        np.save(root / "bank_gallery_sims.npy", bg @ g.T)
    else:
        for name, x in {
            "query": q,
            "gallery": g,
            "bank_query": bq,
            "bank_gallery": bg,
        }.items():
            np.save(root / f"{name}.npy", x)
    return root


def _run(stem: str, root: Path, data_dir: Path, *extra: str) -> dict:
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "run_notebooks.py"),
        "--params",
        "tiny",
        "--root",
        str(root),
        "--only",
        stem,
        "--force",
        "-p",
        "dataset",
        "user",
        "-p",
        "data_dir",
        str(data_dir),
        "-p",
        "dataset_options",
        "{}",
        *extra,
    ]  # the tiny set's stdlib subset sizes do not apply
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    nb = json.loads((root / "book" / "executed" / f"{stem}.ipynb").read_text())
    glued = {}
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if not name:
                continue
            # a glue with display=True is shown as itself (mime_prefix "")
            prefix = out["metadata"]["scrapbook"].get(
                "mime_prefix", "application/papermill.record/"
            )
            text = out["data"].get(prefix + "text/plain", "")
            glued[name] = "".join(text) if isinstance(text, list) else text
    return glued


@pytest.mark.notebook
@pytest.mark.parametrize(
    "matrices",
    [
        False,
        pytest.param(True, marks=pytest.mark.slow),
    ],  # matrices path also unit-tested
    ids=["embeddings", "similarity-matrices"],
)
def test_main_table_from_a_user_folder(tmp_path, matrices):
    data_dir = _write_user_folder(tmp_path / "mydata", matrices=matrices)
    glued = _run("40_dbnorm_main", tmp_path / "root", data_dir)
    assert glued["nb40-txt-dataset"].strip("'\"") == "user"
    table = glued["nb40-tbl-main"]
    assert "DualIS" in table
    # embeddings give both directions (one table each); similarity matrices only
    # text -> gallery
    assert ("nb40-tbl-main-g2q" in glued) is (not matrices)
    if not matrices:
        assert "DualIS" in glued["nb40-tbl-main-g2q"]


@pytest.mark.notebook
@pytest.mark.slow  # about 20 s; the comparison itself is unit-tested in tests/test_published.py
def test_published_comparison_fills_the_named_setting(tmp_path):
    data_dir = _write_user_folder(tmp_path / "mydata", matrices=False)
    glued = _run(
        "41_published_vs_reproduced",
        tmp_path / "root",
        data_dir,
        "-p",
        "setting",
        "MSR-VTT CLIP4Clip",
    )
    table = glued["nb41-tbl-dbnorm"]
    # the named setting, and only it, gets a row of reproduced R@1 beside its published one
    rows = [r for r in table.splitlines() if ", reproduced" in r]
    assert len(rows) == 1 and rows[0].startswith("MSR-VTT CLIP4Clip, reproduced")
    numbers = re.findall(r"\d+\.\d\d", rows[0])
    assert len(numbers) == 5  # baseline, IS, DIS, DualIS, DualDIS
