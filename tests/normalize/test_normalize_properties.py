"""Property tests (hypothesis) and numerical robustness of the normalisers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hubrepro.normalize import (
    METHODS,
    DualDIS,
    DualIS,
    InvertedSoftmax,
    QBNorm,
    normalize,
)

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def problems(draw, min_gallery=2):
    """Random S, P^q, P^g, cross (float64) with a shared gallery width."""
    seed = draw(st.integers(0, 2**31 - 1))
    n_q = draw(st.integers(1, 6))
    n_g = draw(st.integers(min_gallery, 8))
    m_q = draw(st.integers(1, 12))
    m_g = draw(st.integers(1, 12))
    scale = draw(st.floats(0.05, 3.0))
    g = torch.Generator().manual_seed(seed)
    mk = lambda *shape: scale * torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    return mk(n_q, n_g), mk(m_q, n_g), mk(m_g, n_g), mk(m_q, 3)


def _all(method, S, Pq, Pg, cross, **kw):
    extra = {"bank_cross_sims": cross} if method == "dbsn" else {}
    if method in ("csls", "nnn"):
        kw.setdefault("k", 1)
    return normalize(method, S, bank_query_sims=Pq, bank_gallery_sims=Pg, **extra, **kw)


@SETTINGS
@given(problems(), st.floats(-50, 50), st.floats(0.1, 20))
def test_shifting_s_and_bank_together_leaves_is_unchanged(p, c, beta):
    S, Pq, _, _ = p
    a = InvertedSoftmax(beta_query=beta).fit(Pq).transform(S)
    b = InvertedSoftmax(beta_query=beta).fit(Pq + c).transform(S + c)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * (1 + abs(c)))


@SETTINGS
@given(problems(min_gallery=3), st.floats(0.1, 20))
def test_dis_with_no_gated_row_is_the_raw_matrix(p, beta):
    S, Pq, _, _ = p
    # every bank item's top-1 is gallery 0; no query has its top-1 there
    Pq = Pq.clone()
    Pq[:, 0] = Pq.max() + 1
    S = S.clone()
    S[:, 0] = S.min() - 1
    m = QBNorm(beta_query=beta).fit(Pq)
    assert m.active_.tolist() == [True] + [False] * (S.shape[1] - 1)
    assert torch.equal(m.transform(S), S)


@SETTINGS
@given(problems(), st.floats(0.1, 20))
def test_dis_with_a_covering_bank_is_is(p, beta):
    S, Pq, _, _ = p
    n = S.shape[1]
    dis = QBNorm(beta_query=beta, k=n).fit(Pq).transform(S)
    is_ = InvertedSoftmax(beta_query=beta).fit(Pq).transform(S)
    assert torch.equal(dis, is_)


@SETTINGS
@given(problems(), st.floats(0.1, 10), st.floats(0.1, 10))
def test_dualis_similarity_scale_ranks_like_its_log_and_its_product(p, bq, bg):
    S, Pq, Pg, _ = p
    sim = DualIS(beta_query=bq, beta_gallery=bg).fit(Pq, Pg).transform(S)
    log = DualIS(beta_query=bq, beta_gallery=bg, scale="log").fit(Pq, Pg).transform(S)
    torch.testing.assert_close(sim * (bq + bg), log, rtol=1e-9, atol=1e-9)
    # explicit product of the two inverted softmaxes, shifted per column to stay finite
    iq = bq * S - torch.logsumexp(bq * Pq, dim=0)
    ig = bg * S - torch.logsumexp(bg * Pg, dim=0)
    torch.testing.assert_close(log, iq + ig, rtol=1e-9, atol=1e-9)


@SETTINGS
@given(problems(), st.sampled_from(sorted(METHODS)), st.randoms(use_true_random=False))
def test_joint_gallery_permutation_permutes_the_output(p, method, rnd):
    S, Pq, Pg, cross = p
    perm = list(range(S.shape[1]))
    rnd.shuffle(perm)
    perm = torch.tensor(perm)
    kw = {"beta_query": 2.0} if method in ("is", "dis", "sn", "dbsn") else {}
    a = _all(method, S, Pq, Pg, cross, **kw)
    # continuous data: no ties, so the gates' lowest-index tie-break plays no role
    b = _all(method, S[:, perm], Pq[:, perm], Pg[:, perm], cross, **kw)
    torch.testing.assert_close(b, a[:, perm], rtol=1e-7, atol=1e-7)


@SETTINGS
@given(problems(), st.sampled_from(sorted(METHODS)))
def test_inputs_are_never_modified(p, method):
    S, Pq, Pg, cross = p
    copies = [x.clone() for x in (S, Pq, Pg, cross)]
    out = _all(method, S, Pq, Pg, cross)
    for x, c in zip((S, Pq, Pg, cross), copies, strict=True):
        assert torch.equal(x, c)
    assert out.data_ptr() not in {x.data_ptr() for x in (S, Pq, Pg, cross)}


def test_numpy_inputs_are_never_modified():
    rng = np.random.default_rng(0)
    S, Pq, Pg = (
        rng.normal(size=(4, 5)),
        rng.normal(size=(9, 5)),
        rng.normal(size=(7, 5)),
    )
    copies = [x.copy() for x in (S, Pq, Pg)]
    for mode in ("principled", "faithful"):
        normalize("dualdis", S, bank_query_sims=Pq, bank_gallery_sims=Pg, mode=mode)
    for x, c in zip((S, Pq, Pg), copies, strict=True):
        np.testing.assert_array_equal(x, c)


@pytest.mark.parametrize("beta", [1e2, 1e3, 1e4])
@pytest.mark.parametrize("method", ["is", "dis", "dualis", "dualdis", "sn"])
def test_large_inverse_temperature_is_finite_and_ranks_correctly(method, beta, dtype):
    # cosine-like scores with beta * s up to 1e4: the upstream code overflows here (D5)
    g = torch.Generator().manual_seed(3)
    S = torch.rand(5, 20, generator=g, dtype=torch.float64) * 2 - 1
    Pq = torch.rand(50, 20, generator=g, dtype=torch.float64) * 2 - 1
    Pg = torch.rand(40, 20, generator=g, dtype=torch.float64) * 2 - 1
    kw = (
        {"beta_query": beta, "beta_gallery": beta, "k": 20}
        if method.endswith("dis")
        else {"beta_query": beta, "beta_gallery": beta}
    )
    if method == "sn":
        kw = {"beta_query": beta, "n_iter": 1}
    out = normalize(
        method,
        S.to(dtype),
        bank_query_sims=Pq.to(dtype),
        bank_gallery_sims=Pg.to(dtype),
        **kw,
    )
    assert torch.isfinite(out).all()
    # float64 reference on the similarity scale: S - c_j / beta (every row gated, k = n_gallery)
    cq = torch.logsumexp(beta * Pq, dim=0) / beta
    cg = torch.logsumexp(beta * Pg, dim=0) / beta
    if method in ("dualis", "dualdis"):
        ref = S - (cq + cg) / 2
    elif method == "sn":
        ref = None
    else:
        ref = S - cq
    if ref is not None:
        assert out.argmax(dim=1).tolist() == ref.argmax(dim=1).tolist()
        torch.testing.assert_close(
            out.double(), ref, rtol=0, atol=1e-3 if dtype == torch.float32 else 1e-9
        )


def test_dualdis_modes_coincide_when_every_row_is_gated_and_s_positive():
    g = torch.Generator().manual_seed(1)
    S = torch.rand(6, 10, generator=g, dtype=torch.float64)
    Pq, Pg = (
        torch.rand(30, 10, generator=g, dtype=torch.float64),
        torch.rand(20, 10, generator=g, dtype=torch.float64),
    )
    a = DualDIS(k=10, mode="faithful").fit(Pq, Pg).transform(S)
    b = DualDIS(k=10).fit(Pq, Pg).transform(S)
    assert torch.equal(a.argsort(dim=1), b.argsort(dim=1))
