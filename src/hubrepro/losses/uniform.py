r"""The uniform regularisation :math:`L_{\rm Opt}` of NeighborRetr.

NeighborRetr (``lin2025neighborretr``), Eq. (10)-(12): the raw global scores :math:`G`
are pulled towards an entropic optimal-transport plan with uniform marginals (every item
retrieved equally often), mixed with the identity. The released code is
``UniformRegularizationLoss`` in ``NeighborRetr/models/until_module.py``, called once per
direction by ``NeighborRetr.compute_uniform_loss`` in ``NeighborRetr/models/modeling.py``
(``zzezze/NeighborRetr``, commit 04112ee). The plan comes from :mod:`hubrepro.ot`.

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

import torch
from torch import nn

from hubrepro import _validation as V
from hubrepro.losses._checks import check_square_sims
from hubrepro.ot import _sinkhorn, _sinkhorn_both

__all__ = ["uniform_regularisation", "UniformRegularisation"]


def uniform_regularisation(
    global_sims: torch.Tensor,
    *,
    beta: float = 0.7,
    tau: float = 3.0,
    iters: int = 50,
    eps: float = 1.0,
    separate_plans: bool = False,
    tol: float = 0.0,
) -> torch.Tensor:
    r"""Return the uniform regularisation :math:`L_{\rm Opt}` towards a Sinkhorn plan.

    Implements NeighborRetr (``lin2025neighborretr``), Eq. (12):

    .. math::

        T = \beta Q + (1-\beta) I,\qquad
        L^{q\to g} = -\tfrac1B\sum_{ij} T_{ij}\log\operatorname{softmax}_j(\tau G_{ij}),

    with :math:`Q` = :func:`~hubrepro.ot.sinkhorn_plan` of :math:`G` (no gradient), the
    gallery-to-query term the same on :math:`G^\top` with its own target plan, and
    :math:`L_{\rm Opt} = \frac12(L^{q\to g} + L^{g\to q})`.

    Parameters
    ----------
    global_sims : Tensor of shape (batch, batch)
        Global scores :math:`G` (raw dot products in the released code).
    beta : float, default 0.7
        :math:`\beta \in [0, 1]` (the released function's default 0.3 is never used).
    tau : float, default 3.0
        :math:`\tau_u`, a logit multiplier.
    iters, eps
        Passed to :func:`~hubrepro.ot.sinkhorn_plan`.
    separate_plans : bool, default False
        ``True`` runs Sinkhorn separately on :math:`G` and on :math:`G^\top`, as the
        released code does (``compute_uniform_loss`` in ``NeighborRetr/models/
        modeling.py`` of ``zzezze/NeighborRetr``, commit 04112ee, calls the loss once
        per direction) and as ``compat="official"`` selects. ``False`` (project
        default) runs it once and uses :math:`Q^\top` for :math:`G^\top`: the two
        agree at convergence (the entropic plan of :math:`G^\top` is :math:`Q^\top`),
        but after a finite number of iterations they differ, and so do the loss and
        its gradient (by up to a few percent of the term at raw score scales of
        20-50 and 50 iterations). Half the Sinkhorn cost.
    tol : float, default 0.0
        Opt-in early stop of Sinkhorn (see :func:`~hubrepro.ot.sinkhorn_plan`); 0 runs
        exactly ``iters`` iterations, as the released code does.

    Returns
    -------
    Tensor
        Scalar loss, non-negative in every floating type: each summand
        :math:`-T_{ij}\log\operatorname{softmax}_j` is a non-negative weight times a
        non-positive log-probability.

    Notes
    -----
    Book: :ref:`sec-neighborretr`.
    """
    func = "uniform_regularisation"
    g = check_square_sims(global_sims, func)
    beta = V.check_probability(beta, "beta", func)
    tau = V.check_positive(tau, "tau", func, allow_zero=True)
    iters = V.check_int(iters, "iters", func, low=1)
    eps = V.check_positive(eps, "eps", func)
    tol = V.check_positive(tol, "tol", func, allow_zero=True)
    return _uniform(g, beta, tau, iters, eps, bool(separate_plans), tol)


def _uniform(
    g: torch.Tensor,
    beta: float,
    tau: float,
    iters: int,
    eps: float,
    separate: bool,
    tol: float = 0.0,
) -> torch.Tensor:
    g2 = torch.stack([g, g.T])
    return _uniform_stacked(g2, _targets(g2, beta, iters, eps, separate, tol), tau)


def _targets(
    g2: torch.Tensor,
    beta: float,
    iters: int,
    eps: float,
    separate: bool,
    tol: float,
    span: float | None = None,
) -> torch.Tensor:
    # T = beta Q + (1 - beta) I of both directions, stacked (2, B, B), no gradient: one
    # Sinkhorn run per direction on the stack (the release), or the plan of G and its
    # transpose (equal at convergence: uniform marginals, unique optimum); `span`: a
    # known bound on the score span divided by eps (no device check needed)
    if separate and tol == 0 and g2.shape[-1] == g2.shape[-2]:
        t = _sinkhorn_both(g2[0], iters, eps, span)
    elif separate:
        t = _sinkhorn(g2, iters, eps, tol, span)
    else:
        q = _sinkhorn(g2[0], iters, eps, tol, span)
        t = torch.stack([q, q.T])
    t.mul_(beta).diagonal(dim1=-2, dim2=-1).add_(1.0 - beta)
    return t


def _uniform_stacked(g2: torch.Tensor, t: torch.Tensor, tau: float) -> torch.Tensor:
    # 1/2 sum over the two directions of mean_i -sum_j T_ij log softmax_j(tau x_ij), on
    # the stack (G, G^T); summed as non-negative terms (T >= 0, log-softmax <= 0): no
    # cancellation below zero
    logp = torch.log_softmax(tau * g2, dim=-1)
    return (t * logp).sum() / (-2 * g2.shape[-2])


class UniformRegularisation(nn.Module):
    r"""The term :math:`L_{\rm Opt}` as a module; see :func:`uniform_regularisation`.

    Parameters
    ----------
    beta, tau, iters, eps, separate_plans, tol
        As in :func:`uniform_regularisation` (``separate_plans=True``: the released
        code).

    Notes
    -----
    ``forward(global_sims)`` returns the scalar term. Book: :ref:`sec-neighborretr`.

    Examples
    --------
    >>> import torch
    >>> g = torch.randn(5, 5, dtype=torch.float64)
    >>> term = UniformRegularisation(beta=0.5)
    >>> bool(term(g) == uniform_regularisation(g, beta=0.5))
    True
    """

    def __init__(
        self,
        *,
        beta: float = 0.7,
        tau: float = 3.0,
        iters: int = 50,
        eps: float = 1.0,
        separate_plans: bool = False,
        tol: float = 0.0,
    ) -> None:
        super().__init__()
        func = "UniformRegularisation"
        self.beta = V.check_probability(beta, "beta", func)
        self.tau = V.check_positive(tau, "tau", func, allow_zero=True)
        self.iters = V.check_int(iters, "iters", func, low=1)
        self.eps = V.check_positive(eps, "eps", func)
        self.separate_plans = bool(separate_plans)
        self.tol = V.check_positive(tol, "tol", func, allow_zero=True)

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f"beta={self.beta}, tau={self.tau}, iters={self.iters}, eps={self.eps}, "
            f"separate_plans={self.separate_plans}, tol={self.tol}"
        )

    def loss(self, global_sims: torch.Tensor) -> torch.Tensor:
        """Return the term of a validated square matrix."""
        return self.loss_stacked(torch.stack([global_sims, global_sims.T]))

    def loss_stacked(self, g2: torch.Tensor, *, bounded: bool = False) -> torch.Tensor:
        """Return the term of the stack ``(G, G.T)`` of a validated square matrix.

        ``bounded=True`` promises scores in [-1, 1] (cosines), so that the Sinkhorn
        solver needs no look at their span (no device-to-host synchronisation).
        """
        span = 2.0 / self.eps + 1e-3 if bounded else None
        t = _targets(
            g2, self.beta, self.iters, self.eps, self.separate_plans, self.tol, span
        )
        return _uniform_stacked(g2, t, self.tau)

    def forward(self, global_sims: torch.Tensor) -> torch.Tensor:
        r"""Return :math:`L_{\rm Opt}` of the global scores :math:`G` (batch, batch)."""
        return self.loss(check_square_sims(global_sims, "UniformRegularisation"))
