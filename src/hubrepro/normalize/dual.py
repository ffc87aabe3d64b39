r"""DualIS and DualDIS: inverted softmax with a query bank and a gallery bank (DBNorm).

Book: :ref:`sec-normalisation`, :ref:`eq-dbnorm-dual-is`, :ref:`eq-dbnorm-dual-dis`.
"""

from __future__ import annotations

import torch

from hubrepro._validation import check_choice, check_int, fail

from ._base import (
    DEFAULT_BETA_GALLERY,
    DEFAULT_BETA_QUERY,
    BankSource,
    BaseNormalizer,
    check_beta,
    check_scale,
    first_argmax,
    stream_bank_stats,
)

__all__ = ["DualIS", "DualDIS"]

AGGREGATIONS = ("product", "sum")
MODES = ("principled", "faithful")


class DualIS(BaseNormalizer):
    r"""DualIS (DBNorm): the product of a query-bank and a gallery-bank inverted softmax.

    Implements the dual inverted softmax of DBNorm :cite:`wang2023balance` as the
    released code computes it once its defect D1 is fixed
    (``yimuwangcs/Better_Cross_Modal_Retrieval``, ``DBNorm/dbnorm.py``, commit
    898bd23, ``db_norm`` with ``dynamic_normalized=False``; :ref:`sec-dbnorm-errata`;
    the paper's equation number is not verified).

    .. math::

        \mathrm{DualIS}_{ij}
        = \frac{e^{\beta_q S_{ij}}}{\sum_{b} e^{\beta_q P^q_{bj}}}
          \cdot \frac{e^{\beta_g S_{ij}}}{\sum_{b} e^{\beta_g P^g_{bj}}},
        \qquad
        L_{ij} = \log\mathrm{DualIS}_{ij} = (\beta_q+\beta_g) S_{ij} - c^q_j - c^g_j,

    with :math:`c^q_j = \mathrm{LSE}_b(\beta_q P^q_{bj})` over the query bank
    (cross-modal :math:`P^q`) and :math:`c^g_j=\mathrm{LSE}_b(\beta_g P^g_{bj})`
    over the gallery bank (intra-modal :math:`P^g`). Both numerators use the
    cross-modal :math:`S`.

    ``aggregation="sum"`` is the ablation :math:`\mathrm{IS}_q+\mathrm{IS}_g`
    in probability space, computed as
    :math:`L^{\mathrm{sum}}_{ij}=\operatorname{logaddexp}(\beta_q S_{ij}-c^q_j,\ \beta_g S_{ij}-c^g_j)`.
    It is **not** rank-equivalent to the product: the larger of the two terms
    dominates, so the bias it applies depends on :math:`S_{ij}`.

    Parameters
    ----------
    beta_query : float, default ``DEFAULT_BETA_QUERY`` (1/1.99)
        :math:`\beta_q` (the released code's ``beta1``; a third-party transcription
        of the paper calls it :math:`\beta_2`: the mapping is an open question,
        :ref:`sec-dbnorm-open`).
    beta_gallery : float, default ``DEFAULT_BETA_GALLERY`` (3)
        :math:`\beta_g` (the released code's ``beta2``).
    aggregation : {"product", "sum"}, default "product"
    scale : {"similarity", "log"}, default "similarity"
        ``"log"`` returns :math:`L`; ``"similarity"`` returns
        :math:`L/(\beta_q+\beta_g)`, for the product
        :math:`S_{ij}-(c^q_j+c^g_j)/(\beta_q+\beta_g)`: one additive
        per-gallery penalty on the scale of ``sims``.

    Attributes
    ----------
    lse_query_, lse_gallery_ : Tensor of shape (n_gallery,)
        :math:`c^q` and :math:`c^g`.

    Notes
    -----
    Never exponentiates :math:`L`, so it is finite for any :math:`\beta S` (the
    released code overflows, defect D5 of :ref:`sec-dbnorm-errata`) and never
    writes into its inputs.

    Book: :ref:`sec-normalisation`.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.normalize import DualIS
    >>> pq, pg = torch.tensor([[0.9, 0.1]]), torch.tensor([[0.9, 0.2]])
    >>> m = DualIS(beta_query=10.0, beta_gallery=10.0).fit(pq, pg)
    >>> m.transform(torch.tensor([[0.8, 0.7]])).argmax(dim=1).item()
    1
    """

    banks = ("query", "gallery")

    def __init__(
        self,
        *,
        beta_query: float = DEFAULT_BETA_QUERY,
        beta_gallery: float = DEFAULT_BETA_GALLERY,
        aggregation: str = "product",
        scale: str = "similarity",
    ) -> None:
        self._store(
            beta_query=beta_query,
            beta_gallery=beta_gallery,
            aggregation=aggregation,
            scale=scale,
        )

    def _check_params(self) -> None:
        f = type(self).__name__
        check_beta(self.beta_query, "beta_query", f)
        check_beta(self.beta_gallery, "beta_gallery", f)
        check_choice(self.aggregation, "aggregation", f, AGGREGATIONS)
        check_scale(self.scale, f)

    def _fit_sources(
        self, sources: dict[str, BankSource], func: str, extra: dict
    ) -> None:
        self.lse_query_ = stream_bank_stats(sources["query"], beta=self.beta_query).lse
        self.lse_gallery_ = stream_bank_stats(
            sources["gallery"], beta=self.beta_gallery
        ).lse

    def _combine(
        self, s: torch.Tensor, gq: torch.Tensor | float, gg: torch.Tensor | float
    ) -> torch.Tensor:
        bq, bg = self.beta_query, self.beta_gallery
        cq, cg = (
            gq * self._stat(self.lse_query_, s),
            gg * self._stat(self.lse_gallery_, s),
        )
        if self.aggregation == "product":
            if (
                self.scale == "similarity"
            ):  # direct form: rows gated by neither bank stay exact
                return s - (cq + cg) / (bq + bg)
            return (bq + bg) * s - cq - cg
        log = torch.logaddexp(bq * s - cq, bg * s - cg)
        return log / (bq + bg) if self.scale == "similarity" else log

    def _transform(self, s: torch.Tensor) -> torch.Tensor:
        return self._combine(s, 1.0, 1.0)


