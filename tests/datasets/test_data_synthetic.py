"""The synthetic CLIP-like generator hits its requested statistics."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hubrepro.datasets import SyntheticConfig, describe, load_dataset, make_synthetic
from hubrepro.datasets.synthetic import gap_norm, mean_cosine

SMALL = dict(n_gallery=120, n_bank_gallery=200, dim=32, n_concepts=20)


def test_shapes_captions_and_labels(seed):
    d = make_synthetic(
        seed=seed, captions_per_item=3, bank_captions_per_item=2, **SMALL
    )
    assert d.query.shape == (360, 32) and d.gallery.shape == (120, 32)
    assert d.bank_query.shape == (400, 32) and d.bank_gallery.shape == (200, 32)
    torch.testing.assert_close(
        d.query_to_gallery, torch.arange(120).repeat_interleave(3)
    )
    torch.testing.assert_close(
        d.bank_query_to_gallery, torch.arange(200).repeat_interleave(2)
    )
    for x in (d.query, d.gallery, d.bank_query, d.bank_gallery):
        torch.testing.assert_close(x.norm(dim=1), torch.ones(x.shape[0]))
    # label consistency: a query's concept is its gallery item's concept
    assert torch.equal(d.query_labels, d.gallery_labels[d.query_to_gallery])
    assert torch.equal(
        d.bank_query_labels, d.bank_gallery_labels[d.bank_query_to_gallery]
    )
    assert int(d.gallery_labels.max()) < 20 and int(d.gallery_labels.min()) >= 0


@pytest.mark.parametrize("gap", [0.2, 0.5, 0.8, 1.2])
def test_gap_norm_is_hit_exactly_on_the_test_split(gap):
    d = make_synthetic(gap=gap, seed=1, **SMALL)
    assert gap_norm(d.query, d.gallery) == pytest.approx(gap, abs=1e-4)
    # the bank shares the offset: its gap is close (sampling error only)
    assert gap_norm(d.bank_query, d.bank_gallery) == pytest.approx(gap, abs=0.15)


def test_gap_zero_is_the_smallest_reachable():
    d = make_synthetic(gap=0.0, seed=0, **SMALL)
    assert gap_norm(d.query, d.gallery) < 0.05


def test_seeded_determinism(seed):
    a = make_synthetic(seed=seed, **SMALL)
    b = make_synthetic(seed=seed, **SMALL)
    c = make_synthetic(seed=seed + 1, **SMALL)
    for name in ("query", "gallery", "bank_query", "bank_gallery", "gallery_labels"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.query, c.query)
    g = torch.Generator().manual_seed(seed)
    d = make_synthetic(generator=g, **SMALL)
    assert torch.equal(d.query, a.query)


def test_dtype_and_device(dtype, device):
    d = make_synthetic(dtype=dtype, device=device, **SMALL)
    assert d.query.dtype == dtype and d.query.device.type == device.type


def test_cone_raises_the_mean_cosine():
    lo = make_synthetic(cone=0.0, seed=0, **SMALL)
    hi = make_synthetic(cone=2.0, seed=0, **SMALL)
    assert mean_cosine(hi.gallery) > mean_cosine(lo.gallery) + 0.2


def test_noise_lowers_recall():
    clean = describe(make_synthetic(noise=0.2, seed=0, **SMALL))
    noisy = describe(make_synthetic(noise=3.0, seed=0, **SMALL))
    assert clean["R@1"] > noisy["R@1"] + 20


def test_shift_changes_only_the_bank():
    base = make_synthetic(seed=0, **SMALL)
    shifted = make_synthetic(seed=0, shift=1.0, **SMALL)
    assert torch.equal(base.query, shifted.query)  # the test draw is shared
    torch.testing.assert_close(base.gallery_labels, shifted.gallery_labels)

    # bank concept frequencies move away from the test prior
    def freq(lab):
        return torch.bincount(lab, minlength=20).double() / lab.numel()

    tv_base = (freq(base.bank_gallery_labels) - freq(base.gallery_labels)).abs().sum()
    tv_shift = (
        (freq(shifted.bank_gallery_labels) - freq(shifted.gallery_labels)).abs().sum()
    )
    assert tv_shift > tv_base


def test_describe_matches_naive_statistics():
    d = make_synthetic(seed=2, **SMALL)
    out = describe(d, k=5)
    sims = d.query @ d.gallery.T
    r1 = 100.0 * (sims.argmax(1) == d.gt).double().mean()
    assert out["R@1"] == pytest.approx(float(r1), abs=1e-6)
    top = sims.topk(5, dim=1).indices
    n_k = torch.bincount(top.reshape(-1), minlength=d.n_gallery).double()
    z = (n_k - n_k.mean()) / n_k.std(unbiased=False)
    assert out["skewness"] == pytest.approx(float((z**3).mean()), rel=1e-4)
    naive = (d.gallery @ d.gallery.T).double()
    n = d.n_gallery
    assert out["mean_cos_gallery"] == pytest.approx(
        float((naive.sum() - naive.trace()) / (n * (n - 1))), abs=1e-5
    )
    assert out["n_query"] == 120


@settings(max_examples=15, deadline=None)
@given(gap=st.floats(0.1, 1.5), cpi=st.integers(1, 4), seed=st.integers(0, 1000))
def test_property_requested_gap_and_captions(gap, cpi, seed):
    d = make_synthetic(
        gap=gap,
        captions_per_item=cpi,
        n_gallery=40,
        n_bank_gallery=30,
        dim=16,
        n_concepts=8,
        seed=seed,
    )
    assert gap_norm(d.query, d.gallery) == pytest.approx(gap, abs=1e-3)
    assert d.n_query == 40 * cpi
    assert torch.equal(
        torch.bincount(d.query_to_gallery, minlength=40), torch.full((40,), cpi)
    )


def test_config_object_and_overrides():
    cfg = SyntheticConfig(dim=24, n_gallery=50, n_bank_gallery=10, n_concepts=5)
    d = make_synthetic(cfg, gap=0.3)
    assert d.dim == 24 and d.meta["config"]["gap"] == 0.3
    assert (
        load_dataset("synthetic", seed=0, dim=24, n_gallery=50, n_bank_gallery=10).dim
        == 24
    )


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        ({"gap": 2.0}, ValueError, "`gap` must be in"),
        ({"noise": -1.0}, ValueError, "`noise` must be non-negative"),
        ({"n_gallery": 0}, ValueError, "`n_gallery`"),
        ({"shift": 1.5}, ValueError, "`shift`"),
        ({"dim": 2.5}, TypeError, "`dim`"),
        ({"colour": 1}, ValueError, "unknown key"),
        ({"dtype": torch.int64}, TypeError, "`dtype`"),
        ({"generator": 3}, TypeError, "`generator`"),
    ],
)
def test_bad_options_are_rejected(kw, exc, match):
    with pytest.raises(exc, match=match):
        make_synthetic(**{**SMALL, **kw})


def test_describe_rejects_non_paired_data():
    with pytest.raises(TypeError, match="PairedData"):
        describe(torch.zeros(3, 3))
