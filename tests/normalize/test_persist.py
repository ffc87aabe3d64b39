"""Fit once, apply many: saved statistics reproduce the fitted estimator exactly."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from hubrepro.normalize import (
    METHODS,
    load_normalizer,
    make_normalizer,
    normalize_embeddings,
    read_record,
    save_normalizer,
    transform_embeddings,
)

HYPER = {
    "is": {"beta_query": 20.0},
    "dis": {"beta_query": 20.0, "k": 2},
    "csls": {"k": 3},
    "gc": {},
    "dualis": {"beta_query": 20.0, "beta_gallery": 10.0},
    "dualdis": {"beta_query": 20.0, "beta_gallery": 10.0, "mode": "faithful"},
    "sn": {"beta_query": 20.0, "n_iter": 3},
    "dbsn": {"beta_query": 20.0, "n_iter": 3},
    "nnn": {"alpha": 0.5, "k": 4},
    "none": {},
}


@pytest.fixture(scope="module")
def emb():
    g = torch.Generator().manual_seed(3)
    return {
        k: torch.randn(n, 12, generator=g)
        for k, n in {"q": 9, "g": 15, "bq": 60, "bg": 25}.items()
    }


def _fit(method, emb):
    return make_normalizer(method, **HYPER[method]).fit_embeddings(
        emb["g"], bank_query=emb["bq"], bank_gallery=emb["bg"]
    )


@pytest.mark.parametrize("method", sorted(METHODS))
def test_saved_statistics_transform_bitwise_like_the_fitted_estimator(
    method, emb, tmp_path
):
    est = _fit(method, emb)
    path = save_normalizer(est, tmp_path / "s.safetensors", gallery=emb["g"])
    back = load_normalizer(path, gallery=emb["g"])
    assert type(back) is type(est) and back.get_params() == est.get_params()
    s = emb["q"] @ emb["g"].T
    assert torch.equal(back.transform(s), est.transform(s))
    assert torch.equal(
        transform_embeddings(back, emb["q"], emb["g"]),
        normalize_embeddings(
            method,
            emb["q"],
            emb["g"],
            bank_query=emb["bq"],
            bank_gallery=emb["bg"],
            **HYPER[method],
        ),
    )


def test_record_names_method_params_sizes_and_gallery(emb, tmp_path):
    est = _fit("dualis", emb)
    rec = read_record(est.save(tmp_path / "s.safetensors"))
    assert rec["method"] == "dualis" and rec["params"]["beta_gallery"] == 10.0
    assert rec["n_gallery"] == 15 and rec["bank_sizes"] == {"query": 60, "gallery": 25}
    assert rec["metric"] == "cosine" and len(rec["gallery_sha256"]) == 64
    assert rec["tensors"] == ["lse_gallery_", "lse_query_"]


def test_load_refuses_statistics_of_another_gallery(emb, tmp_path):
    path = _fit("dualis", emb).save(tmp_path / "s.safetensors")
    other = emb["g"].clone()
    other[0, 0] += 1e-3  # same shape, different contents
    with pytest.raises(ValueError, match="the gallery the statistics were fitted on"):
        load_normalizer(path, gallery=other)
    with pytest.raises(ValueError, match="gallery of 15 items"):
        load_normalizer(path, gallery=emb["bg"])
    with pytest.raises(ValueError, match="different contents or dtype"):
        load_normalizer(path, gallery=emb["g"].double())


def test_statistics_from_matrices_record_a_gallery_only_when_given(emb, tmp_path):
    s = lambda a: a @ emb["g"].T  # noqa: E731
    est = make_normalizer("is", beta_query=5.0).fit(s(emb["bq"]))
    bare = est.save(tmp_path / "bare.safetensors")
    assert read_record(bare)["gallery_sha256"] is None
    with pytest.raises(ValueError, match="record none"):
        load_normalizer(bare, gallery=emb["g"])
    tied = est.save(tmp_path / "tied.safetensors", gallery=emb["g"])
    assert torch.equal(load_normalizer(tied, gallery=emb["g"]).lse_, est.lse_)


def test_save_refuses_unfitted_wrong_suffix_and_overwrite(emb, tmp_path):
    with pytest.raises(ValueError, match="fitted"):
        save_normalizer(make_normalizer("is"), tmp_path / "s.safetensors")
    est = _fit("is", emb)
    with pytest.raises(ValueError, match=".safetensors"):
        est.save(tmp_path / "s.npy")
    est.save(tmp_path / "s.safetensors")
    with pytest.raises(FileExistsError):
        est.save(tmp_path / "s.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["s.safetensors"]  # no temp left


def test_read_record_refuses_other_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="without hubrepro's record"):
        read_record(tmp_path / "plain.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="cannot read"):
        read_record(tmp_path / "junk.safetensors")


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "hubrepro", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )


def test_cli_fit_then_apply_equals_the_one_shot_command(emb, tmp_path):
    for k, v in emb.items():
        np.save(tmp_path / f"{k}.npy", v.numpy())
    np.save(tmp_path / "bq16.npy", emb["bq"].numpy().astype(np.float16))
    hyper = ["--beta-query", 20, "--beta-gallery", 10]
    fit = _cli("normalize", "fit", "dualdis", "--gallery", "g.npy", "--query-bank",
               "bq.npy", "--gallery-bank", "bg.npy", *hyper, "--save", "st.safetensors",
               cwd=tmp_path)  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    app = _cli("normalize", "apply", "--stats", "st.safetensors", "--queries", "q.npy",
               "--gallery", "g.npy", "--out", "a.npy", cwd=tmp_path)  # fmt: skip
    assert app.returncode == 0, app.stderr
    one = _cli("normalize", "dualdis", "--queries", "q.npy", "--gallery", "g.npy",
               "--query-bank", "bq.npy", "--gallery-bank", "bg.npy", *hyper, "--out",
               "o.npy", cwd=tmp_path)  # fmt: skip
    assert one.returncode == 0, one.stderr
    np.testing.assert_array_equal(
        np.load(tmp_path / "a.npy"), np.load(tmp_path / "o.npy")
    )
    # a float16 bank on disk is memory-mapped and gives the float16-rounded statistics
    fit16 = _cli("normalize", "fit", "dualdis", "--gallery", "g.npy", "--query-bank",
                 "bq16.npy", "--gallery-bank", "bg.npy", *hyper, "--save",
                 "st16.safetensors", cwd=tmp_path)  # fmt: skip
    assert fit16.returncode == 0, fit16.stderr
    ref = make_normalizer("dualdis", beta_query=20.0, beta_gallery=10.0).fit_embeddings(
        emb["g"], bank_query=emb["bq"].half(), bank_gallery=emb["bg"]
    )
    back = load_normalizer(tmp_path / "st16.safetensors")
    assert torch.equal(back.lse_query_, ref.lse_query_)
    # applying to another gallery is refused in one line, nothing written
    bad = _cli("normalize", "apply", "--stats", "st.safetensors", "--queries", "q.npy",
               "--gallery", "bg.npy", "--out", "b.npy", cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and not (tmp_path / "b.npy").exists()
    assert bad.stderr.count("\n") == 1 and "fitted on" in bad.stderr
    info = _cli("normalize", "info", "st.safetensors", cwd=tmp_path)
    assert info.returncode == 0 and '"method": "dualdis"' in info.stdout


def test_cli_apply_from_similarities(emb, tmp_path):
    est = _fit("nnn", emb)
    est.save(tmp_path / "st.safetensors")
    s = (emb["q"] @ emb["g"].T).numpy()
    np.save(tmp_path / "s.npy", s)
    proc = _cli("normalize", "apply", "--stats", "st.safetensors", "--sims", "s.npy",
                "--out", "o.npy", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(
        np.load(tmp_path / "o.npy"), est.transform(torch.from_numpy(s)).numpy()
    )
    both = _cli("normalize", "apply", "--stats", "st.safetensors", "--sims", "s.npy",
                "--queries", "q.npy", "--out", "x.npy", cwd=tmp_path)  # fmt: skip
    assert both.returncode == 2 and "not both" in both.stderr


def test_cli_imports_only_the_chosen_subcommand():
    code = (
        "import sys\n"
        "from hubrepro.cli import build_parser\n"
        "build_parser(['data', 'list'])\n"
        "print('torch' in sys.modules, 'hubrepro.cli.normalize' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stderr
