"""Bank statistics across processes: 2 gloo processes on disjoint shards equal one.

Every method, fitted from embeddings (and, for the matrix path, DualDIS and
DBSN from bank similarity matrices), on an even split, an uneven split and a
split where one rank's shard is empty. Floating statistics agree with a
one-process fit to 1e-6 (float64 inputs; float32: 1e-6 of the largest value of
the statistic, the rounding of a different summation order), and
activation sets, top-k means and GC's sorted bank agree exactly. Also
``torchrun --nproc-per-node 2 -m hubrepro normalize fit`` against one process.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hubrepro.normalize import METHODS, make_normalizer
from hubrepro.normalize.distributed import (
    fit_distributed,
    fit_embeddings_distributed,
    shard_range,
)

WORLD = 2
HYPER = {
    "is": {"beta_query": 20.0},
    "dis": {"beta_query": 20.0, "k": 2},
    "csls": {"k": 3},
    "gc": {},
    "dualis": {"beta_query": 20.0, "beta_gallery": 10.0},
    "dualdis": {"beta_query": 20.0, "beta_gallery": 10.0, "k": 2},
    "sn": {"beta_query": 20.0, "n_iter": 4, "tol": 1e-12},
    "dbsn": {"beta_query": 20.0, "n_iter": 4, "tol": 1e-12},
    "nnn": {"alpha": 0.5, "k": 4},
    "none": {},
}
N_BQ, N_BG = 37, 11
# rows of the query bank and of the gallery bank held by rank 0 (rank 1: the rest)
SPLITS = {
    "even": (shard_range(N_BQ, 0, 2)[1], shard_range(N_BG, 0, 2)[1]),
    "uneven": (30, 2),
    "empty": (N_BQ, 0),  # rank 1: no query-bank row; rank 0: no gallery-bank row
    "empty-first": (0, N_BG),
}


def _data(dtype):
    g = torch.Generator().manual_seed(5)
    return {
        k: torch.randn(n, 6, generator=g, dtype=torch.float64).to(dtype)
        for k, n in {"g": 13, "bq": N_BQ, "bg": N_BG}.items()
    }


def _stats(est):
    return {
        k: v.clone()
        for k, v in vars(est).items()
        if k.endswith("_") and not k.startswith("_") and isinstance(v, torch.Tensor)
    }


def _worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        out = {}
        for dtype in (torch.float64, torch.float32):
            d = _data(dtype)
            for split, (cq, cg) in SPLITS.items():
                sq = slice(0, cq) if rank == 0 else slice(cq, N_BQ)
                sg = slice(0, cg) if rank == 0 else slice(cg, N_BG)
                for method in METHODS:
                    est = fit_embeddings_distributed(
                        make_normalizer(method, **HYPER[method]),
                        d["g"],
                        bank_query=d["bq"][sq],
                        bank_gallery=d["bg"][sg],
                        chunk_size=4,
                    )
                    out[(str(dtype), split, method, "emb")] = _stats(est)
                if dtype == torch.float64:
                    pq, pg = d["bq"] @ d["g"].T, d["bg"] @ d["g"].T
                    est = fit_distributed(
                        make_normalizer("dualdis", **HYPER["dualdis"]), pq[sq], pg[sg]
                    )
                    out[(str(dtype), split, "dualdis", "sims")] = _stats(est)
                    est = fit_distributed(
                        make_normalizer("dbsn", **HYPER["dbsn"]),
                        pq[sq],
                        bank_cross_sims=(d["bq"] @ d["bg"].T)[sq],
                    )
                    out[(str(dtype), split, "dbsn", "sims")] = _stats(est)
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_process(dtype, method, path):
    d = _data(dtype)
    if path == "emb":
        est = make_normalizer(method, **HYPER[method]).fit_embeddings(
            d["g"], bank_query=d["bq"], bank_gallery=d["bg"], chunk_size=4
        )
    elif method == "dualdis":
        est = make_normalizer(method, **HYPER[method]).fit(
            d["bq"] @ d["g"].T, d["bg"] @ d["g"].T
        )
    else:
        est = make_normalizer(method, **HYPER[method]).fit(
            d["bq"] @ d["g"].T, bank_cross_sims=d["bq"] @ d["bg"].T
        )
    return _stats(est)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    tmp = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(_free_port(), str(tmp)), nprocs=WORLD, join=True)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_every_method_and_split_equals_one_process(ranks):
    checked = 0
    for key, got in ranks[0].items():
        dtype, split, method, path = key
        ref = _one_process(getattr(torch, dtype.split(".")[1]), method, path)
        assert got.keys() == ref.keys(), key
        for name, v in ref.items():
            assert torch.equal(ranks[1][key][name], got[name]), (
                key,
                name,
            )  # ranks agree
            if not v.is_floating_point() or name in (
                "bank_mean_",
                "bias_",
                "sorted_bank_",
            ):
                assert torch.equal(got[name], v), (
                    key,
                    name,
                )  # sets, top-k, sorted bank
            elif dtype == "torch.float64":
                torch.testing.assert_close(
                    got[name], v, rtol=0, atol=1e-6, msg=str(key)
                )
            else:
                scale = float(v.abs().max())  # float32: 1e-6 of the statistic's scale
                torch.testing.assert_close(
                    got[name], v, rtol=0, atol=1e-6 * scale, msg=str(key)
                )
            checked += 1
    assert checked > 80


def test_dualdis_activation_sets_are_exact_on_every_split(ranks):
    for split in SPLITS:
        got = ranks[0][("torch.float64", split, "dualdis", "emb")]
        ref = _one_process(torch.float64, "dualdis", "emb")
        assert torch.equal(got["active_query_"], ref["active_query_"])
        assert torch.equal(got["active_gallery_"], ref["active_gallery_"])


def test_shard_range_covers_every_row_once():
    for n in (0, 1, 5, 37):
        for world in (1, 2, 3, 8):
            parts = [shard_range(n, r, world) for r in range(world)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
    with pytest.raises(ValueError, match="below world_size"):
        shard_range(5, 2, 2)


def test_fit_distributed_without_a_process_group_is_refused():
    d = _data(torch.float32)
    with pytest.raises(ValueError, match="process group"):
        fit_embeddings_distributed(make_normalizer("is"), d["g"], bank_query=d["bq"])


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "torchrun")), reason="no torchrun")  # fmt: skip
def test_torchrun_cli_fit_equals_one_process(tmp_path):
    d = _data(torch.float32)
    for k, v in d.items():
        np.save(tmp_path / f"{k}.npy", v.numpy())
    np.save(tmp_path / "bq16.npy", d["bq"].numpy().astype(np.float16))
    args = ["-m", "hubrepro", "normalize", "fit", "dualdis", "--gallery", "g.npy",
            "--query-bank", "bq16.npy", "--gallery-bank", "bg.npy", "--beta-query", "20",
            "--beta-gallery", "10", "--k", "2"]  # fmt: skip
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    multi = subprocess.run(
        [torchrun, "--nproc-per-node", "2", "--master-port", str(_free_port()),
         *args, "--save", "multi.safetensors"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env,
    )  # fmt: skip
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert "2 processes" in multi.stdout
    single = subprocess.run([sys.executable, *args, "--save", "one.safetensors"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)  # fmt: skip
    assert single.returncode == 0, single.stderr
    from safetensors.torch import load_file

    a, b = (
        load_file(tmp_path / "multi.safetensors"),
        load_file(tmp_path / "one.safetensors"),
    )
    assert a.keys() == b.keys()
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(
                a[k], b[k], rtol=0, atol=1e-6 * float(b[k].abs().max())
            )
        else:
            assert torch.equal(a[k], b[k])
