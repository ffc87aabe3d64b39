r"""Estimator base class and streaming bank statistics for post-hoc normalisers.

Every normaliser of :mod:`hubrepro.normalize` turns a test similarity matrix
``sims`` (:math:`S`, shape ``(n_query, n_gallery)``) into a score matrix of the
same shape whose row-wise ranking is the method's ranking. What a method learns
from its bank(s) is one or a few **per-gallery statistics** (vectors of length
``n_gallery``), computed once by ``fit`` and reused for every new query:

- ``lse``: :math:`c_j=\mathrm{LSE}_b(\beta P_{bj})`, a log-sum-exp over the bank
  axis, accumulated with a running maximum so that :math:`\beta P` up to
  :math:`10^4` neither overflows nor loses the ranking;
- ``active``: the activation set :math:`A=\bigcup_b \mathrm{TopK}_k\{j: P_{bj}\}`
  as a boolean mask (ties broken towards the lowest gallery index);
- ``topk_mean``: the mean of the ``k`` largest bank similarities of each gallery
  column (CSLS, NNN).

The bank matrix :math:`P` (``(n_bank, n_gallery)``) is read in row chunks: from a
precomputed matrix (views, no copy) or from embeddings, where each chunk
``bank[a:b] @ gallery.T`` is computed, reduced and dropped, so the full bank x
gallery matrix is never materialised. Peak extra memory is
``chunk_size * n_gallery`` scores plus a few ``n_gallery`` vectors.

Book: :ref:`sec-normalisation`, section "Streaming design".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from hubrepro._validation import (
    check_choice,
    check_int,
    check_matrix,
    check_nonzero_rows,
    check_positive,
    fail,
)
from hubrepro.io import MappedRows
from hubrepro.ot import lse_update as _lse_update
from hubrepro.ot import (  # noqa: F401 - normalize.sinkhorn imports it from here
    sinkhorn_column_potentials as sinkhorn_gallery_potentials,
)

__all__ = [
    "DEFAULT_BETA_QUERY",
    "DEFAULT_BETA_GALLERY",
    "BankSource",
    "BankStats",
    "BaseNormalizer",
    "stream_bank_stats",
    "DEFAULT_CHUNK_SIZE",
]

DEFAULT_CHUNK_SIZE = 4096

#: Default :math:`\beta_q` (``beta_query``) of the softmax-type normalisers: ``1/1.99``,
#: the default ``beta1`` of ``db_norm`` in the released DBNorm code
#: (``yimuwangcs/Better_Cross_Modal_Retrieval``, ``DBNorm/dbnorm.py``, commit 898bd23).
#: QB-Norm's released default is 20 (``ioanacroi/qb-norm``,
#: ``dynamic_inverted_softmax.py``); the DBNorm notebooks tune :math:`\beta` on a
#: validation split (:ref:`sec-dbnorm-protocol`).
DEFAULT_BETA_QUERY = 1 / 1.99
#: Default :math:`\beta_g` (``beta_gallery``): 3, the default ``beta2`` of ``db_norm``
#: in the same file and commit.
DEFAULT_BETA_GALLERY = 3.0
SCALES = ("similarity", "log")
METRICS = ("cosine", "dot")


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float64 stays float64, everything else becomes float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _l2(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def unit_rows(x: torch.Tensor, name: str, func: str, offset: int = 0) -> torch.Tensor:
    """Rows scaled to unit norm for the cosine metric; a zero row (no direction) is refused."""
    norm = x.norm(dim=1, keepdim=True)
    if x.numel() and not bool(norm.amin() > 0):
        check_nonzero_rows(x, name, func, offset=offset)
    return x / norm.clamp_min(torch.finfo(x.dtype).tiny)


def check_embedding_rows(
    x: torch.Tensor, name: str, func: str, offset: int = 0
) -> float:
    """Refuse non-finite embedding rows (position reported); return the largest ``|x|``."""
    big = float(x.abs().amax()) if x.numel() else 0.0
    if not math.isfinite(big):
        i, j = (int(v) for v in (~torch.isfinite(x)).nonzero()[0])
        fail(func, name, "finite (no NaN or infinity)",
             f"{x[i, j].item()} at index {(offset + i, j)}",
             "Drop or repair those rows before calling.")  # fmt: skip
    return big


def check_scores_fit(
    out: torch.Tensor, dtype: torch.dtype, func: str, hint: str = ""
) -> None:
    """Refuse scores that are not finite, or that do not fit ``dtype`` (the dtype returned).

    The scores are computed in float32 (float64 for float64 input) and returned in
    the dtype of ``sims``: a float16 result holds ``|score| <= 65504`` only, so a
    large :math:`\\beta S` on the log scale is refused instead of becoming
    :math:`\\pm\\infty`.
    """
    if out.numel() == 0:
        return
    lo, hi = (float(v) for v in torch.aminmax(out))
    limit = torch.finfo(dtype).max
    if math.isfinite(lo) and math.isfinite(hi) and max(-lo, hi) <= limit:
        return
    fail(
        func,
        "scores",
        f"finite in {str(dtype).replace('torch.', '')} (|score| <= {limit:.6g})",
        f"scores from {lo:.4g} to {hi:.4g}",
        "Pass `sims` (or the embeddings) as float32 or float64: scores are computed in "
        "float32 and returned in the input's dtype"
        + (f"; {hint}" if hint else "")
        + ".",
    )


class BankSource:
    """Row chunks of a bank x gallery matrix, from a matrix or from embeddings.

    Parameters
    ----------
    matrix : Tensor of shape (n_bank, n_gallery), optional
        A precomputed bank similarity matrix; chunks are views (no copy).
    bank, gallery : Tensor of shape (n_bank, d) and (n_gallery, d), optional
        Embeddings; each chunk is ``bank[a:b] @ gallery.T`` (cosine or dot).
    metric : {"cosine", "dot"}
        Similarity for embeddings.
    chunk_size : int
        Bank rows per chunk.
    bank_dtype : torch.dtype, optional
        Dtype of the bank products (e.g. ``torch.bfloat16``); statistics are
        always accumulated in ``dtype``.
    dtype : torch.dtype
        Dtype of the yielded chunks (the accumulation dtype).
    unit_norm : bool, default False
        The caller declares that the bank rows (and the gallery) already have unit
        norm: with ``metric="cosine"`` the chunks are not re-normalised (one pass
        over the bank fewer). Wrong declarations give dot products, not cosines.
    reducer : object, optional
        Combines the statistics of this process's shard with the other processes'
        (:mod:`hubrepro.normalize.distributed`); ``None`` for one process.
    name, func : str
        How the bank and the caller are named in error messages. Bank embeddings are
        checked chunk by chunk as they are read: non-finite values, zero rows under
        the cosine metric and dot products that could overflow are refused.

    Attributes
    ----------
    n_bank : int
        Rows of this process's shard.
    n_bank_total : int
        Rows of the whole bank (all shards).
    """

    def __init__(
        self,
        *,
        matrix: torch.Tensor | None = None,
        bank: torch.Tensor | None = None,
        gallery: torch.Tensor | None = None,
        metric: str = "cosine",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        bank_dtype: torch.dtype | None = None,
        dtype: torch.dtype = torch.float32,
        unit_norm: bool = False,
        reducer: Any = None,
        name: str = "bank",
        func: str = "fit_embeddings",
    ) -> None:
        self.name, self.func = name, func
        self.matrix = matrix
        self.unit_norm = unit_norm
        self.reducer = reducer
        self.bank = bank
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.metric = metric
        self.bank_dtype = bank_dtype
        if matrix is None:
            assert (
                bank is not None and gallery is not None
            )  # private: callers validated
            g = gallery.to(dtype)
            if metric == "cosine" and not unit_norm:
                g = unit_rows(g, "gallery", func)
            # |x . g| <= |x|max |g|max d: a bank chunk whose bound exceeds this may overflow
            self._dot_limit = torch.finfo(bank_dtype or dtype).max / max(
                1.0, float(g.abs().amax()) * g.shape[1] if g.numel() else 1.0
            )
            self._gallery_t = g.to(bank_dtype or dtype).T.contiguous()
            self.n_bank, self.n_gallery = bank.shape[0], gallery.shape[0]
            self.device = gallery.device
        else:
            self.n_bank, self.n_gallery = matrix.shape
            self.device = matrix.device
        self.n_bank_total = (
            self.n_bank if reducer is None else reducer.sum_int(self.n_bank)
        )

    def _rows(self, a: int, b: int) -> torch.Tensor:
        """Bank rows ``[a, b)`` on the device, in the accumulation dtype."""
        if isinstance(self.bank, MappedRows):
            x = self.bank.rows(a, b).to(device=self.device, dtype=self.dtype)
            self.bank.release(a, b)  # the copy is ours: the pages can go
            return x
        return self.bank[a:b].to(device=self.device, dtype=self.dtype)

    def blocks(self) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, chunk)`` with ``chunk`` of shape ``(rows, n_gallery)``.

        A chunk is valid until the next one is requested (its memory is reused).
        """
        buf = None
        for a in range(0, self.n_bank, self.chunk_size):
            b = min(a + self.chunk_size, self.n_bank)
            if self.matrix is not None:
                yield a, self.matrix[a:b].to(self.dtype)
                continue
            x = self._rows(a, b)
            big = check_embedding_rows(x, self.name, self.func, a)
            if self.metric == "cosine" and not self.unit_norm:
                x = unit_rows(x, self.name, self.func, a)
            elif big > self._dot_limit:
                fail(self.func, self.name, "small enough that its dot products with the "
                     f"gallery fit {self.bank_dtype or self.dtype}",
                     f"entries up to {big:.3g} in rows [{a}, {b})",
                     "Rescale the embeddings or use metric='cosine'.")  # fmt: skip
            x = x.to(self.bank_dtype or self.dtype)
            if x.dtype != self.dtype:
                yield a, (x @ self._gallery_t).to(self.dtype)
                continue
            # one reused output buffer: large allocations are page-faulted afresh each time
            if buf is None:
                rows = min(self.chunk_size, self.n_bank)
                buf = torch.empty(
                    rows, self.n_gallery, dtype=self.dtype, device=self.device
                )
            out = buf[: b - a]
            torch.matmul(x, self._gallery_t, out=out)
            yield a, out


