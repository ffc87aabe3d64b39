"""hubrepro.io: every supported format round-trips; pickles are refused by default."""

import os
import pickle

import numpy as np
import pytest
import torch

from _kill import STAGES, kill_during_write, temporaries
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


# ------------------------------------------------------------------ misleading reads


def test_truncated_and_corrupt_files_are_named(tmp_path):
    from safetensors.torch import save_file

    np.save(tmp_path / "s.npy", np.ones((20, 30), np.float32))
    (tmp_path / "trunc.npy").write_bytes((tmp_path / "s.npy").read_bytes()[:100])
    save_file({"data": torch.ones(20, 30)}, str(tmp_path / "s.safetensors"))
    blob = (tmp_path / "s.safetensors").read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(blob[:-10])
    (tmp_path / "huge.safetensors").write_bytes((2**60).to_bytes(8, "little") + b"{}")
    torch.save(torch.ones(3), tmp_path / "s.pt")
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "s.pt").read_bytes()[:50])
    for name in ("trunc.npy", "trunc.safetensors", "huge.safetensors", "trunc.pt"):
        with pytest.raises(ValueError, match="could not read") as info:
            load_array(tmp_path / name)
        msg = str(info.value)
        assert str(tmp_path / name) in msg and "truncated or corrupt" in msg
        assert "\n" not in msg


def test_0d_big_endian_and_non_numeric_arrays(tmp_path):
    np.save(tmp_path / "z.npy", np.array(3.0, np.float32))
    assert load_array(tmp_path / "z.npy").shape == ()  # not (1,)
    np.save(tmp_path / "be.npy", np.arange(6, dtype=">f4").reshape(2, 3))
    be = load_array(tmp_path / "be.npy")
    assert be.dtype == torch.float32 and be.tolist() == [[0, 1, 2], [3, 4, 5]]
    for name, arr, what in (
        ("u.npy", np.array([["a"]]), "text"),
        ("d.npy", np.array([[1]], "datetime64[s]"), "dates"),
        ("r.npy", np.zeros(2, [("a", "f4")]), "records"),
    ):
        np.save(tmp_path / name, arr)
        with pytest.raises(
            ValueError, match=rf"{name}' must hold an array of numbers.*{what}"
        ):
            load_array(tmp_path / name)
    torch.save(torch.eye(2).to_sparse(), tmp_path / "sp.pt")
    with pytest.raises(ValueError, match="must hold a dense array"):
        load_array(tmp_path / "sp.pt")


def test_a_pickle_that_fails_to_load_is_named(tmp_path):
    # a pickle naming a module that does not exist: not a traceback from pickle
    p = tmp_path / "x.pkl"
    p.write_bytes(b"cnosuchmodule\nFoo\n.")  # GLOBAL nosuchmodule.Foo
    with pytest.raises(ValueError, match=r"could not read .*x\.pkl"):
        load_array(p, allow_pickle=True)


# ------------------------------------------------------------------ the one write rule


def test_a_folder_is_never_replaced(tmp_path):
    from hubrepro.io import atomic_write

    (tmp_path / "out.npy").mkdir()
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="is a folder"):
            save_array(np.zeros(2), tmp_path / "out.npy", overwrite=overwrite)
        with pytest.raises(FileExistsError, match="is a folder"):
            atomic_write(
                tmp_path / "out.npy", lambda fh: fh.write(b"x"), overwrite=overwrite
            )
    assert (tmp_path / "out.npy").is_dir()


def test_a_symbolic_link_is_replaced_never_followed(tmp_path):
    from hubrepro.io import atomic_write

    victim = tmp_path / "elsewhere" / "victim.npy"  # does not exist: a dangling link
    (tmp_path / "out.npy").symlink_to(victim)
    with pytest.raises(FileExistsError, match="symbolic link"):
        save_array(np.zeros(2), tmp_path / "out.npy")
    save_array(np.ones(2), tmp_path / "out.npy", overwrite=True)
    assert not (tmp_path / "out.npy").is_symlink()
    assert not victim.exists() and not victim.parent.exists()
    # a link to an existing file: the link goes, the file it named stays as it was
    (tmp_path / "kept.txt").write_text("keep me")
    (tmp_path / "link.txt").symlink_to(tmp_path / "kept.txt")
    atomic_write(tmp_path / "link.txt", lambda fh: fh.write(b"new"), overwrite=True)
    assert (tmp_path / "kept.txt").read_text() == "keep me"
    assert (tmp_path / "link.txt").read_bytes() == b"new"


def test_mode_of_the_replaced_file_is_kept(tmp_path):
    import stat

    from hubrepro.io import atomic_write

    p = tmp_path / "x.txt"
    atomic_write(p, lambda fh: fh.write(b"a"))
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    p.chmod(0o640)
    atomic_write(p, lambda fh: fh.write(b"b"), overwrite=True)
    assert stat.S_IMODE(p.stat().st_mode) == 0o640


def test_a_write_error_names_the_target_not_the_temporary_file(tmp_path):
    import errno

    from hubrepro.io import atomic_write

    def full(fh):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left") as info:
        atomic_write(tmp_path / "out.bin", full)
    assert info.value.filename == str(tmp_path / "out.bin")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ SIGKILL during a write
# A kill at any point of a write leaves the old file or the new one, never a broken one
# (tests/_kill.py stops the child inside hubrepro.io.atomic_write).


