r"""Post-hoc hubness reduction: IS, DIS (QB-Norm), CSLS, GC, DualIS, DualDIS, SN, DBSN, NNN.

Every method is an estimator (``fit`` on the bank(s) once, ``transform`` any
number of test similarity matrices) and is reachable by name through
:data:`METHODS`, :func:`normalize` (precomputed matrices) and
:func:`normalize_embeddings` (embeddings; the bank x gallery matrices are
streamed in chunks and never materialised).

Matrix conventions (CONTRIBUTING.md): ``sims`` is ``(n_query, n_gallery)``,
``bank_query_sims`` is ``(n_bank_query, n_gallery)`` (cross-modal),
``bank_gallery_sims`` is ``(n_bank_gallery, n_gallery)`` (intra-modal). The
output has the shape, dtype and device of ``sims``; each row's ranking is the
method's ranking. Softmax-type methods return, by default, the rank-equivalent
score on the scale of ``sims`` (``scale="similarity"``); ``scale="log"``
returns the log of the method's product of softmaxes.

Inputs and numbers: every similarity, bank similarity and embedding must be finite;
NaN, :math:`+\infty` and :math:`-\infty` are refused with the position of the first
(:math:`-\infty` does not mean "masked out": drop the bank row instead). Under the
cosine metric a zero embedding row (no direction) is refused. Scores are computed in
float32 (float64 for float64 inputs) and returned in the input's dtype; one that does
not fit it (float16 holds :math:`|x|\le 65504`, e.g. ``scale="log"`` with a large
:math:`\beta S`) is refused rather than returned as :math:`\pm\infty`.

Book: :ref:`sec-normalisation`.
"""

from __future__ import annotations

from typing import Any

import torch

from hubrepro._validation import check_choice, check_int, check_matrix, fail

from ._base import (
    DEFAULT_CHUNK_SIZE,
    METRICS,
    BaseNormalizer,
    NotFittedError,
    acc_dtype,
    check_scores_fit,
    unit_rows,
)
from .csls import CSLS
from .dual import DualDIS, DualIS
from .gc import GloballyCorrected
from .identity import Identity
from .inverted_softmax import InvertedSoftmax
from .nnn import NNN
from .persist import load_normalizer, read_record, save_normalizer
from .qb_norm import QBNorm
from .sinkhorn import DBSN, SinkhornNorm

__all__ = [
    "METHODS",
    "DIRECTIONS",
    "normalize",
    "normalize_embeddings",
    "make_normalizer",
    "transform_embeddings",
    "save_normalizer",
    "load_normalizer",
    "read_record",
    "BaseNormalizer",
    "NotFittedError",
    "Identity",
    "InvertedSoftmax",
    "QBNorm",
    "CSLS",
    "GloballyCorrected",
    "DualIS",
    "DualDIS",
    "SinkhornNorm",
    "DBSN",
    "NNN",
]

#: lower-case method name -> estimator class
METHODS: dict[str, type[BaseNormalizer]] = {
    "none": Identity,
    "is": InvertedSoftmax,
    "dis": QBNorm,
    "csls": CSLS,
    "gc": GloballyCorrected,
    "dualis": DualIS,
    "dualdis": DualDIS,
    "sn": SinkhornNorm,
    "dbsn": DBSN,
    "nnn": NNN,
}

DIRECTIONS = ("query_to_gallery", "gallery_to_query")


def make_normalizer(method: str, **hyper: Any) -> BaseNormalizer:
    """Build the estimator of ``method`` (a key of :data:`METHODS`) with ``hyper``.

    Raises
    ------
    ValueError
        If ``method`` is unknown.
    TypeError
        If a hyperparameter is not accepted by the method.
    """
    func = "make_normalizer"
    name = check_choice(
        str(method).lower() if isinstance(method, str) else method,
        "method",
        func,
        tuple(METHODS),
    )
    cls = METHODS[name]
    try:
        return cls(**hyper)
    except TypeError:
        import inspect

        allowed = [p for p in inspect.signature(cls).parameters]
        bad = sorted(set(hyper) - set(allowed))
        fail(
            func, "hyperparameters", f"among {allowed} for {name!r}", bad, exc=TypeError
        )
        raise


