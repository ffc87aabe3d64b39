"""``hubrepro normalize``: the real entry point (subprocess) and its error paths."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from hubrepro.cli import main
from hubrepro.normalize import normalize, normalize_embeddings


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "S": rng.normal(size=(5, 7)).astype("float32"),
        "PQ": rng.normal(size=(30, 7)).astype("float32"),
        "PG": rng.normal(size=(9, 7)).astype("float32"),
        "Q": rng.normal(size=(5, 8)).astype("float32"),
        "G": rng.normal(size=(7, 8)).astype("float32"),
        "BQ": rng.normal(size=(40, 8)).astype("float32"),
        "BG": rng.normal(size=(20, 8)).astype("float32"),
    }
    paths = {}
    for name, a in arrays.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], a)
    return tmp_path, arrays, paths


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "hubrepro", "normalize", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_subprocess_from_matrices_matches_the_library(files):
    root, a, p = files
    out = root / "out.npy"
    proc = _cli(
        "dualdis",
        "--sims",
        p["S"],
        "--query-bank-sims",
        p["PQ"],
        "--gallery-bank-sims",
        p["PG"],
        "--beta-query",
        5,
        "--beta-gallery",
        3,
        "--k",
        2,
        "--mode",
        "faithful",
        "--out",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    expected = normalize(
        "dualdis",
        torch.from_numpy(a["S"]),
        bank_query_sims=torch.from_numpy(a["PQ"]),
        bank_gallery_sims=torch.from_numpy(a["PG"]),
        beta_query=5.0,
        beta_gallery=3.0,
        k=2,
        mode="faithful",
    )
    np.testing.assert_array_equal(np.load(out), expected.numpy())


def test_out_is_never_overwritten_without_the_flag(files, capsys):
    root, _, p = files
    out = root / "out.npy"
    argv = [
        "normalize",
        "is",
        "--sims",
        str(p["S"]),
        "--query-bank-sims",
        str(p["PQ"]),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    before = out.read_bytes()
    assert main([*argv[:-2], "--beta-query", "9", "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert (
        main([*argv[:-2], "--beta-query", "9", "--out", str(out), "--overwrite"]) == 0
    )
    assert out.read_bytes() != before


def test_subprocess_bad_input_is_one_line(files):
    root, a, p = files
    bad = a["PQ"].copy()
    bad[2, 3] = np.nan
    np.save(root / "bad.npy", bad)
    proc = _cli(
        "dis",
        "--sims",
        p["S"],
        "--query-bank-sims",
        root / "bad.npy",
        "--out",
        root / "o.npy",
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "finite" in lines[0] and "(2, 3)" in lines[0]
    assert not (root / "o.npy").exists()


def test_from_embeddings_matches_the_library(files, capsys):
    root, a, p = files
    out = root / "emb.npy"
    rc = main(
        [
            "normalize",
            "dualis",
            "--queries",
            str(p["Q"]),
            "--gallery",
            str(p["G"]),
            "--query-bank",
            str(p["BQ"]),
            "--gallery-bank",
            str(p["BG"]),
            "--beta-query",
            "20",
            "--beta-gallery",
            "20",
            "--chunk-size",
            "7",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    t = {k: torch.from_numpy(v) for k, v in a.items()}
    expected = normalize_embeddings(
        "dualis",
        t["Q"],
        t["G"],
        bank_query=t["BQ"],
        bank_gallery=t["BG"],
        beta_query=20.0,
        beta_gallery=20.0,
    )
    np.testing.assert_allclose(np.load(out), expected.numpy(), rtol=1e-6, atol=1e-6)
    assert "wrote dualis scores of shape (5, 7)" in capsys.readouterr().out


def test_bfloat16_bank_products_from_the_cli(files):
    root, _, p = files
    rc = main(
        [
            "normalize",
            "is",
            "--queries",
            str(p["Q"]),
            "--gallery",
            str(p["G"]),
            "--query-bank",
            str(p["BQ"]),
            "--dtype",
            "bfloat16",
            "--out",
            str(root / "bf.npy"),
        ]
    )
    assert rc == 0 and np.load(root / "bf.npy").dtype == np.float32


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["dualis", "--sims", "{S}", "--query-bank-sims", "{PQ}"],
            "`bank_gallery_sims` must be given",
        ),
        (
            ["is", "--sims", "{S}", "--query-bank-sims", "{G}"],
            "`bank_query_sims` must be of width 7 (the gallery items of `sims`)",
        ),
        (
            ["dis", "--sims", "{S}", "--query-bank-sims", "{PQ}", "--k", "8"],
            "`k` must be at most n_gallery = 7",
        ),
        (
            ["is", "--sims", "{S}", "--query-bank-sims", "{PQ}", "--beta-query", "0"],
            "`beta_query` must be positive",
        ),
        (
            [
                "dualis",
                "--sims",
                "{S}",
                "--query-bank-sims",
                "{PQ}",
                "--gallery-bank-sims",
                "{PG}",
                "--beta-gallery",
                "-1",
            ],
            "`beta_gallery` must be positive",
        ),
        (
            ["is", "--sims", "{S}", "--query-bank-sims", "{PQ}", "--k", "3"],
            "--k is not a hyperparameter of 'is'",
        ),
        (["is", "--query-bank-sims", "{PQ}"], "give either --sims"),
        (
            ["is", "--sims", "{S}", "--queries", "{Q}", "--gallery", "{G}"],
            "give either --sims",
        ),
        (
            ["is", "--queries", "{Q}", "--query-bank", "{BQ}"],
            "need both --queries and --gallery",
        ),
        (
            ["is", "--sims", "{S}", "--query-bank", "{BQ}"],
            "--query-bank is for embeddings",
        ),
        (
            ["is", "--sims", "{S}", "--query-bank-sims", "{missing}"],
            "must be an existing file",
        ),
        (
            ["is", "--sims", "{S}", "--query-bank-sims", "{PQ}", "--device", "cuda"],
            None,
        ),
    ],
)
def test_cli_errors_are_one_line(files, capsys, argv, message):
    root, _, p = files
    names = {k: str(v) for k, v in p.items()} | {"missing": str(root / "nope.npy")}
    argv = [x.format(**names) for x in argv]
    if (
        message is None
    ):  # CUDA requested: fine on a GPU machine, a clear error elsewhere
        if torch.cuda.is_available():
            pytest.skip("CUDA present")
        message = "torch.cuda.is_available() is False"
    rc = main(["normalize", *argv, "--out", str(root / "x.npy")])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and err.count("\n") == 1
    assert not (root / "x.npy").exists()


def test_pickles_need_allow_pickle(files, capsys):
    root, a, p = files
    with open(root / "bank.pkl", "wb") as fh:
        pickle.dump(a["PQ"], fh)
    argv = [
        "normalize",
        "dis",
        "--sims",
        str(p["S"]),
        "--query-bank-sims",
        str(root / "bank.pkl"),
        "--out",
        str(root / "o.npy"),
    ]
    assert main(argv) == 2
    assert "refusing to unpickle" in capsys.readouterr().err
    assert main([*argv, "--allow-pickle"]) == 0
    np.testing.assert_array_equal(
        np.load(root / "o.npy"),
        normalize(
            "dis", torch.from_numpy(a["S"]), bank_query_sims=torch.from_numpy(a["PQ"])
        ).numpy(),
    )


def test_tol_reaches_sinkhorn_and_is_refused_elsewhere(files, capsys):
    from hubrepro.normalize import SinkhornNorm

    root, a, p = files
    out = root / "sn.npy"
    args = ["normalize", "sn", "--sims", p["S"], "--query-bank-sims", p["PQ"]]
    args += ["--beta-query", "5", "--n-iter", "7", "--tol", "0", "--out", out]
    assert main([str(x) for x in args]) == 0
    est = SinkhornNorm(beta_query=5.0, n_iter=7, tol=0.0).fit(torch.from_numpy(a["PQ"]))
    assert est.n_iter_ == 7  # tol=0: every iteration runs
    np.testing.assert_allclose(
        np.load(out), est.transform(torch.from_numpy(a["S"])).numpy(), rtol=1e-6
    )
    # a loose tolerance stops the loop early, and the CLI output follows it
    loose = root / "loose.npy"
    args[-3:] = ["0.5", "--out", loose]
    assert main([str(x) for x in args]) == 0
    est = SinkhornNorm(beta_query=5.0, n_iter=7, tol=0.5).fit(torch.from_numpy(a["PQ"]))
    assert est.n_iter_ < 7
    np.testing.assert_allclose(
        np.load(loose), est.transform(torch.from_numpy(a["S"])).numpy(), rtol=1e-6
    )
    proc = _cli("nnn", "--sims", p["S"], "--query-bank-sims", p["PQ"], "--k", 3,
                "--tol", "1e-3", "--out", root / "nnn.npy")  # fmt: skip
    assert (
        proc.returncode != 0 and "--tol is not a hyperparameter of 'nnn'" in proc.stderr
    )


@pytest.mark.parametrize("command", ["sn", "dbsn", "nnn", "fit"])
def test_help_shows_tol_and_the_nnn_defaults(capsys, command):
    with pytest.raises(SystemExit):
        main(["normalize", command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--tol" in text and "0 runs exactly --n-iter" in text
    assert "nnn default 0.5" in text and "nnn default 256" in text
