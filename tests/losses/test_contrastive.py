"""Symmetric InfoNCE: hand-computed values, the F.cross_entropy identity, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hubrepro.losses import SymmetricInfoNCE, symmetric_infonce

pytestmark = pytest.mark.usefixtures("one_thread")


def test_identity_matrix_hand_computed():
    # each row: -log(e / (e + 2)); both directions equal
    expected = -math.log(math.e / (math.e + 2))
    assert float(
        symmetric_infonce(torch.eye(3, dtype=torch.float64), 1.0)
    ) == pytest.approx(expected, abs=1e-12)


def test_equals_cross_entropy_both_directions(generator, dtype):
    s = torch.randn(7, 7, generator=generator, dtype=dtype)
    t = torch.arange(7)
    ref = 0.5 * (F.cross_entropy(20 * s, t) + F.cross_entropy(20 * s.T, t))
    torch.testing.assert_close(symmetric_infonce(s, 20.0), ref)
    torch.testing.assert_close(
        SymmetricInfoNCE()(s, torch.tensor(20.0, dtype=dtype)), ref
    )


def test_naive_loop_reference(generator):
    s = torch.randn(5, 5, generator=generator, dtype=torch.float64)
    tot = 0.0
    for i in range(5):
        row = sum(math.exp(float(s[i, j])) for j in range(5))
        col = sum(math.exp(float(s[j, i])) for j in range(5))
        tot += -(float(s[i, i]) - math.log(row)) - (float(s[i, i]) - math.log(col))
    assert float(symmetric_infonce(s)) == pytest.approx(tot / 10, abs=1e-10)


def test_learnable_scale_gets_gradient_and_input_untouched(generator):
    s = torch.randn(4, 4, generator=generator)
    before = s.clone()
    scale = torch.tensor(10.0, requires_grad=True)
    symmetric_infonce(s, scale).backward()
    assert scale.grad is not None and torch.isfinite(scale.grad)
    assert torch.equal(s, before)


@pytest.mark.parametrize(
    "sims, exc, match",
    [
        (torch.randn(3, 4), ValueError, "square"),
        (torch.randn(1, 1), ValueError, "batch >= 2"),
        (torch.tensor([[0.0, float("nan")], [0.0, 0.0]]), ValueError, "finite"),
        ([[1.0, 0.0], [0.0, 1.0]], TypeError, "torch.Tensor"),
        (torch.eye(3, dtype=torch.long), TypeError, "floating"),
    ],
)
def test_bad_inputs(sims, exc, match):
    with pytest.raises(exc, match=match):
        symmetric_infonce(sims)


def test_bad_scale():
    with pytest.raises(ValueError, match="logit_scale"):
        symmetric_infonce(torch.eye(3), -1.0)
    with pytest.raises(ValueError, match="scalar"):
        symmetric_infonce(torch.eye(3), torch.ones(2))