def normalize(
    method: str,
    sims: Any,
    *,
    bank_query_sims: Any = None,
    bank_gallery_sims: Any = None,
    bank_cross_sims: Any = None,
    direction: str = "query_to_gallery",
    **hyper: Any,
) -> torch.Tensor:
    r"""Normalise a test similarity matrix with a post-hoc method, from precomputed matrices.

    Parameters
    ----------
    method : str
        A key of :data:`METHODS`: ``none, is, dis, csls, gc, dualis, dualdis,
        sn, dbsn, nnn``.
    sims : Tensor or ndarray of shape (n_query, n_gallery)
        :math:`S`; never modified.
    bank_query_sims : Tensor or ndarray of shape (n_bank_query, n_gallery), optional
        :math:`P^q` (needed by every method but ``none``, and by ``bank="query"``).
    bank_gallery_sims : Tensor or ndarray of shape (n_bank_gallery, n_gallery), optional
        :math:`P^g` (``dualis``, ``dualdis``, and ``bank="gallery"`` variants).
    bank_cross_sims : Tensor or ndarray of shape (n_bank_query, n_bank_gallery), optional
        Only for ``dbsn``.
    direction : {"query_to_gallery", "gallery_to_query"}
        ``"gallery_to_query"`` retrieves test queries for each gallery item: the
        method runs on ``sims.T`` and the result is transposed back, so each
        **column** of the output ranks the queries. The banks then describe the
        swapped roles and their columns index the test queries:
        ``bank_query_sims`` is ``(n_bank, n_query)`` for bank items of the
        gallery modality (the side that now queries) and ``bank_gallery_sims``
        is ``(n_bank, n_query)`` for bank items of the query modality
        (intra-modal).
    **hyper
        The method's hyperparameters (``beta_query``, ``beta_gallery``, ``k``,
        ``mode``, ``aggregation``, ``scale``, ``alpha``, ``n_iter``, ...).

    Returns
    -------
    Tensor of shape (n_query, n_gallery)
        New tensor, dtype and device of ``sims``.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.normalize import normalize
    >>> s = torch.tensor([[0.9, 0.8]])
    >>> pq, pg = torch.tensor([[0.9, 0.1]]), torch.tensor([[0.9, 0.1]])
    >>> normalize("dualis", s, bank_query_sims=pq, bank_gallery_sims=pg,
    ...           beta_query=10.0, beta_gallery=10.0).argmax(dim=1).item()
    1
    """
    func = "normalize"
    check_choice(direction, "direction", func, DIRECTIONS)
    est = make_normalizer(method, **hyper)
    s = check_matrix(sims, "sims", func)
    extra = {"bank_cross_sims": bank_cross_sims} if bank_cross_sims is not None else {}
    if direction == "gallery_to_query":
        s = s.T
    side = "gallery items" if direction == "query_to_gallery" else "queries"
    for name, bank in (("bank_query_sims", bank_query_sims),
                       ("bank_gallery_sims", bank_gallery_sims)):  # fmt: skip
        shape = tuple(getattr(bank, "shape", ()))
        if len(shape) == 2 and shape[1] != s.shape[1]:  # the bank, not `sims`, is off
            fail(func, name, f"of width {s.shape[1]} (the {side} of `sims`)",
                 f"shape {shape}")  # fmt: skip
    est.fit(bank_query_sims, bank_gallery_sims, **extra)
    out = est.transform(s)
    return out.T.contiguous() if direction == "gallery_to_query" else out


def normalize_embeddings(
    method: str,
    query: Any,
    gallery: Any,
    *,
    bank_query: Any = None,
    bank_gallery: Any = None,
    metric: str = "cosine",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    bank_dtype: torch.dtype | None = None,
    direction: str = "query_to_gallery",
    unit_norm: bool = False,
    **hyper: Any,
) -> torch.Tensor:
    r"""Normalise query-gallery scores from embeddings, streaming the bank(s).

    The per-gallery statistics are computed with
    :meth:`~hubrepro.normalize.BaseNormalizer.fit_embeddings` (bank chunks of
    ``chunk_size`` rows, never the full bank x gallery matrix); the test scores
    are computed and normalised in chunks of ``chunk_size`` query rows.

    Parameters
    ----------
    method : str
        A key of :data:`METHODS`.
    query : Tensor of shape (n_query, d)
    gallery : Tensor of shape (n_gallery, d)
    bank_query : Tensor of shape (n_bank_query, d) or MappedRows, optional
        Bank items of the query modality (a :class:`hubrepro.io.MappedRows` is
        read from disk chunk by chunk).
    bank_gallery : Tensor of shape (n_bank_gallery, d) or MappedRows, optional
        Bank items of the gallery modality.
    metric : {"cosine", "dot"}, default "cosine"
    chunk_size : int, default 4096
    bank_dtype : torch.dtype, optional
        Dtype of the bank products (e.g. ``torch.bfloat16``).
    direction : {"query_to_gallery", "gallery_to_query"}
        ``"gallery_to_query"``: gallery items query the test queries; the
        banks keep their modality (``bank_query`` is still query-modality) and
        swap roles internally; each **column** of the output ranks the queries.
    unit_norm : bool, default False
        Declare every embedding unit-norm: ``metric="cosine"`` then skips the
        re-normalisation passes (see ``fit_embeddings``).
    **hyper
        The method's hyperparameters.

    Returns
    -------
    Tensor of shape (n_query, n_gallery)
        Dtype and device of ``query``.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.normalize import normalize_embeddings
    >>> g = torch.Generator().manual_seed(0)
    >>> q, gal, bq = (torch.randn(n, 8, generator=g) for n in (3, 5, 50))
    >>> normalize_embeddings("is", q, gal, bank_query=bq, beta_query=20.0).shape
    torch.Size([3, 5])
    """
    func = "normalize_embeddings"
    check_choice(direction, "direction", func, DIRECTIONS)
    check_choice(metric, "metric", func, METRICS)
    check_int(chunk_size, "chunk_size", func, low=1)
    est = make_normalizer(method, **hyper)
    q = check_matrix(query, "query", func)
    g = check_matrix(gallery, "gallery", func)
    if q.shape[1] != g.shape[1]:
        fail(
            func,
            "query",
            f"of dimension {g.shape[1]} (the gallery's)",
            f"shape {tuple(q.shape)}",
        )
    if direction == "gallery_to_query":
        q, g = g, q
        bank_query, bank_gallery = bank_gallery, bank_query
    est.fit_embeddings(
        g,
        bank_query=bank_query,
        bank_gallery=bank_gallery,
        metric=metric,
        chunk_size=chunk_size,
        bank_dtype=bank_dtype,
        unit_norm=unit_norm,
    )
    out = transform_embeddings(
        est, q, g, metric=metric, chunk_size=chunk_size, unit_norm=unit_norm
    )
    return out.T.contiguous() if direction == "gallery_to_query" else out


