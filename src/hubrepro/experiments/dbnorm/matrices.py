r"""Data and similarity matrices of the DBNorm driver, and the fitted-estimator cache.

Every similarity matrix is computed once per (split, direction) and reused for every
method and grid point (:func:`prepare`). A :class:`Matrices` also keeps the
normalisers fitted on its banks (:meth:`Matrices.fitted`): a method evaluated twice
at the same hyperparameters (tuning, then a figure or an ablation at the chosen
values) is fitted once.

Book: :ref:`sec-dbnorm-protocol`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from hubrepro._validation import check_choice, check_int, fail
from hubrepro.normalize import DIRECTIONS, BaseNormalizer

from .config import DBNormConfig

__all__ = [
    "Matrices",
    "load_data",
    "load_user",
    "is_paired",
    "direction_matrices",
    "prepare",
    "describe_data",
    "small_matrices",
    "full_test_sims",
]


def load_user(cfg: DBNormConfig) -> Any:
    """The user's folder ``cfg.data_dir`` (embeddings or similarity matrices)."""
    from hubrepro.datasets import load_dataset

    # naming another source with a data_dir makes load_dataset read the user's folder and
    # ignore (and record) options meant for the embedded sources, e.g. a parameter set's
    # stdlib subset sizes
    return load_dataset(
        "stdlib-code", seed=cfg.seed, data_dir=cfg.data_dir, **cfg.dataset_options
    )


def load_data(cfg: DBNormConfig) -> dict[str, Any]:
    """Load the dataset(s) named by ``cfg``: label -> PairedData or SimilarityData.

    ``"embedded"`` gives ``stdlib-code`` (``cfg.protocol``) followed by every entry of
    ``cfg.synthetic_settings``; ``"user"`` (or any ``data_dir``) reads ``cfg.data_dir``.
    """
    from hubrepro.datasets import load_dataset

    out: dict[str, Any] = {}
    if cfg.dataset == "user" or cfg.data_dir:
        # a data_dir always means the user's data (as in load_dataset)
        return {"user": load_user(cfg)}
    if cfg.dataset in ("embedded", "stdlib-code"):
        out[f"stdlib-code ({cfg.protocol})"] = load_dataset(
            "stdlib-code", seed=cfg.seed, protocol=cfg.protocol, **cfg.dataset_options
        )
    if cfg.dataset in ("embedded", "synthetic"):
        settings = cfg.synthetic_settings or {"synthetic": {}}
        for label, opts in settings.items():
            out[f"synthetic: {label}"] = load_dataset(
                "synthetic", seed=cfg.seed, **dict(opts)
            )
    return out


@dataclass(frozen=True, eq=False)
class Matrices:
    """The matrices of one split and one direction (rows = that direction's queries).

    Attributes
    ----------
    sims : Tensor of shape (n_rows, n_cols)
    bank_query_sims, bank_gallery_sims : Tensor of shape (n_bank, n_cols) or None
    bank_cross_sims : Tensor of shape (n_bank_query, n_bank_gallery) or None
        Query bank against gallery bank of this direction (DBSN only).
    query_to_gallery : LongTensor of shape (n_query,) or None
        Ground truth **of the query->gallery matrix** (``None``: diagonal).
    direction : str
    scale : str
        ``"cosine"`` or ``"logit"``.

    Notes
    -----
    ``dataclasses.replace`` (e.g. with a subsampled bank) gives a new object with
    empty caches.
    """

    sims: torch.Tensor
    bank_query_sims: torch.Tensor | None
    bank_gallery_sims: torch.Tensor | None
    query_to_gallery: torch.Tensor | None
    direction: str
    scale: str = "cosine"
    bank_cross_sims: torch.Tensor | None = None
    # (estimator, hyperparameters) -> fitted estimator
    _fitted: dict = field(default_factory=dict, init=False, repr=False)
    # tuning results of the driver, keyed by what they depend on
    _memo: dict = field(default_factory=dict, init=False, repr=False)

    def fitted(self, method: str, params: Mapping[str, Any]) -> BaseNormalizer:
        """The estimator ``method`` of :mod:`hubrepro.normalize` with ``params``, fitted on these banks.

        Fitted once per (method, hyperparameters) and kept: the bank statistics are
        vectors of length ``n_cols``, so the cache stays small.
        """
        from hubrepro.normalize import make_normalizer

        key = (method, tuple(sorted(params.items())))
        est = self._fitted.get(key)
        if est is None:
            extra = (
                {"bank_cross_sims": self.bank_cross_sims} if method == "dbsn" else {}
            )
            est = make_normalizer(method, **params)
            est.fit(self.bank_query_sims, self.bank_gallery_sims, **extra)
            self._fitted[key] = est
        return est


