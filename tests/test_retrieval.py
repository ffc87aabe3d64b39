"""Tests of hubrepro.retrieval against hand-computed cases and naive loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _reference_metrics import (
    naive_gallery_ranks,
    naive_metrics,
    naive_query_ranks,
    qbnorm_cols2metrics,
    qbnorm_t2v_ranks,
    qbnorm_v2t_ranks,
)
from hubrepro.retrieval import (
    evaluate_retrieval,
    gallery_ranks,
    metrics_from_ranks,
    query_ranks,
)

TIES = ["average", "optimistic", "pessimistic"]


def _as_list(t):
    return [float(x) for x in t.tolist()]


# -- hand-computed cases ------------------------------------------------------


def test_hand_computed_ties_square(dtype, device):
    # row 0: GT 0.5 tied with column 2, one above -> opt 1, pes 2, avg 1.5
    # row 1: GT 0.9 unique best -> 0 under every policy
    # row 2: fully tied row of 3 -> opt 0, pes 2, avg 1 = (n_gallery - 1) / 2
    s = torch.tensor(
        [[0.5, 0.7, 0.5], [0.1, 0.9, 0.2], [0.3, 0.3, 0.3]], dtype=dtype, device=device
    )
    expected = {
        "optimistic": [1, 0, 0],
        "pessimistic": [2, 0, 2],
        "average": [1.5, 0, 1],
    }
    for ties, exp in expected.items():
        r = query_ranks(s, ties=ties)
        assert r.dtype == torch.float64 and r.device == device
        assert _as_list(r) == exp
    # default is average
    assert _as_list(query_ranks(s)) == expected["average"]
    # columns: col 0 GT query 0 (0.5) vs 0.1, 0.3 -> 0; col 1 GT query 1 (0.9) -> 0;
    # col 2 GT query 2 (0.3) vs 0.5 above, 0.2 below -> 1
    assert _as_list(gallery_ranks(s, ties="optimistic")) == [0, 0, 1]


def test_hand_computed_multi_caption():
    # 5 captions, 3 videos; video 2 has no caption
    gt = torch.tensor([0, 0, 1, 1, 1])
    s = torch.tensor(
        [
            [0.9, 0.1, 0.0],  # q0 -> v0 rank 0
            [0.2, 0.8, 0.5],  # q1 -> v0 rank 2
            [0.4, 0.3, 0.1],  # q2 -> v1 rank 1
            [0.4, 0.4, 0.9],  # q3 -> v1 tied with v0, v2 above: opt 1, pes 2
            [0.0, 0.6, 0.7],  # q4 -> v1 rank 1
        ]
    )
    assert _as_list(query_ranks(s, gt, ties="optimistic")) == [0, 2, 1, 1, 1]
    assert _as_list(query_ranks(s, gt, ties="pessimistic")) == [0, 2, 1, 2, 1]
    # v0 column [0.9, 0.2, 0.4, 0.4, 0.0], best GT caption q0 at 0.9 -> rank 0
    # v1 column [0.1, 0.8, 0.3, 0.4, 0.6], best GT caption q4 at 0.6 -> only q1 above
    r = gallery_ranks(s, gt)
    assert r[0] == 0 and r[1] == 1 and math.isnan(r[2])
    res = evaluate_retrieval(s, gt, ks=(1, 2), ties="optimistic")
    assert res["n_unmatched_gallery"] == 1
    assert res["query_to_gallery"] == {"R@1": 20.0, "R@2": 80.0, "MdR": 2.0, "MnR": 2.0}
    assert res["gallery_to_query"] == {
        "R@1": 50.0,
        "R@2": 100.0,
        "MdR": 1.5,
        "MnR": 1.5,
    }
    assert res["Rsum"] == 20.0 + 80.0 + 50.0 + 100.0
    with pytest.raises(ValueError, match="column 2"):
        evaluate_retrieval(s, gt, unmatched="raise")


def test_gallery_rank_is_min_over_captions_with_tied_captions():
    # two captions of video 0 tie at 0.5 with one other query: column [0.5, 0.5, 0.5, 0.9]
    gt = torch.tensor([0, 0, 1, 1])
    s = torch.tensor([[0.5, 0.0], [0.5, 0.1], [0.5, 0.2], [0.9, 0.3]])
    for ties in TIES:
        ref = naive_gallery_ranks(s.tolist(), gt.tolist(), ties)
        assert _as_list(gallery_ranks(s, gt, ties=ties)) == ref
    assert _as_list(gallery_ranks(s, gt, ties="optimistic")) == [1, 0]
    assert _as_list(gallery_ranks(s, gt, ties="pessimistic")) == [3, 0]


def test_metrics_from_ranks_hand_computed():
    out = metrics_from_ranks(
        np.array([0.0, 0.5, 4.0, 9.0, 12.0, float("nan")]), ks=(1, 5, 10)
    )
    # R@1 counts rank 0 only (0.5 is a tie at the top: a miss); R@5 counts 4.0
    assert out == pytest.approx(
        {"R@1": 20.0, "R@5": 60.0, "R@10": 80.0, "MdR": 5.0, "MnR": 6.1}, abs=1e-12
    )


# -- ties="average" is QB-Norm's evaluator, R@1 and R@K included -----------------------


def test_average_ties_follow_qbnorm_evaluator_both_directions():
    # diagonal ground truth; q0 ties its video with video 1 at the top (rank 0.5), q2
    # ties with video 3 at the top; column 2 ties its caption with caption 3 at the top
    s = torch.tensor(
        [
            [0.9, 0.9, 0.0, 0.0],  # q0: rank 0.5
            [0.2, 0.8, 0.1, 0.0],  # q1: rank 0
            [0.1, 0.3, 0.7, 0.7],  # q2: rank 0.5
            [0.0, 0.2, 0.7, 0.6],  # q3: rank 1
        ],
        dtype=torch.float64,
    )
    assert _as_list(query_ranks(s)) == [0.5, 0.0, 0.5, 1.0]
    # columns: v0 -> 0, v1 -> 1 (0.9 above), v2 -> 0.5 (tied with q3), v3 -> 1
    assert _as_list(gallery_ranks(s)) == [0.0, 1.0, 0.5, 1.0]
    res = evaluate_retrieval(s, ks=(1, 2))
    # a tie at the top is an R@1 miss, as QB-Norm's cols2metrics counts `cols == 0`
    assert res["query_to_gallery"] == {
        "R@1": 25.0,
        "R@2": 100.0,
        "MdR": 1.5,
        "MnR": 1.5,
    }
    assert res["gallery_to_query"] == {
        "R@1": 25.0,
        "R@2": 100.0,
        "MdR": 1.75,
        "MnR": 1.625,
    }
    gt = list(range(4))
    for got, ranks in (
        (res["query_to_gallery"], qbnorm_t2v_ranks(s.tolist(), gt)),
        (res["gallery_to_query"], qbnorm_v2t_ranks(s.tolist(), gt)),
    ):
        ref = qbnorm_cols2metrics(ranks)
        assert got["R@1"] == ref["R@1"] and got["MdR"] == ref["MdR"]
    # optimistic ties count both ties at the top as hits, pessimistic neither
    assert evaluate_retrieval(s, ks=(1,), ties="optimistic")["Rsum"] == 75.0 + 50.0
    assert evaluate_retrieval(s, ks=(1,), ties="pessimistic")["Rsum"] == 25.0 + 25.0


def test_average_ties_r_at_k_counts_a_half_rank_below_k():
    # the inconsistency of the convention: rank 0.5 misses R@1, rank 4.5 hits R@5
    s = torch.tensor(
        [
            [0.5, 0.5, 0.1, 0.2, 0.3, 0.0],  # GT 0 tied with one item at the top: 0.5
            [0.1, 0.9, 0.2, 0.3, 0.4, 0.0],  # GT 1 first: 0
            [0.8, 0.7, 0.3, 0.9, 0.6, 0.3],  # GT 2: four above, tied with one: 4.5
        ],
        dtype=torch.float64,
    )
    gt = torch.tensor([0, 1, 2])
    assert _as_list(query_ranks(s, gt)) == [0.5, 0.0, 4.5]
    fwd = evaluate_retrieval(s, gt, ks=(1, 5, 10))["query_to_gallery"]
    ref = qbnorm_cols2metrics(qbnorm_t2v_ranks(s.tolist(), gt.tolist()))
    assert fwd == pytest.approx(ref, abs=1e-12)
    assert fwd["R@1"] == pytest.approx(100 / 3) and fwd["R@5"] == 100.0


def test_rounded_gaussian_matches_qbnorm_evaluator():
    # 40 x 40 Gaussian scores rounded to one decimal: many ties, some at the top
    g = torch.Generator().manual_seed(1)
    s = torch.round(torch.randn(40, 40, generator=g, dtype=torch.float64) * 10) / 10
    q, gal = query_ranks(s), gallery_ranks(s)
    # the case bites: ground truths tied at the top exist in both directions
    assert bool((q == 0.5).any()) and bool((gal == 0.5).any())
    res = evaluate_retrieval(s)
    gt = list(range(40))
    for d, ranks in (
        ("query_to_gallery", qbnorm_t2v_ranks(s.tolist(), gt)),
        ("gallery_to_query", qbnorm_v2t_ranks(s.tolist(), gt)),
    ):
        assert res[d] == pytest.approx(qbnorm_cols2metrics(ranks), abs=1e-12)
    assert res["gallery_to_query"]["R@1"] == 100.0 * int((gal == 0).sum()) / 40


def test_perfect_diagonal_and_reversed(dtype):
    n = 12
    s = torch.eye(n, dtype=dtype) + 0.01 * torch.arange(n, dtype=dtype)
    res = evaluate_retrieval(s)
    for d in ("query_to_gallery", "gallery_to_query"):
        assert res[d]["R@1"] == 100.0 and res[d]["MdR"] == 1.0 and res[d]["MnR"] == 1.0
    assert res["Rsum"] == 600.0
    # GT always scored lowest: rank n-1 for every query
    worst = evaluate_retrieval(-torch.eye(n, dtype=dtype))
    assert worst["query_to_gallery"]["MnR"] == n
    assert worst["query_to_gallery"]["R@10"] == 0.0


# -- naive-reference agreement and properties ----------------------------------


def _random_case(seed, n_q, n_g, levels, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    # few distinct levels -> plenty of ties
    s = torch.randint(0, levels, (n_q, n_g), generator=g).to(dtype) / levels
    gt = torch.randint(0, n_g, (n_q,), generator=g)
    return s, gt


@pytest.mark.parametrize("ties", TIES)
def test_matches_naive_reference(ties, seed, dtype):
    s, gt = _random_case(seed, 23, 7, 4, dtype)
    assert _as_list(query_ranks(s, gt, ties=ties, chunk_size=5)) == naive_query_ranks(
        s.tolist(), gt.tolist(), ties
    )
    got = _as_list(gallery_ranks(s, gt, ties=ties, chunk_size=4))
    ref = naive_gallery_ranks(s.tolist(), gt.tolist(), ties)
    assert [(math.isnan(a), a if not math.isnan(a) else 0) for a in got] == [
        (math.isnan(b), b if not math.isnan(b) else 0) for b in ref
    ]
    res = evaluate_retrieval(s, gt, ks=(1, 3, 5), ties=ties)
    assert res["query_to_gallery"] == pytest.approx(
        naive_metrics(naive_query_ranks(s.tolist(), gt.tolist(), ties), (1, 3, 5))
    )
    assert res["gallery_to_query"] == pytest.approx(naive_metrics(ref, (1, 3, 5)))


@settings(max_examples=40, deadline=None)
@given(
    n_q=st.integers(1, 15),
    n_g=st.integers(1, 9),
    levels=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    chunk=st.integers(1, 16),
    ties=st.sampled_from(TIES),
)
def test_properties(n_q, n_g, levels, seed, chunk, ties):
    s, gt = _random_case(seed, n_q, n_g, levels)
    s0, gt0 = s.clone(), gt.clone()
    res = evaluate_retrieval(s, gt, ks=(1, 2, 5, n_g), ties=ties)
    # inputs untouched
    assert torch.equal(s, s0) and torch.equal(gt, gt0)
    # chunked == unchunked, exactly
    assert (
        evaluate_retrieval(s, gt, ks=(1, 2, 5, n_g), ties=ties, chunk_size=chunk) == res
    )
    for d in ("query_to_gallery", "gallery_to_query"):
        r = res[d]
        vals = [r["R@1"], r["R@2"], r["R@5"]]
        assert all(0.0 <= v <= 100.0 for v in vals)
        assert vals == sorted(vals)  # monotone in K
        assert r["MdR"] >= 1 and r["MnR"] >= 1
    assert res["query_to_gallery"][f"R@{n_g}"] == 100.0  # K = n_gallery retrieves all
    # permute gallery columns together with the ground truth
    g = torch.Generator().manual_seed(seed + 1)
    perm = torch.randperm(n_g, generator=g)
    inv = torch.argsort(perm)
    permuted = evaluate_retrieval(s[:, perm], inv[gt], ks=(1, 2, 5, n_g), ties=ties)
    assert permuted == res
    # permute the queries (rows) together with the ground truth
    qperm = torch.randperm(n_q, generator=g)
    assert evaluate_retrieval(s[qperm], gt[qperm], ks=(1, 2, 5, n_g), ties=ties) == res


def test_gallery_to_query_full_recall_at_n_query():
    s, gt = _random_case(3, 10, 4, 3)
    gt = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    res = evaluate_retrieval(s, gt, ks=(1, 10))
    assert res["gallery_to_query"]["R@10"] == 100.0


def test_duplicate_cutoffs_counted_once():
    s = torch.eye(4, dtype=torch.float64)
    res = evaluate_retrieval(s, ks=(1, 1, 2))
    assert list(res["query_to_gallery"]) == ["R@1", "R@2", "MdR", "MnR"]
    assert res["Rsum"] == 400.0


def test_square_default_equals_explicit_diagonal(generator, dtype):
    s = torch.randn(8, 8, generator=generator, dtype=dtype)
    assert evaluate_retrieval(s) == evaluate_retrieval(s, torch.arange(8))


def test_numpy_inputs_accepted_and_not_mutated(generator):
    s = torch.randn(6, 4, generator=generator).numpy()
    gt = np.array([0, 1, 2, 3, 0, 1])
    s0, gt0 = s.copy(), gt.copy()
    res = evaluate_retrieval(s, gt)
    np.testing.assert_array_equal(s, s0)
    np.testing.assert_array_equal(gt, gt0)
    assert res == evaluate_retrieval(torch.from_numpy(s0), torch.from_numpy(gt0))


# -- bad inputs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sims", "gt", "kwargs", "exc", "match"),
    [
        (np.ones((3, 4)), None, {}, ValueError, "not square"),
        (np.ones((3, 4)), np.array([0, 1]), {}, ValueError, "length 3"),
        (np.ones((3, 4)), np.array([0, 1, 4]), {}, ValueError, r"range \[0, 4\)"),
        (np.ones((3, 4)), np.array([0, -1, 2]), {}, ValueError, "range"),
        (np.ones((3, 4)), np.array([0.0, 1.0, 2.0]), {}, TypeError, "integer"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), None, {}, ValueError, "finite"),
        (np.array([[np.nan, 1.0], [0.0, 1.0]]), None, {}, ValueError, "finite"),
        (np.ones((2, 2, 2)), None, {}, ValueError, "2-D"),
        (np.ones((0, 0)), None, {}, ValueError, "non-empty"),
        (np.ones((2, 2), np.int64), None, {}, TypeError, "floating"),
        (np.ones((2, 2)), None, {"ties": "random"}, ValueError, "ties"),
        (np.ones((2, 2)), None, {"ks": (0,)}, ValueError, "ks"),
        (np.ones((2, 2)), None, {"ks": "1"}, TypeError, "ks"),
        (np.ones((2, 2)), None, {"chunk_size": -1}, ValueError, "chunk_size"),
        (np.ones((2, 2)), None, {"unmatched": "ignore"}, ValueError, "unmatched"),
    ],
)
def test_bad_inputs(sims, gt, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        evaluate_retrieval(sims, gt, **kwargs)


def test_metrics_from_ranks_bad_inputs():
    with pytest.raises(ValueError, match="rankable"):
        metrics_from_ranks(np.array([np.nan, np.nan]))
    with pytest.raises(ValueError, match="non-negative"):
        metrics_from_ranks(np.array([-1.0, 2.0]))
    with pytest.raises(ValueError, match="1-D"):
        metrics_from_ranks(np.zeros((2, 2)))


@pytest.mark.gpu
def test_cuda_matches_cpu(generator):
    s, gt = _random_case(0, 30, 9, 4, torch.float32)
    assert evaluate_retrieval(s.cuda(), gt.cuda(), chunk_size=7) == evaluate_retrieval(
        s, gt
    )