class DualDIS(DualIS):
    r"""DualDIS (DBNorm): DualIS with one activation gate per bank, in two modes.

    Implements the dual dynamic inverted softmax of DBNorm :cite:`wang2023balance`
    (the released code's ``db_norm`` with ``dynamic_normalized=True``, same file and
    commit as :class:`DualIS`; equation number not verified). Activation sets and gates:

    .. math::

        A_q = \bigcup_{b\in B_q}\mathrm{TopK}_k\{j: P^q_{bj}\},\quad
        A_g = \bigcup_{b\in B_g}\mathrm{TopK}_k\{j: P^g_{bj}\},\quad
        g^*(i)=\arg\max_j S_{ij},\quad
        \gamma^t_i = \mathbb 1[g^*(i)\in A_t]\ (t\in\{q,g\}).

    ``mode="principled"`` (default) treats an ungated term as its numerator
    alone, :math:`e^{\beta_t S_{ij}}`, which is exact for every gate combination:

    .. math::

        L_{ij} = (\beta_q+\beta_g) S_{ij} - \gamma^q_i c^q_j - \gamma^g_i c^g_j .

    DualIS is the case :math:`\gamma^q=\gamma^g=1`; with ``aggregation="sum"``
    the two gated terms are combined with ``logaddexp`` as in :class:`DualIS`.

    ``mode="faithful"`` computes what the authors' released code computes once
    its defects D1 and D3 are fixed (D1: both terms normalise the test matrix, not
    the gallery-bank matrix; D3: each term gets its own copy, because the released
    dynamic routine writes into its input, so with D1 alone fixed the gallery-bank
    term gates and rescales the already query-normalised matrix and the product
    squares one array; :func:`hubrepro.errata.released_db_norm` with ``fix_d1=True``
    gives that D1-only output and :func:`hubrepro.errata.demo_d3_aliasing` its R@1).
    An ungated term is the **raw** similarity,
    :math:`T^t_{ij}=\mathrm{IS}_t(q_i,g_j)` if :math:`\gamma^t_i=1` else
    :math:`S_{ij}`, and the output ranks as :math:`T^q_{ij}T^g_{ij}`. A row gated
    by neither bank ranks by :math:`S^2`, which reverses the order where
    :math:`S<0`; keep this mode for parity checks.

    Parameters
    ----------
    beta_query, beta_gallery, aggregation, scale
        As in :class:`DualIS` (``aggregation`` and ``scale`` apply to the
        principled mode only).
    k : int, default 1
        Activation-set size, shared by both banks.
    mode : {"principled", "faithful"}, default "principled"

    Attributes
    ----------
    lse_query_, lse_gallery_ : Tensor of shape (n_gallery,)
    active_query_, active_gallery_ : BoolTensor of shape (n_gallery,)
        :math:`A_q`, :math:`A_g`.

    Notes
    -----
    The faithful product can overflow or underflow in any floating type, so it
    is returned as a strictly increasing function of :math:`T^qT^g` within
    each row: :math:`\operatorname{sign}(T)\,(\log|T| - m_i + 1)` where
    :math:`m_i` is the row's smallest :math:`\log|T|` and :math:`T=0` maps to 0.
    The values are comparable within a row only (as in the released code).
    Gates use the original :math:`S` (the released code gates the second term on
    the already normalised matrix, defect D3).

    Book: :ref:`sec-normalisation`.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.normalize import DualDIS
    >>> pq = torch.tensor([[0.9, 0.1, 0.0]])
    >>> pg = torch.tensor([[0.1, 0.9, 0.0]])
    >>> m = DualDIS(beta_query=5.0, beta_gallery=5.0).fit(pq, pg)
    >>> m.gates(torch.tensor([[0.6, 0.2, 0.1]]))
    (tensor([True]), tensor([False]))
    """

    def __init__(
        self,
        *,
        beta_query: float = DEFAULT_BETA_QUERY,
        beta_gallery: float = DEFAULT_BETA_GALLERY,
        k: int = 1,
        mode: str = "principled",
        aggregation: str = "product",
        scale: str = "similarity",
    ) -> None:
        self._store(
            beta_query=beta_query,
            beta_gallery=beta_gallery,
            k=k,
            mode=mode,
            aggregation=aggregation,
            scale=scale,
        )

    def _check_params(self) -> None:
        super()._check_params()
        f = type(self).__name__
        check_int(self.k, "k", f, low=1)
        check_choice(self.mode, "mode", f, MODES)
        if self.mode == "faithful" and self.aggregation != "product":
            fail(
                f,
                "aggregation",
                "'product' when mode='faithful' (the released code multiplies the terms)",
                repr(self.aggregation),
            )

    def _fit_sources(
        self, sources: dict[str, BankSource], func: str, extra: dict
    ) -> None:
        q = stream_bank_stats(sources["query"], beta=self.beta_query, k_active=self.k)
        g = stream_bank_stats(
            sources["gallery"], beta=self.beta_gallery, k_active=self.k
        )
        self.lse_query_, self.active_query_ = q.lse, q.active
        self.lse_gallery_, self.active_gallery_ = g.lse, g.active

    def gates(self, sims: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Boolean gates :math:`(\gamma^q_i, \gamma^g_i)` of each row, from its top-1 on ``sims``."""
        top = first_argmax(sims)
        return self.active_query_.to(sims.device)[top], self.active_gallery_.to(
            sims.device
        )[top]

    def _transform(self, s: torch.Tensor) -> torch.Tensor:
        gq, gg = (g.to(s.dtype)[:, None] for g in self.gates(s))
        if self.mode == "principled":
            return self._combine(s, gq, gg)
        # faithful: log|T^q T^g| and its sign, then a row-wise monotone signed log
        log_abs_s = torch.log(s.abs())  # -inf where S == 0
        tq = torch.where(
            gq.bool(), self.beta_query * s - self._stat(self.lse_query_, s), log_abs_s
        )
        tg = torch.where(
            gg.bool(),
            self.beta_gallery * s - self._stat(self.lse_gallery_, s),
            log_abs_s,
        )
        sign_s = torch.sign(s)
        sign = torch.where(gq.bool(), 1.0, sign_s) * torch.where(gg.bool(), 1.0, sign_s)
        log_mag = tq + tg
        finite = torch.isfinite(log_mag)
        row_min = (
            torch.where(finite, log_mag, torch.inf).min(dim=1, keepdim=True).values
        )
        row_min = torch.where(torch.isfinite(row_min), row_min, 0.0)
        return torch.where(finite, sign * (log_mag - row_min + 1), 0.0)
