r"""Sinkhorn normalisation with one bank (SN) and with two banks (DBSN).

Both compute what the released DBSN code computes (DBSN, ACM MM 2025, arXiv
2508.02538; code ``ppanzx/DBSN``, commit 44aacaa, ``Sinkhorn_Normalization`` and its
"Dual-Bank" call in ``Image_Retrieval/dbsn.py`` and ``Video_Retrieval/dbsn.py``),
checked by running that call through POT in the test suite. The release solves
entropic optimal transport between the test gallery (rows) and the query bank
(columns) with POT's ``ot.sinkhorn`` on the cost :math:`1-S` with ``reg`` :math:`=\tau`
(so :math:`\beta=1/\tau`), uniform marginals and ``numItermax=10``, and scores a test
query by :math:`S_{ij}+\tau\log u_j` with the gallery scalings :math:`u`; its dual-bank
variant appends the gallery bank to the rows (its similarities to the query bank) and
keeps the test rows. What matches: the update order (bank side first, from uniform
gallery scalings, then the gallery side), the marginals, the kept potentials and the
number of iterations (``n_iter=10``); the rankings are identical and the scores equal
up to a constant (the cost's 1). What differs: the iterations are run in the log domain
and streamed over bank chunks (no overflow at large :math:`\beta`); POT checks the
marginal error against ``stopThr=1e-9`` every ten iterations, while here the loop stops
when the gallery potentials move less than ``tol`` (``tol=0`` runs exactly ``n_iter``
iterations, as the release does in practice); and the release's :math:`\tau=0.01` is
:math:`\beta=100`, while the default here is DBNorm's :math:`\beta_q`.

Book: :ref:`sec-normalisation`, :ref:`eq-sn`.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from hubrepro._validation import (
    check_int,
    check_matrix,
    check_nonzero_rows,
    check_positive,
    fail,
)
from hubrepro.io import MappedRows

from ._base import (
    DEFAULT_BETA_GALLERY,
    DEFAULT_BETA_QUERY,
    BankSource,
    acc_dtype,
    check_beta,
    check_scale,
    sinkhorn_gallery_potentials,
)
from .inverted_softmax import InvertedSoftmax

__all__ = ["SinkhornNorm", "DBSN"]


class SinkhornNorm(InvertedSoftmax):
    r"""Sinkhorn normalisation (SN): per-gallery potentials of an entropic transport plan from the bank.

    The bank items (rows, mass :math:`1/M` each) are transported to the test
    gallery (columns, mass :math:`1/N` each) with kernel
    :math:`K_{bj}=e^{\beta P_{bj}}`. Sinkhorn's algorithm :cite:`cuturi2013sinkhorn`
    finds scalings :math:`u_b, v_j` with
    :math:`\operatorname{diag}(u) K \operatorname{diag}(v)` having those
    marginals; a test query is then scored against the balanced plan:

    .. math::

        \log v_j \leftarrow -\log N - \mathrm{LSE}_b(\beta P_{bj} + \log u_b),\quad
        \log u_b \leftarrow -\log M - \mathrm{LSE}_j(\beta P_{bj} + \log v_j),

        \mathrm{SN}_{ij} = \beta S_{ij} + \log v_j .

    Each iteration updates the bank side first (from uniform gallery potentials in
    the first iteration), then the gallery side, the order of the released DBSN code
    :cite:`dbsn2025` (``ppanzx/DBSN``, commit 44aacaa, via POT's ``ot.sinkhorn``; see
    the module docstring for what matches). One iteration is therefore
    :class:`InvertedSoftmax` on the bank rows each divided by its own softmax mass,
    :math:`\beta P_{bj}-\mathrm{LSE}_{j'}(\beta P_{bj'})`; it equals IS on the raw bank
    only when every bank row has the same :math:`\mathrm{LSE}_j(\beta P_{bj})`, and
    in general agrees with it on the top-1 of only part of the queries. Further
    iterations balance both sides, so that no gallery item absorbs more than its
    share of the bank's mass.

    Parameters
    ----------
    beta_query, beta_gallery : float
        Inverse temperatures (:math:`\beta`; DBSN's temperature is
        :math:`1/\beta`); the one of ``bank`` is used.
    bank : {"query", "gallery"}, default "query"
    n_iter : int, default 10
        Maximum Sinkhorn iterations (the release runs 10); each is one pass over
        the bank.
    tol : float, default 1e-4
        Stop before ``n_iter`` when no gallery potential :math:`\log v_j` moved by
        ``tol`` or more in the last iteration (``n_iter_`` says how many ran);
        ``0`` runs exactly ``n_iter`` iterations.
    scale : {"similarity", "log"}, default "similarity"
        ``"similarity"`` returns :math:`S_{ij}+\log v_j/\beta`.

    Attributes
    ----------
    log_v_ : Tensor of shape (n_gallery,)
    n_iter_ : int
        Iterations run.

    Notes
    -----
    Streaming: each iteration recomputes the bank chunks (from embeddings: one
    bank matmul pass per iteration), keeping only the bank potentials
    :math:`\log u` (``n_bank`` values) and ``chunk_size * n_gallery`` scores in
    memory. Cost is ``n_iter`` times that of :class:`InvertedSoftmax`.

    Book: :ref:`sec-normalisation`.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.normalize import SinkhornNorm
    >>> bank = torch.tensor([[0.9, 0.1], [0.8, 0.2]])
    >>> SinkhornNorm(beta_query=10.0).fit(bank).transform(torch.tensor([[0.9, 0.8]])).argmax().item()
    1
    """

    banks = ("query",)

    def __init__(
        self,
        *,
        beta_query: float = DEFAULT_BETA_QUERY,
        beta_gallery: float = DEFAULT_BETA_GALLERY,
        bank: str = "query",
        n_iter: int = 10,
        tol: float = 1e-4,
        scale: str = "similarity",
    ) -> None:
        self._store(
            beta_query=beta_query,
            beta_gallery=beta_gallery,
            bank=bank,
            n_iter=n_iter,
            tol=tol,
            scale=scale,
        )

    def _check_params(self) -> None:
        super()._check_params()
        f = type(self).__name__
        check_int(self.n_iter, "n_iter", f, low=1)
        check_positive(self.tol, "tol", f, allow_zero=True)

    def _fit_sources(
        self, sources: dict[str, BankSource], func: str, extra: dict
    ) -> None:
        self.log_v_, self.n_iter_ = sinkhorn_gallery_potentials(
            sources[self.bank], beta=self.beta_, n_iter=self.n_iter, tol=self.tol
        )

    def _transform(self, s: torch.Tensor) -> torch.Tensor:
        lv = self._stat(self.log_v_, s)
        return (
            s + lv / self.beta_ if self.scale == "similarity" else self.beta_ * s + lv
        )


class _ConcatSource(BankSource):
    """Row chunks of ``[bank_query_sims | bank_cross_sims]`` without concatenating the matrices."""

    def __init__(
        self,
        left: torch.Tensor,
        right: torch.Tensor,
        chunk_size: int,
        dtype: torch.dtype,
        reducer=None,
    ) -> None:
        self.left, self.right = left, right
        self.chunk_size, self.dtype = chunk_size, dtype
        self.reducer = reducer
        self.n_bank = left.shape[0]
        self.n_bank_total = (
            self.n_bank if reducer is None else reducer.sum_int(self.n_bank)
        )
        self.n_gallery = left.shape[1] + right.shape[1]
        self.device = left.device

    def blocks(self) -> Iterator[tuple[int, torch.Tensor]]:
        for a in range(0, self.n_bank, self.chunk_size):
            b = min(a + self.chunk_size, self.n_bank)
            yield (
                a,
                torch.cat(
                    [
                        self.left[a:b].to(self.dtype),
                        self.right[a:b].to(device=self.device, dtype=self.dtype),
                    ],
                    1,
                ),
            )


class DBSN(SinkhornNorm):
    r"""Dual-bank Sinkhorn normalisation (DBSN): SN whose targets include the gallery bank.

    A query bank drawn from training pairs has its own partners, the gallery
    bank; transporting it onto the test gallery alone forces its mass onto
    test items it has no partner among. DBSN transports the query bank onto the
    union of the test gallery and the gallery bank, with uniform marginals, and
    keeps the potentials of the test columns:

    .. math::

        \tilde P = \big[\,P^q \;\big|\; P^{qg}\,\big]\in\mathbb R^{M_q\times(N+M_g)},\quad
        P^{qg}_{bb'} = s(\hat q_b, \hat g_{b'}),

        \mathrm{DBSN}_{ij} = \beta_q S_{ij} + \log v_j,\quad j\le N,

    with :math:`v` the column potentials of Sinkhorn on :math:`e^{\beta_q\tilde P}`
    (see :class:`SinkhornNorm`). This is the "Dual-Bank Sinkhorn_Normalization" of
    the released code :cite:`dbsn2025` (``ppanzx/DBSN``, commit 44aacaa, which
    concatenates the test-gallery and gallery-bank similarities to the query bank
    and keeps the test rows' potentials), up to the differences listed in the module
    docstring.

    From matrices, call ``fit(bank_query_sims, bank_cross_sims=...)`` where
    ``bank_cross_sims`` is :math:`P^{qg}` of shape ``(n_bank_query,
    n_bank_gallery)`` (cross-modal); ``bank_gallery_sims`` (intra-modal) is not
    used. From embeddings, ``fit_embeddings(gallery, bank_query=...,
    bank_gallery=...)`` computes both blocks chunk by chunk.

    Parameters
    ----------
    beta_query : float, default ``DEFAULT_BETA_QUERY`` (1/1.99)
    n_iter, tol, scale
        As in :class:`SinkhornNorm`.

    Book: :ref:`sec-normalisation`.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.normalize import DBSN
    >>> pq, cross = torch.tensor([[0.9, 0.1], [0.8, 0.2]]), torch.tensor([[0.5], [0.4]])
    >>> DBSN(beta_query=10.0).fit(pq, bank_cross_sims=cross).log_v_.shape
    torch.Size([2])
    """

    banks = ("query",)
    _fit_extras = ("bank_cross_sims",)

    def __init__(
        self,
        *,
        beta_query: float = DEFAULT_BETA_QUERY,
        n_iter: int = 10,
        tol: float = 1e-4,
        scale: str = "similarity",
    ) -> None:
        self._store(beta_query=beta_query, n_iter=n_iter, tol=tol, scale=scale)

    @property
    def beta_(self) -> float:
        """:math:`\\beta_q`."""
        return self.beta_query

    def _required(self) -> tuple[str, ...]:
        return ("query",)

    def _check_params(self) -> None:
        f = type(self).__name__
        check_beta(self.beta_query, "beta_query", f)
        check_int(self.n_iter, "n_iter", f, low=1)
        check_positive(self.tol, "tol", f, allow_zero=True)
        check_scale(self.scale, f)

    def fit(
        self, bank_query_sims=None, bank_gallery_sims=None, *, bank_cross_sims=None
    ) -> DBSN:  # noqa: D417
        """Fit from :math:`P^q` and ``bank_cross_sims`` :math:`P^{qg}` (``bank_gallery_sims`` is unused)."""
        return super().fit(
            bank_query_sims, bank_gallery_sims, bank_cross_sims=bank_cross_sims
        )

    def _fit_sources(
        self, sources: dict[str, BankSource], func: str, extra: dict
    ) -> None:
        src = sources["query"]
        if "_embeddings" in extra:
            g, embs, metric, chunk, bank_dtype, unit_norm = extra["_embeddings"]
            if embs["gallery"] is None:
                fail(
                    func,
                    "bank_gallery",
                    "given (DBSN transports onto the gallery bank too)",
                    "None",
                )
            bg = embs["gallery"]
            if isinstance(bg, MappedRows):  # a target set: needed whole on every rank
                bg = bg.load()
            bg = check_matrix(
                bg, "bank_gallery", func, allow_empty=src.reducer is not None
            )
            if (
                src.reducer is not None
            ):  # every rank transports onto the whole gallery bank
                bg = src.reducer.gather_rows(bg)
            if bg.shape[1] != g.shape[1]:
                fail(
                    func,
                    "bank_gallery",
                    f"of dimension {g.shape[1]} (the gallery's)",
                    f"shape {tuple(bg.shape)}",
                )
            if metric == "cosine" and not unit_norm:
                check_nonzero_rows(bg, "bank_gallery", func)
            targets = torch.cat(
                [g.to(src.dtype), bg.to(device=g.device, dtype=src.dtype)], dim=0
            )
            aug = BankSource(
                bank=src.bank,
                gallery=targets,
                metric=metric,
                chunk_size=chunk,
                bank_dtype=bank_dtype,
                dtype=src.dtype,
                unit_norm=unit_norm,
                reducer=src.reducer,
                name="bank_query",
                func=func,
            )
        else:
            cross = extra.get("bank_cross_sims")
            if cross is None:
                fail(
                    func,
                    "bank_cross_sims",
                    "given (DBSN needs the bank-query x bank-gallery similarities)",
                    "None",
                    "Pass `bank_cross_sims` of shape (n_bank_query, n_bank_gallery), or use fit_embeddings.",
                )
            c = check_matrix(
                cross, "bank_cross_sims", func, allow_empty=src.reducer is not None
            )
            if c.shape[0] != src.n_bank:
                fail(
                    func,
                    "bank_cross_sims",
                    f"of height {src.n_bank} (n_bank_query)",
                    f"shape {tuple(c.shape)}",
                )
            aug = _ConcatSource(
                src.matrix, c, src.chunk_size, acc_dtype(src.dtype), src.reducer
            )
        self.log_v_, self.n_iter_ = sinkhorn_gallery_potentials(
            aug,
            beta=self.beta_query,
            n_iter=self.n_iter,
            tol=self.tol,
            n_target=src.n_gallery,
        )
