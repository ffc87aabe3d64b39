"""No input to any command prints a traceback: one line naming the file and what to do.

Errors are caught in one place (``hubrepro.cli.main``); these tests feed every command
hostile files and values, in-process through that dispatcher (a subprocess per case
would cost seconds for torch's import) and, for what needs a real process (a closed
pipe, file permissions), through the console script.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubrepro.cli import EXIT_BROKEN_PIPE, main

EXE = Path(sys.executable).with_name("hubrepro")
CLI = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "hubrepro"]


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Valid inputs of every command, and hostile variants of them."""
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    sims = rng.normal(size=(6, 6)).astype(np.float32)
    np.save(d / "s.npy", sims)
    np.save(d / "p.npy", rng.normal(size=(10, 6)).astype(np.float32))
    np.save(d / "p5.npy", rng.normal(size=(10, 5)).astype(np.float32))
    for name, n in (("q", 6), ("g", 6), ("bq", 30), ("bg", 20)):
        np.save(d / f"{name}.npy", _unit(rng.normal(size=(n, 8))))
    save_file({"data": torch.from_numpy(sims)}, str(d / "s.safetensors"))
    blob = (d / "s.safetensors").read_bytes()
    (d / "trunc.safetensors").write_bytes(blob[:-7])
    (d / "corrupt.safetensors").write_bytes(
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......"
    )
    (d / "huge.safetensors").write_bytes((2**60).to_bytes(8, "little") + b"{}")
    (d / "trunc.npy").write_bytes((d / "s.npy").read_bytes()[:100])
    (d / "empty.npy").write_bytes(b"")
    torch.save(torch.from_numpy(sims), d / "s.pt")
    (d / "trunc.pt").write_bytes((d / "s.pt").read_bytes()[:60])
    np.save(d / "complex.npy", sims.astype(np.complex64))
    np.save(d / "bool.npy", sims > 0)
    np.save(d / "zero_d.npy", np.float32(1.0) * np.ones((), np.float32))
    np.save(d / "text.npy", np.array([["a", "b"]]))
    (d / "dict.pkl").write_bytes(__import__("pickle").dumps({"a": "not an array"}))
    (d / "module.pkl").write_bytes(b"cnosuchmodule\nFoo\n.")
    (d / "folder.npy").mkdir()
    (d / "loop.npy").symlink_to(d / "loop.npy")
    assert main(["normalize", "fit", "is", "--query-bank-sims", str(d / "p.npy"),
                 "--save", str(d / "stats.safetensors")]) == 0  # fmt: skip
    return d


