"""hubrepro.io: every supported format round-trips; pickles are refused by default."""

import pickle

import numpy as np
import pytest
import torch

from hubrepro.io import load_array, save_array


@pytest.mark.parametrize("suffix", [".npy", ".pt", ".safetensors"])
def test_round_trip_keeps_values_and_dtype(tmp_path, suffix, dtype):
    x = torch.arange(12, dtype=dtype).reshape(3, 4) / 7
    p = save_array(x, tmp_path / f"x{suffix}")
    y = load_array(p)
    assert y.dtype == dtype
    torch.testing.assert_close(y, x)


def test_save_refuses_to_overwrite(tmp_path):
    p = save_array(np.zeros((2, 2), dtype=np.float32), tmp_path / "x.npy")
    before = p.read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        save_array(np.ones((2, 2), dtype=np.float32), p)
    assert p.read_bytes() == before
    save_array(np.ones((2, 2), dtype=np.float32), p, overwrite=True)
    assert load_array(p).sum() == 4


def test_pickle_refused_unless_allowed(tmp_path):
    p = tmp_path / "sims.pkl"
    with p.open("wb") as fh:
        pickle.dump(np.eye(3, dtype=np.float32), fh)
    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_array(p)
    assert load_array(p, allow_pickle=True).shape == (3, 3)


def test_object_npy_is_a_pickle(tmp_path):
    p = tmp_path / "obj.npy"
    np.save(
        p,
        np.array({"sims": np.eye(2, dtype=np.float32)}, dtype=object),
        allow_pickle=True,
    )
    with pytest.raises(ValueError, match="holds Python objects"):
        load_array(p)
    assert load_array(p, allow_pickle=True).shape == (2, 2)


class Evil:
    """Any class: unpickling it would import and build arbitrary objects."""


def test_pt_with_arbitrary_object_is_refused(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"a": Evil()}, p)
    with pytest.raises(ValueError, match="could not read"):
        load_array(p)


def test_dict_files_need_a_key_when_ambiguous(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "two.safetensors"
    save_file({"a": torch.zeros(2, 2), "b": torch.ones(2, 2)}, str(p))
    with pytest.raises(ValueError, match="pass `key`"):
        load_array(p)
    assert load_array(p, key="b").sum() == 4
    with pytest.raises(ValueError, match="must name an entry"):
        load_array(p, key="c")


def test_missing_file_and_bad_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="existing file"):
        load_array(tmp_path / "nope.npy")
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match="must end in one of"):
        load_array(tmp_path / "x.csv")


def test_corrupt_file_gives_clear_error(tmp_path):
    p = tmp_path / "x.npy"
    p.write_bytes(b"not an npy file")
    with pytest.raises(ValueError, match="could not read"):
        load_array(p)
