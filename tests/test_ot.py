"""hubrepro.ot: the one Sinkhorn solver in its two call shapes (dense plans, streamed
column potentials) solves one entropic transport problem; each shape is also checked
against POT and the released code in tests/losses and tests/normalize."""

from __future__ import annotations

import math

import pytest
import torch

from hubrepro.normalize._base import BankSource
from hubrepro.ot import (
    _sinkhorn,
    _sinkhorn_both,
    _sinkhorn_run,
    lse_update,
    sinkhorn_column_potentials,
    sinkhorn_plan,
)

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


# ------------------------------------------------------- dense plans, fast path


def _naive_plan(g: torch.Tensor, iters: int, eps: float) -> torch.Tensor:
    # the log-domain updates written out, in float64: u then v, `iters` times
    k = g.double() / eps
    n, m = k.shape
    u = torch.zeros(n, dtype=torch.float64)
    v = torch.zeros(m, dtype=torch.float64)
    for _ in range(iters):
        u = -math.log(n) - torch.logsumexp(k + v[None, :], dim=1)
        v = -math.log(m) - torch.logsumexp(k + u[:, None], dim=0)
    return torch.exp(k + u[:, None] + v[None, :] + math.log(n))


@pytest.mark.parametrize("shape", [(6, 6), (4, 7), (9, 3)])
@pytest.mark.parametrize("scale", [1.0, 5.0, 20.0, 50.0, 400.0])
def test_dense_plan_is_the_log_domain_iterates(generator, shape, scale):
    # after 50 iterations (not converged): the matrix-vector form (spans below 300)
    # and the logsumexp fallback (scale 400) give the log-domain iterates themselves
    g = torch.randn(*shape, generator=generator, dtype=torch.float64).tanh() * scale
    want = _naive_plan(g, 50, 1.0)
    torch.testing.assert_close(sinkhorn_plan(g, iters=50), want, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(
        sinkhorn_plan(g, iters=7, eps=0.5), _naive_plan(g, 7, 0.5), rtol=1e-9,
        atol=1e-12,
    )  # fmt: skip


def test_dense_plans_of_a_stack_are_each_matrix_alone(generator):
    g = torch.randn(3, 8, 8, generator=generator, dtype=torch.float64) * 10
    stacked = _sinkhorn(g, 50, 1.0)
    for i in range(3):
        torch.testing.assert_close(stacked[i], _sinkhorn(g[i], 50, 1.0))
    # float32 in, float32 out
    assert _sinkhorn(g.float(), 50, 1.0).dtype == torch.float32


def test_known_span_skips_the_check_and_gives_the_same_plan(generator):
    # cosine scores: the caller's bound 2 / eps replaces the look at the scores
    x = torch.nn.functional.normalize(torch.randn(10, 4, generator=generator), dim=1)
    g = x @ x.T
    assert torch.equal(_sinkhorn(g, 50, 1.0, span=2.0), _sinkhorn(g, 50, 1.0))
    # a bound at or above 300 takes the logsumexp loop, which agrees too
    torch.testing.assert_close(
        _sinkhorn(g, 50, 1.0, span=1e3), _sinkhorn(g, 50, 1.0), rtol=1e-5, atol=1e-6
    )


def test_dense_plan_tolerance_stops_early(generator):
    g = torch.randn(12, 12, generator=generator, dtype=torch.float64)
    plan, it = _sinkhorn_run(g, 500, 1.0, tol=1e-6)
    assert 1 < it < 500
    torch.testing.assert_close(
        plan.sum(1), torch.ones(12, dtype=torch.float64), atol=1e-6, rtol=0
    )
    # tol = 0 runs every iteration (the released rule)
    assert _sinkhorn_run(g, 40, 1.0)[1] == 40
    assert _sinkhorn_run(g * 400, 40, 1.0)[1] == 40
    with pytest.raises(ValueError, match="tol"):
        sinkhorn_plan(g, tol=-1.0)


def test_scaling_loop_torch_form_is_the_numpy_form(generator):
    # the loop other devices run (torch) and the one the CPU runs (NumPy) agree
    import numpy as np

    from hubrepro.ot import _scaling_loop

    e = torch.rand(2, 6, 4, generator=generator, dtype=torch.float64) + 0.1
    en, emt = e * 6, e.transpose(-1, -2).contiguous() * 4

    def new_t(shape, fill):
        return torch.full(shape, fill, dtype=torch.float64)

    a_t, b_t, it_t = _scaling_loop(en, emt, 30, 0.0, torch, new_t)
    a_n, b_n, it_n = _scaling_loop(
        en.numpy(), emt.numpy(), 30, 0.0, np, lambda s, f: np.full(s, f)
    )
    assert it_t == it_n == 30
    torch.testing.assert_close(a_t, torch.from_numpy(a_n), rtol=1e-12, atol=0)
    torch.testing.assert_close(b_t, torch.from_numpy(b_n), rtol=1e-12, atol=0)
    # with a tolerance both stop at the same iteration
    assert (
        _scaling_loop(en, emt, 500, 1e-8, torch, new_t)[2]
        == _scaling_loop(
            en.numpy(), emt.numpy(), 500, 1e-8, np, lambda s, f: np.full(s, f)
        )[2]
    )


def test_span_is_looked_at_on_the_cpu_only():
    # elsewhere the look would synchronise with the host: the logsumexp loop runs
    from hubrepro.ot import _span

    k = torch.tensor([[[0.0, 2.0], [1.0, -1.0]], [[5.0, 0.5], [0.0, 0.0]]])
    assert _span(k) == 5.0
    assert _span(torch.empty(2, 3, 3, device="meta")) == math.inf


@pytest.mark.parametrize("scale", [1.0, 20.0, 50.0, 400.0])
@pytest.mark.parametrize("n", [2, 9])
def test_both_plans_in_one_loop_are_two_separate_runs(generator, scale, n):
    # the released code's separate plans of G and G^T, sharing every product
    g = torch.randn(n, n, generator=generator, dtype=torch.float64).tanh() * scale
    both = _sinkhorn_both(g, 50, 1.0)
    torch.testing.assert_close(both[0], _naive_plan(g, 50, 1.0), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(
        both[1], _naive_plan(g.T, 50, 1.0), rtol=1e-9, atol=1e-12
    )
    torch.testing.assert_close(
        _sinkhorn_both(g, 3, 0.5), _sinkhorn(torch.stack([g, g.T]), 3, 0.5)
    )
    assert _sinkhorn_both(g.float(), 50, 1.0).dtype == torch.float32


def test_torch_loops_of_other_devices_give_the_cpu_plans(generator, monkeypatch):
    # the loops that run off the CPU (torch instead of NumPy), run here on the CPU
    import hubrepro.ot as ot_module

    g = torch.randn(9, 9, generator=generator, dtype=torch.float64) * 10
    r = torch.randn(2, 5, 8, generator=generator, dtype=torch.float64) * 10
    want = (_sinkhorn(g, 50, 1.0), _sinkhorn_both(g, 50, 1.0), _sinkhorn(r, 50, 1.0))
    monkeypatch.setattr(ot_module, "_numpy_loop", lambda t: False)
    got = (_sinkhorn(g, 50, 1.0), _sinkhorn_both(g, 50, 1.0), _sinkhorn(r, 50, 1.0))
    for x, y in zip(got, want, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-15)
