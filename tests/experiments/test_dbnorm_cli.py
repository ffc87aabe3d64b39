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


# -- a value typed on the command line is used (not tuned) or refused -----------------


def _records(capsys, *args):
    assert main(["dbnorm", *map(str, args), "--json"]) == 0, capsys.readouterr().err
    return {r["method"]: r for r in json.loads(capsys.readouterr().out)}


def _refused(capsys, *args):
    assert main(["dbnorm", *map(str, args)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1  # one line, saying what to do
    return err


@pytest.fixture
def emb_dir(tmp_path):
    (tmp_path / "emb").mkdir()
    return _folder(tmp_path / "emb", np.random.default_rng(0))


@pytest.fixture
def sims_dir(tmp_path):
    d = tmp_path / "sims"
    d.mkdir()
    rng = np.random.default_rng(1)
    np.save(d / "sims.npy", rng.normal(size=(12, 12)).astype(np.float32))
    np.save(d / "bank_query_sims.npy", rng.normal(size=(40, 12)).astype(np.float32))
    return d


def test_explicit_betas_are_used_not_tuned(emb_dir, capsys):
    common = ["--data-dir", emb_dir, "--methods", "none", "is", "dualis", "--n-val", 20,
              "--directions", "query_to_gallery"]  # fmt: skip
    rec = _records(capsys, *common, "--beta-query", 20, "--beta-gallery", 5)
    assert rec["dualis"]["param_beta_query"] == 20.0
    assert rec["dualis"]["param_beta_gallery"] == 5.0
    assert rec["is"]["param_beta_query"] == 20.0
    assert not rec["is"]["tuned"] and not rec["dualis"]["tuned"]
    # one fixed, the other tuned on the validation split from its grid
    rec = _records(capsys, *common, "--beta-query", 20, "--beta-gallery-grid", 7, 9)
    assert rec["dualis"]["param_beta_query"] == 20.0
    assert rec["dualis"]["param_beta_gallery"] in (7.0, 9.0) and rec["dualis"]["tuned"]
    # nothing typed: both tuned from the grids
    rec = _records(capsys, *common, "--beta-query-grid", 3, "--beta-gallery-grid", 4)
    assert (rec["dualis"]["param_beta_query"], rec["dualis"]["param_beta_gallery"]) == (
        3.0,
        4.0,
    )


def test_values_that_would_be_ignored_are_refused(emb_dir, sims_dir, capsys):
    e = ["--data-dir", emb_dir, "--n-val", 20]
    err = _refused(capsys, *e, "--beta-query", 20, "--beta-query-grid", 5, 10)
    assert "--beta-query" in err and "--beta-query-grid" in err
    err = _refused(capsys, "--data-dir", emb_dir, "--dataset", "synthetic")
    assert "--dataset" in err and "--data-dir" in err
    err = _refused(capsys, *e, "--methods", "none", "is", "--k", 3)
    assert "--k" in err and "dis" in err
    err = _refused(capsys, *e, "--methods", "none", "is", "--beta-gallery", 5)
    assert "--beta-gallery" in err
    err = _refused(capsys, "--data-dir", emb_dir, "--n-val", 500)
    assert "--n-val" in err and "90" in err
    # precomputed similarity matrices: no validation split, no reverse direction,
    # no gallery bank here
    err = _refused(capsys, "--data-dir", sims_dir, "--n-val", 5)
    assert "--n-val" in err and "similarity" in err
    err = _refused(capsys, "--data-dir", sims_dir, "--beta-query-grid", 5, 10)
    assert "--beta-query-grid" in err
    err = _refused(capsys, "--data-dir", sims_dir, "--directions", "gallery_to_query")
    assert "gallery_to_query" in err
    err = _refused(capsys, "--data-dir", sims_dir, "--methods", "none", "dualis")
    assert "dualis" in err and "gallery bank" in err
    # the defaults on the same folder run: what cannot apply is skipped, not refused
    rec = _records(capsys, "--data-dir", sims_dir, "--beta-query", 10)
    assert rec["is"]["param_beta_query"] == 10.0 and "dualis" not in rec


def test_defaults_the_data_cannot_run_are_skipped_with_a_note(sims_dir, capsys):
    # similarity matrices without a gallery bank: dualis etc. are left out, and said so
    assert (
        main(["dbnorm", "--data-dir", str(sims_dir), "--beta-query", "10", "--json"])
        == 0
    )
    out, err = capsys.readouterr()
    assert {r["method"] for r in json.loads(out)} >= {"none", "is"}
    (note,) = err.strip().splitlines()
    assert note.startswith("hubrepro dbnorm: note: skipped") and "dualis" in note
    assert "no gallery bank" in note


def test_out_follows_the_one_overwrite_rule(emb_dir, tmp_path, capsys, monkeypatch):
    # an existing --out is refused before any work (it used to be overwritten silently)
    from hubrepro.experiments import dbnorm

    out = tmp_path / "table.csv"
    out.write_text("an earlier result\n")
    ran = []
    monkeypatch.setattr(dbnorm, "run_many", lambda *a, **k: ran.append(1))
    err = _refused(
        capsys, "--data-dir", emb_dir, "--methods", "none", "is", "--out", out
    )
    assert "already exists; pass --overwrite" in err and not ran
    assert out.read_text() == "an earlier result\n"
    err = _refused(capsys, "--data-dir", emb_dir, "--out", tmp_path / "table.txt")
    assert "must end in .csv" in err and not ran
    monkeypatch.undo()
    args = ["dbnorm", "--data-dir", str(emb_dir), "--methods", "none", "is", "--n-val", "20",
            "--directions", "query_to_gallery", "--out", str(out), "--overwrite"]  # fmt: skip
    assert main(args) == 0
    assert set(pd.read_csv(out)["method"]) == {"none", "is"}


def test_a_negative_seed_is_refused_in_one_line(capsys):
    assert main(["dbnorm", "--dataset", "synthetic", "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert "`seed`" in err and "[0," in err and err.count("\n") == 1
