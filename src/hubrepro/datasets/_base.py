"""The containers every data source returns: :class:`PairedData` and :class:`SimilarityData`.

Conventions (CONTRIBUTING.md): rows are queries or bank items, columns the test
gallery; ``query_to_gallery[i]`` is the gallery index that query ``i`` matches
(several queries may match one gallery item: multi-caption data such as MSR-VTT or
COCO); ``bank_query_to_gallery[j]`` indexes ``bank_gallery`` in the same way.

Book: :ref:`sec-data`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from hubrepro._validation import (
    check_choice,
    check_index_vector,
    check_int,
    check_matrix,
    fail,
)

__all__ = ["PairedData", "SimilarityData", "SCALES"]

#: Scales of a similarity matrix: cosine in [-1, 1], or logits (cosine times a temperature).
SCALES = ("cosine", "logit")


def _cosine(a: torch.Tensor, b: torch.Tensor, chunk_size: int | None) -> torch.Tensor:
    try:
        from hubrepro.similarity import cosine_similarity
    except ImportError:  # the similarity module is optional here; plain torch below
        cosine_similarity = None
    if cosine_similarity is not None:
        return cosine_similarity(a, b, chunk_size=chunk_size)
    an = torch.nn.functional.normalize(a, dim=1)
    bn = torch.nn.functional.normalize(b, dim=1)
    if chunk_size is None:
        return an @ bn.T
    return torch.cat(
        [an[i : i + chunk_size] @ bn.T for i in range(0, an.shape[0], chunk_size)]
    )


def _take(x: Any, idx: torch.Tensor) -> Any:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.index_select(0, idx.to(x.device))
    return tuple(x[i] for i in idx.tolist())


def _choose(n_total: int, n: int, seed: int) -> torch.Tensor:
    """A boolean mask of ``n`` of ``n_total`` items drawn at random with ``seed``."""
    perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))
    chosen = torch.zeros(n_total, dtype=torch.bool)
    chosen[perm[:n]] = True
    return chosen


def _select(
    chosen: torch.Tensor, gt: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gallery items kept by ``chosen``, the queries matching them, and the new positions.

    Returns ``(g_idx, q_idx, new_pos)``: ``new_pos[g]`` is the index of kept item ``g``
    among the kept items (-1 for the others), so ``new_pos[gt[q_idx]]`` is the ground
    truth of the kept queries.
    """
    g_idx = chosen.nonzero().squeeze(1)
    q_idx = chosen[gt].nonzero().squeeze(1)
    new_pos = torch.full((chosen.shape[0],), -1, dtype=torch.long)
    new_pos[g_idx] = torch.arange(g_idx.numel())
    return g_idx, q_idx, new_pos


