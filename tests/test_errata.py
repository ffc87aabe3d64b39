"""Each defect of the released DBNorm code is demonstrated, and ours does not have it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hubrepro import errata
from hubrepro.normalize import normalize


@pytest.fixture
def mats(seed):
    rng = np.random.default_rng(seed)
    n_q, n_g, m_q, m_g, d = (
        30,
        20,
        50,
        30,
        8,
    )  # m_g == n_q: the D1 output even "evaluates"

    def unit(n):
        x = rng.normal(size=(n, d))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    g = unit(n_g)
    q = unit(n_q) * 0.3 + g[np.arange(n_q) % n_g] * 0.7
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    bq, bg = unit(m_q), unit(m_g)
    gt = np.arange(n_q) % n_g
    return q @ g.T, bq @ g.T, bg @ g.T, gt


def test_released_is_formula_by_hand():
    s = np.array([[0.5, 0.1]])
    bank = np.array([[0.2, 0.3], [0.1, 0.0]])
    beta = 2.0
    expected = np.exp(beta * s) / np.array(
        [np.exp(0.4) + np.exp(0.2), np.exp(0.6) + np.exp(0.0)]
    )
    np.testing.assert_allclose(errata.released_is(s, bank, beta), expected)


def test_d1_output_has_bank_gallery_shape_and_ignores_sims(mats):
    s, pq, pg, gt = mats
    out = errata.released_db_norm(pq, s, pg, 5.0, 5.0)
    assert out.shape == pg.shape
    np.testing.assert_array_equal(
        out, errata.released_db_norm(pq, np.zeros_like(s), pg, 5.0, 5.0)
    )
    fixed = errata.released_db_norm(pq, s, pg, 5.0, 5.0, fix_d1=True)
    assert fixed.shape == s.shape
    ours = normalize(
        "dualis",
        torch.from_numpy(s),
        bank_query_sims=torch.from_numpy(pq),
        bank_gallery_sims=torch.from_numpy(pg),
        beta_query=5.0,
        beta_gallery=5.0,
    )
    # with D1 fixed, the released product ranks every row like ours
    np.testing.assert_array_equal(
        np.argsort(-fixed, axis=1, kind="stable"),
        np.argsort(-ours.numpy(), axis=1, kind="stable"),
    )
    demo = errata.demo_d1_wrong_matrix(
        s, pq, pg, beta_query=5.0, beta_gallery=5.0, query_to_gallery=gt
    )
    assert demo["released_shape"] == pg.shape and not demo["reads_sims"]
    assert demo["fixed_R@1"] == pytest.approx(demo["ours_R@1"])


def test_d2_skewness_crashes_and_fix_is_retrieved_only_skew(mats):
    s = mats[0]
    with pytest.raises(NameError, match="Counter"):
        errata.released_get_skewness(s)
    assert errata.demo_d2_skewness_crash(s)["error"].startswith("NameError")
    # D8: the fixed statistic equals scipy's biased skewness of the non-zero counts
    top = np.argsort(-s, axis=1, kind="stable")[:, :10]
    counts = np.bincount(top.ravel(), minlength=s.shape[1])
    expected = scipy.stats.skew(counts[counts > 0].astype(float))
    assert errata.released_get_skewness(s, 10, fix_d2=True) == pytest.approx(expected)


def test_d8_differs_from_standard_skewness_when_there_are_antihubs():
    # 4 queries all retrieve items 0 and 1 (k=2): items 2..5 are anti-hubs
    s = np.tile(np.array([[0.9, 0.8, 0.1, 0.0, -0.1, -0.2]]), (4, 1))
    demo = errata.demo_d8_skewness(s, k=2)
    assert demo["antihub_rate"] == pytest.approx(4 / 6)
    n_k = np.array([4, 4, 0, 0, 0, 0], dtype=float)
    assert demo["standard_skewness"] == pytest.approx(scipy.stats.skew(n_k))
    assert np.isnan(
        demo["released_skewness"]
    )  # retrieved items only: two equal counts, 0/0


def test_d3_dynamic_path_mutates_and_squares(mats):
    s, pq, pg, gt = mats
    victim_pg = pg.copy()
    out = errata.released_db_norm(pq, s, victim_pg, 5.0, 5.0, k=1, dynamic=True)
    np.testing.assert_allclose(
        out, victim_pg * victim_pg
    )  # one processed array squared
    assert not np.array_equal(
        victim_pg, pg
    )  # the caller's bank-gallery matrix was modified
    victim_s = s.copy()
    errata.released_db_norm(pq, victim_s, pg, 5.0, 5.0, k=1, dynamic=True, fix_d1=True)
    assert not np.array_equal(victim_s, s)
    demo = errata.demo_d3_aliasing(
        s, pq, pg, beta_query=5.0, beta_gallery=5.0, query_to_gallery=gt
    )
    assert demo["mutates_input"] and not demo["ours_mutates_input"]
    assert demo["terms_are_one_array"]
    # with D3 also fixed, the released dynamic product ranks like our faithful mode
    assert demo["fixed_R@1"] == pytest.approx(demo["ours_R@1"])


def test_d3_result_is_one_array_times_itself(mats):
    s, pq, pg, _ = mats
    victim = s.copy()
    first = errata.released_dis(pq, victim, 5.0, 1)
    assert first is victim
    second = errata.released_dis(pg, victim, 5.0, 1)
    assert second is first  # the "two terms" are the same object


def test_d4_ungated_rows_rank_by_s_squared():
    # one query whose top-1 (column 0) is in neither activation set; negative scores
    s = np.array([[0.2, -0.5, -0.9]])
    pq = np.array([[0.0, 1.0, 0.0]])  # bank top-1 is column 1
    pg = np.array([[0.0, 0.0, 1.0]])  # bank top-1 is column 2
    out = errata.released_db_norm(
        pq, s, pg, 1.0, 1.0, k=1, dynamic=True, fix_d1=True, fix_d3=True
    )
    np.testing.assert_allclose(out, s * s)
    assert int(np.argmax(out)) == 2  # S^2 puts the worst item first
    demo = errata.demo_d4_mixed_scales(
        s, pq, pg, beta_query=1.0, beta_gallery=1.0, query_to_gallery=np.array([0])
    )
    assert demo["rows_gated_by_neither"] == 1 and demo["rows_with_reversed_order"] == 1
    assert demo["principled_R@1"] == 100.0 and demo["faithful_R@1"] == 0.0


def test_d5_overflow_on_logit_float32(mats):
    s, pq, pg, _ = mats
    demo = errata.demo_d5_overflow(s, pq, pg, beta=20.0, scale=100.0)
    assert demo["released_nonfinite_fraction"] > 0.0
    assert demo["ours_nonfinite_fraction"] == 0.0
    small = errata.demo_d5_overflow(s, pq, pg, beta=0.01, scale=1.0)
    assert small["released_nonfinite_fraction"] == 0.0


def test_defect_table(mats):
    s, pq, pg, gt = mats
    t = errata.defect_table(
        s, pq, pg, beta_query=5.0, beta_gallery=5.0, query_to_gallery=gt
    )
    assert list(t["defect"]) == ["D1", "D2", "D3", "D4", "D5", "D8"]
    assert t.notna().all().all()


def test_bad_inputs():
    with pytest.raises(TypeError, match="numpy"):
        errata.released_db_norm(torch.zeros(2, 2), np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="2-D"):
        errata.released_get_skewness(np.zeros(3))
    with pytest.raises(ValueError, match="beta"):
        errata.demo_d5_overflow(
            np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)), beta=-1.0
        )


@settings(max_examples=25, deadline=None)
@given(
    n_q=st.integers(1, 6),
    n_g=st.integers(2, 6),
    m_q=st.integers(1, 6),
    m_g=st.integers(1, 6),
    beta_query=st.floats(0.1, 10.0),
    beta_gallery=st.floats(0.1, 10.0),
    seed=st.integers(0, 2**16),
)
def test_released_dualis_with_d1_fixed_is_ours_in_log_space(
    n_q, n_g, m_q, m_g, beta_query, beta_gallery, seed
):
    # on cosine-scale float64 inputs nothing overflows, so once D1 is fixed the released
    # product equals exp((beta_q + beta_g) * ours): the same method, on another scale
    rng = np.random.default_rng(seed)
    s, pq, pg = (rng.uniform(-1, 1, size=(r, n_g)) for r in (n_q, m_q, m_g))
    released = errata.released_db_norm(pq, s, pg, beta_query, beta_gallery, fix_d1=True)
    ours = normalize("dualis", torch.from_numpy(s), bank_query_sims=torch.from_numpy(pq),
                     bank_gallery_sims=torch.from_numpy(pg), beta_query=beta_query, beta_gallery=beta_gallery)  # fmt: skip
    np.testing.assert_allclose(
        np.log(released) / (beta_query + beta_gallery),
        ours.numpy(),
        rtol=1e-9,
        atol=1e-9,
    )
    assert released.shape == s.shape


def test_default_betas_are_the_released_code_s_everywhere():
    # db_norm(..., beta1=1 / 1.99, beta2=3, ...) in DBNorm/dbnorm.py of
    # yimuwangcs/Better_Cross_Modal_Retrieval, commit 898bd23
    import inspect

    from hubrepro import normalize

    sig = inspect.signature(errata.released_db_norm).parameters
    assert (sig["beta_query"].default, sig["beta_gallery"].default) == (1 / 1.99, 3.0)
    for name in ("is", "dis", "dualis", "dualdis", "sn", "dbsn"):
        params = normalize.make_normalizer(name).get_params()
        assert params["beta_query"] == 1 / 1.99, name
        assert params.get("beta_gallery", 3.0) == 3.0, name