def _one_line_error(capsys, argv, *, status=2, command=None):
    """Run ``hubrepro argv`` in-process; return its one-line error."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == status, (rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    command = command or str(argv[0])
    assert lines[0].startswith(f"hubrepro {command}: error: "), lines[0]
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------- damaged input files

DAMAGED = {
    "trunc.safetensors": "incomplete metadata",
    "corrupt.safetensors": "invalid JSON",
    "huge.safetensors": "header too large",
    "trunc.npy": "EOF",
    "empty.npy": "it is empty",
    "trunc.pt": "zip archive",
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--sims", "{f}"],
        ["normalize", "is", "--sims", "{f}", "--query-bank-sims", "{p}", "--out", "{o}"],
        ["normalize", "is", "--sims", "{s}", "--query-bank-sims", "{f}", "--out", "{o}"],
        ["normalize", "dualis", "--queries", "{q}", "--gallery", "{f}",
         "--query-bank", "{bq}", "--gallery-bank", "{bg}", "--out", "{o}"],
        ["normalize", "apply", "--stats", "{stats}", "--sims", "{f}", "--out", "{o}"],
    ],
    ids=["evaluate", "normalize-sims", "normalize-bank", "normalize-emb", "apply"],
)  # fmt: skip
def test_damaged_files_are_one_line_errors_naming_the_file(
    root, tmp_path, capsys, name, argv
):
    names = {k: str(root / f"{k}.npy") for k in ("s", "p", "q", "bq", "bg")}
    names |= {
        "f": str(root / name),
        "o": str(tmp_path / "o.npy"),
        "stats": str(root / "stats.safetensors"),
    }
    line = _one_line_error(capsys, [a.format(**names) for a in argv])
    assert str(root / name) in line and DAMAGED[name] in line
    assert "truncated or corrupt" in line
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize(
    "name", ["trunc.safetensors", "corrupt.safetensors", "huge.safetensors"]
)
def test_damaged_statistics_files(root, tmp_path, capsys, name):
    line = _one_line_error(capsys, ["normalize", "info", root / name])
    assert name in line and "safetensors cannot read" in line
    _one_line_error(capsys, ["normalize", "apply", "--stats", root / name,
                             "--sims", root / "s.npy", "--out", tmp_path / "o.npy"])  # fmt: skip


@pytest.mark.parametrize(
    ("name", "expected", "not_in"),
    [
        ("complex.npy", "`x.real`", "integers"),
        ("bool.npy", "a mask, not scores", "integers"),
        ("zero_d.npy", "shape ()", "(1,)"),
        ("text.npy", "must hold an array of numbers; got dtype <U1 (text)", None),
        ("folder.npy", "must be an existing file", None),
        ("loop.npy", "must be an existing file", None),
    ],
)
def test_wrong_contents_are_described_as_they_are(root, capsys, name, expected, not_in):
    line = _one_line_error(capsys, ["evaluate", "--sims", root / name])
    assert expected in line and name in line
    assert not_in is None or not_in not in line


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("dict.pkl", "must hold one numeric array; got str"),
        ("module.pkl", "No module named 'nosuchmodule'"),
    ],
)
def test_allow_pickle_on_a_pickle_holding_no_array(root, capsys, name, expected):
    line = _one_line_error(
        capsys, ["evaluate", "--sims", root / name, "--allow-pickle"]
    )
    assert expected in line and name in line


def test_a_bank_of_the_wrong_width_is_blamed(root, tmp_path, capsys):
    line = _one_line_error(capsys, ["normalize", "is", "--sims", root / "s.npy",
                                    "--query-bank-sims", root / "p5.npy", "--out", tmp_path / "o.npy"])  # fmt: skip
    assert "`bank_query_sims` must be of width 6" in line and "`sims` must" not in line


# ---------------------------------------------------------------- outputs that cannot be written


@pytest.mark.parametrize("command", ["normalize", "apply", "fit", "dbnorm", "index"])
def test_out_on_a_folder_or_an_existing_file(root, tmp_path, capsys, command):
    argv, out_flag, suffix = _writer(root, command)
    target = tmp_path / f"out{suffix}"
    target.mkdir()
    line = _one_line_error(capsys, [*argv, out_flag, target, "--overwrite"])
    assert "is a folder" in line and target.is_dir()
    existing = tmp_path / f"exists{suffix}"
    existing.write_bytes(b"old")
    line = _one_line_error(capsys, [*argv, out_flag, existing])
    assert (
        "already exists; pass --overwrite" in line and existing.read_bytes() == b"old"
    )


@pytest.mark.parametrize("command", ["normalize", "apply", "fit", "dbnorm", "index"])
def test_out_in_a_missing_folder_is_created(root, tmp_path, capsys, command):
    argv, out_flag, suffix = _writer(root, command)
    target = tmp_path / "new" / "deeper" / f"out{suffix}"
    assert main([str(a) for a in [*argv, out_flag, target]]) == 0, (
        capsys.readouterr().err
    )
    assert target.is_file()


def test_out_under_a_file_is_one_line(root, tmp_path, capsys):
    (tmp_path / "plain").write_text("a file, not a folder")
    argv, out_flag, _ = _writer(root, "normalize")
    line = _one_line_error(capsys, [*argv, out_flag, tmp_path / "plain" / "o.npy"])
    assert "plain" in line


def _writer(root, command):
    """(argv without the output, output flag, suffix) of each command that writes a file."""
    if command == "normalize":
        return (
            [
                "normalize",
                "is",
                "--sims",
                root / "s.npy",
                "--query-bank-sims",
                root / "p.npy",
            ],
            "--out",
            ".npy",
        )
    if command == "apply":
        return (
            [
                "normalize",
                "apply",
                "--stats",
                root / "stats.safetensors",
                "--sims",
                root / "s.npy",
            ],
            "--out",
            ".npy",
        )
    if command == "fit":
        return (
            ["normalize", "fit", "is", "--query-bank-sims", root / "p.npy"],
            "--save",
            ".safetensors",
        )
    if command == "dbnorm":
        return (
            [
                "dbnorm",
                "--data-dir",
                _sims_dir(root),
                "--methods",
                "none",
                "is",
                "--beta-query",
                "5",
            ],
            "--out",
            ".csv",
        )
    pytest.importorskip("faiss")
    idx = root / "idx"
    if not idx.exists():
        assert (
            main(
                ["index", "build", "--gallery", str(root / "g.npy"), "--out", str(idx)]
            )
            == 0
        )
    return (
        ["index", "search", idx, "--queries", root / "q.npy", "-k", "2"],
        "--out",
        ".npz",
    )


def _sims_dir(root):
    d = root / "simsdir"
    if not d.exists():
        d.mkdir()
        shutil.copy(root / "s.npy", d / "sims.npy")
        shutil.copy(root / "p.npy", d / "bank_query_sims.npy")
    return d


def _unprivileged() -> list[str]:
    """A command prefix under which file permissions apply (root ignores them)."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set", "-all", "--inh-caps", "-all"]
    if shutil.which("setpriv") is None or subprocess.run([*prefix, "true"]).returncode:
        pytest.skip(
            "running as root without a working setpriv: permissions cannot be tested"
        )
    return prefix


