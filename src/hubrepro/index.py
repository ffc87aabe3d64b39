r"""Serving hubness-corrected retrieval from a FAISS vector index.

Most normalisers rank a query's gallery items by the raw score plus a term
that depends on the gallery item only. Such a **per-gallery bias** folds into
one inner product: with gallery vectors :math:`[\hat g_j,\ b_j]` and query
vectors :math:`[\hat q_i,\ 1]`,

.. math:: \langle[\hat q_i, 1], [\hat g_j, b_j]\rangle = S_{ij} + b_j,

so a flat inner-product index returns the normalised top-:math:`k` exactly, and
any approximate index (IVF, HNSW) searches the normalised scores directly.

Which methods are a per-gallery bias (checked on paper here and by
``tests/test_index.py`` against brute force). Write :math:`T_{ij}` for the
method's output on the similarity scale (``scale="similarity"``; the log scale
is a positive multiple of it), :math:`r_i` for a term constant within a row.

* **IS** (either bank): :math:`T=S-c_j/\beta`, so :math:`b_j=-c_j/\beta`.
* **DualIS, product**: :math:`T=S-(c^q_j+c^g_j)/(\beta_q+\beta_g)`; :math:`b_j` is
  that penalty.
* **DualIS, sum** with :math:`\beta_q=\beta_g=\beta`:
  :math:`(\beta_q+\beta_g)T=\operatorname{logaddexp}(\beta S-c^q_j,\beta S-c^g_j)
  =\beta S+\operatorname{logaddexp}(-c^q_j,-c^g_j)`, so
  :math:`b_j=\operatorname{logaddexp}(-c^q_j,-c^g_j)/\beta`. With
  :math:`\beta_q\ne\beta_g` it is **not** a per-gallery bias: :math:`T_{\cdot j}`
  would have to be a translate :math:`h(S+b_j)` of one increasing :math:`h`, which
  forces :math:`c^q_j/\beta_q-c^g_j/\beta_g` to be the same for every :math:`j`.
* **NNN**: :math:`T=S-\alpha\,\bar P_j` (top-:math:`k` bank mean), :math:`b_j=-\alpha\bar P_j`.
* **CSLS**: :math:`T=2S-r_i-\bar P_j`, rank-equivalent to :math:`S-\bar P_j/2`.
* **SN, DBSN**: :math:`T=S+\log v_j/\beta` (the Sinkhorn column potentials), so they
  are per-gallery biases too, whatever the number of iterations.
* **DIS, DualDIS (principled)**: a per-gallery bias *per gate state*. The gates
  depend on the query only through its raw top-1, so the index holds one bias
  column per state (DIS: ``[-c/β]``; DualDIS: the three states with a bank gated,
  ``(q,g)``, ``(q)``, ``(g)``) and the query carries the one-hot of its state,
  found by a first, raw search (query ``[q, 0]``): exact, at the price of two searches.
* **Not a per-gallery bias**: GC (its rank :math:`\rho_{ij}=\#\{b:P_{bj}>S_{ij}\}`
  depends on :math:`S_{ij}` through each column's bank distribution; the test
  suite holds a counterexample), DualDIS in the faithful mode (an ungated term is
  :math:`S`, so the score is :math:`S\cdot S` or :math:`\mathrm{IS}\cdot S`), and
  DualIS/DualDIS with ``aggregation="sum"`` and :math:`\beta_q\ne\beta_g`. These
  use the **two-stage path**: a shortlist of ``shortlist`` items from the raw
  index, then the exact normaliser on the shortlist; its recall against the full
  method is measured by ``tests/test_index.py`` and the benchmark.

The stored coordinate is the bias centred over the gallery and divided by a
scale (so that it is at most 0.05 in magnitude), and the query's coordinate is
multiplied by that scale: the inner product changes by a constant per query,
which changes no ranking, while IVF's lists and HNSW's graph follow the
embeddings rather than the bias.

Exactness and ties. FAISS computes inner products in float32 in its own order,
so a search fetches ``k + margin`` candidates and **re-scores** them with
:math:`S_{ij}+b_j` (the same float32 values ``transform`` computes for every
method whose :math:`T` has unit slope in :math:`S`), then sorts by score,
**ties to the lower gallery index** -- the order of a stable descending sort of
``transform(S)``. A flat index therefore returns exactly that top-:math:`k`
unless more than ``margin`` items lie within float rounding of the
:math:`k`-th score.

``faiss`` is the optional extra ``index`` (``pip install hubrepro[index]``),
imported when an index is built or loaded; with the GPU build and a visible GPU,
flat and IVF indexes are searched on the GPU.

Book: :ref:`sec-normalisation`, section "Serving from a vector index".
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hubrepro._validation import check_choice, check_int, check_matrix, fail

__all__ = ["HubnessIndex", "bias_table", "build_index", "load_index", "KINDS"]

KINDS = ("flat", "ivf", "hnsw")
# largest magnitude of a stored (centred, scaled) bias coordinate, next to unit-norm vectors
_BIAS_SPAN = 0.05
GATINGS = ("none", "dis", "dualdis")
_META = "index.json"


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ImportError(
            "hubrepro.index needs FAISS: `pip install hubrepro[index]` (faiss-cpu), "
            "or a faiss GPU build."
        ) from None
    return faiss


def _slope(est) -> float:
    """The positive constant ``a`` with ``T = a*S + b_j + r_i`` (similarity scale)."""
    from hubrepro.normalize import CSLS

    if isinstance(est, CSLS):
        return 2.0
    if getattr(est, "aggregation", "product") == "sum":
        return 0.5
    return 1.0


def bias_table(est) -> tuple[torch.Tensor, str] | None:
    r"""Per-gallery bias columns of a fitted normaliser, or ``None`` if it has none.

    Parameters
    ----------
    est : BaseNormalizer
        A fitted estimator.

    Returns
    -------
    (table, gating) or None
        ``table`` of shape ``(n_gallery, t)`` (float32 unless the statistics are
        float64) and ``gating``: ``"none"`` (``t = 1``, query weight 1), ``"dis"``
        (``t = 1``, weight = the DIS gate of the query), ``"dualdis"`` (``t = 3``,
        one-hot of the gate state (q and g, q only, g only); neither: all zero).
        ``None`` for methods that are not a per-gallery bias (see the module text).

    Examples
    --------
    >>> import torch
    >>> from hubrepro.normalize import InvertedSoftmax
    >>> est = InvertedSoftmax(beta_query=10.0).fit(torch.tensor([[0.9, 0.1], [0.8, 0.2]]))
    >>> table, gating = bias_table(est)
    >>> gating, table.shape, bool(torch.equal(table[:, 0], -(est.lse_ / 10.0)))
    ('none', torch.Size([2, 1]), True)
    """
    from hubrepro.normalize import (
        CSLS,
        DBSN,
        NNN,
        DualDIS,
        DualIS,
        GloballyCorrected,
        Identity,
        InvertedSoftmax,
        QBNorm,
        SinkhornNorm,
    )

    if not getattr(est, "fitted_", False):
        fail("bias_table", "est", "fitted", f"an unfitted {type(est).__name__}")
    if isinstance(est, GloballyCorrected | Identity):
        return None
    if isinstance(est, DualIS):
        if isinstance(est, DualDIS) and est.mode == "faithful":
            return None
        if est.aggregation == "sum" and est.beta_query != est.beta_gallery:
            return None
    n = est.n_gallery_
    ref = next(
        v
        for k, v in vars(est).items()
        if k.endswith("_") and isinstance(v, torch.Tensor)
    )
    dt = torch.float64 if ref.dtype == torch.float64 else torch.float32
    zeros = torch.zeros(1, n, dtype=dt, device=ref.device)
    sim = _similarity_scale(est)
    a = _slope(est)
    if isinstance(est, DualDIS):
        cols = [
            sim._combine(zeros, gq, gg)[0]
            for gq, gg in ((1.0, 1.0), (1.0, 0.0), (0.0, 1.0))
        ]
        return torch.stack(cols, dim=1) / a, "dualdis"
    if isinstance(est, QBNorm):
        c = sim._stat(sim.lse_, zeros)
        return (zeros - c / sim.beta_)[0][:, None], "dis"
    if isinstance(est, DualIS | InvertedSoftmax | SinkhornNorm | DBSN | NNN | CSLS):
        out = sim._transform(zeros)[0]
        return (out / a if a != 1.0 else out)[:, None], "none"
    return None


def _similarity_scale(est):
    """A shallow copy of ``est`` whose output is on the similarity scale."""
    import copy

    sim = copy.copy(est)
    if getattr(sim, "scale", "similarity") != "similarity":
        sim.scale = "similarity"
        sim._params = {**sim._params, "scale": "similarity"}
    return sim


class HubnessIndex:
    """A FAISS index over ``[gallery, bias]`` that ranks by a normaliser's score.

    Build with :func:`build_index`, reopen with :func:`load_index`.

    Attributes
    ----------
    kind : {"flat", "ivf", "hnsw"}
    gating : {"none", "dis", "dualdis"} or None
        ``None``: a raw index (no statistics) or a method served by the
        two-stage shortlist path.
    est : BaseNormalizer or None
        The fitted normaliser (loaded from the index folder).
    n_gallery, dim : int
    """

    def __init__(self, index, *, kind, metric, dim, table, gating, est, record):
        self.index, self.kind, self.metric, self.dim = index, kind, metric, dim
        self.table, self.gating, self.est, self.record = table, gating, est, record
        self.n_gallery = int(index.ntotal)
        self.bias_scale = float(record.get("bias_scale", 1.0))
        self._gpu = None

    @property
    def extra(self) -> int:
        """Number of bias coordinates appended to each vector."""
        return 0 if self.table is None else self.table.shape[1]

    def __repr__(self) -> str:
        method = self.record.get("method") or "raw"
        return (
            f"HubnessIndex(kind={self.kind!r}, method={method!r}, gating={self.gating!r}, "
            f"n_gallery={self.n_gallery}, dim={self.dim}+{self.extra})"
        )

    # ------------------------------------------------------------ search
    def _searcher(self):
        faiss = _faiss()
        if self._gpu is None:
            self._gpu = self.index
            if self.kind != "hnsw" and hasattr(faiss, "index_cpu_to_all_gpus"):
                if faiss.get_num_gpus() > 0:
                    self._gpu = faiss.index_cpu_to_all_gpus(self.index)
        return self._gpu

    def _queries(self, queries: Any, func: str) -> torch.Tensor:
        q = check_matrix(queries, "queries", func)
        if q.shape[1] != self.dim:
            fail(
                func,
                "queries",
                f"of dimension {self.dim} (the gallery's)",
                f"shape {tuple(q.shape)}",
            )
        q = q.detach().cpu().to(torch.float32)
        if self.metric == "cosine":
            q = q / q.norm(dim=1, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny)
        return q

    def _raw_search(self, q: torch.Tensor, k: int):
        w = torch.zeros(q.shape[0], self.extra, dtype=q.dtype)
        return self._search_vectors(torch.cat([q, w], dim=1), k)

    def _search_vectors(self, x: torch.Tensor, k: int):
        k = min(k, self.n_gallery)
        d, i = self._searcher().search(np.ascontiguousarray(x.numpy()), k)
        return torch.from_numpy(d), torch.from_numpy(i)

    def _candidates(self, ids: torch.Tensor) -> torch.Tensor:
        """The stored gallery rows (first ``dim`` coordinates) of ``ids`` (``-1`` gives 0)."""
        flat = ids.reshape(-1).clamp_min(0).numpy().astype(np.int64)
        vec = self.index.reconstruct_batch(flat)[:, : self.dim]
        return torch.from_numpy(vec).reshape(*ids.shape, self.dim)

    def _refine(self, q, ids, weights, k):
        """Exact re-scoring of candidate ``ids``: ``S + table @ w``, ties to the lower index."""
        cand = self._candidates(ids)
        s = (cand @ q[:, :, None])[..., 0]
        if weights is not None and self.table is not None:
            b = self.table[ids.clamp_min(0)]  # (n_q, K, t)
            if self.gating == "none":
                s = s.to(b.dtype) + b[..., 0]
            else:  # one-hot weights: adds the state's bias (and exact zeros)
                s = s.to(b.dtype) + (b * weights[:, None, :].to(b.dtype)).sum(dim=-1)
        s = torch.where(ids >= 0, s, -torch.inf)
        return _topk_ties_low(s, ids, k)

    def _gates(self, q: torch.Tensor, margin: int) -> torch.Tensor:
        """One-hot gate-state weights of each query, from its exact raw top-1."""
        _, ids = self._raw_search(q, 1 + margin)
        _, top1 = self._refine(q, ids, None, 1)
        top1 = top1[:, 0].clamp_min(0)
        if self.gating == "dis":
            return self.est.active_.cpu()[top1].to(q.dtype)[:, None]
        gq = self.est.active_query_.cpu()[top1]
        gg = self.est.active_gallery_.cpu()[top1]
        return torch.stack([gq & gg, gq & ~gg, ~gq & gg], dim=1).to(q.dtype)

    def search(
        self,
        queries: Any,
        k: int = 10,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        margin: int = 16,
        refine: bool = True,
        shortlist: int | None = None,
        batch_size: int = 256,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The top-``k`` gallery items of each query under the normalised score.

        Parameters
        ----------
        queries : Tensor or ndarray of shape (n_query, dim)
        k : int, default 10
        nprobe : int, optional
            IVF lists visited (IVF only; default: the index's).
        ef_search : int, optional
            HNSW search breadth (HNSW only).
        margin : int, default 16
            Extra candidates fetched for the exact re-scoring.
        refine : bool, default True
            Re-score candidates exactly (see the module text); ``False`` returns
            FAISS's float32 scores and order.
        shortlist : int, optional
            Two-stage path (methods that are not a per-gallery bias): candidates
            per query from the raw index (default ``max(10 k, 100)``).
        batch_size : int, default 256
            Queries per batch on the two-stage path.

        Returns
        -------
        scores : Tensor of shape (n_query, k)
            The index score: :math:`S+b_j` (similarity scale) on the bias path, the
            normaliser's own score on the two-stage path, :math:`S` on a raw index.
        ids : LongTensor of shape (n_query, k)
            Gallery indices, best first (``-1`` where an approximate index found
            fewer than ``k``).
        """
        func = "HubnessIndex.search"
        check_int(k, "k", func, low=1)
        check_int(margin, "margin", func, low=0)
        if nprobe is not None:
            if self.kind != "ivf":
                fail(func, "nprobe", "given only for an IVF index", nprobe)
            self.index.nprobe = check_int(nprobe, "nprobe", func, low=1)
            self._gpu = None
        if ef_search is not None:
            if self.kind != "hnsw":
                fail(func, "ef_search", "given only for an HNSW index", ef_search)
            self.index.hnsw.efSearch = check_int(ef_search, "ef_search", func, low=1)
        q = self._queries(queries, func)
        k = min(k, self.n_gallery)
        if self.est is not None and self.gating is None:
            return self._two_stage(q, k, shortlist or max(10 * k, 100), batch_size)
        if self.gating in ("dis", "dualdis"):
            w = self._gates(q, margin)
        else:
            w = torch.ones(q.shape[0], self.extra, dtype=q.dtype)
        d, ids = self._search_vectors(
            torch.cat([q, w * self.bias_scale], dim=1), k + (margin if refine else 0)
        )
        if not refine:
            return d[:, :k], ids[:, :k]
        return self._refine(q, ids, w if self.extra else None, k)

    def _two_stage(self, q, k, shortlist, batch_size):
        """Raw shortlist, then the exact normaliser on the union of a batch's shortlists."""
        est = self.est
        shortlist = min(max(shortlist, k), self.n_gallery)
        scores = torch.empty(q.shape[0], k)
        ids = torch.empty(q.shape[0], k, dtype=torch.int64)
        for a in range(0, q.shape[0], batch_size):
            qa = q[a : a + batch_size]
            _, cand = self._raw_search(qa, shortlist)
            cols = torch.unique(
                cand[cand >= 0]
            )  # sorted: ties keep the lower index first
            vec = torch.from_numpy(
                self.index.reconstruct_batch(cols.numpy().astype(np.int64))
            )
            s = qa @ vec[:, : self.dim].T
            sub = _column_subset(est, cols)
            t = sub.transform(s.to(_stat_dtype(est)))
            own = torch.zeros_like(
                t, dtype=torch.bool
            )  # each query ranks its own shortlist
            pos = torch.searchsorted(cols, cand.clamp_min(0))
            own.scatter_(1, pos, cand >= 0)
            t = torch.where(own, t, -torch.inf)
            sc, order = _topk_ties_low(t, cols.expand(t.shape[0], -1), k)
            scores[a : a + qa.shape[0]], ids[a : a + qa.shape[0]] = sc.float(), order
        return scores, ids

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the index folder (``index.faiss``, ``index.json``, the statistics); atomic."""
        faiss = _faiss()
        p = Path(path)
        if p.exists() and not overwrite:
            raise FileExistsError(
                f"HubnessIndex.save: `path` {str(p)!r} already exists; pass overwrite=True "
                "(--overwrite) to replace it."
            )
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", dir=p.parent))
        try:
            faiss.write_index(self.index, str(tmp / "index.faiss"))
            if self.est is not None:
                self.est.save(tmp / "stats.safetensors")
            if self.table is not None:
                from safetensors.torch import save_file

                save_file(
                    {"table": self.table.contiguous()}, str(tmp / "bias.safetensors")
                )
            (tmp / _META).write_text(json.dumps(self.record, indent=1, sort_keys=True))
            for f in tmp.iterdir():
                with f.open("rb") as fh:
                    os.fsync(fh.fileno())
            if p.exists() and _exchange(tmp, p):
                # the new folder took the old one's place in one step; ``tmp`` now
                # holds the old index
                shutil.rmtree(tmp, ignore_errors=True)
            elif p.exists():
                # no atomic exchange here: the old index is moved aside first, so a
                # kill between the two renames leaves it in ``.NAME.old.*`` (named by
                # load_index's error)
                old = Path(tempfile.mkdtemp(prefix=f".{p.name}.old.", dir=p.parent))
                os.replace(p, old / p.name)
                os.replace(tmp, p)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, p)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return p


def _check_gallery_rows(x: torch.Tensor, start: int, metric: str, func: str) -> None:
    """Refuse non-finite rows, and zero rows under cosine, naming the first bad row."""
    bad = ~torch.isfinite(x).all(dim=1)
    what = "finite values"
    if metric == "cosine" and not bad.any():
        bad = x.abs().amax(dim=1) == 0
        what = "rows of non-zero norm (cosine)"
    if bad.any():
        row = start + int(bad.nonzero()[0, 0])
        fail(func, "gallery", what, f"a bad row at index {row}",
             "Drop or fix that item before building the index.")  # fmt: skip


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


def _stat_dtype(est) -> torch.dtype:
    for k, v in vars(est).items():
        if k.endswith("_") and isinstance(v, torch.Tensor) and v.is_floating_point():
            return v.dtype
    return torch.float32


def _column_subset(est, cols: torch.Tensor):
    """A shallow copy of ``est`` restricted to gallery columns ``cols`` (per-gallery statistics)."""
    import copy

    sub = copy.copy(est)
    n = est.n_gallery_
    for name, v in vars(est).items():
        if (
            name.endswith("_")
            and isinstance(v, torch.Tensor)
            and v.ndim >= 1
            and v.shape[0] == n
        ):
            setattr(sub, name, v[cols.to(v.device)])
    sub.n_gallery_ = int(cols.numel())
    return sub


def _topk_ties_low(scores: torch.Tensor, ids: torch.Tensor, k: int):
    """Top ``k`` of each row by score, ties to the lower id (``ids`` per column)."""
    key_ids = torch.where(ids >= 0, ids, torch.iinfo(torch.int64).max)
    order = torch.argsort(key_ids, dim=1, stable=True)  # ascending id ...
    s = scores.gather(1, order)
    order2 = torch.argsort(s, dim=1, descending=True, stable=True)  # ... then by score
    pick = order.gather(1, order2[:, :k])
    out_ids = ids.gather(1, pick)
    out_s = scores.gather(1, pick)
    return out_s, torch.where(torch.isfinite(out_s), out_ids, -1)


def build_index(
    gallery: Any,
    est: Any = None,
    *,
    kind: str = "flat",
    metric: str | None = None,
    nlist: int | None = None,
    nprobe: int = 16,
    hnsw_m: int = 32,
    ef_search: int = 64,
    train_size: int = 100_000,
    chunk_size: int = 65_536,
    seed: int = 0,
) -> HubnessIndex:
    """Build a FAISS index over a gallery that ranks by a fitted normaliser's score.

    Parameters
    ----------
    gallery : Tensor, ndarray or MappedRows of shape (n_gallery, d)
        The test gallery the normaliser was fitted on (checked by hash when
        ``est`` records one); read in chunks of ``chunk_size`` rows.
    est : BaseNormalizer, optional
        A fitted normaliser (or statistics loaded with
        :func:`hubrepro.normalize.load_normalizer`); ``None`` builds a raw index.
    kind : {"flat", "ivf", "hnsw"}, default "flat"
        Exact inner product, inverted lists, or a graph.
    metric : {"cosine", "dot"}, optional
        Default: the one the statistics were fitted with, else cosine.
    nlist : int, optional
        IVF lists (default ``4 * sqrt(n_gallery)``).
    nprobe, hnsw_m, ef_search : int
        IVF lists visited; HNSW links per node and search breadth.
    train_size : int
        Gallery rows (spread evenly) used to train IVF.
    chunk_size : int
        Gallery rows added per chunk.
    seed : int
        Seed of the IVF k-means.

    Returns
    -------
    HubnessIndex

    Examples
    --------
    >>> import torch
    >>> from hubrepro.index import build_index
    >>> from hubrepro.normalize import NNN
    >>> g = torch.Generator().manual_seed(0)
    >>> gal, bank, q = (torch.randn(n, 8, generator=g) for n in (50, 200, 3))
    >>> est = NNN(alpha=1.0, k=4).fit_embeddings(gal, bank_query=bank)
    >>> idx = build_index(gal, est)
    >>> scores, ids = idx.search(q, k=5)
    >>> ids.shape
    torch.Size([3, 5])
    """
    from hubrepro.io import MappedRows, array_sha256

    faiss = _faiss()
    func = "build_index"
    check_choice(kind, "kind", func, KINDS)
    if not isinstance(gallery, MappedRows):
        gallery = check_matrix(gallery, "gallery", func)
    n, d = gallery.shape
    record: dict[str, Any] = {"format": "hubrepro-index", "version": 1, "kind": kind}
    table, gating = None, None
    if est is not None:
        if not getattr(est, "fitted_", False):
            fail(
                func, "est", "a fitted normaliser", f"an unfitted {type(est).__name__}"
            )
        if est.n_gallery_ != n:
            fail(func, "gallery", f"the {est.n_gallery_} items the statistics were fitted on",
                 f"{n} items")  # fmt: skip
        digest = getattr(est, "gallery_sha256_", None)
        if digest is not None and array_sha256(gallery) != digest:
            fail(func, "gallery", "the gallery the statistics were fitted on",
                 "a different gallery (its hash differs)", "Refit the statistics on this gallery.")  # fmt: skip
        fitted_metric = getattr(est, "metric_", None)
        if metric is not None and fitted_metric is not None and metric != fitted_metric:
            fail(
                func,
                "metric",
                f"{fitted_metric!r} (the statistics were fitted with it)",
                repr(metric),
            )
        metric = metric or fitted_metric
        tb = bias_table(est)
        if tb is not None:
            table, gating = tb
            table = table.detach().cpu()
        from hubrepro.normalize.persist import _method_name

        record.update(
            method=_method_name(est), params=est.get_params(), gallery_sha256=digest
        )
    metric = check_choice(metric or "cosine", "metric", func, ("cosine", "dot"))
    t = 0 if table is None else table.shape[1]
    stored, scale = None, 1.0
    if table is not None:
        # Stored as (b - mean) / scale and queried with weight * scale: the same inner
        # product up to a constant per query, with a bias coordinate small next to the
        # unit-norm embedding, so that IVF's clustering and HNSW's graph follow the
        # embeddings (the exact re-scoring uses the table itself).
        centred = table.to(torch.float64) - table.to(torch.float64).mean(dim=0)
        spread = float(centred.abs().max())
        scale = spread / _BIAS_SPAN if spread > 0 else 1.0
        stored = (centred / scale).to(torch.float32)
    dim = d + t
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist = nlist or max(1, int(4 * math.sqrt(n)))
        check_int(nlist, "nlist", func, low=1)
        index = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT
        )
        index.cp.seed = seed
        index.nprobe = check_int(nprobe, "nprobe", func, low=1)
    else:
        index = faiss.IndexHNSWFlat(
            dim, check_int(hnsw_m, "hnsw_m", func, low=2), faiss.METRIC_INNER_PRODUCT
        )
        index.hnsw.efSearch = check_int(ef_search, "ef_search", func, low=1)

    def prep(x: torch.Tensor, bias: torch.Tensor | None) -> np.ndarray:
        x = x.detach().cpu().to(torch.float32)
        if metric == "cosine":
            x = x / x.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        if bias is not None:
            x = torch.cat([x, bias], dim=1)
        return np.ascontiguousarray(x.numpy())

    def rows(a: int, b: int) -> np.ndarray:
        if isinstance(gallery, MappedRows):
            x = gallery.rows(a, b)
            gallery.release(a, b)
        else:
            x = gallery[a:b]
        _check_gallery_rows(x, a, metric, func)
        return prep(x, None if stored is None else stored[a:b])

    if kind == "ivf":
        m = min(n, max(train_size, nlist))
        pick = torch.from_numpy(np.unique(np.linspace(0, n - 1, m).astype(np.int64)))
        if isinstance(gallery, MappedRows):
            x = torch.stack([gallery.rows(int(i), int(i) + 1)[0] for i in pick])
        else:
            x = gallery[pick]
        index.train(prep(x, None if stored is None else stored[pick]))
    for a in range(0, n, chunk_size):
        index.add(rows(a, min(a + chunk_size, n)))
    if kind == "ivf":
        index.make_direct_map()
    record.update(
        metric=metric, dim=d, extra=t, gating=gating, n_gallery=n, bias_scale=scale
    )
    return HubnessIndex(index, kind=kind, metric=metric, dim=d, table=table, gating=gating,
                        est=est, record=record)  # fmt: skip


def load_index(path: str | Path, *, device: str = "cpu") -> HubnessIndex:
    """Open an index folder written by :meth:`HubnessIndex.save`.

    Raises
    ------
    FileNotFoundError, ValueError
        Not an index folder, or an unreadable one.
    """
    faiss = _faiss()
    func = "load_index"
    p = Path(path)
    meta = p / _META
    if not (p.is_dir() and meta.is_file() and (p / "index.faiss").is_file()):
        aside = sorted(p.parent.glob(f".{p.name}.old.*/{p.name}"))
        hint = (
            f" A save was interrupted: the previous index is at {str(aside[-1])!r}."
            if aside and not p.exists()
            else ""
        )
        raise FileNotFoundError(
            f"{func}: `path` must be an index folder written by `hubrepro index build`; "
            f"got {str(p)!r}.{hint}"
        )
    try:
        record = json.loads(meta.read_text())
    except ValueError as err:
        raise ValueError(f"{func}: could not read {str(meta)!r}: {err}") from None
    if record.get("format") != "hubrepro-index" or record.get("version") != 1:
        raise ValueError(
            f"{func}: {str(meta)!r} is not a hubrepro index record (version 1)."
        )
    try:
        index = faiss.read_index(str(p / "index.faiss"))
    except RuntimeError as err:
        first = (
            str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        )
        raise ValueError(
            f"{func}: {str(p / 'index.faiss')!r} is not a readable FAISS index ({first}); "
            "rebuild it with `hubrepro index build`."
        ) from None
    if record["kind"] == "ivf":
        index.make_direct_map()
    est = None
    if (p / "stats.safetensors").is_file():
        from hubrepro.normalize import load_normalizer

        est = load_normalizer(p / "stats.safetensors", device=device)
    table = None
    if (p / "bias.safetensors").is_file():
        from safetensors.torch import load_file

        table = load_file(str(p / "bias.safetensors"))["table"]
    return HubnessIndex(index, kind=record["kind"], metric=record["metric"], dim=record["dim"],
                        table=table, gating=record.get("gating"), est=est, record=record)  # fmt: skip
