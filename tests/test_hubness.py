"""Tests of hubrepro.hubness: hand-computed N_k, kNN vs the full matrix, statistics vs
scipy and loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _reference_metrics import (
    naive_gini,
    naive_hub_occupancy,
    naive_k_occurrence,
    naive_robin_hood,
    naive_skewness,
)
from hubrepro.hubness import (
    EMBEDDING_METRICS,
    antihub_rate,
    gini,
    hub_occupancy,
    hubness_report,
    hubness_stats,
    k_occurrence,
    k_occurrence_from_embeddings,
    k_occurrence_from_indices,
    knn,
    robin_hood_index,
    skewness,
    skewness_nonzero,
)
from hubrepro.similarity import cosine_similarity

# -- k-occurrence --------------------------------------------------------------


def test_k_occurrence_hand_computed(dtype, device):
    s = torch.tensor(
        [
            [0.9, 0.8, 0.1, 0.0],
            [0.9, 0.1, 0.8, 0.0],
            [0.7, 0.9, 0.0, 0.1],
        ],
        dtype=dtype,
        device=device,
    )
    n1 = k_occurrence(s, k=1)
    assert n1.dtype == torch.long and n1.device == device
    assert n1.tolist() == [2, 1, 0, 0]
    assert k_occurrence(s, k=2).tolist() == [3, 2, 1, 0]


def test_k_occurrence_ties_go_to_lowest_index(dtype):
    # all four tied: top-2 must be columns 0 and 1
    s = torch.zeros(3, 4, dtype=dtype)
    assert k_occurrence(s, k=2).tolist() == [3, 3, 0, 0]
    # one clear winner, then a three-way tie for the second slot
    s = torch.tensor([[0.2, 0.5, 0.5, 0.9, 0.5]], dtype=dtype)
    assert k_occurrence(s, k=2).tolist() == [0, 1, 0, 1, 0]
    assert k_occurrence(s, k=3).tolist() == [0, 1, 1, 1, 0]


def test_k_occurrence_exclude_self(dtype):
    # a same-set matrix whose diagonal is the largest entry of every row
    s = torch.tensor([[1.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 1.0]], dtype=dtype)
    assert k_occurrence(s, k=1).tolist() == [1, 1, 1]
    assert k_occurrence(s, k=1, exclude_self=True).tolist() == [1, 2, 0]
    s0 = s.clone()
    k_occurrence(s, k=1, exclude_self=True, chunk_size=1)
    assert torch.equal(s, s0)  # masking the diagonal never writes the input


@pytest.mark.parametrize("exclude_self", [False, True])
def test_k_occurrence_matches_naive(exclude_self, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    for levels in (3, 1000):  # heavy ties, then almost none
        s = (torch.randint(0, levels, (13, 13), generator=g).to(dtype)) / levels
        for k in (1, 3, 12):
            got = k_occurrence(s, k, exclude_self=exclude_self, chunk_size=4)
            assert got.tolist() == naive_k_occurrence(s.tolist(), k, exclude_self)


@settings(max_examples=40, deadline=None)
@given(
    n_q=st.integers(1, 14),
    n_g=st.integers(2, 10),
    levels=st.integers(1, 5),
    k=st.integers(1, 10),
    chunk=st.integers(1, 15),
    seed=st.integers(0, 2**16),
)
def test_k_occurrence_properties(n_q, n_g, levels, k, chunk, seed):
    k = min(k, n_g)
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(0, levels, (n_q, n_g), generator=g).double()
    n_k = k_occurrence(s, k)
    assert int(n_k.sum()) == n_q * k
    assert torch.equal(k_occurrence(s, k, chunk_size=chunk), n_k)  # chunking is exact
    # permuting the gallery permutes N_k (ties may move, so compare on distinct scores)
    s_distinct = s + torch.rand(n_q, n_g, generator=g, dtype=torch.float64) * 1e-3
    n_d = k_occurrence(s_distinct, k)
    perm = torch.randperm(n_g, generator=g)
    assert torch.equal(k_occurrence(s_distinct[:, perm], k), n_d[perm])
    assert torch.equal(
        k_occurrence(s_distinct[torch.randperm(n_q, generator=g)], k), n_d
    )
    if n_q == n_g and k < n_g:
        assert int(k_occurrence(s, k, exclude_self=True).sum()) == n_q * k


@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_k_occurrence_from_embeddings_matches_matrix(metric, generator, dtype):
    q = torch.randn(40, 6, generator=generator, dtype=dtype)
    gal = torch.randn(25, 6, generator=generator, dtype=dtype)
    sims = cosine_similarity(q, gal) if metric == "cosine" else q @ gal.T
    got = k_occurrence_from_embeddings(q, gal, k=5, metric=metric, chunk_size=7)
    assert torch.equal(got, k_occurrence(sims, 5))
    # within one set: self excluded
    within = k_occurrence_from_embeddings(q, k=3, metric=metric, chunk_size=9)
    self_sims = cosine_similarity(q, q) if metric == "cosine" else q @ q.T
    assert torch.equal(within, k_occurrence(self_sims, 3, exclude_self=True))
    assert int(within.sum()) == 40 * 3


# -- kNN from embeddings -------------------------------------------------------


def naive_knn(q, g=None, k=3, metric="euclidean"):
    """Full-matrix kNN in float64: the reference for the chunked one."""
    within = g is None
    g = q if within else g
    q, g = q.double(), g.double()
    if metric == "cosine_centred":
        c = g.mean(0, keepdim=True)
        q, g = q - c, g - c
    if metric == "euclidean":
        score = -(torch.cdist(q, g) ** 2)
    elif metric == "dot":
        score = q @ g.T
    else:
        score = (q / q.norm(dim=1, keepdim=True)) @ (g / g.norm(dim=1, keepdim=True)).T
    if within:
        score.fill_diagonal_(-math.inf)
    return torch.topk(score, k, dim=1)


def test_knn_on_hand_placed_points():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    idx, score = knn(x, k=2, metric="euclidean")
    assert idx.tolist() == [[1, 2], [0, 2], [1, 0], [2, 1]]
    assert score[0].tolist() == [-1.0, -9.0]  # minus squared distances
    # N_1: 0 <- 1, 1 <- 0 and 2, 2 <- 3
    assert k_occurrence_from_indices(idx, 4, k=1).tolist() == [1, 2, 1, 0]


@pytest.mark.parametrize("metric", EMBEDDING_METRICS)
@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_chunked_knn_equals_full_matrix(metric, chunk_size, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(53, 6, generator=g, dtype=torch.float64).to(dtype) + 0.3
    y = torch.randn(41, 6, generator=g, dtype=torch.float64).to(dtype)
    idx, score = knn(x, k=5, metric=metric, chunk_size=chunk_size)
    ref = naive_knn(x, k=5, metric=metric)
    torch.testing.assert_close(idx, ref.indices)
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(score.double(), ref.values, rtol=tol, atol=tol)
    idx2, _ = knn(x, y, k=4, metric=metric, chunk_size=chunk_size)
    torch.testing.assert_close(idx2, naive_knn(x, y, k=4, metric=metric).indices)


def test_knn_breaks_ties_by_the_lowest_index_in_every_prefix():
    # points 1, 2, 3 are all at distance 1 from point 0; 4 and 5 at distance 2
    x = torch.tensor(
        [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0], [2.0, 0], [0, 2.0]]
    )
    idx, score = knn(x, k=5, metric="euclidean")
    assert idx[0].tolist() == [1, 2, 3, 4, 5]
    assert score[0].tolist() == [-1.0, -1.0, -1.0, -4.0, -4.0]
    for k in (1, 2, 4):
        # a prefix of the lists is the top-k of k_occurrence's tie rule
        sims = -(torch.cdist(x, x) ** 2)
        assert torch.equal(
            k_occurrence_from_indices(idx, 6, k),
            k_occurrence(sims, k, exclude_self=True),
        )


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(3, 40),
    d=st.integers(1, 6),
    k=st.integers(1, 6),
    levels=st.integers(2, 6),
    chunk=st.integers(1, 50),
    metric=st.sampled_from(EMBEDDING_METRICS),
    seed=st.integers(0, 2**31 - 1),
)
def test_knn_lists_and_counts_agree(n, d, k, levels, chunk, metric, seed):
    """knn's lists, cut at any j <= k, count exactly as k_occurrence_from_embeddings,
    ties included (integer-valued coordinates make exact ties frequent)."""
    k = min(k, n - 1)
    x = torch.randint(
        -levels, levels + 1, (n, d), generator=torch.Generator().manual_seed(seed)
    ).double()
    if metric in ("cosine", "cosine_centred"):
        x = x + 0.5  # keep every row (and every centred row) away from zero
    before = x.clone()
    idx, _ = knn(x, k=k, metric=metric, chunk_size=chunk)
    assert not (idx == torch.arange(n).unsqueeze(1)).any()  # self excluded
    for j in range(1, k + 1):
        n_j = k_occurrence_from_indices(idx, n, j)
        assert int(n_j.sum()) == n * j
        assert torch.equal(
            n_j, k_occurrence_from_embeddings(x, k=j, metric=metric, chunk_size=chunk)
        )
    torch.testing.assert_close(x, before, rtol=0, atol=0)  # input untouched


@pytest.mark.parametrize("metric", ["euclidean", "cosine_centred"])
def test_k_occurrence_from_embeddings_new_metrics_match_the_matrix(metric, generator):
    q = torch.randn(30, 5, generator=generator, dtype=torch.float64) + 1.0
    gal = torch.randn(20, 5, generator=generator, dtype=torch.float64)
    if metric == "euclidean":
        sims = -(torch.cdist(q, gal) ** 2)
    else:
        c = gal.mean(0, keepdim=True)
        sims = cosine_similarity(q - c, gal - c)
    got = k_occurrence_from_embeddings(q, gal, k=4, metric=metric, chunk_size=8)
    assert torch.equal(got, k_occurrence(sims, 4))


def test_knn_and_counts_bad_arguments():
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match="`k` must be at most 4"):
        knn(x, k=5)
    with pytest.raises(ValueError, match="dimension 3"):
        knn(x, torch.randn(4, 2), k=1)
    with pytest.raises(ValueError, match="`metric` must be one of"):
        knn(x, k=1, metric="manhattan")
    with pytest.raises(TypeError, match="floating-point"):
        knn(torch.ones(5, 3, dtype=torch.long), k=1)
    with pytest.raises(ValueError, match="finite"):
        knn(torch.full((5, 3), math.nan), k=1)
    with pytest.raises(TypeError, match="integer matrix"):
        k_occurrence_from_indices(torch.zeros(2, 2), 3)
    with pytest.raises(ValueError, match=r"indices in \[0, 3\)"):
        k_occurrence_from_indices(torch.tensor([[0, 3]]), 3)
    with pytest.raises(ValueError, match="`k` must be an integer in"):
        k_occurrence_from_indices(torch.tensor([[0, 1]]), 3, k=3)


# -- statistics ----------------------------------------------------------------


def test_statistics_hand_computed():
    n_k = torch.tensor([0, 0, 0, 4])
    # mean 1, deviations (-1,-1,-1,3): m2 = 3, m3 = (−3 + 27)/4 = 6 -> 6 / 3**1.5
    assert skewness(n_k) == pytest.approx(6 / 3**1.5, rel=1e-12)
    assert skewness_nonzero(n_k) == 0.0  # one nonzero value: no spread
    assert robin_hood_index(n_k) == pytest.approx(0.75)  # 3 of 4 slots must move
    assert gini(n_k) == pytest.approx(0.75)
    assert antihub_rate(n_k) == 0.75
    assert hub_occupancy(n_k, 1) == 1.0  # 4 >= 2 * 1
    n_k = torch.tensor([1, 1, 2, 4, 0, 0])  # mean 4/3, hub threshold 8/3
    assert hub_occupancy(n_k, 2) == pytest.approx(4 / 8)
    assert skewness_nonzero(n_k) == pytest.approx(scipy.stats.skew([1, 1, 2, 4]))


def test_uniform_occurrences_have_no_hubness():
    n_k = torch.full((7,), 3)
    assert skewness(n_k) == 0.0 and skewness_nonzero(n_k) == 0.0
    assert robin_hood_index(n_k) == 0.0 and gini(n_k) == 0.0
    assert antihub_rate(n_k) == 0.0 and hub_occupancy(n_k, 3) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 40), min_size=2, max_size=30).filter(
        lambda v: len(set(v)) > 1
    )
)
def test_statistics_match_scipy_and_loops(values):
    x = np.array(values)
    assert skewness(x) == pytest.approx(scipy.stats.skew(x), rel=1e-9, abs=1e-12)
    assert skewness(x) == pytest.approx(naive_skewness(values), rel=1e-9, abs=1e-12)
    nz = [v for v in values if v > 0]
    assert skewness_nonzero(x) == pytest.approx(naive_skewness(nz), rel=1e-9, abs=1e-12)
    assert robin_hood_index(x) == pytest.approx(naive_robin_hood(values), rel=1e-12)
    assert gini(x) == pytest.approx(naive_gini(values), rel=1e-12, abs=1e-15)
    assert hub_occupancy(x, 1) == pytest.approx(naive_hub_occupancy(values), rel=1e-12)
    assert antihub_rate(x) == values.count(0) / len(values)
    n = len(values)
    assert 0 <= robin_hood_index(x) <= 1 - 1 / n + 1e-12
    assert 0 <= gini(x) <= 1 - 1 / n + 1e-12
    # statistics ignore the order of the items
    rev = x[::-1].copy()
    assert gini(rev) == pytest.approx(gini(x)) and skewness(rev) == pytest.approx(
        skewness(x)
    )


def test_stats_and_report_keys(generator, dtype):
    s = torch.randn(50, 20, generator=generator, dtype=dtype)
    rep = hubness_report(s, k=5)
    assert list(rep) == [
        "k",
        "skewness",
        "skewness_nonzero",
        "robin_hood",
        "hub_occupancy",
        "antihub_rate",
        "gini",
        "max_occurrence",
    ]
    n_k = k_occurrence(s, 5)
    assert rep == hubness_stats(n_k, 5)
    assert rep["max_occurrence"] == int(n_k.max())
    assert rep["k"] == 5


def test_inputs_not_mutated_numpy():
    s = np.random.default_rng(1).normal(size=(9, 9))
    s0 = s.copy()
    hubness_report(s, k=3, exclude_self=True)
    np.testing.assert_array_equal(s, s0)


# -- bad inputs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: k_occurrence(np.ones((3, 4)), 5), ValueError, "at most 4"),
        (
            lambda: k_occurrence(np.ones((3, 3)), 3, exclude_self=True),
            ValueError,
            "at most 2",
        ),
        (
            lambda: k_occurrence(np.ones((3, 4)), 1, exclude_self=True),
            ValueError,
            "square",
        ),
        (lambda: k_occurrence(np.ones((3, 4)), 0), ValueError, "k"),
        (lambda: k_occurrence(np.ones((3, 4)), 1.5), TypeError, "integer"),
        (lambda: k_occurrence(np.array([[np.nan, 1.0]]), 1), ValueError, "finite"),
        (lambda: k_occurrence(np.ones((3, 4), np.int32), 1), TypeError, "floating"),
        (
            lambda: k_occurrence_from_embeddings(np.ones((3, 2)), k=3),
            ValueError,
            "at most 2",
        ),
        (
            lambda: k_occurrence_from_embeddings(np.ones((3, 2)), np.ones((3, 5))),
            ValueError,
            "dimension",
        ),
        (
            lambda: k_occurrence_from_embeddings(np.ones((3, 2)), metric="l2"),
            ValueError,
            "metric",
        ),
        (lambda: skewness(np.array([-1, 2])), ValueError, "non-negative"),
        (lambda: skewness(np.zeros(3)), ValueError, "at least one"),
        (lambda: skewness(np.ones((2, 2))), ValueError, "1-D"),
        (lambda: skewness(np.array([])), ValueError, "non-empty"),
        (lambda: gini([1, 2]), TypeError, "torch.Tensor"),
        (lambda: hub_occupancy(np.array([1, 2]), 2), ValueError, "divisor"),
        (lambda: hubness_stats(np.array([1, 2]), 0), ValueError, "k"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.gpu
@pytest.mark.parametrize("metric", EMBEDDING_METRICS)
def test_cuda_matches_cpu(generator, metric):
    q = torch.randn(64, 8, generator=generator)
    assert torch.equal(
        k_occurrence_from_embeddings(q.cuda(), k=5, metric=metric, chunk_size=16).cpu(),
        k_occurrence_from_embeddings(q, k=5, metric=metric, chunk_size=16),
    )
    idx_gpu, _ = knn(q.cuda(), k=5, metric=metric, chunk_size=16)
    assert torch.equal(idx_gpu.cpu(), knn(q, k=5, metric=metric, chunk_size=16)[0])