@pytest.mark.parametrize(
    ("suffix", "stage"),
    [(".npy", s) for s in STAGES] + [(".pt", "write"), (".safetensors", "write")],
)
def test_kill_during_save_array_leaves_old_or_new(tmp_path, suffix, stage):
    out = tmp_path / f"out{suffix}"
    old = torch.zeros(3, 4)
    save_array(old, out)
    before = out.read_bytes()
    kill_during_write(
        f"""
        import torch
        from hubrepro.io import save_array
        save_array(torch.ones(300, 400), {str(out)!r}, overwrite=True)
        """,
        stage,
        tmp_path,
    )
    if stage == "after":
        assert torch.equal(load_array(out), torch.ones(300, 400))
        assert temporaries(tmp_path) == []
        return
    assert out.read_bytes() == before and torch.equal(load_array(out), old)
    assert len(temporaries(tmp_path)) == 1  # the killed writer's, hidden
    # the next write of that file clears what the killed one left
    save_array(torch.full((2, 2), 7.0), out, overwrite=True)
    assert temporaries(tmp_path) == [] and load_array(out).sum() == 28


def test_kill_of_a_first_write_leaves_no_file(tmp_path):
    out = tmp_path / "new.npy"
    code = f"import numpy as np; from hubrepro.io import save_array; save_array(np.ones(9), {str(out)!r})"
    kill_during_write(code, "write", tmp_path)
    assert not out.exists()
    with pytest.raises(FileNotFoundError):
        load_array(out)


def test_kill_during_an_embedding_cache_write(tmp_path):
    entry = tmp_path / "ab" / "entry.npy"
    entry.parent.mkdir()
    np.save(entry, np.zeros(4, np.float32))
    kill_during_write(
        f"""
        import numpy as np
        from pathlib import Path
        from hubrepro.datasets.embed import _save_atomic
        _save_atomic(Path({str(entry)!r}), np.ones(384, np.float32))
        """,
        "write",
        tmp_path,
    )
    np.testing.assert_array_equal(np.load(entry), np.zeros(4, np.float32))


# every command that writes a file, killed half-way through its write
def _cli_inputs(d):
    rng = np.random.default_rng(0)
    np.save(d / "s.npy", rng.normal(size=(6, 6)).astype(np.float32))
    np.save(d / "p.npy", rng.normal(size=(10, 6)).astype(np.float32))
    sims = d / "simsdir"
    sims.mkdir()
    np.save(sims / "sims.npy", rng.normal(size=(6, 6)).astype(np.float32))
    np.save(sims / "bank_query_sims.npy", rng.normal(size=(10, 6)).astype(np.float32))
    return d


WRITERS = {
    "normalize --out": (
        "out.npy",
        ["normalize", "is", "--sims", "{d}/s.npy", "--query-bank-sims", "{d}/p.npy"],
        "--out",
    ),
    "normalize fit --save": (
        "stats.safetensors",
        ["normalize", "fit", "is", "--query-bank-sims", "{d}/p.npy"],
        "--save",
    ),
    "dbnorm --out": (
        "table.csv",
        ["dbnorm", "--data-dir", "{d}/simsdir", "--methods", "none", "is", "--beta-query", "5"],
        "--out",
    ),
}  # fmt: skip


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_kill_during_a_command_write_leaves_the_old_file(tmp_path, writer):
    from hubrepro.cli import main

    d = _cli_inputs(tmp_path)
    name, argv, flag = WRITERS[writer]
    argv = [a.format(d=d) for a in argv]
    out = d / name
    assert main([*argv, flag, str(out)]) == 0  # the old result, complete
    before = out.read_bytes()
    args = [*argv, flag, str(out), "--overwrite", "--beta-query", "7"]  # another result
    code = f"from hubrepro.cli import main; main({args!r})"
    kill_during_write(code, "write", d)
    assert out.read_bytes() == before
    assert main([*args]) == 0 and temporaries(d) == []  # the rerun clears the debris
    assert out.read_bytes() != before


def test_kill_during_index_search_out(tmp_path):
    pytest.importorskip("faiss")
    from hubrepro.cli import main

    rng = np.random.default_rng(0)
    np.save(tmp_path / "g.npy", rng.normal(size=(20, 8)).astype(np.float32))
    assert (
        main(
            [
                "index",
                "build",
                "--gallery",
                str(tmp_path / "g.npy"),
                "--out",
                str(tmp_path / "idx"),
            ]
        )
        == 0
    )
    argv = ["index", "search", str(tmp_path / "idx"), "--queries", str(tmp_path / "g.npy"),
            "-k", "3", "--out", str(tmp_path / "top.npz")]  # fmt: skip
    assert main(argv) == 0
    before = (tmp_path / "top.npz").read_bytes()
    kill_during_write(f"from hubrepro.cli import main; main({[*argv[:-4], '-k', '5', *argv[-2:], '--overwrite']!r})",
                      "write", tmp_path)  # fmt: skip
    assert (tmp_path / "top.npz").read_bytes() == before
    assert np.load(tmp_path / "top.npz")["ids"].shape == (20, 3)


def test_kill_during_data_build_keeps_the_pairs_and_their_sidecar(tmp_path):
    from hubrepro.datasets.manifest import build_stdlib_data

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "mod.py").write_text(
        'def f(x):\n    """Return the value it was given."""\n    return x\n'
    )
    out = tmp_path / "d" / "pairs.jsonl.gz"
    build_stdlib_data(stdlib_dir=lib, out=out, manifest=None)
    side = out.with_suffix("").with_suffix(".json")
    before = out.read_bytes(), side.read_bytes()
    (lib / "mod.py").write_text(
        (lib / "mod.py").read_text()
        + '\n\ndef g(y):\n    """Return the value plus one."""\n    return y + 1\n'
    )
    code = f"""
        from hubrepro.datasets.manifest import build_stdlib_data
        build_stdlib_data(stdlib_dir={str(lib)!r}, out={str(out)!r}, manifest=None, overwrite=True)
        """
    kill_during_write(code, "write", tmp_path)
    assert (out.read_bytes(), side.read_bytes()) == before
