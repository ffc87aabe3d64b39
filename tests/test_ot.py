"""hubrepro.ot: the one Sinkhorn solver in its two call shapes (dense plans, streamed
column potentials) solves one entropic transport problem; each shape is also checked
against POT and the released code in tests/losses and tests/normalize."""

from __future__ import annotations

import math

import pytest
import torch

from hubrepro.normalize._base import BankSource
from hubrepro.ot import lse_update, sinkhorn_column_potentials, sinkhorn_plan

pytestmark = pytest.mark.usefixtures("one_thread")


def test_streamed_and_dense_sinkhorn_agree(generator):
    # the two call shapes of hubrepro.ot solve the same entropic transport problem:
    # the converged streamed column potentials give the dense solver's plan
    p = torch.rand(9, 6, generator=generator, dtype=torch.float64)
    beta = 3.0
    src = BankSource(matrix=p, chunk_size=4, dtype=torch.float64)
    log_v, n_run = sinkhorn_column_potentials(src, beta=beta, n_iter=5000, tol=1e-13)
    assert n_run < 5000
    log_u = -math.log(9) - torch.logsumexp(beta * p + log_v, dim=1)
    plan = 9 * torch.exp(beta * p + log_u[:, None] + log_v)
    torch.testing.assert_close(
        plan, sinkhorn_plan(p, iters=5000, eps=1 / beta), rtol=1e-9, atol=1e-12
    )
    # tol = 0 runs exactly n_iter iterations
    assert sinkhorn_column_potentials(src, beta=beta, n_iter=7, tol=0.0)[1] == 7


def test_streamed_log_sum_exp_survives_overflowing_chunks(generator):
    # chunks whose exponentials overflow float32 still give the exact column LSE
    x = torch.randn(12, 5, generator=generator) * 50
    x[7] += 200.0  # a later chunk far above the running shift
    shift = torch.full((5,), -math.inf)
    total = torch.zeros(5)
    for a in range(0, 12, 4):
        shift, total = lse_update(x[a : a + 4], 3.0, shift, total)
    ref = torch.logsumexp(3.0 * x.double(), dim=0).float()
    torch.testing.assert_close(shift + torch.log(total), ref, rtol=1e-6, atol=1e-3)