@dataclass(frozen=True, eq=False)
class PairedData:
    r"""Paired embeddings of a retrieval benchmark: a test split and a bank.

    The test split is ``query`` (:math:`N_q \times d`) against ``gallery``
    (:math:`N_g \times d`) with ground truth ``query_to_gallery``; the bank
    (``bank_query``, ``bank_gallery``; :math:`B_q`, :math:`B_g` in the book) is the
    data that bank-based normalisers (QB-Norm, DBNorm) use, drawn from the training
    split. Tensors are never modified; every method returns new objects.

    Attributes
    ----------
    name : str
        Dataset name (``"stdlib-code"``, ``"synthetic"``, ``"user"``).
    query, gallery : Tensor of shape (n_query, d), (n_gallery, d)
        Test embeddings (L2-normalised for the built-in sources).
    query_to_gallery : LongTensor of shape (n_query,) or None
        Gallery index of each query's match; ``None`` means the square diagonal.
    bank_query, bank_gallery : Tensor of shape (n_bank_query, d), (n_bank_gallery, d) or None
        Bank embeddings.
    bank_query_to_gallery : LongTensor of shape (n_bank_query,) or None
        Index into ``bank_gallery`` of each bank query's match (``None``: diagonal
        when the bank is square, or unpaired banks).
    query_labels, gallery_labels, bank_query_labels, bank_gallery_labels : LongTensor or None
        Concept labels (synthetic data): same label = semantically good neighbour.
    query_text, gallery_text : tuple of str or None
        Raw texts (stdlib-code), for showing examples.
    meta : dict
        Source, protocol, sizes, model, versions, modality names, ...
    bank_query_text, bank_gallery_text : tuple of str or None
        Raw texts of the bank.

    Book
    ----
    :ref:`sec-data`.
    """

    name: str
    query: torch.Tensor
    gallery: torch.Tensor
    query_to_gallery: torch.Tensor | None = None
    bank_query: torch.Tensor | None = None
    bank_gallery: torch.Tensor | None = None
    bank_query_to_gallery: torch.Tensor | None = None
    query_labels: torch.Tensor | None = None
    gallery_labels: torch.Tensor | None = None
    bank_query_labels: torch.Tensor | None = None
    bank_gallery_labels: torch.Tensor | None = None
    query_text: tuple[str, ...] | None = None
    gallery_text: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    bank_query_text: tuple[str, ...] | None = None
    bank_gallery_text: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        func = "PairedData"
        q = check_matrix(self.query, "query", func)
        g = check_matrix(self.gallery, "gallery", func)
        if q.shape[1] != g.shape[1]:
            fail(
                func,
                "gallery",
                f"of dimension {q.shape[1]} (that of `query`)",
                f"shape {tuple(g.shape)}",
            )
        object.__setattr__(self, "query", q)
        object.__setattr__(self, "gallery", g)
        if self.query_to_gallery is None:
            if q.shape[0] != g.shape[0]:
                fail(
                    func,
                    "query_to_gallery",
                    "given when `query` and `gallery` differ in length",
                    "None",
                    f"There are {q.shape[0]} queries and {g.shape[0]} gallery items.",
                )
        else:
            t = check_index_vector(
                self.query_to_gallery,
                "query_to_gallery",
                func,
                length=q.shape[0],
                upper=g.shape[0],
            )
            object.__setattr__(self, "query_to_gallery", t)
        for name in ("bank_query", "bank_gallery"):
            b = getattr(self, name)
            if b is not None:
                b = check_matrix(b, name, func)
                if b.shape[1] != q.shape[1]:
                    fail(
                        func,
                        name,
                        f"of dimension {q.shape[1]} (that of `query`)",
                        f"shape {tuple(b.shape)}",
                    )
                object.__setattr__(self, name, b)
        bq, bg = self.bank_query, self.bank_gallery
        if self.bank_query_to_gallery is not None:
            if bq is None or bg is None:
                fail(
                    func,
                    "bank_query_to_gallery",
                    "None when a bank side is missing",
                    "a tensor",
                )
            t = check_index_vector(
                self.bank_query_to_gallery,
                "bank_query_to_gallery",
                func,
                length=bq.shape[0],
                upper=bg.shape[0],
            )
            object.__setattr__(self, "bank_query_to_gallery", t)
        for name, ref in (
            ("query_labels", q),
            ("gallery_labels", g),
            ("bank_query_labels", bq),
            ("bank_gallery_labels", bg),
        ):
            lab = getattr(self, name)
            if lab is None:
                continue
            if ref is None:
                fail(func, name, "None when its embeddings are missing", "a tensor")
            t = check_index_vector(lab, name, func, length=ref.shape[0], upper=2**62)
            object.__setattr__(self, name, t)
        for name, ref in (
            ("query_text", q),
            ("gallery_text", g),
            ("bank_query_text", bq),
            ("bank_gallery_text", bg),
        ):
            txt = getattr(self, name)
            if txt is not None:
                if ref is None:
                    fail(func, name, "None when its embeddings are missing", "a tuple")
                txt = tuple(txt)
                if len(txt) != ref.shape[0]:
                    fail(func, name, f"of length {ref.shape[0]}", f"length {len(txt)}")
                object.__setattr__(self, name, txt)

    # sizes ---------------------------------------------------------------------------
    @property
    def n_query(self) -> int:
        """Number of test queries."""
        return int(self.query.shape[0])

    @property
    def n_gallery(self) -> int:
        """Number of test gallery items."""
        return int(self.gallery.shape[0])

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.query.shape[1])

    @property
    def gt(self) -> torch.Tensor:
        """``query_to_gallery``, with the diagonal made explicit."""
        if self.query_to_gallery is not None:
            return self.query_to_gallery
        return torch.arange(self.n_query, device=self.query.device)

    def _bank_gt(self) -> torch.Tensor:
        if self.bank_query is None or self.bank_gallery is None:
            fail(
                type(self).__name__,
                "bank",
                "present (bank_query and bank_gallery)",
                "no bank",
            )
        if self.bank_query_to_gallery is not None:
            return self.bank_query_to_gallery
        if self.bank_query.shape[0] != self.bank_gallery.shape[0]:
            fail(
                type(self).__name__,
                "bank_query_to_gallery",
                "given to split or subsample a bank of unequal sides",
                "None",
            )
        return torch.arange(self.bank_query.shape[0], device=self.bank_query.device)

    def __repr__(self) -> str:
        bank = (
            f"bank_query={tuple(self.bank_query.shape) if self.bank_query is not None else None}, "
            f"bank_gallery={tuple(self.bank_gallery.shape) if self.bank_gallery is not None else None}"
        )
        return (
            f"PairedData(name={self.name!r}, query={tuple(self.query.shape)}, "
            f"gallery={tuple(self.gallery.shape)}, {bank}, dtype={self.query.dtype}, "
            f"device={self.query.device})"
        )

    # similarity matrices -------------------------------------------------------------
    def sims(self, *, chunk_size: int | None = None) -> torch.Tensor:
        """Cosine similarities ``(n_query, n_gallery)`` of the test split."""
        return _cosine(self.query, self.gallery, chunk_size)

    def bank_query_sims(self, *, chunk_size: int | None = None) -> torch.Tensor:
        """Cosine similarities ``(n_bank_query, n_gallery)``: bank queries vs the test gallery."""
        if self.bank_query is None:
            fail("PairedData.bank_query_sims", "bank_query", "present", "None")
        return _cosine(self.bank_query, self.gallery, chunk_size)

    def bank_gallery_sims(self, *, chunk_size: int | None = None) -> torch.Tensor:
        """Cosine similarities ``(n_bank_gallery, n_gallery)``: bank gallery items vs the test gallery."""
        if self.bank_gallery is None:
            fail("PairedData.bank_gallery_sims", "bank_gallery", "present", "None")
        return _cosine(self.bank_gallery, self.gallery, chunk_size)

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> PairedData:
        """A copy with the embeddings moved to ``device`` / cast to ``dtype`` (labels keep integer dtype)."""
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                changes[f.name] = v.to(
                    device=device, dtype=dtype if v.is_floating_point() else None
                )
        return dataclasses.replace(self, **changes)

    # splitting -----------------------------------------------------------------------
    def split_bank(self, n_val: int, *, seed: int = 0) -> tuple[PairedData, PairedData]:
        """Carve a validation split out of the bank (for tuning hyperparameters).

        ``n_val`` bank gallery items, chosen at random with ``seed``, and all their
        bank queries become the test split of ``val``; the remaining bank items are the
        bank of both ``val`` and ``rest``. ``rest`` keeps this object's test split, so
        a method tuned on ``val`` is evaluated on ``rest`` with the same bank and
        without the validation items.

        Returns
        -------
        (val, rest) : PairedData, PairedData

        Raises
        ------
        ValueError
            If there is no paired bank, or ``n_val`` leaves an empty bank.
        """
        func = "PairedData.split_bank"
        if self.bank_gallery is not None and n_val >= self.bank_gallery.shape[0]:
            fail(
                func,
                "n_val",
                f"smaller than the bank ({self.bank_gallery.shape[0]} gallery items)",
                n_val,
            )
        gt = self._bank_gt().cpu()
        n_bg = self.bank_gallery.shape[0]
        n_val = check_int(n_val, "n_val", func, low=1, high=n_bg)
        chosen = _choose(n_bg, n_val, check_int(seed, "seed", func))
        val_g, val_q, val_pos = _select(chosen, gt)
        keep_g, keep_q, keep_pos = _select(~chosen, gt)
        bank_fields = self._bank_fields(keep_q, keep_g, keep_pos, gt)
        val = PairedData(
            name=self.name,
            query=_take(self.bank_query, val_q),
            gallery=_take(self.bank_gallery, val_g),
            query_to_gallery=val_pos[gt[val_q]].to(self.bank_query.device),
            query_labels=_take(self.bank_query_labels, val_q),
            gallery_labels=_take(self.bank_gallery_labels, val_g),
            query_text=_take(self.bank_query_text, val_q),
            gallery_text=_take(self.bank_gallery_text, val_g),
            meta={
                **self.meta,
                "split": "val",
                "n_val": int(val_g.numel()),
                "seed_val": seed,
            },
            **bank_fields,
        )
        rest = dataclasses.replace(
            self,
            meta={**self.meta, "split": "test", "n_val": int(val_g.numel())},
            **bank_fields,
        )
        return val, rest

    def _bank_fields(
        self,
        keep_q: torch.Tensor,
        keep_g: torch.Tensor,
        new_pos: torch.Tensor,
        gt: torch.Tensor,
    ) -> dict[str, Any]:
        return {
            "bank_query": _take(self.bank_query, keep_q),
            "bank_gallery": _take(self.bank_gallery, keep_g),
            "bank_query_to_gallery": new_pos[gt[keep_q]].to(self.bank_query.device),
            "bank_query_labels": _take(self.bank_query_labels, keep_q),
            "bank_gallery_labels": _take(self.bank_gallery_labels, keep_g),
            "bank_query_text": _take(self.bank_query_text, keep_q),
            "bank_gallery_text": _take(self.bank_gallery_text, keep_g),
        }

    def subsample(
        self, n_gallery: int | None = None, n_bank: int | None = None, *, seed: int = 0
    ) -> PairedData:
        """A smaller benchmark: ``n_gallery`` test gallery items and ``n_bank`` bank gallery items.

        Gallery items are drawn at random with ``seed``; every query whose match is a
        drawn item comes along (so the query count follows the captions per item).
        Bank items are drawn the same way; unpaired banks (no
        ``bank_query_to_gallery`` and unequal sides) keep ``n_bank`` rows of each side.
        ``None`` keeps a side whole. Order is preserved.
        """
        func = "PairedData.subsample"
        gen_seed = check_int(seed, "seed", func)
        out: dict[str, Any] = {}
        if n_gallery is not None:
            n = check_int(n_gallery, "n_gallery", func, low=1, high=self.n_gallery)
            gt = self.gt.cpu()
            g_idx, q_idx, new_pos = _select(_choose(self.n_gallery, n, gen_seed), gt)
            out.update(
                query=_take(self.query, q_idx),
                gallery=_take(self.gallery, g_idx),
                query_to_gallery=new_pos[gt[q_idx]].to(self.query.device),
                query_labels=_take(self.query_labels, q_idx),
                gallery_labels=_take(self.gallery_labels, g_idx),
                query_text=_take(self.query_text, q_idx),
                gallery_text=_take(self.gallery_text, g_idx),
            )
        if n_bank is not None and self.bank_gallery is not None:
            paired = self.bank_query is not None and (
                self.bank_query_to_gallery is not None
                or self.bank_query.shape[0] == self.bank_gallery.shape[0]
            )
            gen = torch.Generator().manual_seed(gen_seed + 1)
            if paired:
                n = check_int(
                    n_bank, "n_bank", func, low=1, high=self.bank_gallery.shape[0]
                )
                gt = self._bank_gt().cpu()
                chosen = _choose(self.bank_gallery.shape[0], n, gen_seed + 1)
                keep_g, keep_q, new_pos = _select(chosen, gt)
                out.update(self._bank_fields(keep_q, keep_g, new_pos, gt))
            else:
                for side in ("bank_query", "bank_gallery"):
                    b = getattr(self, side)
                    if b is None:
                        continue
                    n = check_int(n_bank, "n_bank", func, low=1)
                    idx = (
                        torch.randperm(b.shape[0], generator=gen)[: min(n, b.shape[0])]
                        .sort()
                        .values
                    )
                    out[side] = _take(b, idx)
                    out[f"{side}_labels"] = _take(getattr(self, f"{side}_labels"), idx)
                    out[f"{side}_text"] = _take(getattr(self, f"{side}_text"), idx)
        meta = {
            **self.meta,
            "subsample": {"n_gallery": n_gallery, "n_bank": n_bank, "seed": seed},
        }
        return dataclasses.replace(self, meta=meta, **out)


