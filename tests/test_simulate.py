"""Tests of hubrepro.simulate: samplers, per-point statistics, summaries, verdicts.

Oracles are written plainly here: the full distance matrix with ``torch.cdist``,
``scipy.stats.spearmanr``, ``scipy.stats.t``, a log-sum-exp in float64, and moments of
the laws from their textbook formulas. The chunked kNN itself is tested in
``tests/test_hubness.py``; the Monte Carlo grids of notebooks 20-22 in
``tests/experiments/test_theory_drivers.py``.
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


def test_single_set_items_several_k_from_one_pass(seed):
    x = S.sample("gaussian", 120, 6, seed=seed)
    many = S.single_set_items(x, k=(1, 3, 7), metric="cosine", local_k=4)
    assert list(many.columns[:3]) == ["n_1", "n_3", "n_7"]
    for k in (1, 3, 7):
        one = S.single_set_items(x, k=k, metric="cosine", local_k=4)
        assert many[f"n_{k}"].tolist() == one["n_k"].tolist()
        # N_k is the within-set k-occurrence of hubness, self excluded
        n_k = hubness.k_occurrence_from_embeddings(x, k=k, metric="cosine")
        assert one["n_k"].tolist() == n_k.tolist()
    # r_K: the mean cosine of the 4 nearest neighbours, from the full matrix
    xn = x.double() / x.double().norm(dim=1, keepdim=True)
    cos = (xn @ xn.T).fill_diagonal_(-math.inf)
    dens = torch.topk(cos, 4, dim=1).values.mean(1)
    np.testing.assert_allclose(many["local_density"], dens.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="`k` must be"):
        S.single_set_items(x, k=[])
    with pytest.raises(ValueError, match="`k` must be an integer in"):
        S.single_set_items(x, k=(3, 120))


def test_euclidean_local_density_is_minus_the_mean_distance(seed):
    x = S.sample("uniform", 80, 3, seed=seed, dtype=torch.float64)
    items = S.single_set_items(x, k=2, metric="euclidean", local_k=3)
    dist = torch.cdist(x, x).fill_diagonal_(math.inf)
    ref = -torch.topk(dist, 3, dim=1, largest=False).values.mean(1)
    np.testing.assert_allclose(items["local_density"], ref.numpy(), rtol=1e-9)


def test_two_modality_items_against_plain_formulas(seed):
    w = S.sample_two_modality(40, 8, cone=0.5, gap=0.5, bank_size=70, seed=seed)
    items = S.two_modality_items(w, k=3, beta=7.0, chunk_size=16)
    q, g = w.query.double(), w.gallery.double()
    top = torch.topk(q @ g.T, 3, dim=1).indices
    assert items["n_k"].tolist() == torch.bincount(top.flatten(), minlength=40).tolist()
    for col, bank in (("is_q", w.bank_query), ("is_g", w.bank_gallery)):
        lse = torch.logsumexp(7.0 * (bank.double() @ g.T), dim=0) / 7.0
        np.testing.assert_allclose(items[col], lse.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        items["m_bq"], (g @ w.bank_query.double().mean(0)).numpy(), rtol=1e-5
    )
    assert "is_q" not in S.two_modality_items(w, k=3, beta=None)


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
            for method, v in (("none", none), ("is", isq), ("dualis", dual)):
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
    assert set(gain["method"]) == {"is", "dualis"}
    # the world shift of seed 1 cancels: gains are identical across seeds
    g = gain.groupby(["method", "gap"])["value"].agg(["min", "max"])
    assert (g["min"] == g["max"]).all()
    assert g.loc[("dualis", 0.0), "min"] == 3.0
    with pytest.raises(ValueError, match="`reference` must be one of"):
        S.paired_difference(benefit, reference="csls")


def test_summary_value_picks_one_row_or_nan():
    s = pd.DataFrame({"law": ["a", "b"], "d": [3, 3], "mean": [1.5, 2.5]})
    assert S.summary_value(s, law="b", d=3) == 2.5
    assert math.isnan(S.summary_value(s, law="c", d=3))
    with pytest.raises(ValueError, match="at most one row"):
        S.summary_value(s, d=3)
    with pytest.raises(ValueError, match="`metric` must be a column"):
        S.summary_value(s, metric="cosine")


@pytest.mark.gpu
def test_cuda_items_equal_cpu_items():
    x = S.sample("uniform", 500, 32, seed=1)
    a = S.single_set_items(x, k=5, metric="cosine")
    b = S.single_set_items(x.cuda(), k=5, metric="cosine")
    assert a["n_k"].tolist() == b["n_k"].tolist()
    np.testing.assert_allclose(a["local_density"], b["local_density"], rtol=1e-4)
