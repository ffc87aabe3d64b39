"""End-to-end tests of ``hubrepro evaluate`` through a subprocess."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from _reference_metrics import naive_k_occurrence, naive_metrics, naive_query_ranks
from hubrepro.cli import main
from hubrepro.hubness import hubness_stats
from hubrepro.retrieval import evaluate_retrieval


def _run(*args, check_ok=True):
    proc = subprocess.run(
        [sys.executable, "-m", "hubrepro", "evaluate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check_ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def _main_json(capsys, *args):
    """Run the dispatcher in-process (the console script's code path) and parse."""
    status = main(["evaluate", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out)


@pytest.fixture
def case(tmp_path):
    rng = np.random.default_rng(0)
    sims = rng.normal(size=(40, 12)).astype(np.float32)
    gt = np.arange(40) % 12
    np.save(tmp_path / "sims.npy", sims)
    np.save(tmp_path / "gt.npy", gt)
    return tmp_path, sims, gt


def test_json_output_matches_library_and_naive(case):
    d, sims, gt = case
    proc = _run(
        "--sims", d / "sims.npy", "--query-to-gallery", d / "gt.npy", "--json", "--k", 5
    )
    out = json.loads(proc.stdout)  # exactly one JSON object
    assert set(out) == {
        "query_to_gallery",
        "gallery_to_query",
        "Rsum",
        "n_unmatched_gallery",
        "hubness",
    }
    assert set(out["query_to_gallery"]) == {"R@1", "R@5", "R@10", "MdR", "MnR"}
    lib = evaluate_retrieval(sims, gt)
    assert out["query_to_gallery"] == lib["query_to_gallery"]
    assert out["gallery_to_query"] == lib["gallery_to_query"]
    naive = naive_metrics(naive_query_ranks(sims.tolist(), gt.tolist(), "average"))
    assert out["query_to_gallery"] == pytest.approx(naive)
    six = [
        out[d][f"R@{k}"]
        for d in ("query_to_gallery", "gallery_to_query")
        for k in (1, 5, 10)
    ]
    assert out["Rsum"] == pytest.approx(sum(six))
    n_k = naive_k_occurrence(sims.tolist(), 5)
    assert out["hubness"] == pytest.approx(hubness_stats(np.array(n_k), 5))
    assert out["hubness"]["k"] == 5


def test_table_output_and_ties_option(case, capsys):
    d, sims, _ = case
    square = sims[:12]
    np.save(d / "square.npy", square)
    assert (
        main(["evaluate", "--sims", str(d / "square.npy"), "--ties", "optimistic"]) == 0
    )
    table = capsys.readouterr().out
    assert "query_to_gallery" in table and "Rsum" in table
    assert "skewness (retrieved items only)" in table
    ours = _main_json(capsys, "--sims", d / "square.npy", "--ties", "pessimistic")
    lib = evaluate_retrieval(square, ties="pessimistic")
    assert ours["query_to_gallery"] == lib["query_to_gallery"]


@pytest.mark.parametrize("fmt", [".pt", ".safetensors"])
def test_pt_and_safetensors_inputs(case, fmt, capsys):
    d, sims, gt = case
    t = torch.from_numpy(sims)
    g = torch.from_numpy(gt)
    if fmt == ".pt":
        torch.save(t, d / "s.pt")
        torch.save(g, d / "g.pt")
    else:
        from safetensors.torch import save_file

        save_file({"sims": t, "other": t[:2].clone()}, str(d / "s.safetensors"))
        save_file({"gt": g}, str(d / "g.safetensors"))
    args = ["--sims", d / f"s{fmt}", "--query-to-gallery", d / f"g{fmt}"]
    if fmt == ".safetensors":
        # two arrays in the file: --key is required
        assert main(["evaluate", *map(str, args)]) != 0
        assert "--key" in capsys.readouterr().err
        args += ["--key", "sims"]
    out = _main_json(capsys, *args)
    assert out["query_to_gallery"] == evaluate_retrieval(sims, gt)["query_to_gallery"]


def test_pickle_refused_unless_allowed(case, capsys):
    d, sims, _ = case
    square = sims[:12].astype(np.float64)
    with open(d / "s.pkl", "wb") as fh:
        pickle.dump(square, fh)
    # the refusal through a real process: exit status and one line, no traceback
    bad = _run("--sims", d / "s.pkl", check_ok=False)
    assert bad.returncode == 2 and bad.stdout == ""
    assert "pickle" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    out = _main_json(capsys, "--sims", d / "s.pkl", "--allow-pickle")
    assert out["query_to_gallery"] == evaluate_retrieval(square)["query_to_gallery"]


def _bad_files(d):
    np.save(d / "nan.npy", np.array([[0.1, np.nan], [0.3, 0.4]]))
    np.save(d / "inf.npy", np.array([[0.1, np.inf], [0.3, 0.4]]))
    np.save(d / "vec.npy", np.array([0.1, 0.2]))
    np.save(d / "empty.npy", np.zeros((0, 0)))
    np.save(d / "rect.npy", np.ones((3, 4)))
    np.save(d / "gt_long.npy", np.arange(4))
    np.save(d / "gt_ok.npy", np.array([0, 3, 1]))
    np.save(d / "gt_range.npy", np.array([0, 1, 4]))
    np.save(d / "gt_float.npy", np.array([0.0, 1.0, 2.0]))
    np.save(d / "ints.npy", np.ones((3, 3), dtype=np.int64))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sims", "nan.npy"], "finite"),
        (["--sims", "inf.npy"], "finite"),
        (["--sims", "vec.npy"], "2-D"),
        (["--sims", "empty.npy"], "non-empty"),
        (["--sims", "rect.npy"], "not square"),
        (
            ["--sims", "rect.npy", "--query-to-gallery", "gt_long.npy", "--k", "2"],
            "length 3",
        ),
        (
            ["--sims", "rect.npy", "--query-to-gallery", "gt_range.npy", "--k", "2"],
            "range [0, 4)",
        ),
        (
            ["--sims", "rect.npy", "--query-to-gallery", "gt_float.npy", "--k", "2"],
            "integer",
        ),
        (
            ["--sims", "rect.npy", "--query-to-gallery", "gt_ok.npy"],
            "`--k` must be at most",
        ),
        (["--sims", "ints.npy", "--k", "1"], "floating"),
        (["--sims", "missing.npy"], "existing file"),
        (["--sims", "rect.txt"], "must end in"),
        (
            ["--sims", "rect.npy", "--query-to-gallery", "gt_ok.npy", "--k", "0"],
            "`--k`",
        ),
    ],
)
def test_bad_inputs_one_line_error(tmp_path, args, message, capsys):
    # in-process through the same dispatcher as the console script (a subprocess
    # per case would cost seconds each, for the torch import); one real
    # subprocess run is checked below
    _bad_files(tmp_path)
    (tmp_path / "rect.txt").write_text("1 2\n")
    args = [str(tmp_path / a) if a.endswith((".npy", ".txt")) else a for a in args]
    status = main(["evaluate", *args, "--json"])
    out, err = capsys.readouterr()
    assert status != 0
    assert out == ""
    err = err.strip()
    assert len(err.splitlines()) == 1, err
    assert message in err
    assert err.startswith("hubrepro evaluate: error:")


def test_bad_input_through_console_script(tmp_path):
    _bad_files(tmp_path)
    exe = Path(sys.executable).with_name("hubrepro")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "hubrepro"]
    proc = subprocess.run(
        [*cmd, "evaluate", "--sims", str(tmp_path / "nan.npy"), "--k", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "nan.npy" in err and "finite" in err and "(0, 1)" in err