def is_paired(data: Any) -> bool:
    """Whether ``data`` holds embeddings (a PairedData) rather than similarity matrices."""
    return hasattr(data, "split_bank") and hasattr(data, "query")


def direction_matrices(
    data: Any, direction: str = "query_to_gallery", *, cross: bool = False
) -> Matrices:
    """Build the three matrices of one direction from a PairedData or SimilarityData.

    ``cross=True`` also computes the bank-query x bank-gallery matrix (DBSN only).
    Gallery->query swaps the roles: the queries of that direction are the test gallery
    items, its query bank is the gallery bank against the test queries (cross-modal)
    and its gallery bank is the query bank against the test queries (intra-modal).

    Raises
    ------
    ValueError
        For ``gallery_to_query`` on a SimilarityData (the reverse banks are unknown).
    """
    func = "direction_matrices"
    check_choice(direction, "direction", func, DIRECTIONS)
    if not is_paired(data):
        if direction != "query_to_gallery":
            fail(func, "direction", "'query_to_gallery' for precomputed similarity matrices", repr(direction),
                 "The reverse direction needs embeddings (query.npy, gallery.npy, bank_*.npy).")  # fmt: skip
        d = data.masked()
        return Matrices(
            d.sims,
            d.bank_query_sims,
            d.bank_gallery_sims,
            d.query_to_gallery,
            direction,
            d.scale,
        )
    from hubrepro.similarity import similarity

    if direction == "query_to_gallery":
        bq = data.bank_query_sims() if data.bank_query is not None else None
        bg = data.bank_gallery_sims() if data.bank_gallery is not None else None
        pqg = (
            None
            if bq is None or bg is None or not cross
            else similarity(data.bank_query, data.bank_gallery)
        )
        return Matrices(
            data.sims(), bq, bg, data.query_to_gallery, direction, bank_cross_sims=pqg
        )
    # gallery->query: the query bank of this direction is the gallery bank (cross-modal),
    # its gallery bank the query bank (intra-modal)
    sims_t = data.sims().T.contiguous()
    bq = (
        similarity(data.bank_gallery, data.query)
        if data.bank_gallery is not None
        else None
    )
    bg = (
        similarity(data.bank_query, data.query) if data.bank_query is not None else None
    )
    pqg = (
        None
        if bq is None or bg is None or not cross
        else similarity(data.bank_gallery, data.bank_query)
    )
    return Matrices(
        sims_t, bq, bg, data.query_to_gallery, direction, bank_cross_sims=pqg
    )


def prepare(data: Any, cfg: DBNormConfig) -> dict[tuple[str, str], Matrices]:
    """Compute every matrix once: ``(split, direction) -> Matrices``.

    Splits are ``"val"`` (carved from the bank with ``cfg.n_val`` and ``cfg.seed``) and
    ``"test"`` (the test split with the remaining bank). A SimilarityData, or embeddings
    without a gallery bank, have no ``"val"``; a SimilarityData has only
    ``("test", "query_to_gallery")``.

    Raises
    ------
    ValueError
        When the gallery bank is not larger than ``cfg.n_val``.
    """
    from hubrepro._compat import resolve_device

    device = resolve_device(cfg.device)
    out: dict[tuple[str, str], Matrices] = {}
    if not is_paired(data):
        data = dataclasses.replace(data, sims=data.sims.to(device),
            bank_query_sims=None if data.bank_query_sims is None else data.bank_query_sims.to(device),
            bank_gallery_sims=None if data.bank_gallery_sims is None else data.bank_gallery_sims.to(device))  # fmt: skip
        out[("test", "query_to_gallery")] = direction_matrices(data, "query_to_gallery")
        return out
    data = data.to(device)
    n_bank = data.bank_gallery.shape[0] if data.bank_gallery is not None else 0
    if n_bank == 0:
        val, rest = None, data  # no gallery bank: no split, unset values fall back
    elif n_bank > cfg.n_val:
        val, rest = data.split_bank(cfg.n_val, seed=cfg.seed)
    else:
        fail("prepare", "n_val", f"smaller than the gallery bank ({n_bank} items), so that a bank remains",
             cfg.n_val, "Lower n_val (hubrepro dbnorm --n-val).")  # fmt: skip
    cross = "dbsn" in cfg.methods
    for direction in cfg.directions:
        out[("test", direction)] = direction_matrices(rest, direction, cross=cross)
        if val is not None:
            out[("val", direction)] = direction_matrices(val, direction, cross=cross)
    return out


