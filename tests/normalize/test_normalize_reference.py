"""Every normaliser against a plain float64 reference written from the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _reference_normalize import (
    activation_set,
    csls,
    dis,
    dual_terms,
    dualdis_faithful,
    gc_order,
    inverted_softmax,
    nnn,
    sinkhorn_log_v,
)

from hubrepro.normalize import (
    CSLS,
    DBSN,
    NNN,
    DualDIS,
    DualIS,
    GloballyCorrected,
    InvertedSoftmax,
    QBNorm,
    SinkhornNorm,
    normalize,
)


@pytest.fixture
def data(seed):
    rng = np.random.default_rng(seed)
    S = rng.normal(scale=0.5, size=(6, 9))
    Pq = rng.normal(scale=0.5, size=(25, 9))
    Pg = rng.normal(scale=0.5, size=(12, 9))
    cross = rng.normal(scale=0.5, size=(25, 7))
    return S, Pq, Pg, cross


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def tol(dtype):
    return (
        {"rtol": 1e-9, "atol": 1e-9}
        if dtype == torch.float64
        else {"rtol": 1e-4, "atol": 1e-4}
    )


def test_inverted_softmax_matches_reference(data, dtype):
    S, Pq, _, _ = data
    out = (
        InvertedSoftmax(beta_query=3.0, scale="log")
        .fit(t(Pq, dtype))
        .transform(t(S, dtype))
    )
    assert out.dtype == dtype
    np.testing.assert_allclose(
        out.double().numpy(), np.log(inverted_softmax(S, Pq, 3.0)), **tol(dtype)
    )


def test_inverted_softmax_gallery_bank_uses_beta_gallery(data):
    S, _, Pg, _ = data
    out = (
        InvertedSoftmax(beta_gallery=2.0, bank="gallery", scale="log")
        .fit(None, t(Pg))
        .transform(t(S))
    )
    np.testing.assert_allclose(
        out.numpy(), np.log(inverted_softmax(S, Pg, 2.0)), rtol=1e-9
    )


def test_similarity_scale_is_log_divided_by_beta(data):
    S, Pq, _, _ = data
    out = InvertedSoftmax(beta_query=4.0).fit(t(Pq)).transform(t(S))
    np.testing.assert_allclose(
        out.numpy(), np.log(inverted_softmax(S, Pq, 4.0)) / 4.0, rtol=1e-9
    )


@pytest.mark.parametrize("k", [1, 3])
def test_dis_matches_reference(data, k):
    S, Pq, _, _ = data
    m = QBNorm(beta_query=2.5, k=k, scale="log").fit(t(Pq))
    assert set(torch.nonzero(m.active_).flatten().tolist()) == activation_set(Pq, k)
    np.testing.assert_allclose(
        m.transform(t(S)).numpy(), np.log(dis(S, Pq, 2.5, k)), rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("aggregation", ["product", "sum"])
def test_dualis_matches_reference(data, aggregation, dtype):
    S, Pq, Pg, _ = data
    m = DualIS(beta_query=2.0, beta_gallery=3.0, aggregation=aggregation, scale="log")
    out = m.fit(t(Pq, dtype), t(Pg, dtype)).transform(t(S, dtype))
    tq, tg, _ = dual_terms(S, Pq, Pg, 2.0, 3.0, 1, gated=False)
    ref = tq * tg if aggregation == "product" else tq + tg
    np.testing.assert_allclose(out.double().numpy(), np.log(ref), **tol(dtype))


@pytest.mark.parametrize("aggregation", ["product", "sum"])
@pytest.mark.parametrize("k", [1, 2])
def test_dualdis_principled_matches_reference(data, aggregation, k):
    S, Pq, Pg, _ = data
    m = DualDIS(
        beta_query=2.0, beta_gallery=3.0, k=k, aggregation=aggregation, scale="log"
    )
    out = m.fit(t(Pq), t(Pg)).transform(t(S))
    tq, tg, gates = dual_terms(S, Pq, Pg, 2.0, 3.0, k, gated=True)
    ref = tq * tg if aggregation == "product" else tq + tg
    np.testing.assert_allclose(out.numpy(), np.log(ref), rtol=1e-9, atol=1e-12)
    gq, gg = m.gates(t(S))
    assert list(zip(gq.tolist(), gg.tolist(), strict=True)) == gates


@pytest.mark.parametrize("k", [1, 2])
def test_dualdis_faithful_ranks_like_reference_product(data, k):
    S, Pq, Pg, _ = data
    out = (
        DualDIS(beta_query=2.0, beta_gallery=3.0, k=k, mode="faithful")
        .fit(t(Pq), t(Pg))
        .transform(t(S))
    )
    ref = dualdis_faithful(S, Pq, Pg, 2.0, 3.0, k)
    for i in range(S.shape[0]):
        assert (
            np.argsort(-out[i].numpy(), kind="stable").tolist()
            == np.argsort(-ref[i], kind="stable").tolist()
        )


def test_csls_matches_reference(data):
    S, Pq, _, _ = data
    out = CSLS(k=4).fit(t(Pq)).transform(t(S))
    np.testing.assert_allclose(out.numpy(), csls(S, Pq, 4), rtol=1e-12, atol=1e-12)


def test_nnn_matches_reference(data):
    S, Pq, _, _ = data
    out = NNN(alpha=0.6, k=5).fit(t(Pq)).transform(t(S))
    np.testing.assert_allclose(out.numpy(), nnn(S, Pq, 0.6, 5), rtol=1e-12, atol=1e-12)


def test_gc_orders_like_reference(data):
    S, Pq, _, _ = data
    m = GloballyCorrected().fit(t(Pq))
    out = m.transform(t(S))
    for i in range(S.shape[0]):
        order, ranks = gc_order(S, Pq, i)
        assert m.ranks(t(S))[i].tolist() == ranks
        assert np.argsort(-out[i].numpy(), kind="stable").tolist() == order


def test_gc_ties_in_rank_are_broken_by_similarity():
    bank = t([[1.0, 1.0, 1.0]])  # the query ranks 1 for every item
    out = GloballyCorrected().fit(bank).transform(t([[0.2, 0.5, 0.1]]))
    assert out.argsort(dim=1, descending=True).tolist() == [[1, 0, 2]]


def test_sinkhorn_potentials_match_reference(data):
    S, Pq, _, _ = data
    m = SinkhornNorm(beta_query=2.0, n_iter=7, tol=1e-300, scale="log").fit(t(Pq))
    assert m.n_iter_ == 7
    log_v = sinkhorn_log_v(Pq, 2.0, 7)
    np.testing.assert_allclose(m.log_v_.numpy(), log_v, rtol=1e-9)
    np.testing.assert_allclose(
        m.transform(t(S)).numpy(), 2.0 * S + log_v[None, :], rtol=1e-9
    )


def test_sinkhorn_plan_is_balanced_after_convergence(data):
    _, Pq, _, _ = data
    m = SinkhornNorm(beta_query=1.0, n_iter=500, tol=1e-12).fit(t(Pq))
    K = np.exp(1.0 * Pq)
    v = np.exp(m.log_v_.numpy())
    u = (1.0 / K.shape[0]) / (K @ v)
    plan = u[:, None] * K * v[None, :]
    np.testing.assert_allclose(plan.sum(0), 1.0 / K.shape[1], rtol=1e-6)
    np.testing.assert_allclose(plan.sum(1), 1.0 / K.shape[0], rtol=1e-6)


def test_one_sinkhorn_step_ranks_like_inverted_softmax(data):
    S, Pq, _, _ = data
    # after one iteration log v_j = -log N - LSE_b(beta P_bj + log u_b); when every bank row
    # has the same LSE_j(beta P_bj), u is constant and SN ranks exactly like IS
    rows = t(Pq) - torch.logsumexp(2.0 * t(Pq), dim=1, keepdim=True) / 2.0
    sn = SinkhornNorm(beta_query=2.0, n_iter=1).fit(rows).transform(t(S))
    is_ = InvertedSoftmax(beta_query=2.0).fit(rows).transform(t(S))
    assert torch.equal(sn.argsort(dim=1), is_.argsort(dim=1))
    torch.testing.assert_close(sn - sn[:, :1], is_ - is_[:, :1])


# The released DBSN code (ppanzx/DBSN, commit 44aacaa, Image_Retrieval/dbsn.py and
# Video_Retrieval/dbsn.py, `Sinkhorn_Normalization`): POT's `ot.sinkhorn` on the cost
# 1 - sims with `reg=tau`, uniform marginals and `numItermax=10`, rows = test gallery
# (plus the gallery bank for "Dual-Bank Sinkhorn_Normalization"), columns = query bank;
# the score is sims - t_hubness with t_hubness = -tau log u (the gallery scalings).
# Called through POT exactly so, it must rank and score like SN/DBSN with beta = 1/tau,
# n_iter = 10 and tol = 0, up to a constant (the cost's 1 shifts every log u alike).


def _released_sinkhorn_gallery_log_u(rows_by_bank, tau, n_iter=10):
    import warnings

    ot = pytest.importorskip("ot")
    n, m = rows_by_bank.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT warns that 10 iterations did not converge
        _, log = ot.sinkhorn(
            np.ones(n) / n,
            np.ones(m) / m,
            1 - rows_by_bank,
            reg=tau,
            log=True,
            numItermax=n_iter,
        )
    return tau * np.log(log["u"])


def _same_up_to_a_constant(a, b):
    np.testing.assert_allclose(a - a.mean(), b - b.mean(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("tau", [0.05, 0.5])
def test_sn_is_the_released_dbsn_sinkhorn(data, tau):
    S, Pq, _, _ = data
    m = SinkhornNorm(beta_query=1 / tau, n_iter=10, tol=0).fit(t(Pq))
    assert m.n_iter_ == 10
    released = _released_sinkhorn_gallery_log_u(Pq.T, tau)
    _same_up_to_a_constant(m.log_v_.numpy() / m.beta_query, released)
    _same_up_to_a_constant(
        m.transform(t(S)).numpy(), S + released[None, :] + np.zeros((S.shape[0], 1))
    )


def test_dbsn_is_the_released_dual_bank_sinkhorn(data):
    S, Pq, _, cross = data
    tau = 0.25
    m = DBSN(beta_query=1 / tau, n_iter=10, tol=0).fit(t(Pq), bank_cross_sims=t(cross))
    # released: rows = [test gallery; gallery bank], columns = query bank
    rows = np.concatenate([Pq.T, cross.T], axis=0)
    released = _released_sinkhorn_gallery_log_u(rows, tau)[: S.shape[1]]
    _same_up_to_a_constant(m.log_v_.numpy() * tau, released)


def test_one_sinkhorn_iteration_is_is_on_the_row_normalised_bank(data):
    # the update order of the release (bank rows first, from uniform gallery scalings)
    # makes one iteration IS on the bank rows divided by their own softmax mass; it
    # ranks like IS on the raw bank only when every row has the same LSE
    S, Pq, _, _ = data
    beta = 2.0
    rows = t(Pq) - torch.logsumexp(beta * t(Pq), dim=1, keepdim=True) / beta
    sn = SinkhornNorm(beta_query=beta, n_iter=1).fit(t(Pq)).transform(t(S))
    is_rows = InvertedSoftmax(beta_query=beta).fit(rows).transform(t(S))
    torch.testing.assert_close(sn - sn[:, :1], is_rows - is_rows[:, :1])
    is_raw = InvertedSoftmax(beta_query=beta).fit(t(Pq)).transform(t(S))
    assert not torch.allclose(sn - sn[:, :1], is_raw - is_raw[:, :1])


def test_dbsn_matches_reference_on_concatenated_bank(data):
    S, Pq, _, cross = data
    m = DBSN(beta_query=2.0, n_iter=6, tol=1e-300, scale="log").fit(
        t(Pq), bank_cross_sims=t(cross)
    )
    log_v = sinkhorn_log_v(np.concatenate([Pq, cross], axis=1), 2.0, 6)[: S.shape[1]]
    np.testing.assert_allclose(m.log_v_.numpy(), log_v, rtol=1e-9)
    np.testing.assert_allclose(
        m.transform(t(S)).numpy(), 2.0 * S + log_v[None, :], rtol=1e-9
    )


# ---------------------------------------------------------------- hand-built DualDIS case
# 4 gallery items. Query bank: its two items' top-1s are gallery 0 and 3, so A_q = {0, 3}.
# Gallery bank: top-1s are gallery 1 and 3, so A_g = {1, 3}. The four test queries have
# their top-1 at 0 (gate q only), 1 (gate g only), 2 (neither) and 3 (both).
PQ = [[0.9, 0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.8]]
PG = [[0.2, 0.7, 0.1, 0.0], [0.0, 0.1, 0.2, 0.6]]
S_HAND = [
    [0.6, 0.1, 0.2, 0.3],
    [0.1, 0.5, 0.2, 0.3],
    [-0.5, -0.2, 0.3, -0.9],
    [0.1, 0.2, 0.3, 0.7],
]


def _lse(col):
    return math.log(sum(math.exp(x) for x in col))


def test_hand_built_gates_cover_every_combination():
    m = DualDIS(beta_query=1.0, beta_gallery=1.0).fit(t(PQ), t(PG))
    assert m.active_query_.tolist() == [True, False, False, True]
    assert m.active_gallery_.tolist() == [False, True, False, True]
    gq, gg = m.gates(t(S_HAND))
    assert gq.tolist() == [True, False, False, True]
    assert gg.tolist() == [False, True, False, True]


def test_hand_built_principled_values():
    out = (
        DualDIS(beta_query=1.0, beta_gallery=1.0).fit(t(PQ), t(PG)).transform(t(S_HAND))
    )
    cq = [_lse([PQ[0][j], PQ[1][j]]) for j in range(4)]
    cg = [_lse([PG[0][j], PG[1][j]]) for j in range(4)]
    gates = [(1, 0), (0, 1), (0, 0), (1, 1)]
    for i, (a, b) in enumerate(gates):
        for j in range(4):
            expected = (
                2 * S_HAND[i][j] - a * cq[j] - b * cg[j]
            ) / 2  # similarity scale: L / (bq + bg)
            assert out[i, j].item() == pytest.approx(expected, abs=1e-12)
    # the ungated row keeps the raw ranking
    assert out[2].argsort(descending=True).tolist() == [2, 1, 0, 3]


def test_hand_built_faithful_squares_negative_rows():
    out = (
        DualDIS(beta_query=1.0, beta_gallery=1.0, mode="faithful")
        .fit(t(PQ), t(PG))
        .transform(t(S_HAND))
    )
    # row 2 is gated by neither bank: the released code ranks it by S^2, so the most
    # negative similarity (-0.9, item 3) comes first
    assert out[2].argmax().item() == 3
    assert out[2].argsort(descending=True).tolist() == [3, 0, 2, 1]
    principled = (
        DualDIS(beta_query=1.0, beta_gallery=1.0).fit(t(PQ), t(PG)).transform(t(S_HAND))
    )
    # the both-gated row ranks the same in both modes
    assert out[3].argsort().tolist() == principled[3].argsort().tolist()


def test_dualdis_with_all_gates_on_equals_dualis(data):
    S, Pq, Pg, _ = data
    n = S.shape[1]
    # k = n_gallery: every item is active, so every row is gated by both banks
    dd = (
        DualDIS(beta_query=2.0, beta_gallery=3.0, k=n).fit(t(Pq), t(Pg)).transform(t(S))
    )
    di = DualIS(beta_query=2.0, beta_gallery=3.0).fit(t(Pq), t(Pg)).transform(t(S))
    torch.testing.assert_close(dd, di, rtol=0, atol=0)


def test_sum_aggregation_is_not_rank_equivalent_to_product():
    # both columns get the same product bias (c^q + c^g = 3), so the product ranks by S;
    # the sum is dominated by the query-bank term at low S, which favours column 1
    Pq = t([[3.0, 0.0]])
    Pg = t([[0.0, 3.0]])
    S = t([[-1.0, -1.05]])
    kw = {"beta_query": 1.0, "beta_gallery": 4.0}
    prod = normalize("dualis", S, bank_query_sims=Pq, bank_gallery_sims=Pg, **kw)
    summ = normalize(
        "dualis", S, bank_query_sims=Pq, bank_gallery_sims=Pg, aggregation="sum", **kw
    )
    assert prod.argmax(dim=1).tolist() == [0]
    assert summ.argmax(dim=1).tolist() == [1]