def topk_mask_rows(block: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of each row's top-``k`` columns, ties to the lowest index.

    ``torch.topk`` does not specify which of several equal values it keeps, so
    the ``k``-th value is found first and the ties at it are filled from the left.
    """
    if k == 1:
        mask = torch.zeros_like(block, dtype=torch.bool)
        mask[torch.arange(block.shape[0], device=block.device), block.argmax(dim=1)] = (
            True
        )
        return mask
    kth = block.topk(k, dim=1).values[:, -1:]
    greater = block > kth
    need = k - greater.sum(dim=1, keepdim=True)
    eq = block == kth
    return greater | (eq & (eq.cumsum(dim=1) <= need))


def first_argmax(sims: torch.Tensor) -> torch.Tensor:
    """Column of each row's maximum, the lowest index among ties (the DIS gate)."""
    return sims.argmax(dim=1)


@dataclass
class BankStats:
    """Per-gallery statistics of one bank (vectors of length ``n_gallery``)."""

    n_bank: int
    lse: torch.Tensor | None = None
    active: torch.Tensor | None = None
    topk_mean: torch.Tensor | None = None


def stream_bank_stats(
    source: BankSource,
    *,
    beta: float | None = None,
    k_active: int | None = None,
    k_top: int | None = None,
) -> BankStats:
    r"""One pass over the bank: log-sum-exp, activation set and top-k column means.

    Parameters
    ----------
    source : BankSource
        The bank, in row chunks.
    beta : float, optional
        Inverse temperature; computes :math:`c_j=\log\sum_b e^{\beta P_{bj}}` with a
        running maximum (no overflow for any finite :math:`\beta P`).
    k_active : int, optional
        Computes the activation set (union over bank rows of the row's top-k).
    k_top : int, optional
        Computes the mean of the ``k_top`` largest entries of each column.
    """
    n, dev, dt = source.n_gallery, source.device, source.dtype
    run_max = torch.full((n,), -math.inf, device=dev, dtype=dt)
    run_sum = torch.zeros(n, device=dev, dtype=dt)
    active = torch.zeros(n, device=dev, dtype=torch.bool) if k_active else None
    top = None
    zbuf = None
    for _, block in source.blocks():
        if active is not None:
            if k_active == 1:
                # fast path: `max(dim).indices` is the first maximum (lowest index on
                # ties), like argmax, and faster on CPU
                active[block.max(dim=1).indices] = True
            else:
                active |= topk_mask_rows(block, k_active).any(dim=0)
        if beta is not None:
            if zbuf is None:
                rows = min(source.chunk_size, source.n_bank)
                zbuf = torch.empty(rows, n, dtype=dt, device=dev)
            run_max, run_sum = _lse_update(block, beta, run_max, run_sum, zbuf)
        if k_top:
            cand = block if top is None else torch.cat([top, block], dim=0)
            kk = min(k_top, cand.shape[0])
            top = cand.topk(kk, dim=0).values
    red = getattr(source, "reducer", None)
    stats = BankStats(n_bank=source.n_bank_total, active=active)
    if active is not None and red is not None:
        stats.active = red.any(active)
    if beta is not None:
        stats.lse = run_max + torch.log(run_sum)
        if red is not None:
            stats.lse = red.logsumexp(stats.lse)
    if k_top:
        if top is None:  # an empty shard
            top = torch.empty(0, n, device=dev, dtype=dt)
        if red is not None:
            top = red.topk(top, k_top)
        stats.topk_mean = top.mean(dim=0)
    return stats


class NotFittedError(ValueError):
    """Raised when ``transform`` is called before ``fit``."""


class BaseNormalizer:
    """Base class of every post-hoc normaliser (scikit-learn style).

    ``__init__`` only stores the hyperparameters; :meth:`fit` (bank similarity
    matrices) or :meth:`fit_embeddings` (bank embeddings, streamed) validates them
    and computes the per-gallery statistics (attributes ending in ``_``);
    :meth:`transform` maps a test similarity matrix to scores of the same shape,
    dtype and device. ``fit`` returns ``self``; fitting twice on the same bank
    gives identical statistics.

    Subclasses set ``banks`` (the banks they need: a subset of
    ``("query", "gallery")``) and implement ``_check_params``, ``_fit_sources``
    and ``_transform``.
    """

    #: banks the method needs
    banks: tuple[str, ...] = ()
    #: banks the method can use (``bank`` hyperparameter picks one)
    _name = "BaseNormalizer"

    # ---------------------------------------------------------------- params
    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as a dict (the ``__init__`` arguments)."""
        return dict(self._params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"

    def _store(self, **params: Any) -> None:
        self._params = params
        for k, v in params.items():
            setattr(self, k, v)

    def _check_params(self) -> None:  # pragma: no cover - overridden
        pass

    def _required(self) -> tuple[str, ...]:
        return self.banks

    # ---------------------------------------------------------------- fit
    def fit(
        self,
        bank_query_sims: Any = None,
        bank_gallery_sims: Any = None,
        **extra: Any,
    ) -> BaseNormalizer:
        """Compute the per-gallery bank statistics from bank similarity matrices.

        Parameters
        ----------
        bank_query_sims : Tensor or ndarray of shape (n_bank_query, n_gallery), optional
            :math:`P^q`, similarities of query-bank items to the test gallery.
        bank_gallery_sims : Tensor or ndarray of shape (n_bank_gallery, n_gallery), optional
            :math:`P^g`, similarities of gallery-bank items to the test gallery.

        Returns
        -------
        self
        """
        func = f"{type(self).__name__}.fit"
        unknown = sorted(set(extra) - set(getattr(self, "_fit_extras", ())))
        if unknown:
            fail(
                func,
                "keyword arguments",
                "bank_query_sims and bank_gallery_sims only",
                unknown,
                exc=TypeError,
            )
        self._check_params()
        mats = {"query": bank_query_sims, "gallery": bank_gallery_sims}
        names = {"query": "bank_query_sims", "gallery": "bank_gallery_sims"}
        sources: dict[str, BankSource] = {}
        width = None
        for bank in self._required():
            if mats[bank] is None:
                fail(
                    func,
                    names[bank],
                    f"given ({type(self).__name__} needs the {bank} bank)",
                    "None",
                    f"Pass `{names[bank]}` of shape (n_bank_{bank}, n_gallery).",
                )
            # finiteness is checked through the statistics (`_verify_finite`): one pass fewer
            red = getattr(self, "_reducer", None)
            t = check_matrix(
                mats[bank], names[bank], func, finite=False, allow_empty=red is not None
            )
            if width is not None and t.shape[1] != width:
                fail(
                    func,
                    names[bank],
                    f"of width {width} (n_gallery of the other bank)",
                    f"shape {tuple(t.shape)}",
                )
            width = t.shape[1]
            sources[bank] = BankSource(
                matrix=t,
                chunk_size=self._chunk(),
                dtype=acc_dtype(t.dtype),
                reducer=red,
            )
        self._fit_common(sources, width, func, extra)
        self.gallery_sha256_ = None
        self.metric_ = None
        self._verify_finite(func, {names[b]: src.matrix for b, src in sources.items()})
        return self

    def fit_embeddings(
        self,
        gallery: Any,
        *,
        bank_query: Any = None,
        bank_gallery: Any = None,
        metric: str = "cosine",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        bank_dtype: torch.dtype | None = None,
        unit_norm: bool = False,
    ) -> BaseNormalizer:
        """Compute the bank statistics from embeddings, streaming the bank in chunks.

        The bank x gallery matrix is never materialised: each chunk of
        ``chunk_size`` bank rows is multiplied with the gallery, reduced into the
        per-gallery statistics and dropped. A bank may be a
        :class:`hubrepro.io.MappedRows` (a memory-mapped ``.npy`` file, e.g.
        float16 on disk): it is then read chunk by chunk and never whole.

        Parameters
        ----------
        gallery : Tensor of shape (n_gallery, d)
            Test gallery embeddings.
        bank_query, bank_gallery : Tensor of shape (n_bank_*, d), optional
            Bank embeddings (query modality and gallery modality).
        metric : {"cosine", "dot"}, default "cosine"
        chunk_size : int, default 4096
            Bank rows per chunk (peak memory ``chunk_size * n_gallery`` scores).
        bank_dtype : torch.dtype, optional
            Dtype of the bank products, e.g. ``torch.bfloat16`` (faster on GPUs,
            lower precision); statistics are accumulated in float32/float64.
        unit_norm : bool, default False
            Declare that the gallery and bank rows already have unit norm, so that
            ``metric="cosine"`` skips re-normalising them (one pass over the bank
            fewer). Only declare it if true: otherwise the products are dot products.

        Returns
        -------
        self
        """
        func = f"{type(self).__name__}.fit_embeddings"
        self._check_params()
        g = check_matrix(gallery, "gallery", func)
        check_choice(metric, "metric", func, METRICS)
        check_int(chunk_size, "chunk_size", func, low=1)
        if bank_dtype is not None and bank_dtype not in (
            torch.float16,
            torch.bfloat16,
            torch.float32,
            torch.float64,
        ):
            fail(
                func,
                "bank_dtype",
                "a floating torch dtype or None",
                repr(bank_dtype),
                exc=TypeError,
            )
        embs = {"query": bank_query, "gallery": bank_gallery}
        sources: dict[str, BankSource] = {}
        for bank in self._required():
            name = f"bank_{bank}"
            if embs[bank] is None:
                fail(
                    func,
                    name,
                    f"given ({type(self).__name__} needs the {bank} bank)",
                    "None",
                )
            red = getattr(self, "_reducer", None)
            if isinstance(embs[bank], MappedRows):
                e = embs[bank]
                if e.shape[0] == 0 and red is None:
                    fail(func, name, "non-empty", f"an empty bank {e!r}")
            else:
                e = check_matrix(
                    embs[bank], name, func, finite=False, allow_empty=red is not None
                )
            if e.shape[1] != g.shape[1]:
                fail(
                    func,
                    name,
                    f"of dimension {g.shape[1]} (the gallery's)",
                    f"shape {tuple(e.shape)}",
                )
            sources[bank] = BankSource(
                bank=e,
                gallery=g,
                metric=metric,
                chunk_size=chunk_size,
                bank_dtype=bank_dtype,
                dtype=acc_dtype(g.dtype),
                unit_norm=unit_norm,
                reducer=red,
                name=name,
                func=func,
            )
        self._fit_common(
            sources,
            g.shape[0],
            func,
            {"_embeddings": (g, embs, metric, chunk_size, bank_dtype, unit_norm)},
        )
        from hubrepro.io import array_sha256

        self.gallery_sha256_ = array_sha256(g)
        self.metric_ = metric
        self._verify_finite(func, {})  # the bank rows were checked as they were read
        return self

    def save(self, path: Any, *, gallery: Any = None, overwrite: bool = False) -> Any:
        """Save the fitted statistics (see :func:`hubrepro.normalize.save_normalizer`)."""
        from .persist import save_normalizer

        return save_normalizer(self, path, gallery=gallery, overwrite=overwrite)

    def _verify_finite(self, func: str, inputs: dict[str, torch.Tensor]) -> None:
        """Refuse non-finite bank similarity matrices, found through the fitted statistics.

        NaN and :math:`+\\infty` make the log-sum-exp, top-k mean or sorted bank of
        their column non-finite, so the banks are scanned (for the exact position, in
        the usual error template) only when a statistic is. :math:`-\\infty` can hide
        (:math:`e^{-\\infty}=0` in a partition sum, never in a top-k), so each matrix's
        minimum is checked too: every method refuses it, as it refuses NaN and
        :math:`+\\infty` (it does not mean "masked out"). Bank embeddings are checked
        chunk by chunk as they are read (:class:`BankSource`).
        """
        stats = [
            v
            for k, v in vars(self).items()
            if k.endswith("_") and isinstance(v, torch.Tensor) and v.is_floating_point()
        ]
        finite = all(bool(torch.isfinite(v).all()) for v in stats)
        hidden = [
            t for t in inputs.values() if t.numel() and float(t.amin()) == -math.inf
        ]
        if finite and not hidden:
            return
        self.fitted_ = False
        for name, t in inputs.items():
            check_matrix(t, name, func, allow_empty=True)
        fail(
            func,
            "banks",
            "such that the bank similarities are finite",
            "non-finite statistics (the products overflow)",
            "Rescale the embeddings or lower the inverse temperatures.",
        )

    def _chunk(self) -> int:
        return DEFAULT_CHUNK_SIZE

    def _fit_common(
        self,
        sources: dict[str, BankSource],
        n_gallery: int | None,
        func: str,
        extra: dict,
    ) -> None:
        if n_gallery is None:  # method needing no bank
            n_gallery = -1
        for bank, src in sources.items():
            self._check_bank_size(src, bank, func)
        self._fit_sources(sources, func, extra)
        self.n_gallery_ = n_gallery
        self.n_bank_ = {b: src.n_bank_total for b, src in sources.items()}
        self.fitted_ = True

    def _check_bank_size(self, src: BankSource, bank: str, func: str) -> None:
        k = getattr(self, "k", None)
        if k is None:
            return
        axes = getattr(self, "_k_axes", ("gallery",))
        if "gallery" in axes and k > src.n_gallery:
            fail(func, "k", f"at most n_gallery = {src.n_gallery}", k, "Lower `k`.")
        if "bank" in axes and k > src.n_bank_total:
            fail(
                func,
                "k",
                f"at most the bank size n_bank_{bank} = {src.n_bank_total}",
                k,
                "Lower `k` or use a larger bank.",
            )

    def _fit_sources(
        self, sources: dict[str, BankSource], func: str, extra: dict
    ) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- transform
    def transform(self, sims: Any) -> torch.Tensor:
        """Normalise a test similarity matrix with the fitted bank statistics.

        Parameters
        ----------
        sims : Tensor or ndarray of shape (n_query, n_gallery)
            :math:`S`, the test similarities. Never modified.

        Returns
        -------
        Tensor of shape (n_query, n_gallery)
            A new tensor with the dtype and device of ``sims``; each row's ranking
            is the method's ranking. The scores are finite for any :math:`\\beta S`:
            they are computed in float32 (float64 for float64 ``sims``), and a score
            that does not fit the dtype of ``sims`` (float16 holds
            :math:`|x|\\le 65504`: e.g. ``scale="log"`` with a large
            :math:`\\beta S`) raises ``ValueError`` instead of becoming
            :math:`\\pm\\infty`.
        """
        func = f"{type(self).__name__}.transform"
        if not getattr(self, "fitted_", False):
            raise NotFittedError(
                f"{func}: this {type(self).__name__} is not fitted yet; call `fit(...)` or "
                "`fit_embeddings(...)` with the bank(s) first."
            )
        s = check_matrix(sims, "sims", func)
        if self.n_gallery_ >= 0 and s.shape[1] != self.n_gallery_:
            fail(
                func,
                "sims",
                f"of width {self.n_gallery_} (n_gallery of the fitted banks)",
                f"shape {tuple(s.shape)}",
            )
        self._check_transform(s, func)
        out = self._transform(s.to(acc_dtype(s.dtype)))
        check_scores_fit(out, s.dtype, func, self._fit_hint())
        return out.to(dtype=s.dtype, device=s.device)

    def _fit_hint(self) -> str:
        """What else to try when the scores do not fit (the log scale grows with beta)."""
        return (
            "or use scale='similarity'" if getattr(self, "scale", None) == "log" else ""
        )

    def _check_transform(self, s: torch.Tensor, func: str) -> None:
        pass

    def _transform(self, s: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fit_transform(
        self, sims: Any, bank_query_sims: Any = None, bank_gallery_sims: Any = None
    ) -> torch.Tensor:
        """``fit(bank_query_sims, bank_gallery_sims).transform(sims)``."""
        return self.fit(bank_query_sims, bank_gallery_sims).transform(sims)

    def _stat(self, vec: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return vec.to(device=like.device, dtype=like.dtype)


def check_beta(value: Any, name: str, func: str) -> float:
    """A positive, finite inverse temperature."""
    return check_positive(value, name, func)


def check_scale(value: Any, func: str) -> str:
    """``"similarity"`` (rank-equivalent, on the scale of S) or ``"log"``."""
    return check_choice(value, "scale", func, SCALES)


def check_bank_choice(value: Any, func: str) -> str:
    """``"query"`` or ``"gallery"``."""
    return check_choice(value, "bank", func, ("query", "gallery"))


RowFn = Callable[[torch.Tensor], torch.Tensor]
