"""API conformance of every estimator, streaming vs full matrices, dispatchers, bad inputs."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

from hubrepro.normalize import (
    DBSN,
    METHODS,
    NNN,
    BaseNormalizer,
    DualDIS,
    NotFittedError,
    SinkhornNorm,
    make_normalizer,
    normalize,
    normalize_embeddings,
)

NAMES = sorted(METHODS)
# hyperparameters that keep the small test banks valid
SMALL = {"csls": {"k": 3}, "nnn": {"k": 3}}


def _banks(gen, dtype=torch.float64, n_gallery=7):
    S = torch.randn(5, n_gallery, generator=gen, dtype=dtype)
    Pq = torch.randn(20, n_gallery, generator=gen, dtype=dtype)
    Pg = torch.randn(11, n_gallery, generator=gen, dtype=dtype)
    cross = torch.randn(20, 4, generator=gen, dtype=dtype)
    return S, Pq, Pg, cross


def _fit(est, Pq, Pg, cross):
    if isinstance(est, DBSN):
        return est.fit(Pq, Pg, bank_cross_sims=cross)
    return est.fit(Pq, Pg)


def test_contract_names():
    assert NAMES == sorted(
        ["none", "is", "dis", "csls", "gc", "dualis", "dualdis", "sn", "dbsn", "nnn"]
    )
    for cls in METHODS.values():
        assert issubclass(cls, BaseNormalizer)
        assert cls.__doc__ and "Book" in cls.__doc__


@pytest.mark.parametrize("name", NAMES)
def test_init_stores_only_and_fit_returns_self(name, generator):
    cls = METHODS[name]
    defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
    est = cls(**SMALL.get(name, {}))
    assert est.get_params() == {**defaults, **SMALL.get(name, {})}
    assert not [a for a in vars(est) if a.endswith("_") and not a.startswith("_")]
    S, Pq, Pg, cross = _banks(generator)
    assert _fit(est, Pq, Pg, cross) is est
    assert est.fitted_
    assert repr(est).startswith(cls.__name__ + "(")


@pytest.mark.parametrize("name", [n for n in NAMES if n != "none"])
def test_unfitted_transform_raises_a_clear_error(name):
    est = METHODS[name](**SMALL.get(name, {}))
    with pytest.raises(
        NotFittedError,
        match=rf"{METHODS[name].__name__}\.transform: .*not fitted.*fit\(",
    ):
        est.transform(torch.zeros(2, 3))


@pytest.mark.parametrize("name", NAMES)
def test_repeated_fits_are_identical_and_keep_dtype(name, generator, dtype, device):
    S, Pq, Pg, cross = (x.to(device) for x in _banks(generator, dtype))
    est = METHODS[name](**SMALL.get(name, {}))
    a = _fit(est, Pq, Pg, cross).transform(S)
    b = _fit(est, Pq, Pg, cross).transform(S)
    assert torch.equal(a, b)
    assert a.dtype == dtype and a.device == S.device and a.shape == S.shape


@pytest.mark.parametrize("name", [n for n in NAMES if n != "none"])
def test_wrong_widths_raise_the_template_error(name, generator):
    S, Pq, Pg, cross = _banks(generator)
    est = _fit(METHODS[name](**SMALL.get(name, {})), Pq, Pg, cross)
    with pytest.raises(
        ValueError, match=r"transform: `sims` must be of width 7 .*; got shape \(5, 6\)"
    ):
        est.transform(S[:, :6])
    with pytest.raises(ValueError, match=r"must be a 2-D matrix"):
        est.transform(S[0])


@pytest.mark.parametrize("name", ["dualis", "dualdis"])
def test_banks_of_different_widths_are_refused(name, generator):
    _, Pq, Pg, _ = _banks(generator)
    with pytest.raises(ValueError, match=r"`bank_gallery_sims` must be of width 7"):
        METHODS[name]().fit(Pq, Pg[:, :5])


@pytest.mark.parametrize(
    "name", ["is", "dis", "csls", "gc", "dualis", "dualdis", "sn", "dbsn", "nnn"]
)
def test_missing_bank_is_refused(name, generator):
    S, Pq, _, _ = _banks(generator)
    with pytest.raises(ValueError, match=r"`bank_(query|gallery)_sims` must be given"):
        normalize(
            name, S, bank_query_sims=None if name not in ("dualis", "dualdis") else Pq
        )


def test_dbsn_needs_the_cross_matrix(generator):
    S, Pq, _, cross = _banks(generator)
    with pytest.raises(ValueError, match=r"`bank_cross_sims` must be given"):
        normalize("dbsn", S, bank_query_sims=Pq)
    with pytest.raises(ValueError, match=r"`bank_cross_sims` must be of height 20"):
        normalize("dbsn", S, bank_query_sims=Pq, bank_cross_sims=cross[:3])


@pytest.mark.parametrize(
    ("name", "hyper", "pattern"),
    [
        ("is", {"beta_query": 0.0}, "`beta_query` must be positive"),
        ("dualis", {"beta_gallery": -2.0}, "`beta_gallery` must be positive"),
        ("dis", {"k": 0}, r"`k` must be an integer in \[1, inf\]"),
        ("dis", {"k": 8}, "`k` must be at most n_gallery = 7"),
        ("dualdis", {"k": 99}, "`k` must be at most n_gallery = 7"),
        ("nnn", {"k": 21}, "`k` must be at most the bank size n_bank_query = 20"),
        ("csls", {"k": 8}, "`k` must be at most n_gallery = 7"),
        (
            "dualdis",
            {"mode": "exact"},
            "`mode` must be one of 'principled', 'faithful'",
        ),
        (
            "dualdis",
            {"mode": "faithful", "aggregation": "sum"},
            "`aggregation` must be 'product' when mode='faithful'",
        ),
        ("dualis", {"aggregation": "mean"}, "`aggregation` must be one of"),
        ("is", {"scale": "prob"}, "`scale` must be one of"),
        ("sn", {"n_iter": 0}, "`n_iter` must be an integer"),
        ("is", {"bank": "both"}, "`bank` must be one of 'query', 'gallery'"),
    ],
)
def test_bad_hyperparameters(name, hyper, pattern, generator):
    S, Pq, Pg, cross = _banks(generator)
    with pytest.raises(ValueError, match=pattern):
        normalize(
            name,
            S,
            bank_query_sims=Pq,
            bank_gallery_sims=Pg,
            bank_cross_sims=cross if name == "dbsn" else None,
            **hyper,
        )


def test_bad_types_and_values(generator):
    S, Pq, Pg, _ = _banks(generator)
    with pytest.raises(TypeError, match="`beta_query` must be a real number"):
        normalize("is", S, bank_query_sims=Pq, beta_query="20")
    with pytest.raises(TypeError, match="floating-point"):
        normalize("is", S, bank_query_sims=Pq.long())
    bad = Pq.clone()
    bad[3, 2] = float("nan")
    with pytest.raises(
        ValueError, match=r"`bank_query_sims` must be finite .*index \(3, 2\)"
    ):
        normalize("is", S, bank_query_sims=bad)
    with pytest.raises(ValueError, match="`method` must be one of"):
        normalize("qbnorm", S, bank_query_sims=Pq)
    with pytest.raises(TypeError, match="hyperparameters"):
        normalize("is", S, bank_query_sims=Pq, k=3)
    with pytest.raises(TypeError, match="keyword arguments"):
        METHODS["is"]().fit(Pq, banks=Pg)
    with pytest.raises(TypeError, match="torch.Tensor or numpy.ndarray"):
        normalize("is", S.tolist(), bank_query_sims=Pq)


def test_numpy_inputs_give_tensors(generator):
    S, Pq, Pg, _ = _banks(generator)
    out = normalize(
        "dualdis", S.numpy(), bank_query_sims=Pq.numpy(), bank_gallery_sims=Pg.numpy()
    )
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    torch.testing.assert_close(
        out, normalize("dualdis", S, bank_query_sims=Pq, bank_gallery_sims=Pg)
    )


def test_bfloat16_sims_are_accepted(generator):
    S, Pq, Pg, _ = _banks(generator, torch.float32)
    out = normalize(
        "dualis",
        S.bfloat16(),
        bank_query_sims=Pq.bfloat16(),
        bank_gallery_sims=Pg.bfloat16(),
    )
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


# ---------------------------------------------------------------- streaming == full matrices
def _emb(gen, n, d=16, dtype=torch.float64):
    return torch.randn(n, d, generator=gen, dtype=dtype)


def _l2(x):
    return x / x.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_streamed_embeddings_equal_full_matrices(name, metric, generator, dtype):
    q, g, bq, bg = (_emb(generator, n, dtype=dtype) for n in (6, 9, 37, 23))
    f = _l2 if metric == "cosine" else (lambda x: x)
    S, Pq, Pg, cross = f(q) @ f(g).T, f(bq) @ f(g).T, f(bg) @ f(g).T, f(bq) @ f(bg).T
    hyper = {
        **SMALL.get(name, {}),
        **(
            {"beta_query": 5.0, "beta_gallery": 4.0}
            if name not in ("none", "csls", "gc", "nnn")
            else {}
        ),
    }
    if name == "dbsn":
        hyper.pop("beta_gallery")
    full = normalize(
        name,
        S,
        bank_query_sims=Pq,
        bank_gallery_sims=Pg,
        bank_cross_sims=cross if name == "dbsn" else None,
        **hyper,
    )
    streamed = normalize_embeddings(
        name, q, g, bank_query=bq, bank_gallery=bg, metric=metric, chunk_size=5, **hyper
    )
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(streamed, full, rtol=tol, atol=tol)


def test_chunk_size_does_not_change_the_statistics(generator):
    q, g, bq, bg = (_emb(generator, n) for n in (6, 9, 50, 30))
    outs = [
        normalize_embeddings(
            "dualdis",
            q,
            g,
            bank_query=bq,
            bank_gallery=bg,
            chunk_size=c,
            beta_query=20.0,
            beta_gallery=20.0,
        )
        for c in (1, 7, 4096)
    ]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], rtol=1e-12, atol=1e-12)


def test_bfloat16_bank_products_stay_close(generator):
    q, g, bq, bg = (
        _emb(generator, n, d=64, dtype=torch.float32) for n in (6, 9, 200, 100)
    )
    kw = {
        "bank_query": bq,
        "bank_gallery": bg,
        "beta_query": 20.0,
        "beta_gallery": 20.0,
    }
    a = normalize_embeddings("dualis", q, g, **kw)
    b = normalize_embeddings("dualis", q, g, bank_dtype=torch.bfloat16, **kw)
    assert b.dtype == torch.float32
    # bfloat16 keeps 8 bits of mantissa: the per-gallery penalty moves by ~1e-2 at most
    assert (a - b).abs().max() < 0.05
    assert not torch.equal(a, b)


def test_embedding_errors(generator):
    q, g, bq = (_emb(generator, n) for n in (3, 4, 10))
    with pytest.raises(ValueError, match="`bank_query` must be of dimension 16"):
        normalize_embeddings("is", q, g, bank_query=bq[:, :5])
    with pytest.raises(ValueError, match="`query` must be of dimension 16"):
        normalize_embeddings("is", q[:, :5], g, bank_query=bq)
    with pytest.raises(ValueError, match="`bank_query` must be given"):
        normalize_embeddings("is", q, g)
    with pytest.raises(ValueError, match="`metric` must be one of"):
        normalize_embeddings("is", q, g, bank_query=bq, metric="l2")
    with pytest.raises(ValueError, match="`bank_gallery` must be given"):
        normalize_embeddings("dbsn", q, g, bank_query=bq)


def test_fitted_statistics_serve_new_queries(generator):
    q, g, bq, bg = (_emb(generator, n) for n in (8, 9, 40, 30))
    est = make_normalizer("dualdis", beta_query=10.0, beta_gallery=10.0).fit_embeddings(
        g, bank_query=bq, bank_gallery=bg
    )
    S = _l2(q) @ _l2(g).T
    whole = est.transform(S)
    parts = torch.cat([est.transform(S[:3]), est.transform(S[3:])])
    # row by row: equal up to the last bit of a vectorised vs scalar exp/log tail
    torch.testing.assert_close(whole, parts, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- direction
@pytest.mark.parametrize("name", ["is", "dis", "dualdis", "nnn"])
def test_gallery_to_query_equals_transposed_problem(name, generator):
    S, Pq, Pg, _ = _banks(generator)
    # for gallery->query the banks' columns index the test queries (5 of them)
    Bq, Bg = Pq[:, :5], Pg[:, :5]
    out = normalize(
        name,
        S,
        bank_query_sims=Bq,
        bank_gallery_sims=Bg,
        direction="gallery_to_query",
        **SMALL.get(name, {}),
    )
    ref = normalize(
        name, S.T, bank_query_sims=Bq, bank_gallery_sims=Bg, **SMALL.get(name, {})
    ).T
    assert out.shape == S.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_gallery_to_query_from_embeddings_swaps_the_banks(generator):
    q, g, bq, bg = (_emb(generator, n) for n in (6, 9, 40, 30))
    out = normalize_embeddings(
        "dualis",
        q,
        g,
        bank_query=bq,
        bank_gallery=bg,
        direction="gallery_to_query",
        beta_query=5.0,
        beta_gallery=3.0,
    )
    Sg = _l2(g) @ _l2(q).T
    # gallery items query: the cross-modal bank is the query-modality bank seen from... the gallery side
    # i.e. bank of the gallery modality against test queries, and the intra-modal bank is the query-modality bank
    ref = normalize(
        "dualis",
        Sg,
        bank_query_sims=_l2(bg) @ _l2(q).T,
        bank_gallery_sims=_l2(bq) @ _l2(q).T,
        beta_query=5.0,
        beta_gallery=3.0,
    ).T
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_bad_direction(generator):
    S, Pq, _, _ = _banks(generator)
    with pytest.raises(ValueError, match="`direction` must be one of"):
        normalize("is", S, bank_query_sims=Pq, direction="both")


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name):
    g = torch.Generator().manual_seed(0)
    S, Pq, Pg, cross = _banks(g, torch.float32)
    cpu = normalize(
        name,
        S,
        bank_query_sims=Pq,
        bank_gallery_sims=Pg,
        bank_cross_sims=cross if name == "dbsn" else None,
        **SMALL.get(name, {}),
    )
    dev = [x.cuda() for x in (S, Pq, Pg, cross)]
    gpu = normalize(
        name,
        dev[0],
        bank_query_sims=dev[1],
        bank_gallery_sims=dev[2],
        bank_cross_sims=dev[3] if name == "dbsn" else None,
        **SMALL.get(name, {}),
    )
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)


def test_numpy_readonly_input_is_left_alone(generator):
    S, Pq, _, _ = _banks(generator)
    s = S.numpy().copy()
    s.setflags(write=False)
    out = normalize("is", s, bank_query_sims=Pq.numpy())
    assert out.shape == s.shape and not np.shares_memory(out.numpy(), s)


@pytest.mark.parametrize("name", ["is", "dualdis", "csls", "gc", "sn", "nnn"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_banks_are_refused_with_their_position(name, value, generator):
    S, Pq, Pg, _ = _banks(generator)
    bad = Pq.clone()
    bad[4, 1] = value
    with pytest.raises(
        ValueError, match=r"`bank_query_sims` must be finite .*index \(4, 1\)"
    ):
        normalize(
            name, S, bank_query_sims=bad, bank_gallery_sims=Pg, **SMALL.get(name, {})
        )
    q, g, bq = (_emb(generator, n) for n in (3, 7, 12))
    bq[5, 0] = value
    with pytest.raises(
        ValueError, match=r"`bank_query` must be finite .*index \(5, 0\)"
    ):
        normalize_embeddings(
            name,
            q,
            g,
            bank_query=bq,
            bank_gallery=bq.abs().nan_to_num(1.0, 1.0),
            **SMALL.get(name, {}),
        )


# ---------------------------------------------------------------- documented defaults


def test_nnn_defaults_are_the_released_ones():
    # multimodal-interpretability/nnn (commit cea80de), nnn/nnn_ranker.py: NNNRanker
    # defaults alternate_weight=0.5, alternate_ks=256
    assert NNN().get_params() == {"alpha": 0.5, "k": 256, "bank": "query"}
    assert "alpha : float, default 0.5" in NNN.__doc__
    assert "k : int, default 256" in NNN.__doc__


def test_documented_provenance_and_claims():
    from hubrepro.normalize import sinkhorn

    # SN and DBSN were checked against the released DBSN code: no longer "reconstructed"
    for doc in (sinkhorn.__doc__, SinkhornNorm.__doc__, DBSN.__doc__):
        assert "ppanzx/DBSN" in doc and "reconstruct" not in doc.lower()
    # one Sinkhorn iteration is IS only for a row-balanced bank (test_normalize_reference)
    assert "ranks exactly like" not in SinkhornNorm.__doc__
    # faithful DualDIS is the release with both D1 and D3 fixed
    assert "D1 and D3" in DualDIS.__doc__


# ---------------------------------------------------------------- numbers that do not fit
# every method but `none`, with its big-beta / log-scale options where it has them
POSTHOC = ["is", "dis", "csls", "gc", "dualis", "dualdis", "sn", "dbsn", "nnn"]


def _hyper(name, beta, scale):
    takes = inspect.signature(METHODS[name]).parameters
    hyper = dict(SMALL.get(name, {}))
    hyper.update({b: beta for b in ("beta_query", "beta_gallery") if b in takes})
    if "scale" in takes:
        hyper["scale"] = scale
    return hyper


def _run(name, S, Pq, Pg, cross, **hyper):
    return normalize(
        name,
        S,
        bank_query_sims=Pq,
        bank_gallery_sims=Pg,
        bank_cross_sims=cross if name == "dbsn" else None,
        **hyper,
    )


@pytest.mark.parametrize("name", POSTHOC)
@pytest.mark.parametrize("beta", [1e-3, 1.0, 20.0, 1e5])
@pytest.mark.parametrize("scale", ["similarity", "log"])
def test_float16_inputs_give_the_float32_scores_or_a_refusal(
    name, beta, scale, generator
):
    # the scores are computed in float32 and returned in float16: exactly the float32
    # result rounded, or a one-line refusal when it does not fit -- never +-inf
    half = [x.half() for x in _banks(generator, torch.float32)]
    hyper = _hyper(name, beta, scale)
    ref = _run(name, *(x.float() for x in half), **hyper)
    if ref.abs().max() > torch.finfo(torch.float16).max:
        with pytest.raises(ValueError, match=r"`scores` must be finite in float16"):
            _run(name, *half, **hyper)
        return
    out = _run(name, *half, **hyper)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert torch.equal(out, ref.half())


@pytest.mark.parametrize("name", ["is", "dis", "dualis", "dualdis", "sn", "dbsn"])
def test_float16_log_scale_with_a_large_beta_is_refused(name, generator):
    # beta S ~ 1e5 exceeds float16's 65504: it used to come back as +-inf, silently
    half = [x.half() for x in _banks(generator, torch.float32)]
    with pytest.raises(ValueError, match=r"float32 or float64.*scale='similarity'"):
        _run(name, *half, **_hyper(name, 1e5, "log"))


@pytest.mark.parametrize("name", POSTHOC)
@pytest.mark.parametrize("scale", ["similarity", "log"])
def test_float16_embeddings_give_the_float32_scores_or_a_refusal(
    name, scale, generator
):
    emb = [_emb(generator, n, dtype=torch.float16) for n in (3, 7, 20, 11)]
    hyper = _hyper(name, 1e5, scale)

    def run(q, g, bq, bg):
        return normalize_embeddings(name, q, g, bank_query=bq, bank_gallery=bg, **hyper)

    ref = run(*(x.float() for x in emb))
    if ref.abs().max() > torch.finfo(torch.float16).max:
        with pytest.raises(ValueError, match=r"`scores` must be finite in float16"):
            run(*emb)
        return
    out = run(*emb)
    assert out.dtype == torch.float16 and torch.equal(out, ref.half())


def test_gc_with_a_large_float16_bank_is_refused_not_minus_inf(generator):
    # GC scores -rho C + S with rho up to the bank size: 40000 bank items overflow float16
    S = torch.rand(3, 4, generator=generator).half()
    P = torch.rand(40_000, 4, generator=generator).half() + 1  # every bank item beats S
    assert _run("gc", S.float(), P.float(), None, None).min() < -65504
    with pytest.raises(ValueError, match=r"`scores` must be finite in float16"):
        normalize("gc", S, bank_query_sims=P)


@pytest.mark.parametrize(
    ("name", "bank"),
    [(n, "query") for n in POSTHOC] + [("dualis", "gallery"), ("dualdis", "gallery")],
)
def test_minus_inf_in_a_bank_is_refused_by_every_method(name, bank, generator):
    # -inf does not mean "masked out": it is refused like NaN and +inf, by every method
    S, Pq, Pg, cross = _banks(generator)
    bad = (Pq if bank == "query" else Pg).clone()
    bad[4, 1] = -math.inf
    banks = (bad, Pg) if bank == "query" else (Pq, bad)
    with pytest.raises(
        ValueError,
        match=rf"`bank_{bank}_sims` must be finite .*index \(4, 1\) \(-inf\)",
    ):
        _run(name, S, *banks, cross, **SMALL.get(name, {}))


def test_minus_inf_in_dbsn_cross_matrix_and_in_embeddings(generator):
    S, Pq, Pg, cross = _banks(generator)
    cross[2, 3] = -math.inf
    with pytest.raises(
        ValueError, match=r"`bank_cross_sims` must be finite .*\(2, 3\)"
    ):
        _run("dbsn", S, Pq, Pg, cross)
    q, g, bq = (_emb(generator, n) for n in (3, 7, 12))
    bq[5, 0] = -math.inf
    for name in POSTHOC:
        with pytest.raises(ValueError, match=r"`bank_query` must be finite .*\(5, 0\)"):
            normalize_embeddings(
                name, q, g, bank_query=bq, bank_gallery=g, metric="dot",
                **SMALL.get(name, {}),
            )  # fmt: skip


@pytest.mark.parametrize("name", POSTHOC)
def test_zero_embedding_rows_are_refused_under_cosine(name, generator):
    q, g, bq, bg = (_emb(generator, n) for n in (4, 7, 20, 11))
    kw = {"bank_query": bq, "bank_gallery": bg, **SMALL.get(name, {})}
    for what, x, row in (("query", q, 2), ("gallery", g, 5), ("bank_query", bq, 13)):
        x = x.clone()
        x[row] = 0
        args = {
            "query": x if what == "query" else q,
            "gallery": x if what == "gallery" else g,
        }
        kwargs = {**kw, "bank_query": x} if what == "bank_query" else kw
        with pytest.raises(
            ValueError, match=rf"`{what}` must be free of all-zero rows.*row {row}"
        ):
            normalize_embeddings(name, args["query"], args["gallery"], **kwargs)
        # a zero vector is a valid input to the dot product
        out = normalize_embeddings(
            name, args["query"], args["gallery"], metric="dot", **kwargs
        )
        assert torch.isfinite(out).all()


def test_zero_rows_of_a_memory_mapped_bank_are_refused(generator, tmp_path):
    from hubrepro.io import open_rows

    q, g, bq = (_emb(generator, n, dtype=torch.float32) for n in (4, 7, 50))
    bq[37] = 0
    np.save(tmp_path / "bq.npy", bq.numpy())
    with pytest.raises(
        ValueError, match=r"`bank_query` must be free of all-zero rows.*row 37"
    ):
        normalize_embeddings(
            "is", q, g, bank_query=open_rows(tmp_path / "bq.npy"), chunk_size=8
        )


def test_dot_products_that_would_overflow_the_bank_dtype_are_refused():
    # float16 products: 300 * 300 * 8 = 720000 > 65504. One bank row overflows to -inf
    # while the other stays finite, which the statistics alone would not notice.
    g = torch.full((2, 8), 300.0)
    bank = torch.stack([torch.full((8,), -300.0), torch.full((8,), 0.1)])
    with pytest.raises(ValueError, match=r"`bank_query` must be small enough.*float16"):
        normalize_embeddings(
            "is", g, g, bank_query=bank, metric="dot", bank_dtype=torch.float16
        )


@pytest.mark.parametrize("direction", ["query_to_gallery", "gallery_to_query"])
def test_a_bank_of_the_wrong_width_is_blamed_not_sims(direction, generator):
    S, Pq, Pg, _ = _banks(generator)  # S is 5 x 7
    width = 7 if direction == "query_to_gallery" else 5
    with pytest.raises(
        ValueError, match=rf"`bank_query_sims` must be of width {width}"
    ):
        normalize("is", S, bank_query_sims=Pq[:, :6], direction=direction)
    with pytest.raises(
        ValueError, match=rf"`bank_gallery_sims` must be of width {width}"
    ):
        normalize("dualis", S, bank_query_sims=Pq[:, :width], bank_gallery_sims=Pg[:, :3],
                  direction=direction)  # fmt: skip
