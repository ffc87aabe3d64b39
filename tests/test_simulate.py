"""Tests of hubrepro.simulate: samplers, chunked kNN, statistics, drivers, verdicts.

Oracles are written plainly here: the full distance matrix with ``torch.cdist``,
``scipy.stats.spearmanr``, ``scipy.stats.t``, and moments of the laws from their
textbook formulas.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
import torch
from hypothesis import given, settings
from hypothesis import strategies as hs

from hubrepro import hubness
from hubrepro import simulate as S

# --------------------------------------------------------------------------- naive oracles


def naive_knn(q, g=None, k=3, metric="euclidean"):
    """Full-matrix kNN: the reference for the chunked one."""
    within = g is None
    g = q if within else g
    if metric == "cosine_centred":
        c = g.mean(0, keepdim=True)
        q, g = q - c, g - c
    if metric == "euclidean":
        score = -(torch.cdist(q.double(), g.double()) ** 2)
    else:
        qn = q.double() / q.double().norm(dim=1, keepdim=True)
        gn = g.double() / g.double().norm(dim=1, keepdim=True)
        score = qn @ gn.T
    if within:
        score.fill_diagonal_(-math.inf)
    return torch.topk(score, k, dim=1).indices


def naive_k_occurrence(idx, n):
    counts = [0] * n
    for row in idx.tolist():
        for j in row:
            counts[j] += 1
    return torch.tensor(counts)


# --------------------------------------------------------------------------- laws


@pytest.mark.parametrize(
    ("law", "mean", "var"),
    [
        ("gaussian", 0.0, 1.0),
        ("uniform", 0.5, 1 / 12),
        ("uniform_centred", 0.0, 1 / 12),
        ("laplace", 0.0, 2.0),
        ("student_t:df=5", 0.0, 5 / 3),
        ("exponential", 1.0, 1.0),
        ("lognormal", math.exp(0.5), (math.e - 1) * math.e),
    ],
)
def test_sampler_moments_match_the_law(law, mean, var, seed):
    x = S.sample(law, 20000, 4, seed=seed, dtype=torch.float64).flatten()
    se = math.sqrt(var / x.numel())
    assert abs(float(x.mean()) - mean) < 6 * se
    # the variance of heavy-tailed laws converges slowly: a relative tolerance
    assert float(x.var()) == pytest.approx(var, rel=0.12)


@pytest.mark.parametrize(
    "law",
    ["gaussian", "uniform", "laplace", "student_t:df=7", "exponential", "lognormal"],
)
def test_symmetric_laws_have_zero_skew_and_asymmetric_ones_do_not(law, seed):
    x = S.sample(law, 20000, 3, seed=seed, dtype=torch.float64).flatten().numpy()
    skew = st.skew(x)
    if S.parse_law(law)[0] in S.SYMMETRIC_LAWS:
        assert abs(skew) < 0.25
    else:
        assert skew > 1.0  # exponential: 2, log-normal: about 6.2


def test_anisotropic_variances_follow_the_power_law_with_trace_d(seed):
    d = 6
    x = S.sample("anisotropic:alpha=2", 20000, d, seed=seed, dtype=torch.float64)
    want = torch.arange(1, d + 1, dtype=torch.float64) ** -2.0
    want = want * d / want.sum()
    torch.testing.assert_close(x.var(0), want, rtol=0.06, atol=0.0)


def test_shifted_mean_has_norm_c_sqrt_d(seed):
    d, c = 16, 0.5
    x = S.sample(f"shifted:c={c}", 40000, d, seed=seed, dtype=torch.float64)
    assert float(x.mean(0).norm()) == pytest.approx(c * math.sqrt(d), abs=0.05)
    assert float(x.var(0).mean()) == pytest.approx(1.0, rel=0.03)


def test_low_rank_spans_exactly_rank_dimensions(seed):
    x = S.sample("low_rank:rank=3", 200, 12, seed=seed, dtype=torch.float64)
    assert int(torch.linalg.matrix_rank(x)) == 3


def test_mixture_points_sit_around_their_centres(seed):
    x, labels, centres = S.sample_mixture(
        3000, 5, components=3, spread=3.0, seed=seed, dtype=torch.float64
    )
    resid = x - centres[labels]
    assert float(resid.var(0).mean()) == pytest.approx(1.0, rel=0.1)
    assert set(labels.tolist()) == {0, 1, 2}


def test_same_seed_same_draw_and_generator_equals_seed(dtype, device):
    a = S.sample("laplace", 50, 7, seed=3, dtype=dtype, device=device)
    b = S.sample(
        "laplace",
        50,
        7,
        generator=torch.Generator().manual_seed(3),
        dtype=dtype,
        device=device,
    )
    c = S.sample("laplace", 50, 7, seed=4, dtype=dtype, device=device)
    assert a.dtype == dtype and a.device.type == device.type
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_parse_law_fills_defaults_and_reads_options():
    assert S.parse_law("student_t") == ("student_t", {"df": 3})
    assert S.parse_law("mixture:components=2,spread=4") == (
        "mixture",
        {"components": 2, "spread": 4.0},
    )


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("cauchy", "one of"),
        ("gaussian:alpha=1", "options among"),
        ("anisotropic:alpha", "options among"),
        ("anisotropic:alpha=x", "a number"),
        ("low_rank:rank=2.5", "positive integer"),
        ("student_t:df=0", "positive integer"),
    ],
)
def test_bad_law_specs_raise_clear_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        S.parse_law(spec)


def test_bad_sampler_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="`n` must be"):
        S.sample("gaussian", 0, 3, seed=0)
    with pytest.raises(TypeError, match="`d` must be an integer"):
        S.sample("gaussian", 3, 2.0, seed=0)
    with pytest.raises(ValueError, match="`seed` must be an integer"):
        S.sample("gaussian", 3, 2)
    with pytest.raises(ValueError, match="rank at most"):
        S.sample("low_rank:rank=5", 3, 2, seed=0)
    with pytest.raises(TypeError, match="`generator` must be"):
        S.sample("gaussian", 3, 2, generator=0)
    with pytest.raises(TypeError, match="`dtype` must be"):
        S.sample("gaussian", 3, 2, seed=0, dtype=torch.int64)
    with pytest.raises(TypeError, match="`spec` must be a string"):
        S.sample(3, 3, 2, seed=0)


# --------------------------------------------------------------------------- two modalities


def test_two_modality_directions_are_orthonormal_or_equal(seed):
    u, v = S.two_modality_directions(32, seed=seed)
    assert float(u.norm()) == pytest.approx(1.0) and float(v.norm()) == pytest.approx(
        1.0
    )
    assert abs(float(u @ v)) < 1e-12
    u2, v2 = S.two_modality_directions(32, gap_along="cone", seed=seed)
    torch.testing.assert_close(u2, v2)


def test_two_modality_gap_offset_has_norm_gamma_sqrt_d(seed):
    n, d, cone, gap, sigma = 20000, 16, 0.5, 0.8, 1.0
    w = S.sample_two_modality(
        n,
        d,
        cone=cone,
        gap=gap,
        sigma=sigma,
        bank_size=10,
        normalize=False,
        seed=seed,
        dtype=torch.float64,
    )
    # paired items share the latent, so the mean difference is the gap offset plus noise
    diff = (w.gallery - w.query).mean(0)
    want = gap * math.sqrt(d) * w.gap_direction
    tol = 6 * sigma * math.sqrt(2 / n)  # six standard errors per coordinate
    assert float((diff - want).abs().max()) < tol
    assert float(diff.norm()) == pytest.approx(
        gap * math.sqrt(d), abs=tol * math.sqrt(d)
    )
    # the shared part: the mean of both modalities is the cone offset c sqrt(d) u
    mid = (w.gallery + w.query).mean(0) / 2
    assert float(mid @ w.cone_direction) == pytest.approx(cone * math.sqrt(d), abs=0.1)
    # the directions are those drawn first from the same seed
    u, v = S.two_modality_directions(d, seed=seed)
    torch.testing.assert_close(w.cone_direction, u)
    torch.testing.assert_close(w.gap_direction, v)


def test_two_modality_sample_shapes_unit_norms_and_independent_banks(seed):
    w = S.sample_two_modality(30, 8, gap=0.5, bank_size=40, seed=seed)
    assert w.query.shape == (30, 8) and w.bank_query.shape == (40, 8)
    torch.testing.assert_close(w.gallery.norm(dim=1), torch.ones(30), rtol=0, atol=1e-6)
    # paired test items are closer to their partner than bank items are to theirs
    paired = (w.query * w.gallery).sum(1).mean()
    unpaired = (w.bank_query[:30] * w.bank_gallery[:30]).sum(1).mean()
    assert paired > unpaired
    assert S.sample_two_modality(30, 8, seed=seed).bank_gallery.shape == (
        120,
        8,
    )  # default 4n


def test_two_modality_bad_arguments():
    with pytest.raises(ValueError, match="`gap` must be"):
        S.sample_two_modality(10, 4, gap=-1.0, seed=0)
    with pytest.raises(ValueError, match="`latent` must be one of"):
        S.sample_two_modality(10, 4, latent="cone", seed=0)
    with pytest.raises(ValueError, match="`gap_along` must be one of"):
        S.sample_two_modality(10, 4, gap_along="parallel", seed=0)
    w = S.sample_two_modality(10, 4, normalize=False, seed=0)
    with pytest.raises(ValueError, match="normalised draw"):
        S.two_modality_items(w)
    with pytest.raises(TypeError, match="TwoModalitySample"):
        S.two_modality_items(w.query)


# --------------------------------------------------------------------------- kNN and counts


def test_knn_on_hand_placed_points():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    idx, score = S.knn(x, k=2)
    assert idx.tolist() == [[1, 2], [0, 2], [1, 0], [2, 1]]
    assert score[0].tolist() == [-1.0, -9.0]  # minus squared distances
    # N_1: 0 <- 1, 1 <- 0 and 2, 2 <- 3
    assert S.k_occurrence_counts(idx, 4, k=1).tolist() == [1, 2, 1, 0]


@pytest.mark.parametrize("metric", S.METRICS)
@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_chunked_knn_equals_full_matrix(metric, chunk_size, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(53, 6, generator=g, dtype=torch.float64).to(dtype) + 0.3
    y = torch.randn(41, 6, generator=g, dtype=torch.float64).to(dtype)
    idx, _ = S.knn(x, k=5, metric=metric, chunk_size=chunk_size)
    torch.testing.assert_close(idx, naive_knn(x, k=5, metric=metric))
    idx2, _ = S.knn(x, y, k=4, metric=metric, chunk_size=chunk_size)
    torch.testing.assert_close(idx2, naive_knn(x, y, k=4, metric=metric))


@settings(max_examples=25, deadline=None)
@given(
    n=hs.integers(3, 40),
    d=hs.integers(1, 8),
    k=hs.integers(1, 5),
    chunk=hs.integers(1, 50),
    seed=hs.integers(0, 2**31 - 1),
)
def test_k_occurrence_properties(n, d, k, chunk, seed):
    k = min(k, n - 1)
    x = torch.randn(
        n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    before = x.clone()
    idx, _ = S.knn(x, k=k, chunk_size=chunk)
    n_k = S.k_occurrence_counts(idx, n)
    assert int(n_k.sum()) == n * k  # every top-k list has k slots
    assert not (idx == torch.arange(n).unsqueeze(1)).any()  # self excluded
    assert torch.equal(n_k, naive_k_occurrence(idx, n))
    torch.testing.assert_close(x, before, rtol=0, atol=0)  # input untouched


def test_cosine_k_occurrence_agrees_with_hubness_module(seed):
    x = S.sample("uniform", 300, 20, seed=seed)
    idx, _ = S.knn(x, k=10, metric="cosine", chunk_size=64)
    ours = S.k_occurrence_counts(idx, 300)
    theirs = hubness.k_occurrence_from_embeddings(
        x, k=10, metric="cosine", chunk_size=64
    )
    assert torch.equal(ours.cpu(), theirs.cpu().long())


def test_knn_bad_arguments():
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match="`k` must be an integer in \\[1, 4\\]"):
        S.knn(x, k=5)
    with pytest.raises(ValueError, match="`gallery` must be of width 3"):
        S.knn(x, torch.randn(4, 2), k=1)
    with pytest.raises(ValueError, match="`metric` must be one of"):
        S.knn(x, k=1, metric="manhattan")
    with pytest.raises(TypeError, match="floating-point"):
        S.knn(torch.ones(5, 3, dtype=torch.long), k=1)
    with pytest.raises(ValueError, match="finite"):
        S.knn(torch.full((5, 3), math.nan), k=1)


# --------------------------------------------------------------------------- statistics


@settings(max_examples=40, deadline=None)
@given(
    a=hs.lists(hs.integers(0, 6), min_size=3, max_size=40),
    seed=hs.integers(0, 1000),
)
def test_spearman_matches_scipy_with_ties(a, seed):
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 4, size=len(a)).astype(float) + rng.normal(size=len(a)) * (
        seed % 2
    )
    ta, tb = torch.tensor(a), torch.tensor(b)
    ours = S.spearman(ta, tb)
    if len(set(a)) < 2 or len(set(b.tolist())) < 2:
        assert math.isnan(ours)
    else:
        assert ours == pytest.approx(st.spearmanr(a, b).statistic, abs=1e-12)


def test_spearman_hand_values_and_errors():
    assert S.spearman(
        torch.tensor([1.0, 2.0, 3.0]), torch.tensor([30.0, 20.0, 10.0])
    ) == pytest.approx(-1.0, abs=1e-12)
    # ties: ranks of [1, 1, 2] are [1.5, 1.5, 3]
    assert S.spearman(
        torch.tensor([1, 1, 2]), torch.tensor([1.0, 2.0, 3.0])
    ) == pytest.approx(math.sqrt(3) / 2)
    with pytest.raises(ValueError, match="of the length of `a`"):
        S.spearman(torch.zeros(3), torch.zeros(4))


def test_cohens_d_hand_value():
    # means 3 and 1, variances 2 and 2: d = 2 / sqrt(2)
    assert S.cohens_d(
        torch.tensor([2.0, 4.0]), torch.tensor([0.0, 2.0])
    ) == pytest.approx(math.sqrt(2))
    a, b = torch.tensor([1.0, 2.0, 6.0]), torch.tensor([0.0, 1.0, 1.0, 3.0])
    sp = math.sqrt(
        (2 * np.var([1, 2, 6], ddof=1) + 3 * np.var([0, 1, 1, 3], ddof=1)) / 5
    )
    assert S.cohens_d(a, b) == pytest.approx((3 - 1.25) / sp)


def test_global_centrality_euclidean_and_cosine():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    torch.testing.assert_close(S.global_centrality(x), torch.full((4,), math.sqrt(2)))
    # cosine: rows normalised first; (0, 0) has no direction and stays at the origin
    y = torch.tensor([[3.0, 0.0], [0.0, 5.0]])
    torch.testing.assert_close(
        S.global_centrality(y, "cosine"), torch.full((2,), math.sqrt(0.5))
    )


def test_single_set_items_columns_and_component_centrality(seed):
    x, labels, centres = S.sample_mixture(400, 10, components=3, seed=seed)
    items = S.single_set_items(x, k=5, metric="euclidean", labels=labels)
    assert list(items.columns) == [
        "n_k",
        "centrality",
        "local_density",
        "component_centrality",
    ]
    assert int(items["n_k"].sum()) == 400 * 5
    own = (x - centres[labels]).norm(dim=1)  # true centres vs the sample means: close
    assert np.corrcoef(own.numpy(), items["component_centrality"])[0, 1] > 0.95


# --------------------------------------------------------------------------- the claims at toy scale


def _skew_by_dim(law, metric, dims, n=1000, replicates=2, seed=0):
    df = S.simulate_single_set(
        [law], dims, n=n, metrics=[metric], replicates=replicates, seed=seed
    )
    sk = df[df.statistic == "skewness"].groupby("d")["value"].mean()
    return sk, df


def test_skewness_grows_with_dimension_for_iid_gaussian(seed):
    sk, df = _skew_by_dim("gaussian", "euclidean", [2, 20, 100], seed=seed)
    assert abs(sk[2]) < 0.8  # low d: near-symmetric N_k
    assert sk[2] < sk[20] < sk[100]
    assert sk[100] > 2.0
    rho = df[(df.statistic == "rho_centrality") & (df.d == 100)]["value"].mean()
    assert rho < -0.7  # R2: hubs sit near the mean


def test_cosine_caveat_centred_isotropic_has_no_hubness_but_uniform_has(seed):
    sk_gauss, _ = _skew_by_dim("gaussian", "cosine", [100], seed=seed)
    sk_unif, _ = _skew_by_dim("uniform", "cosine", [100], seed=seed)
    sk_cent, _ = _skew_by_dim("uniform", "cosine_centred", [100], seed=seed)
    assert sk_gauss[100] < 1.0 and sk_cent[100] < 1.0
    assert sk_unif[100] > 2.0


def test_two_modality_signs_follow_t2(seed):
    df = S.simulate_two_modality(
        [0.0, 0.5],
        [0.0, 0.5],
        n=600,
        d=64,
        sigma=1.0,
        replicates=1,
        seed=seed,
        beta=None,
    )
    verdict, det = S.verdict_d1(df)
    det = det.set_index(["cone", "gap"])
    assert det.loc[(0.5, 0.0), "inside"]  # cone, no gap: hubs central to both banks
    assert (
        det.loc[(0.0, 0.5), "rho_g"] < -0.3
    )  # gap alone: query-side hubs peripheral in the gallery
    assert det.loc[(0.0, 0.5), "rho_q"] > 0.3
    assert verdict == "not supported"


def test_grid_cells_do_not_depend_on_the_rest_of_the_grid():
    a = S.simulate_single_set(
        ["gaussian"], [3, 8], n=60, metrics=["euclidean"], replicates=1, seed=5
    )
    b = S.simulate_single_set(
        ["uniform", "gaussian"], [8], n=60, metrics=["euclidean"], replicates=1, seed=5
    )
    pick = lambda f: f[(f.law == "gaussian") & (f.d == 8)].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(pick(a), pick(b))
    c = S.simulate_single_set(
        ["gaussian"], [8], n=60, metrics=["euclidean"], replicates=1, seed=6
    )
    assert not pick(a)["value"].equals(pick(c)["value"])


def test_tidy_columns_and_mixture_component_statistic():
    df = S.simulate_single_set(
        ["mixture:components=3"],
        [10],
        n=200,
        ks=[5, 10],
        metrics=["euclidean"],
        replicates=1,
    )
    assert list(df.columns) == [
        "experiment",
        "law",
        "metric",
        "d",
        "k",
        "seed",
        "statistic",
        "value",
    ]
    assert set(df.k) == {5, 10}
    assert "rho_component_centrality" in set(df.statistic)


def test_driver_bad_arguments():
    with pytest.raises(ValueError, match="`ks` must be at most n - 1"):
        S.simulate_single_set(["gaussian"], [3], n=20, ks=[20])
    with pytest.raises(ValueError, match="`dims` must be at least the rank"):
        S.simulate_single_set(["low_rank:rank=20"], [10], n=20)
    with pytest.raises(TypeError, match="`laws` must be a non-empty list"):
        S.simulate_single_set([], [3])
    with pytest.raises(ValueError, match="`metrics` must be one of"):
        S.simulate_single_set(["gaussian"], [3], n=20, metrics=["l1"])
    with pytest.raises(ValueError, match="`hub_fraction` must be in"):
        S.simulate_two_modality([0.0], [0.0], n=20, d=4, hub_fraction=1.5)


# --------------------------------------------------------------------------- summaries and verdicts


def test_summarize_gives_student_t_intervals():
    f = pd.DataFrame(
        {"law": ["a"] * 3 + ["b"], "seed": [0, 1, 2, 0], "value": [1.0, 2.0, 4.0, 5.0]}
    )
    out = S.summarize(f).set_index("law")
    lo, hi = st.t.interval(
        0.95, 2, loc=7 / 3, scale=np.std([1, 2, 4], ddof=1) / math.sqrt(3)
    )
    assert out.loc["a", "ci_low"] == pytest.approx(lo) and out.loc[
        "a", "ci_high"
    ] == pytest.approx(hi)
    assert out.loc["b", "n"] == 1 and math.isnan(out.loc["b", "ci_low"])
    with pytest.raises(ValueError, match="`by` must be columns"):
        S.summarize(f, by=["metric"])


def _frame(rows):
    return pd.DataFrame(
        rows,
        columns=["experiment", "law", "metric", "d", "k", "seed", "statistic", "value"],
    )


def test_verdict_r1_counts_replicates_with_an_increase():
    rows = []
    for seed, (lo, hi) in enumerate(
        [(0.1, 2.0), (0.2, 3.0), (0.0, 1.0), (0.3, 0.1), (0.1, 4.0)]
    ):
        rows += [
            ("e", "g", "euclidean", 3, 10, seed, "skewness", lo),
            ("e", "g", "euclidean", 100, 10, seed, "skewness", hi),
        ]
    verdict, det = S.verdict_r1(_frame(rows))
    assert verdict == "supported" and det["fraction"].iloc[0] == pytest.approx(0.8)
    assert S.verdict_r1(_frame(rows), min_fraction=1.0)[0] == "not supported"


def test_verdict_r2_uses_only_d_at_least_20():
    rows = [
        ("e", "g", "euclidean", 3, 10, 0, "rho_centrality", -0.1),
        ("e", "g", "euclidean", 20, 10, 0, "rho_centrality", -0.8),
        ("e", "g", "euclidean", 100, 10, 0, "rho_centrality", -0.6),
    ]
    assert S.verdict_r2(_frame(rows))[0] == "supported"
    rows.append(("e", "u", "euclidean", 100, 10, 0, "rho_centrality", -0.4))
    verdict, det = S.verdict_r2(_frame(rows))
    assert verdict == "not supported" and det["ok"].sum() == 2


def test_verdict_d1_region_from_hand_frame():
    rows = []
    for cone, gap, rq, rg in [
        (0.5, 0.0, 0.8, 0.7),
        (0.0, 0.5, 0.8, -0.6),
        (0.5, 0.5, 0.9, 0.4),
    ]:
        for stat, v in (("rho_q", rq), ("rho_g", rg)):
            rows.append(
                (
                    "two_modality",
                    "isotropic",
                    "orthogonal",
                    cone,
                    gap,
                    8,
                    10,
                    0,
                    stat,
                    v,
                )
            )
    cols = [
        "experiment",
        "latent",
        "gap_along",
        "cone",
        "gap",
        "d",
        "k",
        "seed",
        "statistic",
        "value",
    ]
    verdict, det = S.verdict_d1(pd.DataFrame(rows, columns=cols))
    assert verdict == "not supported"
    assert det.set_index(["cone", "gap"])["inside"].to_dict() == {
        (0.5, 0.0): True,
        (0.0, 0.5): False,
        (0.5, 0.5): False,
    }


def test_verdict_t3_and_paired_difference_on_hand_frames():
    cols = [
        "experiment",
        "latent",
        "gap_along",
        "cone",
        "gap",
        "d",
        "k",
        "method",
        "seed",
        "statistic",
        "value",
    ]
    rows = []
    for gap, none, isq, dual in [(0.0, 40.0, 42.0, 43.0), (0.5, 40.0, 42.0, 41.0)]:
        for seed, shift in ((0, 0.0), (1, 10.0)):  # seed 1: an easier world, same gains
            for method, v in (("none", none), ("is_q", isq), ("dualis", dual)):
                rows.append(
                    (
                        "b",
                        "isotropic",
                        "orthogonal",
                        0.5,
                        gap,
                        8,
                        10,
                        method,
                        seed,
                        "R@1",
                        v + shift,
                    )
                )
    benefit = pd.DataFrame(rows, columns=cols)
    region = pd.DataFrame(
        {
            "latent": ["isotropic"] * 2,
            "gap_along": ["orthogonal"] * 2,
            "cone": [0.5, 0.5],
            "gap": [0.0, 0.5],
            "inside": [True, False],
        }
    )
    verdict, det = S.verdict_t3(region, benefit)
    assert verdict == "supported" and det["agrees"].all()
    region.loc[1, "inside"] = True
    assert S.verdict_t3(region, benefit)[0] == "not supported"
    gain = S.paired_difference(benefit)
    assert set(gain["method"]) == {"is_q", "dualis"}
    # the world shift of seed 1 cancels: gains are identical across seeds
    g = gain.groupby(["method", "gap"])["value"].agg(["min", "max"])
    assert (g["min"] == g["max"]).all()
    assert g.loc[("dualis", 0.0), "min"] == 3.0
    with pytest.raises(ValueError, match="`reference` must be one of"):
        S.paired_difference(benefit, reference="csls")


def test_bank_benefit_runs_and_is_in_range():
    df = S.simulate_bank_benefit([0.5], [0.0], n=120, d=16, replicates=1, bank_size=200)
    r1 = df[df.statistic == "R@1"].set_index("method")["value"]
    assert set(r1.index) == set(S.BANK_METHODS)
    assert ((r1 >= 0) & (r1 <= 100)).all()
    with pytest.raises(ValueError, match="`methods` must be one of"):
        S.simulate_bank_benefit([0.5], [0.0], n=20, d=4, methods=["sinkhorn"])


def test_intrinsic_dimension_frame_has_both_curves():
    df = S.simulate_intrinsic_dimension([2, 8], 8, n=80, replicates=1)
    assert set(df["law"]) == {"embedded in D = 8", "plain, d = m"}
    assert set(df["m"]) == {2, 8}
    with pytest.raises(ValueError, match="`ranks` must be at most embedding_dim"):
        S.simulate_intrinsic_dimension([9], 8)


def test_summary_value_picks_one_row_or_nan():
    s = pd.DataFrame({"law": ["a", "b"], "d": [3, 3], "mean": [1.5, 2.5]})
    assert S.summary_value(s, law="b", d=3) == 2.5
    assert math.isnan(S.summary_value(s, law="c", d=3))
    with pytest.raises(ValueError, match="at most one row"):
        S.summary_value(s, d=3)
    with pytest.raises(ValueError, match="`metric` must be a column"):
        S.summary_value(s, metric="cosine")


def test_plots_return_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = S.simulate_single_set(
        ["gaussian"], [3, 8], n=60, metrics=["euclidean"], replicates=2
    )
    summ = S.summarize(df[df.statistic == "skewness"])
    items = S.single_set_items(S.sample("gaussian", 60, 4, seed=0), k=3)
    w = S.two_modality_items(
        S.sample_two_modality(50, 8, bank_size=60, seed=0), k=3, beta=None
    )
    figs = [
        S.plot_lines(summ),
        S.plot_histograms({"a": items["n_k"]}, k=3),
        S.plot_scatter_grid({("a", "b"): items}),
        S.plot_heatmap(pd.DataFrame([[0.5, -0.5], [0.2, 0.1]]), zero_contour=True),
        S.plot_hub_boxes({"w": w}, hub_fraction=0.1),
    ]
    for fig in figs:
        assert fig.axes
        plt.close(fig)


@pytest.mark.gpu
def test_cuda_results_equal_cpu_results():
    x = S.sample("uniform", 500, 32, seed=1)
    idx_cpu, _ = S.knn(x, k=5, metric="cosine", chunk_size=64)
    idx_gpu, _ = S.knn(x.cuda(), k=5, metric="cosine", chunk_size=64)
    assert torch.equal(idx_cpu, idx_gpu.cpu())
    a = S.simulate_single_set(["gaussian"], [16], n=200, replicates=1, device="cpu")
    b = S.simulate_single_set(["gaussian"], [16], n=200, replicates=1, device="cuda")
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-4, atol=1e-4)