def _run(argv, **kw):
    return subprocess.run([*_unprivileged(), *CLI, *map(str, argv)], capture_output=True,
                          text=True, timeout=300, **kw)  # fmt: skip


def test_out_in_a_read_only_folder(root, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        for command in ("normalize", "dbnorm"):
            argv, flag, suffix = _writer(root, command)
            proc = _run([*argv, flag, ro / f"o{suffix}"])
            assert proc.returncode == 2 and "Traceback" not in proc.stderr
            (line,) = proc.stderr.strip().splitlines()
            assert (
                f"Permission denied: '{ro / f'o{suffix}'}'" in line
            )  # the target, not a temp file
            assert "check the permissions" in line
    finally:
        ro.chmod(stat.S_IRWXU)
    assert list(ro.iterdir()) == []


def test_an_unreadable_safetensors_file_is_not_called_missing(root, tmp_path):
    # safetensors itself reports EACCES as "No such file or directory"
    p = tmp_path / "secret.safetensors"
    shutil.copy(root / "s.safetensors", p)
    p.chmod(0)
    proc = _run(["evaluate", "--sims", p])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"Permission denied: '{p}'" in proc.stderr
    assert "No such file" not in proc.stderr


# ---------------------------------------------------------------- values typed on the line


@pytest.mark.parametrize(
    "argv",
    [
        ["normalize", "is", "--sims", "{s}", "--query-bank-sims", "{p}", "--out", "{o}", "--device", "banana"],
        ["normalize", "fit", "is", "--query-bank-sims", "{p}", "--save", "{o}", "--device", "banana"],
        ["normalize", "apply", "--stats", "{stats}", "--sims", "{s}", "--out", "{o}", "--device", "cuda:x"],
        ["dbnorm", "--dataset", "synthetic", "--device", "banana"],
        ["data", "build", "--device", "banana"],
        ["data", "embed-clip", "--model", "m", "--weights", "w", "--images", "i", "--captions", "c",
         "--out", "o", "--device", "banana"],
        ["evaluate", "--sims", "{s}", "--device", "banana"],
    ],
    ids=["normalize", "fit", "apply", "dbnorm", "data-build", "embed-clip", "evaluate"],
)  # fmt: skip
def test_device_banana_is_a_usage_error(root, tmp_path, capsys, argv):
    names = {"s": str(root / "s.npy"), "p": str(root / "p.npy"), "o": str(tmp_path / "o.npy"),
             "stats": str(root / "stats.safetensors")}  # fmt: skip
    with pytest.raises(SystemExit) as info:
        main([a.format(**names) for a in argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and ("banana" in err or "cuda:x" in err)
    assert err.strip().splitlines()[-1].startswith("hubrepro")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--beta-query", "nan"], "`beta_query` must be positive and finite"),
        (["--beta-query", "inf"], "`beta_query` must be positive and finite"),
        (["--beta-query", "1e400"], "`beta_query` must be positive and finite"),
        (["--beta-query", "-0"], "`beta_query` must be positive"),
        (["--scale", "log", "--beta-query", "1e39"], "overflow"),
    ],
)
def test_hostile_numbers(root, tmp_path, capsys, extra, expected):
    line = _one_line_error(capsys, ["normalize", "is", "--sims", root / "s.npy", "--query-bank-sims",
                                    root / "p.npy", "--out", tmp_path / "o.npy", *extra])  # fmt: skip
    assert expected in line


def test_float16_scores_that_do_not_fit_are_refused_not_written_as_inf(
    tmp_path, capsys
):
    np.save(tmp_path / "s.npy", np.array([[0.5, 0.9]], np.float16))
    np.save(tmp_path / "p.npy", np.array([[0.9, 0.1], [0.3, 0.2]], np.float16))
    argv = ["normalize", "is", "--sims", tmp_path / "s.npy", "--query-bank-sims", tmp_path / "p.npy",
            "--beta-query", "100000", "--out", tmp_path / "o.npy"]  # fmt: skip
    line = _one_line_error(capsys, [*argv, "--scale", "log"])
    assert "must be finite in float16" in line and "scale='similarity'" in line
    assert not (tmp_path / "o.npy").exists()
    assert main([str(a) for a in argv]) == 0  # the similarity scale fits
    out = np.load(tmp_path / "o.npy")
    assert out.dtype == np.float16 and np.isfinite(out).all()


# ---------------------------------------------------------------- data, classroom


def _verify_with(monkeypatch, tmp_path, side_text=None, manifest_text=None):
    from hubrepro.datasets import manifest
    from hubrepro.datasets.stdlib_code import data_file

    shutil.copy(data_file(), tmp_path / data_file().name)
    side = tmp_path / manifest.sidecar_file().name
    shutil.copy(manifest.sidecar_file(), side)
    if side_text is not None:
        side.write_text(side_text)
    man = tmp_path / "manifest.yml"
    man.write_text(manifest_text if manifest_text is not None else "")
    monkeypatch.setattr(manifest, "data_file", lambda *a: tmp_path / data_file().name)
    monkeypatch.setattr(manifest, "sidecar_file", lambda *a: side)
    monkeypatch.setattr(
        manifest.verify_data,
        "__defaults__",
        (man if manifest_text is not None else None,),
    )


@pytest.mark.parametrize(
    ("side", "man", "expected"),
    [
        ("{not json", None, "is not valid JSON"),
        ("[1, 2]", None, "must hold a JSON object; got list"),
        (None, "datasets: [unclosed", "is not valid YAML"),
        (None, "- a list\n- not a mapping\n", "must hold a mapping; got list"),
        (None, "datasets: 3\n", "has no entry for stdlib-code"),
        (None, "datasets:\n  stdlib-code: [1]\n", "has no entry for stdlib-code"),
    ],
)
def test_data_verify_with_a_malformed_sidecar_or_manifest(
    monkeypatch, tmp_path, capsys, side, man, expected
):
    _verify_with(monkeypatch, tmp_path, side, man)
    assert main(["data", "verify"]) == 1
    out, err = capsys.readouterr()
    (line,) = err.strip().splitlines()
    assert line.startswith("hubrepro data verify:") and expected in line
    assert "hubrepro data build --overwrite" in line and "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("notebook.json", '{"a": 1}', "must be a .ipynb notebook"),
        ("notebook.ipynb", '{"cells": 3}', "must be a notebook jupytext can read"),
        ("notebook.ipynb", "{not json", "must be a notebook jupytext can read"),
        ("notebook.ipynb", "[]", "must be a notebook jupytext can read"),
    ],
)
def test_classroom_grade_on_a_file_that_is_not_a_notebook(
    tmp_path, capsys, name, text, expected
):
    (tmp_path / name).write_text(text)
    argv = [
        "classroom",
        "grade",
        "a1_k_occurrence_skewness",
        tmp_path / name,
        "--student-id",
        "alice",
    ]
    line = _one_line_error(capsys, argv, command="classroom")
    assert expected in line


