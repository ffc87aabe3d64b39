"""Tests of hubrepro.similarity: hand-made vectors, chunking, validation, purity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hubrepro.similarity import (
    cosine_similarity,
    iter_similarity_blocks,
    l2_normalize,
    similarity,
)


def test_hand_computed_cosine_and_dot(dtype, device):
    a = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=dtype, device=device)
    b = torch.tensor([[0.0, 2.0], [1.0, 1.0], [-1.0, 0.0]], dtype=dtype, device=device)
    r2 = 1 / math.sqrt(2)
    expected_cos = torch.tensor(
        [[0.8, (3 + 4) / 5 * r2, -0.6], [0.0, r2, -1.0]], dtype=dtype, device=device
    )
    expected_dot = torch.tensor(
        [[8.0, 7.0, -3.0], [0.0, 1.0, -1.0]], dtype=dtype, device=device
    )
    cos = cosine_similarity(a, b)
    assert cos.dtype == dtype and cos.device == device and cos.shape == (2, 3)
    torch.testing.assert_close(cos, expected_cos)
    torch.testing.assert_close(similarity(a, b, metric="dot"), expected_dot)


def test_zero_row_gives_zero_not_nan(dtype):
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=dtype)
    out = l2_normalize(x)
    assert torch.equal(out[0], torch.zeros(2, dtype=dtype))
    torch.testing.assert_close(out[1], torch.tensor([0.6, 0.8], dtype=dtype))
    assert torch.isfinite(cosine_similarity(x, x)).all()


@pytest.mark.parametrize("metric", ["cosine", "dot"])
@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_chunked_equals_unchunked(metric, chunk, generator, dtype):
    a = torch.randn(17, 5, generator=generator, dtype=dtype)
    b = torch.randn(11, 5, generator=generator, dtype=dtype)
    full = similarity(a, b, metric=metric, chunk_size=10_000)
    torch.testing.assert_close(similarity(a, b, metric=metric, chunk_size=chunk), full)
    # the blocks tile the matrix in order
    starts, pieces = zip(
        *iter_similarity_blocks(a, b, metric=metric, chunk_size=chunk), strict=True
    )
    assert list(starts) == list(range(0, 17, chunk))
    assert all(p.shape[0] <= chunk for p in pieces)
    torch.testing.assert_close(torch.cat(pieces), full)


def test_matches_torch_reference(generator, dtype):
    a = torch.randn(9, 4, generator=generator, dtype=dtype)
    b = torch.randn(6, 4, generator=generator, dtype=dtype)
    ref = torch.nn.functional.cosine_similarity(a[:, None, :], b[None, :, :], dim=-1)
    torch.testing.assert_close(cosine_similarity(a, b, chunk_size=4), ref)


def test_numpy_in_tensor_out_and_inputs_not_mutated():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 3)).astype(np.float32)
    b = rng.normal(size=(4, 3)).astype(np.float32)
    a0, b0 = a.copy(), b.copy()
    out = cosine_similarity(a, b, chunk_size=2)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)
    t = torch.from_numpy(a0.copy())
    t0 = t.clone()
    l2_normalize(t)
    assert torch.equal(t, t0)


@settings(max_examples=30, deadline=None)
@given(
    n_a=st.integers(1, 12),
    n_b=st.integers(1, 12),
    d=st.integers(1, 6),
    chunk=st.integers(1, 13),
    seed=st.integers(0, 2**16),
)
def test_cosine_bounded_and_symmetric(n_a, n_b, d, chunk, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n_a, d, generator=g, dtype=torch.float64)
    b = torch.randn(n_b, d, generator=g, dtype=torch.float64)
    s = cosine_similarity(a, b, chunk_size=chunk)
    assert s.shape == (n_a, n_b)
    assert (s.abs() <= 1 + 1e-12).all()
    torch.testing.assert_close(cosine_similarity(b, a, chunk_size=chunk), s.T)


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "exc", "match"),
    [
        (
            np.zeros((2, 3), np.float32),
            np.zeros((2, 4), np.float32),
            {},
            ValueError,
            "dimension 3",
        ),
        (
            np.ones((2, 3), np.float32),
            np.ones((2, 3), np.float64),
            {},
            TypeError,
            "dtype",
        ),
        (
            np.ones((2, 3), np.int64),
            np.ones((2, 3), np.int64),
            {},
            TypeError,
            "floating-point",
        ),
        (np.ones(3, np.float32), np.ones((2, 3), np.float32), {}, ValueError, "2-D"),
        (
            np.ones((0, 3), np.float32),
            np.ones((2, 3), np.float32),
            {},
            ValueError,
            "non-empty",
        ),
        (np.array([[np.nan, 1.0]]), np.ones((2, 2)), {}, ValueError, "finite"),
        (np.ones((2, 3)), np.ones((2, 3)), {"metric": "euclid"}, ValueError, "metric"),
        (np.ones((2, 3)), np.ones((2, 3)), {"chunk_size": 0}, ValueError, "chunk_size"),
        ([[1.0]], np.ones((2, 1)), {}, TypeError, "torch.Tensor or numpy.ndarray"),
    ],
)
def test_bad_inputs(a, b, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        similarity(a, b, **kwargs)
    with pytest.raises(exc, match=match):
        iter_similarity_blocks(a, b, **kwargs)


@pytest.mark.gpu
def test_cuda_matches_cpu(generator):
    a = torch.randn(10, 4, generator=generator)
    b = torch.randn(7, 4, generator=generator)
    out = similarity(a.cuda(), b.cuda(), chunk_size=3)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), similarity(a, b))
