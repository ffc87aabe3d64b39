r"""Entropic optimal transport with uniform marginals: the library's one Sinkhorn solver.

Sinkhorn's algorithm :cite:`cuturi2013sinkhorn` in the log domain. For a score matrix
:math:`X` (``n x m``, higher = more similar) and an inverse temperature :math:`\beta`
(:math:`1/\varepsilon`), the potentials are alternately updated as

.. math::

    u_i \leftarrow \log\mu - \operatorname{LSE}_j(\beta X_{ij} + v_j),\qquad
    v_j \leftarrow \log\nu - \operatorname{LSE}_i(\beta X_{ij} + u_i),

with uniform marginals :math:`\mu = 1/n`, :math:`\nu = 1/m`, starting from
:math:`v = 0` (rows first). Two callers need the same iteration in two shapes:

- :func:`sinkhorn_plan` -- a **dense** batch matrix in, the whole plan
  :math:`Q = n\,e^{\beta X + u + v}` out (rows sum to 1), a fixed number of iterations,
  no gradient: the target of NeighborRetr's uniform regulariser
  (:func:`hubrepro.losses.uniform_regularisation`, Eq. 10-12 of
  ``lin2025neighborretr``);
- :func:`sinkhorn_column_potentials` -- a bank x gallery matrix **streamed** in row
  chunks (never materialised), only the column potentials :math:`v` out, until they
  move less than a tolerance: the statistics of Sinkhorn normalisation (SN, DBSN;
  :class:`hubrepro.normalize.SinkhornNorm`, :class:`hubrepro.normalize.DBSN`).

The dense solver evaluates the updates as float64 matrix-vector products with
:math:`e^{\beta X - \max}` when the score span allows it (the same iterates up to
rounding, about twenty times cheaper than a log-sum-exp per update); the streamed solver
accumulates each column log-sum-exp over chunks with a running shift (``lse_update``),
which is also how the bank statistics of the other normalisers are streamed.

Book: :ref:`sec-neighborretr`, :ref:`sec-normalisation`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from hubrepro import _validation as V

__all__ = ["sinkhorn_plan", "sinkhorn_column_potentials"]

# below this score span, exp(K - max K) and the scalings stay normal float64 numbers
_MATVEC_SPAN = 300.0


# ------------------------------------------------------------------ dense plans


def _scaling_loop(
    en: Any, emt: Any, iters: int, tol: float, xp: Any, new: Any
) -> tuple[Any, Any, int]:
    # The scalings a = 1 / (n E b), b = 1 / (m E^T a) of the matrix-vector form, with
    # en = n E and emt = m E^T given; one implementation for NumPy arrays (xp = numpy,
    # the CPU path) and torch tensors (xp = torch, other devices): two products into
    # preallocated buffers and two in-place reciprocals per iteration. `new(shape,
    # fill)` allocates. With tol > 0 the loop stops before iteration t + 1 when the
    # rows of the plan of iteration t sum to 1 within tol: those sums are a_t / a_{t+1}.
    # Returns (a, b, iterations run); batched over leading dimensions.
    lead, n, m = en.shape[:-2], en.shape[-2], en.shape[-1]
    b = new((*lead, m, 1), 1.0)
    bufs = (new((*lead, n, 1), 0.0), new((*lead, n, 1), 0.0))
    for it in range(iters):
        a, prev = bufs[it % 2], bufs[(it + 1) % 2]
        xp.matmul(en, b, out=a)
        xp.reciprocal(a, out=a)
        if tol > 0 and it > 0 and float(xp.abs(prev / a - 1.0).max()) <= tol:
            return prev, b, it
        xp.matmul(emt, a, out=b)
        xp.reciprocal(b, out=b)
    return a, b, iters


def _log_domain_loop(
    k: torch.Tensor, iters: int, tol: float
) -> tuple[torch.Tensor, torch.Tensor, int]:
    # the log-domain updates themselves, for score spans where exp(K - max K) could
    # leave the float64 range; the same stopping rule (row sums exp(u_t - u_{t+1}))
    n, m = k.shape[-2:]
    log_mu, log_nu = -math.log(n), -math.log(m)
    u = torch.zeros(k.shape[:-1], dtype=k.dtype, device=k.device)
    v = torch.zeros((*k.shape[:-2], m), dtype=k.dtype, device=k.device)
    for it in range(iters):
        new_u = log_mu - torch.logsumexp(k + v[..., None, :], dim=-1)
        if tol > 0 and it > 0:
            if float(torch.expm1(u - new_u).abs().max()) <= tol:
                return u, v, it
        u = new_u
        v = log_nu - torch.logsumexp(k + u[..., :, None], dim=-2)
    return u, v, iters


def _numpy_loop(t: torch.Tensor) -> bool:
    # the scaling loops run in NumPy for CPU tensors, in torch elsewhere
    return t.device.type == "cpu"


def _span(k: torch.Tensor) -> float:
    # max K - min K of the worst matrix of a stack, on the CPU (amax and amin: aminmax
    # with a dim is several times slower there); elsewhere infinity, without looking:
    # the look would cost a device-to-host synchronisation, and the logsumexp loop,
    # which needs none, is safe for any span
    if k.device.type != "cpu":
        return math.inf
    dims = (-2, -1)
    return float((k.amax(dim=dims).double() - k.amin(dim=dims)).max())


def _sinkhorn_run(
    g: torch.Tensor,
    iters: int,
    eps: float,
    tol: float = 0.0,
    span: float | None = None,
) -> tuple[torch.Tensor, int]:
    # Plan with rows summing to about 1 (columns to n/m), no gradient, and the number
    # of iterations run; batched over leading dimensions (a stack of matrices is solved
    # in one loop, each matrix on its own). The log-domain updates
    # u = log mu - LSE_j(K_ij + v_j), v = log nu - LSE_i(K_ij + u_i) with K = G / eps
    # are evaluated in float64 as a = mu / (E b), b = nu / (E^T a) with
    # E = exp(K - max K), a = exp(u + max K), b = exp(v): the same iterates up to
    # rounding, two matrix-vector products per iteration instead of 2 B^2
    # exponentials, and the plan n * E_ij a_i b_j needs no further exponential (n is
    # folded into the exponential: exp(K - max K + log n) = n E). On the CPU the loop
    # runs on NumPy views of the same memory (a small matrix-vector product costs a
    # few times less there than a torch call); on other devices it runs in torch.
    # When the span of K could over- or underflow these numbers, the logsumexp loop
    # runs. `span`: a bound on max K - min K known to the caller (e.g. 2 / eps for
    # cosine scores); without one, the CPU looks at the scores and other devices take
    # the logsumexp loop (no device-to-host synchronisation in either).
    with torch.no_grad():
        k = g.detach() / eps if eps != 1.0 else g.detach()
        n, m = k.shape[-2:]
        dims = (-2, -1)
        if span is None:
            span = _span(k)
        if span < _MATVEC_SPAN:
            k64 = k.double()
            top = k64.amax(dim=dims, keepdim=True)
            en = torch.exp(k64 - (top - math.log(n)))  # n E
            if _numpy_loop(en):
                e_np = en.numpy()
                emt = np.ascontiguousarray(np.swapaxes(e_np, -1, -2))  # n E^T
                if m != n:
                    emt *= m / n
                a, b, it = _scaling_loop(
                    e_np, emt, iters, tol, np, lambda s, f: np.full(s, f)
                )
                e_np *= a
                e_np *= np.swapaxes(b, -1, -2)
            else:
                emt = en.transpose(-1, -2).contiguous()
                if m != n:
                    emt *= m / n

                def new(shape: tuple[int, ...], fill: float) -> torch.Tensor:
                    return torch.full(shape, fill, dtype=en.dtype, device=en.device)

                a, b, it = _scaling_loop(en, emt, iters, tol, torch, new)
                en *= a
                en *= b.transpose(-1, -2)
            return en.to(k.dtype), it
        u, v, it = _log_domain_loop(k, iters, tol)
        return torch.exp(k + u[..., :, None] + v[..., None, :] + math.log(n)), it


def _sinkhorn(
    g: torch.Tensor,
    iters: int,
    eps: float,
    tol: float = 0.0,
    span: float | None = None,
) -> torch.Tensor:
    return _sinkhorn_run(g, iters, eps, tol, span)[0]


def _sinkhorn_both(
    g: torch.Tensor, iters: int, eps: float, span: float | None = None
) -> torch.Tensor:
    # The plans of G and of G^T, each its own run of `iters` iterations from b = 1 (as
    # two calls of _sinkhorn would give them), stacked (2, n, n); G square. The
    # run on G^T is the run on G started from the other side, on the same matrix
    # E = exp(K - max K): its updates a' = 1 / (n E^T b'), b' = 1 / (n E a') use the
    # same products as a = 1 / (n E b), b = 1 / (n E^T a) half an iteration later, so
    # both runs share one exponential and every product (two columns of one
    # matrix-matrix product cost about what one matrix-vector product does).
    with torch.no_grad():
        k = g.detach() / eps if eps != 1.0 else g.detach()
        n = k.shape[0]
        if span is None:
            span = _span(k)
        if not span < _MATVEC_SPAN:
            return _sinkhorn(torch.stack([g, g.T]), iters, eps, 0.0, span)
        k64 = k.double()
        e = torch.exp(k64 - (k64.max() - math.log(n)))  # n E
        if _numpy_loop(e):
            xp, e = np, e.numpy()
            et = np.ascontiguousarray(e.T)
            x, y = np.ones((n, 2)), np.empty((n, 2))
        else:
            xp, et = torch, e.T.contiguous()
            x = torch.ones((n, 2), dtype=e.dtype, device=e.device)
            y = torch.empty_like(x)
        # columns: 0 the run on G (b, then a), 1 the run on G^T (a', then b')
        x[:, 1] = 1.0 / (et @ x[:, 0])  # a'_1 (x starts as ones)
        for it in range(iters):
            xp.matmul(e, x, out=y)
            xp.reciprocal(y, out=y)  # a_t, b'_t
            if it == iters - 1:
                a_t = x[:, 1] * 1.0  # a'_t, about to be replaced by a'_{t+1}
            xp.matmul(et, y, out=x)
            xp.reciprocal(x, out=x)  # b_t, a'_{t+1}
        plan = e * y[:, 0:1] * x[:, 0][None, :]
        plan_t = et * a_t[:, None] * y[:, 1][None, :]
        if xp is np:
            plan, plan_t = torch.from_numpy(plan), torch.from_numpy(plan_t)
        return torch.stack([plan, plan_t]).to(k.dtype)


@torch.no_grad()
def sinkhorn_plan(
    scores: torch.Tensor, *, iters: int = 50, eps: float = 1.0, tol: float = 0.0
) -> torch.Tensor:
    r"""Return the entropic optimal-transport plan of a score matrix, rows summing to 1.

    Log-domain Sinkhorn (``cuturi2013sinkhorn``) with uniform marginals, as in
    NeighborRetr (``lin2025neighborretr``), Eq. (10)-(11):

    .. math::

        u \leftarrow \log\mu - \operatorname{LSE}_j(G_{ij}/\varepsilon + v_j),\qquad
        v \leftarrow \log\nu - \operatorname{LSE}_i(G_{ij}/\varepsilon + u_i),

    :math:`\mu = 1/n`, :math:`\nu = 1/m`, and :math:`Q = n\,e^{G/\varepsilon + u + v}`.

    Parameters
    ----------
    scores : Tensor of shape (n, m)
        Scores :math:`G` (higher = more similar; the cost is :math:`-G`).
    iters : int, default 50
        Sinkhorn iterations (each updates :math:`u` then :math:`v`); with ``tol`` the
        most that are run.
    eps : float, default 1.0
        Entropic regularisation :math:`\varepsilon`.
    tol : float, default 0.0
        0 runs exactly ``iters`` iterations (the released code's rule). A positive
        value stops early, after the first iteration whose plan has every row sum
        within ``tol`` of 1 (checked at the cost of one host synchronisation per
        iteration): an opt-in approximation, not the released computation.

    Returns
    -------
    Tensor of shape (n, m)
        A new tensor without gradient. Columns sum to :math:`n/m` exactly (the last
        update), rows to 1 up to the convergence tolerance.

    Notes
    -----
    The released NeighborRetr code (``UniformRegularizationLoss.sinkhorn_algorithm`` in
    ``NeighborRetr/models/until_module.py`` of ``zzezze/NeighborRetr``, commit 04112ee)
    uses the marginal :math:`1/(n+m)` for both sides and rescales by :math:`n+m`,
    which is uniform only for square matrices; the general uniform marginals here agree
    with it when ``n == m``. The updates are evaluated as matrix-vector products with
    :math:`e^{G/\varepsilon - \max}` in float64 (the same iterates, about 20x cheaper
    than a logsumexp per update; on the CPU in NumPy, whose small products cost a few
    times less than torch calls), falling back to logsumexp when the score span
    exceeds 300 (where those numbers could leave the float64 range). On other devices
    the span is not looked at (that would synchronise the device with the host): the
    logsumexp updates run there, unless the caller knows the scores are bounded (the
    NeighborRetr loss with normalised global features passes the bound of cosines).
    Book: :ref:`sec-neighborretr`.

    Examples
    --------
    >>> import torch
    >>> q = sinkhorn_plan(torch.randn(5, 5))
    >>> bool(torch.allclose(q.sum(1), torch.ones(5), atol=1e-3))
    True
    """
    func = "sinkhorn_plan"
    g = V.check_matrix(scores, "scores", func).detach()
    iters = V.check_int(iters, "iters", func, low=1)
    eps = V.check_positive(eps, "eps", func)
    tol = V.check_positive(tol, "tol", func, allow_zero=True)
    return _sinkhorn(g, iters, eps, tol)


# -------------------------------------------------------------- streamed banks


def colsum(z: torch.Tensor) -> torch.Tensor:
    """Column sums as a matrix-vector product (several times faster than ``sum(0)`` on CPU)."""
    return (torch.ones(1, z.shape[0], dtype=z.dtype, device=z.device) @ z)[0]


def lse_update(
    block: torch.Tensor,
    beta: float,
    shift: torch.Tensor,
    total: torch.Tensor,
    buf: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Add a chunk to a running column log-sum-exp kept as ``shift + log(total)``.

    The shift is the log-sum-exp so far (``total`` is renormalised to 1 after
    each chunk), so earlier terms are at most 1 after the shift and the chunk
    needs one fused pass :math:`\exp(\beta P - \text{shift})` and one sum, with
    no extra pass for the maximum. Only when a chunk exceeds the shift by more
    than the dtype's exponent range (the sum overflows), or on the first chunk,
    is the exact column maximum computed and used instead.
    """
    z = None if buf is None else buf[: block.shape[0]]
    if torch.isfinite(shift).all():
        part = colsum(torch.add(-shift, block, alpha=beta, out=z).exp_())
        if torch.isfinite(part).all():
            total = total + part
            return shift + torch.log(total), torch.ones_like(total)
    new_shift = torch.maximum(shift, block.amax(dim=0) * beta)  # beta > 0
    part = colsum(torch.add(-new_shift, block, alpha=beta, out=z).exp_())
    total = total * torch.exp(shift - new_shift) + part
    return new_shift + torch.log(total), torch.ones_like(total)


def sinkhorn_column_potentials(
    source: Any,
    *,
    beta: float,
    n_iter: int,
    tol: float,
    n_target: int | None = None,
) -> tuple[torch.Tensor, int]:
    r"""Log-domain Sinkhorn on :math:`K=e^{\beta P}` with uniform marginals, streamed.

    Returns the column potentials :math:`\log v` of the first ``n_target``
    columns (all columns when ``None``) and the number of iterations run. Each
    iteration is one pass over the bank chunks: the row potentials of a chunk
    :math:`\log u_b=-\log M-\mathrm{LSE}_j(\beta P_{bj}+\log v_j)` are updated
    with the current :math:`v`, then their contribution to
    :math:`\log v_j=-\log N-\mathrm{LSE}_b(\beta P_{bj}+\log u_b)` is accumulated
    with a running maximum (``lse_update``). Stops when
    :math:`\max_j|\Delta\log v_j|<` ``tol``.

    Parameters
    ----------
    source : BankSource
        The :math:`M \times N` matrix :math:`P` in row chunks: an object with
        ``blocks()`` yielding ``(start, chunk)``, ``n_bank`` (rows of this process),
        ``n_bank_total`` (rows of all processes), ``n_gallery`` (:math:`N`),
        ``chunk_size``, ``device``, ``dtype`` and ``reducer`` (``None``, or the
        cross-process reductions of :mod:`hubrepro.normalize.distributed`), as the
        normalisers' ``BankSource`` provides.
    beta : float
        Inverse temperature :math:`\beta > 0`.
    n_iter : int
        Maximum number of iterations.
    tol : float
        Stopping threshold on the change of the column potentials (0: run ``n_iter``).
    n_target : int or None
        Return only the first ``n_target`` column potentials.

    Returns
    -------
    log_v : Tensor of shape (n_target or N,)
    n_iter_run : int
    """
    n_cols, dev, dt = source.n_gallery, source.device, source.dtype
    m = source.n_bank_total  # the whole bank's size (all shards)
    red = getattr(source, "reducer", None)
    log_v = torch.full((n_cols,), -math.log(n_cols), device=dev, dtype=dt)
    log_u = torch.zeros(source.n_bank, device=dev, dtype=dt)
    it = 0
    for it in range(1, n_iter + 1):  # noqa: B007 - `it` is returned
        run_max = torch.full((n_cols,), -math.inf, device=dev, dtype=dt)
        run_sum = torch.zeros(n_cols, device=dev, dtype=dt)
        zbuf = ebuf = None
        for a, block in source.blocks():
            rows = block.shape[0]
            if zbuf is None:  # reused buffers: no allocation per chunk
                shape = (min(source.chunk_size, source.n_bank), n_cols)
                zbuf = torch.empty(shape, device=dev, dtype=dt)
                ebuf = torch.empty(shape, device=dev, dtype=dt)
            z = torch.add(log_v, block, alpha=beta, out=zbuf[:rows])  # beta P + log v
            lu = -math.log(m) - torch.logsumexp(z, dim=1)
            log_u[a : a + rows] = lu
            z.sub_(log_v).add_(lu[:, None])  # beta P + log u
            run_max, run_sum = lse_update(z, 1.0, run_max, run_sum, ebuf)
        col_lse = run_max + torch.log(run_sum)
        if red is not None:
            col_lse = red.logsumexp(col_lse)
        new_v = -math.log(n_cols) - col_lse
        delta = float((new_v - log_v).abs().max())
        log_v = new_v
        if delta < tol:
            break
    if n_target is not None:
        log_v = log_v[:n_target]
    return log_v, it