@dataclass(frozen=True, eq=False)
class SimilarityData:
    """Precomputed similarity matrices (users' data, QB-Norm / DBNorm pickles).

    Attributes
    ----------
    sims : Tensor of shape (n_query, n_gallery)
        Test queries against the test gallery.
    bank_query_sims : Tensor of shape (n_bank_query, n_gallery) or None
        Bank queries against the test gallery (QB-Norm's "train captions test videos").
    bank_gallery_sims : Tensor of shape (n_bank_gallery, n_gallery) or None
        Bank gallery items against the test gallery.
    query_to_gallery : LongTensor of shape (n_query,) or None
        Ground truth; ``None`` means the square diagonal.
    query_mask : BoolTensor of shape (n_query,) or None
        ``False`` for padding queries to leave out of the evaluation (QB-Norm masks).
    scale : {"cosine", "logit"}
        Whether entries are cosines or temperature-scaled logits.
    meta : dict
        Name, modality names, source files.

    Book
    ----
    :ref:`sec-data`.
    """

    sims: torch.Tensor
    bank_query_sims: torch.Tensor | None = None
    bank_gallery_sims: torch.Tensor | None = None
    query_to_gallery: torch.Tensor | None = None
    query_mask: torch.Tensor | None = None
    scale: str = "cosine"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        func = "SimilarityData"
        s = check_matrix(self.sims, "sims", func)
        object.__setattr__(self, "sims", s)
        for name in ("bank_query_sims", "bank_gallery_sims"):
            b = getattr(self, name)
            if b is not None:
                b = check_matrix(b, name, func)
                if b.shape[1] != s.shape[1]:
                    fail(
                        func,
                        name,
                        f"of width {s.shape[1]} (the number of gallery items in `sims`)",
                        f"shape {tuple(b.shape)}",
                    )
                object.__setattr__(self, name, b)
        n_q, n_g = s.shape
        if self.query_to_gallery is None:
            if n_q != n_g:
                fail(
                    func,
                    "query_to_gallery",
                    "given when `sims` is not square",
                    "None",
                    f"`sims` has shape {(n_q, n_g)}.",
                )
        else:
            object.__setattr__(
                self,
                "query_to_gallery",
                check_index_vector(
                    self.query_to_gallery,
                    "query_to_gallery",
                    func,
                    length=n_q,
                    upper=n_g,
                ),
            )
        if self.query_mask is not None:
            m = self.query_mask
            if not isinstance(m, torch.Tensor):
                from hubrepro._validation import as_tensor

                m = as_tensor(m, "query_mask", func)
            m = m.reshape(-1)
            if m.numel() != n_q:
                fail(
                    func,
                    "query_mask",
                    f"of {n_q} entries (one per query)",
                    f"{m.numel()} entries",
                )
            if m.dtype != torch.bool:
                if m.is_floating_point() and not bool(((m == 0) | (m == 1)).all()):
                    fail(func, "query_mask", "boolean or 0/1", "other values")
                m = m != 0
            object.__setattr__(self, "query_mask", m)
        object.__setattr__(
            self, "scale", check_choice(self.scale, "scale", func, SCALES)
        )

    @property
    def n_query(self) -> int:
        """Number of test queries (masked ones included)."""
        return int(self.sims.shape[0])

    @property
    def n_gallery(self) -> int:
        """Number of test gallery items."""
        return int(self.sims.shape[1])

    def masked(self) -> SimilarityData:
        """A copy without the masked-out queries (``query_mask`` False)."""
        if self.query_mask is None:
            return self
        idx = self.query_mask.nonzero().squeeze(1)
        gt = (
            self.query_to_gallery
            if self.query_to_gallery is not None
            else torch.arange(self.n_query)
        )
        return dataclasses.replace(
            self,
            sims=self.sims.index_select(0, idx.to(self.sims.device)),
            query_to_gallery=gt.index_select(0, idx.to(gt.device)),
            query_mask=None,
        )

    def __repr__(self) -> str:
        shapes = {
            k: tuple(getattr(self, k).shape) if getattr(self, k) is not None else None
            for k in ("sims", "bank_query_sims", "bank_gallery_sims")
        }
        return f"SimilarityData({shapes}, scale={self.scale!r})"
