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


# ------------------------------------------------------------------ memory-mapped banks


def test_open_rows_reads_chunks_and_shards(tmp_path):
    from hubrepro.io import open_rows

    a = np.arange(40, dtype=np.float16).reshape(10, 4)
    np.save(tmp_path / "b.npy", a)
    bank = open_rows(tmp_path / "b.npy")
    assert bank.shape == (10, 4) and bank.dtype == torch.float16 and len(bank) == 10
    chunks = list(bank.iter_rows(4))
    assert [s for s, _ in chunks] == [0, 4, 8]
    np.testing.assert_array_equal(torch.cat([c for _, c in chunks]).numpy(), a)
    shard = open_rows(tmp_path / "b.npy", start=3, stop=7)
    np.testing.assert_array_equal(shard.load().numpy(), a[3:7])
    assert open_rows(tmp_path / "b.npy", start=10).shape == (0, 4)


def test_open_rows_refuses_what_it_cannot_map(tmp_path):
    from hubrepro.io import open_rows

    np.save(tmp_path / "i.npy", np.zeros((3, 2), dtype=np.int64))
    np.save(tmp_path / "v.npy", np.zeros(3, dtype=np.float32))
    np.save(tmp_path / "f.npy", np.asfortranarray(np.zeros((3, 2), dtype=np.float32)))
    for name in ("i.npy", "v.npy", "f.npy"):
        with pytest.raises(ValueError, match="C-ordered 2-D"):
            open_rows(tmp_path / name)
    with pytest.raises(ValueError, match="must lie within"):
        np.save(tmp_path / "ok.npy", np.zeros((3, 2), dtype=np.float32))
        open_rows(tmp_path / "ok.npy", start=2, stop=9)
    with pytest.raises(FileNotFoundError):
        open_rows(tmp_path / "missing.npy")
    torch.save(torch.zeros(2, 2), tmp_path / "t.pt")
    with pytest.raises(ValueError, match="must be a .npy file"):
        open_rows(tmp_path / "t.pt")


def test_a_mapped_bank_is_streamed_never_read_whole(tmp_path, monkeypatch):
    from hubrepro.io import MappedRows, open_rows
    from hubrepro.normalize import DualDIS

    gen = torch.Generator().manual_seed(0)
    gal, bq, bg = (torch.randn(n, 8, generator=gen) for n in (20, 300, 50))
    np.save(tmp_path / "bq.npy", bq.numpy().astype(np.float16))
    asked = []
    orig = MappedRows.rows

    def spy(self, a, b, dtype=None):
        asked.append(b - a)
        return orig(self, a, b, dtype)

    monkeypatch.setattr(MappedRows, "rows", spy)
    monkeypatch.setattr(MappedRows, "load", lambda self: pytest.fail("read whole"))
    mapped = DualDIS(beta_query=20.0, beta_gallery=5.0).fit_embeddings(
        gal, bank_query=open_rows(tmp_path / "bq.npy"), bank_gallery=bg, chunk_size=64
    )
    assert asked and max(asked) <= 64 and sum(asked) == 300
    ref = DualDIS(beta_query=20.0, beta_gallery=5.0).fit_embeddings(
        gal, bank_query=bq.half(), bank_gallery=bg, chunk_size=64
    )
    assert torch.equal(mapped.lse_query_, ref.lse_query_)
    assert torch.equal(mapped.active_query_, ref.active_query_)


def test_unit_norm_declaration_skips_only_the_normalisation():
    from hubrepro.normalize import DualIS

    gen = torch.Generator().manual_seed(1)
    gal, bq, bg = (torch.randn(n, 8, generator=gen) for n in (20, 300, 50))
    kw = {"bank_query": bq, "bank_gallery": bg}
    est = DualIS(beta_query=20.0, beta_gallery=5.0)
    declared = est.fit_embeddings(gal, unit_norm=True, **kw).lse_query_
    dot = est.fit_embeddings(gal, metric="dot", **kw).lse_query_
    assert torch.equal(declared, dot)  # not unit: declared cosine is the dot product
    unit = [x / x.norm(dim=1, keepdim=True) for x in (gal, bq, bg)]
    a = est.fit_embeddings(unit[0], bank_query=unit[1], bank_gallery=unit[2]).lse_query_
    b = est.fit_embeddings(
        unit[0], bank_query=unit[1], bank_gallery=unit[2], unit_norm=True
    ).lse_query_
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    from hubrepro.io import atomic_write

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "x.bin", boom)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "y.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "y.bin", boom, overwrite=True)
    assert (tmp_path / "y.bin").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y.bin"]
