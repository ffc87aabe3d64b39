"""PairedData and SimilarityData: validation, similarities, subsample, split_bank, purity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hubrepro.datasets import PairedData, SimilarityData, make_synthetic


def _data(seed=0, cpi=2, n=30, nb=25, dim=8):
    return make_synthetic(
        seed=seed,
        n_gallery=n,
        n_bank_gallery=nb,
        dim=dim,
        n_concepts=5,
        captions_per_item=cpi,
    )


def test_sims_equal_a_naive_cosine_loop(dtype):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(5, 4, generator=g, dtype=dtype) * 3
    gal = torch.randn(6, 4, generator=g, dtype=dtype)
    d = PairedData(
        "toy",
        q,
        gal,
        query_to_gallery=torch.tensor([0, 1, 2, 3, 4]),
        bank_query=q,
        bank_gallery=gal,
    )
    naive = torch.empty(5, 6, dtype=dtype)
    for i in range(5):
        for j in range(6):
            naive[i, j] = (q[i] @ gal[j]) / (q[i].norm() * gal[j].norm())
    torch.testing.assert_close(d.sims(), naive)
    torch.testing.assert_close(d.sims(chunk_size=2), naive)
    torch.testing.assert_close(d.bank_query_sims(), naive)
    assert d.bank_gallery_sims().shape == (6, 6)
    assert d.sims().dtype == dtype


def test_validation_messages():
    q, g = torch.randn(3, 4), torch.randn(4, 4)
    with pytest.raises(ValueError, match="`query_to_gallery` must be given"):
        PairedData("x", q, g)
    with pytest.raises(ValueError, match="`gallery` must be of dimension 4"):
        PairedData("x", q, torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"in the range \[0, 4\)"):
        PairedData("x", q, g, query_to_gallery=torch.tensor([0, 1, 9]))
    with pytest.raises(TypeError, match="integer"):
        PairedData("x", q, g, query_to_gallery=torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="floating-point"):
        PairedData(
            "x",
            torch.ones(3, 4, dtype=torch.int64),
            g,
            query_to_gallery=torch.tensor([0, 1, 2]),
        )
    with pytest.raises(ValueError, match="finite"):
        PairedData(
            "x",
            torch.full((3, 4), float("nan")),
            g,
            query_to_gallery=torch.tensor([0, 1, 2]),
        )
    with pytest.raises(ValueError, match="`bank_gallery` must be of dimension 4"):
        PairedData("x", q, q, bank_query=q, bank_gallery=torch.randn(2, 3))
    with pytest.raises(ValueError, match="`query_text` must be of length 3"):
        PairedData("x", q, q, query_text=("a", "b"))
    with pytest.raises(
        ValueError, match="bank_query_sims: `bank_query` must be present"
    ):
        PairedData("x", q, q).bank_query_sims()
    # numpy input is accepted and shares memory (no copy, no mutation)
    arr = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    d = PairedData("x", arr, arr)
    assert d.query.data_ptr() == d.gallery.data_ptr()


def _rows_match(
    small: PairedData, big: PairedData, field: str, big_field: str | None = None
):
    """Every row of `small.field` occurs in `big.big_field`; return the positions."""
    s, b = getattr(small, field), getattr(big, big_field or field)
    pos = torch.cdist(s.double(), b.double()).argmin(1)
    torch.testing.assert_close(b[pos], s)
    return pos


def test_subsample_keeps_queries_with_their_items(seed):
    d = _data(seed)
    before = d.query.clone()
    s = d.subsample(10, 7, seed=seed)
    assert s.n_gallery == 10 and s.n_query == 20  # two captions per item
    assert s.bank_gallery.shape[0] == 7 and s.bank_query.shape[0] == 14
    # every query still points at its own gallery item (mapped through the original)
    qpos = _rows_match(s, d, "query")
    gpos = _rows_match(s, d, "gallery")
    assert torch.equal(gpos[s.query_to_gallery], d.query_to_gallery[qpos])
    bq = _rows_match(s, d, "bank_query")
    bg = _rows_match(s, d, "bank_gallery")
    assert torch.equal(bg[s.bank_query_to_gallery], d.bank_query_to_gallery[bq])
    assert torch.equal(s.query_labels, s.gallery_labels[s.query_to_gallery])
    assert torch.equal(d.query, before)  # the original is untouched
    assert s.subsample().n_query == s.n_query  # None keeps everything


def test_split_bank_partitions_the_bank(seed):
    d = _data(seed)
    val, rest = d.split_bank(6, seed=seed)
    assert val.n_gallery == 6 and val.n_query == 12
    assert rest.bank_gallery.shape[0] == 25 - 6 and rest.bank_query.shape[0] == 2 * (
        25 - 6
    )
    assert torch.equal(rest.query, d.query) and torch.equal(rest.gallery, d.gallery)
    assert torch.equal(val.bank_gallery, rest.bank_gallery)
    # val items come from the bank, with their bank matches
    qpos = _rows_match(val, d, "query", "bank_query")
    gpos = _rows_match(val, d, "gallery", "bank_gallery")
    assert torch.equal(gpos[val.query_to_gallery], d.bank_query_to_gallery[qpos])
    # and are not in the remaining bank
    assert torch.cdist(val.gallery, rest.bank_gallery).min() > 1e-6
    # deterministic in the seed
    val2, _ = d.split_bank(6, seed=seed)
    assert torch.equal(val.gallery, val2.gallery)


def test_split_bank_errors():
    d = _data()
    with pytest.raises(ValueError, match="`n_val`"):
        d.split_bank(25)
    with pytest.raises(ValueError, match="`n_val`"):
        d.split_bank(0)
    no_bank = PairedData("x", d.query, d.gallery, query_to_gallery=d.query_to_gallery)
    with pytest.raises(ValueError, match="bank"):
        no_bank.split_bank(2)


def test_split_bank_keeps_texts_aligned():
    q = torch.eye(4)
    d = PairedData(
        "t",
        q,
        q,
        bank_query=torch.eye(4),
        bank_gallery=torch.eye(4),
        bank_query_text=("q0", "q1", "q2", "q3"),
        bank_gallery_text=("g0", "g1", "g2", "g3"),
    )
    val, rest = d.split_bank(2, seed=1)
    for i in range(val.n_query):
        assert (
            val.query_text[i][1:] == val.gallery_text[int(val.query_to_gallery[i])][1:]
        )
    assert sorted(val.gallery_text + rest.bank_gallery_text) == ["g0", "g1", "g2", "g3"]


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 12),
    cpi=st.integers(1, 3),
    k=st.integers(1, 11),
    seed=st.integers(0, 99),
)
def test_property_subsample_sizes(n, cpi, k, seed):
    k = min(k, n)
    d = _data(seed=seed, cpi=cpi, n=n, nb=n)
    s = d.subsample(k, k, seed=seed)
    assert s.n_gallery == k and s.n_query == k * cpi
    assert int(s.query_to_gallery.max()) < k
    assert int(s.bank_query_to_gallery.max()) < k


def test_to_changes_dtype_but_not_labels():
    d = _data().to(dtype=torch.float64)
    assert d.query.dtype == torch.float64 and d.query_labels.dtype == torch.int64


def test_similarity_data_validation_and_mask():
    s = torch.randn(6, 3)
    gt = torch.tensor([0, 1, 2, 0, 1, 2])
    sd = SimilarityData(
        s,
        bank_query_sims=torch.randn(4, 3),
        query_to_gallery=gt,
        query_mask=np.array([1, 1, 0, 1, 1, 0]),
    )
    assert sd.query_mask.dtype == torch.bool
    m = sd.masked()
    assert m.n_query == 4 and m.query_mask is None
    torch.testing.assert_close(m.sims, s[[0, 1, 3, 4]])
    assert m.query_to_gallery.tolist() == [0, 1, 0, 1]
    with pytest.raises(
        ValueError, match="`query_to_gallery` must be given when `sims` is not square"
    ):
        SimilarityData(torch.randn(6, 3), query_mask=None)
    with pytest.raises(ValueError, match="`bank_query_sims` must be of width 3"):
        SimilarityData(torch.randn(3, 3), bank_query_sims=torch.randn(2, 4))
    with pytest.raises(ValueError, match="`query_mask` must be of 3 entries"):
        SimilarityData(torch.randn(3, 3), query_mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="`scale` must be one of"):
        SimilarityData(torch.randn(3, 3), scale="probability")