# ---------------------------------------------------------------- the boundary itself


def test_closed_pipe_ends_quietly(root):
    # `hubrepro evaluate --json | head -c 0`: the reader is gone before the first write
    proc = subprocess.Popen([*CLI, "evaluate", "--sims", str(root / "s.npy"), "--k", "2", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == EXIT_BROKEN_PIPE
    assert err == ""


def test_closed_pipe_after_part_of_the_output(root):
    script = (
        f"{' '.join(map(str, CLI))} evaluate --sims {root / 's.npy'} --k 2 | head -c 80"
    )
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr
    assert len(proc.stdout) == 80 and proc.returncode in (0, EXIT_BROKEN_PIPE)


def test_traceback_flag_anywhere_shows_the_trace(root, capsys):
    for argv in (["--traceback", "evaluate", "--sims", str(root / "trunc.npy")],
                 ["evaluate", "--sims", str(root / "trunc.npy"), "--traceback"]):  # fmt: skip
        with pytest.raises(ValueError, match="truncated or corrupt"):
            main(argv)


def test_an_unexpected_error_is_one_line_asking_for_a_report(monkeypatch, root, capsys):
    import hubrepro.cli.evaluate as ev

    class Surprise(Exception):
        pass

    def boom(args):
        raise Surprise("something\nnobody planned")

    monkeypatch.setattr(ev, "evaluate_files", boom)
    line = _one_line_error(capsys, ["evaluate", "--sims", root / "s.npy"], status=1)
    assert (
        "unexpected Surprise: something nobody planned" in line
        and "--traceback" in line
    )


def test_interrupt_is_one_line(monkeypatch, root, capsys):
    import hubrepro.cli.evaluate as ev

    def stop(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(ev, "evaluate_files", stop)
    assert main(["evaluate", "--sims", str(root / "s.npy")]) == 130
    assert capsys.readouterr().err == "hubrepro evaluate: interrupted\n"


# ---------------------------------------------------------------- fuzz: damaged files


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    base=st.sampled_from(["s.npy", "s.safetensors", "s.pt"]),
    cut=st.integers(0, 2000),
    flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 255)), max_size=4),
    tail=st.binary(max_size=64),
)
def test_fuzz_damaged_files_never_give_a_traceback(
    root, tmp_path_factory, base, cut, flips, tail
):
    data = bytearray((root / base).read_bytes()[:cut])
    for pos, byte in flips:
        if pos < len(data):
            data[pos] ^= byte
    path = tmp_path_factory.mktemp("fuzz") / f"x{Path(base).suffix}"
    path.write_bytes(bytes(data) + tail)
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["evaluate", "--sims", str(path), "--k", "2"])
    text = err.getvalue().strip()
    if rc != 0:
        assert rc == 2, text
        assert len(text.splitlines()) == 1 and text.startswith(
            "hubrepro evaluate: error: "
        )
