"""Users' data folders: layouts, formats, malformed files, pickles, load_dataset routing."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from hubrepro.datasets import PairedData, SimilarityData, load_dataset
from hubrepro.datasets.user import load_user


def _rng(seed=0):
    return np.random.default_rng(seed)


@pytest.fixture
def emb_dir(tmp_path):
    r = _rng()
    d = tmp_path / "emb"
    d.mkdir()
    np.save(d / "query.npy", r.standard_normal((6, 4)).astype(np.float32))
    torch.save(torch.randn(3, 4), d / "gallery.pt")
    save_file({"data": torch.randn(5, 4)}, str(d / "bank_query.safetensors"))
    np.save(d / "bank_gallery.npy", r.standard_normal((5, 4)).astype(np.float32))
    np.save(d / "query_to_gallery.npy", np.array([0, 0, 1, 1, 2, 2]))
    (d / "dataset.yml").write_text(
        "name: my-clip\nquery_modality: text\ngallery_modality: image\n"
    )
    return d


def test_embeddings_layout_round_trip(emb_dir):
    data = load_user(emb_dir)
    assert isinstance(data, PairedData)
    assert data.name == "my-clip" and data.meta["gallery_modality"] == "image"
    np.testing.assert_array_equal(data.query.numpy(), np.load(emb_dir / "query.npy"))
    assert data.gallery.shape == (3, 4) and data.bank_query.shape == (5, 4)
    assert data.query_to_gallery.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.bank_query_to_gallery is None  # square bank: diagonal
    assert data.sims().shape == (6, 3)


def test_load_dataset_with_data_dir_means_user(emb_dir):
    data = load_dataset(
        "stdlib-code", data_dir=emb_dir, protocol="by-module", n_bank=2, seed=1
    )
    assert isinstance(data, PairedData) and data.name == "my-clip"
    assert data.meta["ignored_options"] == ["protocol"]
    assert data.bank_gallery.shape[0] == 2  # n_bank applies to the user's bank
    with pytest.raises(
        ValueError, match="`data_dir` must be a folder for the 'user' dataset"
    ):
        load_dataset("user")
    with pytest.raises(TypeError, match="unknown"):
        load_dataset("user", data_dir=emb_dir, colour="red")
    with pytest.raises(ValueError, match="`name` must be one of"):
        load_dataset("msrvtt")


def test_similarity_layout(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    np.save(d / "sims.npy", _rng().standard_normal((4, 4)).astype(np.float32))
    np.save(
        d / "bank_query_sims.npy", _rng(1).standard_normal((7, 4)).astype(np.float32)
    )
    np.save(d / "query_mask.npy", np.array([True, True, False, True]))
    (d / "dataset.yml").write_text("scale: logit\n")
    data = load_dataset("user", data_dir=d)
    assert isinstance(data, SimilarityData)
    assert data.scale == "logit" and data.bank_query_sims.shape == (7, 4)
    assert data.query_mask.tolist() == [True, True, False, True]
    with pytest.raises(ValueError, match="`n_gallery` must be None for similarity"):
        load_dataset("user", data_dir=d, n_gallery=2)


def _qbnorm_dir(tmp_path, n_q=6, n_g=3):
    d = tmp_path / "qb"
    d.mkdir()
    r = _rng()
    for name, arr in (
        ("tt-test-captions-test-videos.pkl", r.standard_normal((n_q, n_g))),
        ("tt-train-captions-test-videos.pkl", r.standard_normal((8, n_g))),
        ("tt-test-query_masks.pkl", np.ones((n_g, n_q // n_g))),
    ):
        with (d / name).open("wb") as fh:
            pickle.dump(arr, fh)
    (d / "dataset.yml").write_text(
        "layout: qbnorm\n"
        "files:\n"
        "  sims: tt-test-captions-test-videos.pkl\n"
        "  bank_query_sims: tt-train-captions-test-videos.pkl\n"
        "  query_mask: tt-test-query_masks.pkl\n"
    )
    return d


def test_qbnorm_pickles_need_explicit_permission(tmp_path):
    d = _qbnorm_dir(tmp_path)
    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_user(d)
    data = load_user(d, allow_pickle=True)
    assert isinstance(data, SimilarityData)
    assert data.sims.dtype == torch.float64 and data.bank_query_sims.shape == (8, 3)
    # multi-caption: gallery-major order, two captions per video
    assert data.query_to_gallery.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.query_mask.shape == (6,)


def test_pickled_npy_is_refused(tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    np.save(d / "query.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(d / "gallery.npy", np.zeros((1, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="allow_pickle"):
        load_user(d)


@pytest.mark.parametrize(
    ("files", "exc", "match"),
    [
        ({"query": np.zeros((3, 4), np.float32)}, FileNotFoundError, "gallery.npy"),
        ({"gallery": np.zeros((3, 4), np.float32)}, FileNotFoundError, "query"),
        (
            {
                "query": np.zeros((3, 4), np.float32),
                "gallery": np.zeros((3, 5), np.float32),
            },
            ValueError,
            "dimension 4",
        ),
        (
            {
                "query": np.zeros((3,), np.float32),
                "gallery": np.zeros((3, 4), np.float32),
            },
            ValueError,
            "2-D",
        ),
        (
            {
                "query": np.zeros((3, 4), np.int64),
                "gallery": np.zeros((3, 4), np.float32),
            },
            TypeError,
            "floating-point",
        ),
        (
            {
                "query": np.zeros((3, 4), np.float32),
                "gallery": np.zeros((2, 4), np.float32),
            },
            ValueError,
            "`query_to_gallery` must be given",
        ),
        (
            {
                "query": np.zeros((3, 4), np.float32),
                "gallery": np.zeros((2, 4), np.float32),
                "query_to_gallery": np.array([0, 1, 5]),
            },
            ValueError,
            r"range \[0, 2\)",
        ),
        (
            {
                "query": np.zeros((3, 4), np.float32),
                "gallery": np.zeros((3, 4), np.float32),
                "query_to_gallery": np.array([0.0, 1.0, 2.0]),
            },
            TypeError,
            "integer",
        ),
        (
            {"sims": np.zeros((3, 4), np.float32)},
            ValueError,
            "`query_to_gallery` must be given when `sims`",
        ),
        (
            {"nothing": np.zeros(2)},
            FileNotFoundError,
            "query \\+ gallery embeddings or a sims matrix",
        ),
    ],
)
def test_malformed_folders_give_clear_errors(tmp_path, files, exc, match):
    for name, arr in files.items():
        np.save(tmp_path / f"{name}.npy", arr)
    with pytest.raises(exc, match=match):
        load_user(tmp_path)


def test_bad_dataset_yml_and_duplicates(tmp_path):
    np.save(tmp_path / "query.npy", np.zeros((2, 2), np.float32))
    np.save(tmp_path / "gallery.npy", np.eye(2, dtype=np.float32))
    (tmp_path / "dataset.yml").write_text("nmae: typo\n")
    with pytest.raises(ValueError, match="unknown key"):
        load_user(tmp_path)
    (tmp_path / "dataset.yml").write_text("- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        load_user(tmp_path)
    (tmp_path / "dataset.yml").write_text("scale: logit\n")
    with pytest.raises(ValueError, match="`scale` must be 'cosine' for embeddings"):
        load_user(tmp_path)
    (tmp_path / "dataset.yml").unlink()
    torch.save(torch.zeros(2, 2), tmp_path / "query.pt")
    with pytest.raises(ValueError, match="exactly one file"):
        load_user(tmp_path)
    with pytest.raises(FileNotFoundError, match="existing folder"):
        load_user(tmp_path / "missing")


@pytest.mark.parametrize(
    "name",
    ["../outside.pkl", "/etc/passwd", "sub/../../outside.pkl", "", 3],
)
def test_qbnorm_files_must_stay_inside_the_folder(tmp_path, name):
    # dataset.yml comes with the data: it may only name files of its own folder
    d = _qbnorm_dir(tmp_path)
    with (tmp_path / "outside.pkl").open("wb") as fh:
        pickle.dump(np.eye(3), fh)
    yml = (d / "dataset.yml").read_text()
    old = "sims: tt-test-captions-test-videos.pkl"
    (d / "dataset.yml").write_text(yml.replace(old, f"sims: {name!r}", 1))
    with pytest.raises(
        ValueError,
        match=r"dataset.yml files.sims` must be a file name relative to data_dir",
    ):
        load_user(d, allow_pickle=True)


def test_qbnorm_files_in_subfolders_and_links_the_user_made_are_read(tmp_path):
    d = _qbnorm_dir(tmp_path)
    (d / "sub").mkdir()
    (d / "tt-test-captions-test-videos.pkl").rename(d / "sub" / "sims.pkl")
    (tmp_path / "elsewhere.pkl").write_bytes(
        (d / "tt-test-query_masks.pkl").read_bytes()
    )
    (d / "masks.pkl").symlink_to(tmp_path / "elsewhere.pkl")
    (d / "dataset.yml").write_text(
        "layout: qbnorm\nfiles:\n  sims: sub/sims.pkl\n"
        "  bank_query_sims: tt-train-captions-test-videos.pkl\n  query_mask: masks.pkl\n"
    )
    assert load_user(d, allow_pickle=True).sims.shape == (6, 3)


@pytest.mark.parametrize("name", ["query", "gallery", "bank_query", "bank_gallery"])
def test_zero_embedding_rows_are_refused_with_the_file_and_row(emb_dir, name):
    # a zero vector has no cosine similarity: a silent 0 against everything otherwise
    path = next(p for p in emb_dir.iterdir() if p.stem == name)
    x = load_user(emb_dir).__getattribute__(name).clone()
    x[2] = 0
    path.unlink()
    np.save(emb_dir / f"{name}.npy", x.numpy())
    with pytest.raises(
        ValueError, match=rf"`{name}.npy` must be free of all-zero rows.*row 2\."
    ):
        load_user(emb_dir)
