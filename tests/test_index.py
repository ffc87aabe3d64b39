"""hubrepro.index: the FAISS index returns the brute-force normalised top-k.

Tie rule: higher score first, ties to the lower gallery index (the order of a
stable descending sort of ``transform(S)``). The data lie on a dyadic grid so
that every dot product is exact in float32 in any summation order; the index's
scores then equal ``transform``'s bit for bit for every method whose output has
unit slope in S, and exact ties (duplicated gallery items) are real ties.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from hubrepro.normalize import GloballyCorrected, make_normalizer, normalize

faiss = pytest.importorskip("faiss")

from hubrepro.index import bias_table, build_index, load_index  # noqa: E402

D = 16


def _grid(n, gen):
    return torch.randint(-4, 5, (n, D), generator=gen).float() / 8


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    gal, bq, bg, q = (_grid(n, gen) for n in (300, 500, 120, 64))
    gal[7] = gal[3]  # an exact duplicate: identical bank columns, identical scores
    gal[11] = gal[3]
    q[0] = gal[3]  # a query whose best items are the duplicates
    return gal, bq, bg, q


BIAS_METHODS = [
    ("none-like nnn alpha 0", "nnn", {"alpha": 0.0, "k": 4}),
    ("is query bank", "is", {"beta_query": 5.0}),
    ("is gallery bank", "is", {"beta_gallery": 5.0, "bank": "gallery"}),
    ("is log scale", "is", {"beta_query": 5.0, "scale": "log"}),
    ("dualis product", "dualis", {"beta_query": 5.0, "beta_gallery": 3.0}),
    (
        "dualis sum, equal betas",
        "dualis",
        {"beta_query": 4.0, "beta_gallery": 4.0, "aggregation": "sum"},
    ),  # fmt: skip
    ("nnn", "nnn", {"alpha": 0.5, "k": 8}),
    ("csls", "csls", {"k": 8}),
    ("sn", "sn", {"beta_query": 5.0, "n_iter": 3}),
    ("dbsn", "dbsn", {"beta_query": 5.0, "n_iter": 3}),
    ("dis (gated)", "dis", {"beta_query": 5.0, "k": 1}),
    (
        "dualdis principled (gated)",
        "dualdis",
        {"beta_query": 5.0, "beta_gallery": 3.0, "k": 2},
    ),  # fmt: skip
    (
        "dualdis principled sum (gated)",
        "dualdis",
        {"beta_query": 4.0, "beta_gallery": 4.0, "aggregation": "sum"},
    ),  # fmt: skip
]


def _brute_topk(est, q, gal, k):
    full = est.transform(q @ gal.T)
    return torch.argsort(full, dim=1, descending=True, stable=True)[:, :k]


def _fit(method, hyper, data):
    gal, bq, bg, _ = data
    return make_normalizer(method, **hyper).fit_embeddings(
        gal, bank_query=bq, bank_gallery=bg, metric="dot"
    )


@pytest.mark.parametrize(
    ("label", "method", "hyper"), BIAS_METHODS, ids=[c[0] for c in BIAS_METHODS]
)
def test_flat_index_topk_equals_brute_force_normalised_topk(label, method, hyper, data):
    gal, _, _, q = data
    est = _fit(method, hyper, data)
    assert bias_table(est) is not None
    idx = build_index(gal, est, metric="dot")
    assert idx.est is est and idx.gating is not None
    for k in (1, 10, 25):
        _, ids = idx.search(q, k=k)
        assert torch.equal(ids, _brute_topk(est, q, gal, k)), (label, k)
    _, ids = idx.search(q[:1], k=gal.shape[0])  # the duplicates tie: lower index first
    pos = [ids[0].tolist().index(i) for i in (3, 7, 11)]
    assert pos == sorted(pos) and pos[2] - pos[0] == 2


def test_unit_slope_methods_return_transform_scores_bitwise(data):
    gal, _, _, q = data
    for method, hyper in (("dualis", {"beta_query": 5.0, "beta_gallery": 3.0}),
                          ("is", {"beta_query": 5.0}), ("nnn", {"alpha": 0.5, "k": 8})):  # fmt: skip
        est = _fit(method, hyper, data)
        scores, ids = build_index(gal, est, metric="dot").search(q, k=10)
        full = est.transform(q @ gal.T)
        assert torch.equal(scores, full.gather(1, ids))


def test_bias_is_the_per_gallery_term_of_each_method(data):
    est = _fit("dualis", {"beta_query": 5.0, "beta_gallery": 3.0}, data)
    table, gating = bias_table(est)
    assert gating == "none"
    assert torch.equal(table[:, 0], -((est.lse_query_ + est.lse_gallery_) / 8.0))
    csls = _fit("csls", {"k": 8}, data)
    assert torch.equal(bias_table(csls)[0][:, 0], -csls.bank_mean_ / 2)
    sn = _fit("sn", {"beta_query": 5.0, "n_iter": 3}, data)
    assert torch.equal(bias_table(sn)[0][:, 0], sn.log_v_ / 5.0)
    dd = _fit("dualdis", {"beta_query": 5.0, "beta_gallery": 3.0}, data)
    t, gating = bias_table(dd)
    assert gating == "dualdis" and t.shape == (300, 3)
    assert torch.equal(t[:, 1], -(dd.lse_query_ / 8.0))


NOT_BIAS = [
    ("gc", {}),
    ("dualdis", {"beta_query": 5.0, "beta_gallery": 3.0, "mode": "faithful"}),
    ("dualis", {"beta_query": 1.0, "beta_gallery": 4.0, "aggregation": "sum"}),
]


@pytest.mark.parametrize(("method", "hyper"), NOT_BIAS, ids=[m for m, _ in NOT_BIAS])
def test_two_stage_path_is_exact_with_a_full_shortlist_and_reports_recall(
    method, hyper, data
):
    gal, _, _, q = data
    est = _fit(method, hyper, data)
    assert bias_table(est) is None
    idx = build_index(gal, est, metric="dot")
    assert idx.gating is None
    ref = _brute_topk(est, q, gal, 10)
    _, ids = idx.search(q, k=10, shortlist=gal.shape[0], batch_size=16)
    assert torch.equal(ids, ref)
    _, short = idx.search(q, k=10, shortlist=40)
    recall = np.mean(
        [
            len(set(a.tolist()) & set(b.tolist())) / 10
            for a, b in zip(short, ref, strict=True)
        ]
    )
    assert 0.5 <= recall <= 1.0


def _orders(scores):
    return scores[:, 0] > scores[:, 1]


def test_gc_is_not_a_per_gallery_bias():
    # item 0's bank column {0.5, 0.0}, item 1's {0.1, 0.9}
    bank = torch.tensor([[0.5, 0.1], [0.0, 0.9]])
    s = torch.tensor([[0.55, 0.85], [0.40, 0.50]])
    first = _orders(GloballyCorrected().fit(bank).transform(s))
    # with S + b, item 0 wins iff S0 - S1 > b1 - b0: a threshold on S0 - S1.
    # Row 0 (S0 - S1 = -0.3) puts item 0 first, row 1 (S0 - S1 = -0.1 > -0.3) item 1:
    assert first.tolist() == [True, False]


def test_sum_aggregation_with_unequal_betas_is_not_a_per_gallery_bias():
    pq = torch.tensor([[3.0, 0.0]])  # c^q = (3, 0) with beta_q = 1
    pg = torch.tensor([[0.0, 0.75]])  # c^g = (0, 3) with beta_g = 4
    hyper = {"beta_query": 1.0, "beta_gallery": 4.0, "aggregation": "sum"}
    s = torch.tensor([[-1.0, -1.05], [2.0, 1.95]])  # the same S0 - S1 = 0.05
    out = normalize("dualis", s, bank_query_sims=pq, bank_gallery_sims=pg, **hyper)
    assert _orders(out).tolist() == [False, True]


def test_approximate_indexes_report_recall(data):
    gal, _, _, q = data
    est = _fit("dualis", {"beta_query": 5.0, "beta_gallery": 3.0}, data)
    ref = _brute_topk(est, q, gal, 10)
    for kind, kw in (("ivf", {"nlist": 8}), ("hnsw", {})):
        idx = build_index(gal, est, metric="dot", kind=kind, **kw)
        _, ids = idx.search(
            q, k=10, **({"nprobe": 8} if kind == "ivf" else {"ef_search": 300})
        )
        recall = np.mean(
            [
                len(set(a.tolist()) & set(b.tolist())) / 10
                for a, b in zip(ids, ref, strict=True)
            ]
        )
        assert recall == 1.0, kind  # all lists / a wide search: everything is found


def test_build_refuses_another_gallery_and_unfitted(data):
    gal, _, _, _ = data
    est = _fit("is", {"beta_query": 5.0}, data)
    other = gal.clone()
    other[0, 0] = 1.0
    with pytest.raises(ValueError, match="fitted on"):
        build_index(other, est, metric="dot")
    with pytest.raises(ValueError, match="300 items"):
        build_index(gal[:10], est)
    with pytest.raises(ValueError, match="metric"):
        build_index(gal, est, metric="cosine")
    with pytest.raises(ValueError, match="fitted"):
        build_index(gal, make_normalizer("is"))


def test_save_load_and_cli_round_trip(data, tmp_path):
    gal, bq, bg, q = data
    est = _fit("dualdis", {"beta_query": 5.0, "beta_gallery": 3.0}, data)
    ref = _brute_topk(est, q, gal, 5)
    path = build_index(gal, est, metric="dot").save(tmp_path / "idx")
    again = load_index(path)
    assert torch.equal(again.search(q, k=5)[1], ref)
    for name, x in (("g", gal), ("q", q)):
        np.save(tmp_path / f"{name}.npy", x.numpy())
    est.save(tmp_path / "st.safetensors")
    run = lambda *a: subprocess.run([sys.executable, "-m", "hubrepro", "index", *map(str, a)],  # noqa: E731
                                    capture_output=True, text=True, cwd=tmp_path, timeout=180)  # fmt: skip
    b = run("build", "--stats", "st.safetensors", "--gallery", "g.npy", "--out", "IDX")
    assert b.returncode == 0, b.stderr
    s = run("search", "IDX", "--queries", "q.npy", "-k", "5", "--out", "r.npz")
    assert s.returncode == 0, s.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "r.npz")["ids"], ref.numpy())
    again = run(
        "build", "--stats", "st.safetensors", "--gallery", "q.npy", "--out", "I2"
    )
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert not (tmp_path / "I2").exists()


def test_build_refuses_non_finite_and_zero_rows_naming_the_row(tmp_path):
    gen = torch.Generator().manual_seed(1)
    gal = _grid(40, gen)
    gal[gal.abs().sum(dim=1) == 0] = 0.125  # no accidental zero rows
    bad = gal.clone()
    bad[17, 3] = float("nan")
    with pytest.raises(ValueError, match=r"index \(?17"):
        build_index(bad, metric="dot")
    zero = gal.clone()
    zero[5] = 0
    with pytest.raises(ValueError, match="index 5"):
        build_index(zero, metric="cosine")
    build_index(zero, metric="dot")  # a zero row is a valid dot-product item
    np.save(tmp_path / "g.npy", bad.numpy())  # the CLI memory-maps .npy galleries
    proc = subprocess.run(
        [sys.executable, "-m", "hubrepro", "index", "build", "--gallery", "g.npy",
         "--metric", "dot", "--out", "IDX"],
        capture_output=True, text=True, cwd=tmp_path, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 2 and "index 17" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "IDX").exists()


@pytest.mark.parametrize("exchange", [True, False])
def test_overwriting_an_index_replaces_it_whole(data, tmp_path, monkeypatch, exchange):
    import hubrepro.index as hindex

    if not exchange:  # a system without renameat2: the two-rename fallback
        monkeypatch.setattr(hindex, "_exchange", lambda a, b: False)
    gal, _, _, q = data
    first = build_index(gal, metric="dot").save(tmp_path / "idx")
    est = _fit("is", {"beta_query": 5.0}, data)
    build_index(gal, est, metric="dot").save(first, overwrite=True)
    again = load_index(first)
    assert torch.equal(again.search(q, k=5)[1], _brute_topk(est, q, gal, 5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # nothing left over


def test_load_names_a_damaged_index_and_an_interrupted_save(data, tmp_path):
    gal = data[0]
    path = build_index(gal, metric="dot").save(tmp_path / "idx")
    (path / "index.faiss").write_bytes(b"not a faiss index")
    with pytest.raises(ValueError, match=r"index\.faiss.*not a readable FAISS index"):
        load_index(path)
    # a save killed between its two renames (no atomic exchange) leaves the old index
    # aside; loading says where it is
    aside = tmp_path / ".idx.old.abc123"
    aside.mkdir()
    path.rename(aside / "idx")
    with pytest.raises(FileNotFoundError, match=r"previous index is at .*\.idx\.old"):
        load_index(path)


@pytest.mark.gpu
def test_gpu_faiss_search_equals_cpu(data):
    if not torch.cuda.is_available() or faiss.get_num_gpus() == 0:
        pytest.skip("needs a CUDA device and a FAISS GPU build")
    gal, _, _, q = data
    est = _fit("dualis", {"beta_query": 5.0, "beta_gallery": 3.0}, data)
    idx = build_index(gal, est, metric="dot")
    assert idx._searcher() is not idx.index  # searched on the GPU
    assert torch.equal(idx.search(q, k=10)[1], _brute_topk(est, q, gal, 10))