def transform_embeddings(
    est: BaseNormalizer,
    query: Any,
    gallery: Any,
    *,
    metric: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    unit_norm: bool = False,
) -> torch.Tensor:
    r"""Apply a fitted normaliser to new queries: test scores in chunks, then ``transform``.

    The serving half of *fit once, apply many*: costs the queries' dot products
    with the gallery plus the method's per-query work; the bank is not touched.

    Parameters
    ----------
    est : BaseNormalizer
        Fitted (e.g. by ``fit_embeddings`` or :func:`load_normalizer`).
    query : Tensor of shape (n_query, d)
    gallery : Tensor of shape (n_gallery, d)
        The gallery the statistics were fitted on.
    metric : {"cosine", "dot"}, optional
        Default: the metric of the fit (``est.metric_``), else cosine; a
        different one is refused.
    chunk_size : int, default 4096
        Query rows per chunk.
    unit_norm : bool, default False
        Declare the embeddings unit-norm (cosine skips re-normalising).

    Returns
    -------
    Tensor of shape (n_query, n_gallery)
        Dtype and device of ``query``.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.normalize import DualIS, transform_embeddings
    >>> g = torch.Generator().manual_seed(0)
    >>> q, gal, bq, bg = (torch.randn(n, 8, generator=g) for n in (3, 5, 50, 20))
    >>> est = DualIS(beta_query=20.0, beta_gallery=20.0).fit_embeddings(
    ...     gal, bank_query=bq, bank_gallery=bg)
    >>> transform_embeddings(est, q, gal).shape
    torch.Size([3, 5])
    """
    func = "transform_embeddings"
    fitted_metric = getattr(est, "metric_", None)
    if metric is None:
        metric = fitted_metric or "cosine"
    check_choice(metric, "metric", func, METRICS)
    if fitted_metric is not None and metric != fitted_metric:
        fail(func, "metric", f"{fitted_metric!r} (the statistics were fitted with it)",
             repr(metric))  # fmt: skip
    check_int(chunk_size, "chunk_size", func, low=1)
    q = check_matrix(query, "query", func)
    g = check_matrix(gallery, "gallery", func)
    if q.shape[1] != g.shape[1]:
        fail(func, "query", f"of dimension {g.shape[1]} (the gallery's)",
             f"shape {tuple(q.shape)}")  # fmt: skip
    dt = acc_dtype(q.dtype)
    gn = g.to(device=q.device, dtype=dt)
    cosine = metric == "cosine" and not unit_norm
    if cosine:
        gn = unit_rows(gn, "gallery", func)
    out = torch.empty(q.shape[0], g.shape[0], dtype=q.dtype, device=q.device)
    for a in range(0, q.shape[0], chunk_size):
        qa = q[a : a + chunk_size].to(dt)
        if cosine:
            qa = unit_rows(qa, "query", func, a)
        block = est.transform(qa @ gn.T)
        # computed in float32, returned in the query's dtype: it must fit
        if block.dtype != out.dtype:
            check_scores_fit(block, out.dtype, func, est._fit_hint())
        out[a : a + qa.shape[0]] = block
    return out