def describe_data(datasets: Mapping[str, Any]) -> pd.DataFrame:
    """Sizes of each dataset: test queries/gallery, bank sizes, kind and scale."""
    rows = []
    for label, d in datasets.items():
        if is_paired(d):
            rows.append({
                "dataset": label, "kind": "embeddings", "n_query": d.n_query, "n_gallery": d.n_gallery,
                "n_bank_query": None if d.bank_query is None else int(d.bank_query.shape[0]),
                "n_bank_gallery": None if d.bank_gallery is None else int(d.bank_gallery.shape[0]),
                "scale": "cosine",
            })  # fmt: skip
        else:
            rows.append({
                "dataset": label, "kind": "similarity matrices", "n_query": d.n_query, "n_gallery": d.n_gallery,
                "n_bank_query": None if d.bank_query_sims is None else int(d.bank_query_sims.shape[0]),
                "n_bank_gallery": None if d.bank_gallery_sims is None else int(d.bank_gallery_sims.shape[0]),
                "scale": d.scale,
            })  # fmt: skip
    return pd.DataFrame(rows).set_index("dataset")


def small_matrices(data: Any, *, n: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """Small NumPy matrices for the errata demonstrations (the released code is NumPy).

    From a PairedData: ``n`` test gallery items (with their queries) and ``n`` bank
    gallery items (with their bank queries), so the bank-gallery matrix has as many
    rows as there are test queries when each item has one query. From a
    SimilarityData: the first ``n`` query and bank rows.

    Returns
    -------
    dict
        ``sims``, ``bank_query_sims``, ``bank_gallery_sims`` (float64) and
        ``query_to_gallery`` (int64).
    """
    n = check_int(n, "n", "small_matrices", low=2)
    if is_paired(data):
        n_bank = (
            None if data.bank_gallery is None else min(n, data.bank_gallery.shape[0])
        )
        d = data.subsample(min(n, data.n_gallery), n_bank, seed=seed)
        m = direction_matrices(d, "query_to_gallery")
    else:
        d = data.masked()
        rows = min(n, d.n_query)
        gt = (
            d.query_to_gallery
            if d.query_to_gallery is not None
            else torch.arange(d.n_query)
        )
        m = Matrices(d.sims[:rows], d.bank_query_sims[:n], d.bank_gallery_sims[:n], gt[:rows],
                     "query_to_gallery", d.scale)  # fmt: skip
    gt = (
        m.query_to_gallery
        if m.query_to_gallery is not None
        else torch.arange(m.sims.shape[0])
    )
    as_np = lambda t: t.detach().cpu().double().numpy()  # noqa: E731
    return {
        "sims": as_np(m.sims),
        "bank_query_sims": as_np(m.bank_query_sims),
        "bank_gallery_sims": as_np(m.bank_gallery_sims),
        "query_to_gallery": gt.detach().cpu().long().numpy(),
    }


def full_test_sims(data: Any) -> np.ndarray:
    """The full test similarity matrix as a float64 NumPy array (masked queries dropped)."""
    s = data.sims() if is_paired(data) else data.masked().sims
    return s.detach().cpu().double().numpy()
