"""``hubrepro dbnorm`` on a user folder the test writes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hubrepro.cli import main


def _folder(root, rng):
    n, m, d = 30, 90, 8

    def unit(x):
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    g, bg = unit(rng.normal(size=(n, d))), unit(rng.normal(size=(m, d)))
    np.save(root / "query.npy", unit(g + 0.7 * rng.normal(size=(n, d))))
    np.save(root / "gallery.npy", g)
    np.save(root / "bank_query.npy", unit(bg + 0.7 * rng.normal(size=(m, d))))
    np.save(root / "bank_gallery.npy", bg)
    return root


def test_cli_table_csv_and_json(tmp_path, capsys):
    data_dir = _folder(tmp_path, np.random.default_rng(0))
    out = tmp_path / "table.csv"
    args = ["dbnorm", "--data-dir", str(data_dir), "--methods", "none", "is", "dualis",
            "--beta-query-grid", "5", "20", "--beta-gallery-grid", "5", "--n-val", "20"]  # fmt: skip
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "DualIS" in printed and "gallery_to_query" in printed
    table = pd.read_csv(out)
    assert len(table) == 3 * 2 and set(table["method"]) == {"none", "is", "dualis"}
    assert main([*args, "--json", "--directions", "query_to_gallery"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in records] == ["none", "is", "dualis"]


def test_cli_rejects_unknown_method(capsys):
    with pytest.raises(SystemExit):
        main(["dbnorm", "--methods", "magic"])
