r"""The DBNorm reproduction driver: main table, tuning, ablations, hubness pictures.

Runs the baseline and every bank-based normaliser of :mod:`hubrepro.normalize`
(IS, DIS = QB-Norm, CSLS, GC, DualIS, DualDIS in both modes, SN, DBSN, NNN) on a
:class:`~hubrepro.datasets.PairedData` (embeddings) or a
:class:`~hubrepro.datasets.SimilarityData` (a user's precomputed matrices), in both
retrieval directions, and returns tidy DataFrames with R@1/5/10, MdR, MnR, Rsum and
the hubness of the normalised scores (DBNorm, Wang et al. 2023, Tables 1-5 as far as
they are known; see the DBNorm specification §7).

Protocol
--------
* Hyperparameters (:math:`\beta_q`, :math:`\beta_g`, NNN's :math:`\alpha`) left at
  ``None`` are chosen on a **validation split carved from the bank**
  (:meth:`hubrepro.datasets.PairedData.split_bank`): validation queries and gallery
  items are bank pairs, and the remaining bank items are the bank of both the
  validation and the test evaluation. The test split is never looked at while tuning.
  Ties in the tuning criterion go to the first grid point (grids are ordered). A value
  set in the config is used as given and never tuned; without a validation split
  (similarity matrices, or no gallery bank) an unset value takes :data:`FALLBACK`.
* Gallery->query retrieval swaps the roles: the queries of that direction are the
  test gallery items, its query bank is the gallery bank against the test queries
  (cross-modal) and its gallery bank is the query bank against the test queries
  (intra-modal). It needs embeddings; with a :class:`SimilarityData` only
  query->gallery is run.
* :math:`\beta` grids are given on the cosine scale; on logit-scaled matrices
  (``SimilarityData.scale == "logit"``) they are divided by ``logit_scale``.
* Every similarity matrix is computed once per (split, direction) and reused for
  every method and grid point; bank statistics are recomputed per fit (one
  streaming pass over a bank matrix, milliseconds at these sizes).

Book: :ref:`sec-dbnorm`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from hubrepro._validation import (
    check_choice,
    check_int,
    check_positive,
    check_probability,
    fail,
)
from hubrepro.normalize import DIRECTIONS

__all__ = [
    "DIRECTIONS",
    "METHOD_KEYS",
    "FALLBACK",
    "TUNED",
    "missing_banks",
    "DBNormConfig",
    "Matrices",
    "MainResult",
    "method_spec",
    "load_data",
    "direction_matrices",
    "prepare",
    "evaluate_method",
    "tune_method",
    "run_main",
    "run_many",
    "main_table",
    "method_label",
    "normalise",
    "describe_data",
    "delta_frame",
    "plot_delta",
    "hubness_table",
    "headlines",
    "CLAIMS",
    "published_vs_reproduced",
    "claims_table",
    "baseline_mismatch",
    "published_wide",
    "plot_beta_heatmap",
    "plot_bank_size",
    "plot_occurrence_hist",
    "shift_datasets",
    "shift_headlines",
    "faithful_vs_principled",
    "small_matrices",
    "full_test_sims",
    "ablate_bank_size",
    "ablate_bank_choice",
    "ablate_aggregation",
    "ablate_k",
    "beta_grid",
    "ablate_shift",
    "occurrence_table",
    "hub_changes",
    "retrieval_examples",
]


#: Method keys of the driver: a normaliser of :mod:`hubrepro.normalize` plus fixed options.
METHOD_KEYS = (
    "none",
    "is",
    "is-g",
    "dis",
    "dis-g",
    "csls",
    "gc",
    "dualis",
    "dualis-sum",
    "dualdis",
    "dualdis-faithful",
    "sn",
    "dbsn",
    "nnn",
)

#: Hyperparameters a method may tune on validation (a method's own subset: method_spec).
TUNED = ("beta_query", "beta_gallery", "alpha")

#: Values of unset (``None``) hyperparameters when there is no validation split.
#: NNN's alpha is the default of the released NNN code (see hubrepro.normalize.NNN).
FALLBACK = {"beta_query": 20.0, "beta_gallery": 20.0, "alpha": 0.5}

_LABELS = {
    "none": "baseline",
    "is": "IS (query bank)",
    "is-g": "IS (gallery bank)",
    "dis": "DIS / QB-Norm (query bank)",
    "dis-g": "DIS (gallery bank)",
    "csls": "CSLS",
    "gc": "GC",
    "dualis": "DualIS",
    "dualis-sum": "DualIS (sum)",
    "dualdis": "DualDIS (principled)",
    "dualdis-faithful": "DualDIS (faithful)",
    "sn": "SN",
    "dbsn": "DBSN",
    "nnn": "NNN",
}


@dataclass(frozen=True)
class DBNormConfig:
    """Parameters of the DBNorm notebooks (40-44); field names equal the notebook parameters.

    Attributes
    ----------
    dataset : str
        ``"embedded"`` (every shipped dataset: ``stdlib-code`` and the synthetic
        settings), ``"stdlib-code"``, ``"synthetic"`` or ``"user"`` (read ``data_dir``).
    data_dir : str or None
        A user's folder (layout in the data chapter); needed for ``"user"``.
    protocol : str
        Split protocol of ``stdlib-code``: ``"random"`` or ``"by-module"``.
    dataset_options : dict
        Extra keyword arguments of :func:`hubrepro.datasets.load_dataset` for
        ``stdlib-code`` / ``user`` (e.g. subset sizes).
    synthetic_settings : dict of str to dict
        Label -> keyword arguments of ``load_dataset("synthetic", ...)``: the synthetic
        datasets of the main table (e.g. several hubness levels).
    methods : tuple of str
        Method keys (:data:`METHOD_KEYS`).
    directions : tuple of str
        Retrieval directions (``DIRECTIONS``).
    beta_query_grid, beta_gallery_grid : tuple of float
        Grids of :math:`\\beta_q`, :math:`\\beta_g` (cosine scale) searched on
        validation for an unset beta.
    alpha_grid : tuple of float
        Grid of NNN's :math:`\\alpha` (searched when ``alpha`` is unset).
    beta_query, beta_gallery, alpha : float or None
        ``None`` (default): tuned on the validation split, or :data:`FALLBACK` (20, 20,
        0.5) when there is none (a user's similarity matrices). A number is used as
        given by every method that takes it and is never tuned.
    k : int
        Activation-set size of DIS / DualDIS.
    csls_k : int
        Neighbourhood size of CSLS.
    nnn_k : int or None
        Neighbourhood size of NNN; ``None`` (default): NNN's own default (256, the
        released code's), capped at the query-bank size. A number must fit the bank.
    n_val : int
        Bank gallery items carved out as the validation split; the gallery bank must be
        larger (the rest stays the bank). Not used when the data have no gallery bank
        or are similarity matrices (no split is possible).
    tune_metric : str
        Validation criterion, ``"R@1"`` or ``"Rsum"`` (of the direction evaluated).
    hubness_k : int
        :math:`k` of the k-occurrence statistics.
    ties : str
        Tie policy of the ranks (``average``, ``optimistic``, ``pessimistic``).
    logit_scale : float
        Divides the :math:`\\beta` grids on logit-scaled user matrices.
    setting : str or None
        Notebook 41: the published setting (``setting`` column of
        ``data/published/dbnorm.csv``, e.g. ``"MSR-VTT CLIP4Clip"``) that ``data_dir``
        holds; its row of the comparison is filled from your data.
    bank_fractions : tuple of float
        Notebook 42: bank-size fractions.
    k_values : tuple of int
        Notebook 42: activation-set sizes.
    shift_values : tuple of float
        Notebook 42: ``shift`` of the synthetic generator's banks (robustness).
    n_examples : int
        Notebook 43: retrieval examples shown.
    seed : int
        The notebook's one seed (splits, subsamples).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    artifact_dir : str
        Where CSV / PNG artifacts and ``provenance.json`` go.
    """

    dataset: str = "embedded"
    data_dir: str | None = None
    protocol: str = "random"
    dataset_options: dict = field(default_factory=dict)
    synthetic_settings: dict = field(default_factory=dict)
    methods: tuple[str, ...] = (
        "none",
        "is",
        "dis",
        "csls",
        "dualis",
        "dualdis",
        "dualdis-faithful",
        "nnn",
    )
    directions: tuple[str, ...] = DIRECTIONS
    beta_query_grid: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0)
    beta_gallery_grid: tuple[float, ...] = (1.0, 2.5, 5.0, 10.0, 20.0, 40.0)
    alpha_grid: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    beta_query: float | None = None
    beta_gallery: float | None = None
    alpha: float | None = None
    k: int = 1
    csls_k: int = 10
    nnn_k: int | None = None
    n_val: int = 300
    tune_metric: str = "R@1"
    hubness_k: int = 10
    ties: str = "average"
    logit_scale: float = 100.0
    setting: str | None = None
    bank_fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    k_values: tuple[int, ...] = (1, 2, 5, 10)
    shift_values: tuple[float, ...] = (0.0, 0.5, 1.0)
    n_examples: int = 3
    seed: int = 0
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/dbnorm"

    def __post_init__(self) -> None:
        func = "DBNormConfig"
        check_choice(
            self.dataset,
            "dataset",
            func,
            ("embedded", "stdlib-code", "synthetic", "user"),
        )
        if self.dataset == "user" and not self.data_dir:
            fail(func, "data_dir", "a folder when `dataset` is 'user'", repr(self.data_dir),
                 "Pass `-p data_dir /path/to/your/data`.")  # fmt: skip
        for m in self.methods:
            check_choice(m, "methods", func, METHOD_KEYS)
        for d in self.directions:
            check_choice(d, "directions", func, DIRECTIONS)
        for name in ("beta_query_grid", "beta_gallery_grid", "alpha_grid"):
            grid = getattr(self, name)
            if not grid or any(
                (not isinstance(v, int | float)) or not math.isfinite(v) or v < 0
                for v in grid
            ):
                fail(
                    func,
                    name,
                    "a non-empty sequence of non-negative numbers",
                    repr(grid),
                )
        check_choice(
            self.tune_metric, "tune_metric", func, ("R@1", "R@5", "R@10", "Rsum")
        )
        for name in TUNED:
            if getattr(self, name) is not None:
                check_positive(getattr(self, name), name, func, allow_zero=True)
        check_int(self.k, "k", func, low=1)
        if self.nnn_k is not None:
            check_int(self.nnn_k, "nnn_k", func, low=1)
        check_int(self.n_val, "n_val", func, low=1)
        check_int(self.hubness_k, "hubness_k", func, low=1)


def method_spec(
    key: str, cfg: DBNormConfig
) -> tuple[str, dict[str, Any], tuple[str, ...]]:
    """Return ``(normaliser name, fixed hyperparameters, tuned hyperparameter names)`` of a key.

    Book: :ref:`sec-normalisation` (the methods), :ref:`sec-dbnorm` (the protocol).
    """
    check_choice(key, "key", "method_spec", METHOD_KEYS)
    bq, bg = "beta_query", "beta_gallery"
    specs: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
        "none": ("none", {}, ()),
        "is": ("is", {"bank": "query"}, (bq,)),
        "is-g": ("is", {"bank": "gallery"}, (bg,)),
        "dis": ("dis", {"bank": "query", "k": cfg.k}, (bq,)),
        "dis-g": ("dis", {"bank": "gallery", "k": cfg.k}, (bg,)),
        "csls": ("csls", {"k": cfg.csls_k}, ()),
        "gc": ("gc", {}, ()),
        "dualis": ("dualis", {"aggregation": "product"}, (bq, bg)),
        "dualis-sum": ("dualis", {"aggregation": "sum"}, (bq, bg)),
        "dualdis": ("dualdis", {"k": cfg.k, "mode": "principled"}, (bq, bg)),
        "dualdis-faithful": ("dualdis", {"k": cfg.k, "mode": "faithful"}, (bq, bg)),
        "sn": ("sn", {"bank": "query"}, (bq,)),
        "dbsn": ("dbsn", {}, (bq,)),
        "nnn": ("nnn", {"k": cfg.nnn_k}, ("alpha",)),
    }
    return specs[key]


def method_label(key: str) -> str:
    """Display name of a method key."""
    return _LABELS.get(key, key)


# --------------------------------------------------------------------------------------
# Data and matrices
# --------------------------------------------------------------------------------------


def _load_user(cfg: DBNormConfig) -> Any:
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
        return {"user": _load_user(cfg)}
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
    """

    sims: torch.Tensor
    bank_query_sims: torch.Tensor | None
    bank_gallery_sims: torch.Tensor | None
    query_to_gallery: torch.Tensor | None
    direction: str
    scale: str = "cosine"
    bank_cross_sims: torch.Tensor | None = None
    # single-bank log-scores, (method, bank, beta, k) -> Tensor; not copied by `replace`
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    def single_bank_log(
        self, method: str, bank: str, beta: float, k: int = 1
    ) -> torch.Tensor:
        """Log-scale IS or DIS scores of one bank, computed once per (method, bank, beta, k).

        These are the bank statistics reused across a grid: DualIS is the sum of the
        two IS log-scores and principled DualDIS the sum of the two DIS log-scores
        (spec §2.5-2.6), so a ``b_q x b_g`` grid costs ``b_q + b_g`` bank passes.
        """
        from hubrepro.normalize import normalize

        key = (method, bank, float(beta), int(k) if method == "dis" else 0)
        if key not in self._cache:
            hyper: dict[str, Any] = {
                "bank": bank,
                f"beta_{bank}": float(beta),
                "scale": "log",
            }
            if method == "dis":
                hyper["k"] = int(k)
            self._cache[key] = normalize(method, self.sims, bank_query_sims=self.bank_query_sims,
                                         bank_gallery_sims=self.bank_gallery_sims, **hyper)  # fmt: skip
        return self._cache[key]


def _is_paired(data: Any) -> bool:
    return hasattr(data, "split_bank") and hasattr(data, "query")


def direction_matrices(
    data: Any, direction: str = "query_to_gallery", *, cross: bool = False
) -> Matrices:
    """Build the three matrices of one direction from a PairedData or SimilarityData.

    ``cross=True`` also computes the bank-query x bank-gallery matrix (DBSN only).

    Raises
    ------
    ValueError
        For ``gallery_to_query`` on a SimilarityData (the reverse banks are unknown).
    """
    func = "direction_matrices"
    check_choice(direction, "direction", func, DIRECTIONS)
    if not _is_paired(data):
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
    if not _is_paired(data):
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


# --------------------------------------------------------------------------------------
# Evaluation and tuning
# --------------------------------------------------------------------------------------


def _beta_unit(m: Matrices, cfg: DBNormConfig) -> float:
    return 1.0 / cfg.logit_scale if m.scale == "logit" else 1.0


def normalise(
    key: str, m: Matrices, cfg: DBNormConfig, hyper: Mapping[str, Any] | None = None
) -> torch.Tensor:
    """Scores of method ``key`` on ``m`` (rows = queries of ``m.direction``).

    ``hyper`` overrides the method's fixed hyperparameters; betas are on the cosine
    scale and converted with ``logit_scale`` for logit-scaled matrices.
    """
    from hubrepro.normalize import normalize

    name, fixed, _ = method_spec(key, cfg)
    params = {**fixed, **dict(hyper or {})}
    if name == "nnn" and params.get("k") is None:
        from hubrepro.normalize import NNN

        # NNN's default neighbourhood, capped at the bank (an explicit nnn_k is not)
        params["k"] = min(NNN().k, m.bank_query_sims.shape[0])
    unit = _beta_unit(m, cfg)
    for b in ("beta_query", "beta_gallery"):
        if b in params:
            params[b] = float(params[b]) * unit
    if name == "none":
        return m.sims.clone()
    if params.get("scale", "similarity") == "similarity":
        # reuse cached single-bank statistics (exactly the library's result, see tests)
        if name in ("is", "dis"):
            bank = params.get("bank", "query")
            beta = params[f"beta_{bank}"]
            return m.single_bank_log(name, bank, beta, params.get("k", 1)) / beta
        dual = {"dualis": "is", "dualdis": "dis"}.get(name)
        if (
            dual
            and params.get("aggregation", "product") == "product"
            and params.get("mode", "principled") == "principled"
        ):
            bq, bg = params["beta_query"], params["beta_gallery"]
            k = params.get("k", 1)
            return (
                m.single_bank_log(dual, "query", bq, k)
                + m.single_bank_log(dual, "gallery", bg, k)
            ) / (bq + bg)
    extra = {"bank_cross_sims": m.bank_cross_sims} if name == "dbsn" else {}
    return normalize(name, m.sims, bank_query_sims=m.bank_query_sims, bank_gallery_sims=m.bank_gallery_sims,
                     **extra, **params)  # fmt: skip


def _metrics(scores: torch.Tensor, m: Matrices, cfg: DBNormConfig) -> dict[str, float]:
    from hubrepro.retrieval import gallery_ranks, metrics_from_ranks, query_ranks

    if m.direction == "query_to_gallery":
        ranks = query_ranks(scores, m.query_to_gallery, ties=cfg.ties)
    else:
        ranks = gallery_ranks(scores.T, m.query_to_gallery, ties=cfg.ties)
    met = {k: float(v) for k, v in metrics_from_ranks(ranks).items()}
    met["Rsum"] = met["R@1"] + met["R@5"] + met["R@10"]
    return met


def _hubness(scores: torch.Tensor, cfg: DBNormConfig) -> dict[str, float]:
    from hubrepro.hubness import hubness_report

    k = min(cfg.hubness_k, scores.shape[1])
    rep = hubness_report(scores, k=k)
    return {f"hub_{key}": float(v) for key, v in rep.items() if key != "k"}


def evaluate_method(key: str, m: Matrices, cfg: DBNormConfig, hyper: Mapping[str, Any] | None = None,
                    *, hubness: bool = True) -> dict[str, float]:  # fmt: skip
    """R@1/5/10, MdR, MnR, Rsum (this direction) and, if asked, hubness of the scores.

    The hubness keys are ``hub_<key>`` of :func:`hubrepro.hubness.hubness_report`
    (standard skewness over all items, zeros included; ``hub_skewness_nonzero`` is
    the released code's variant).
    """
    scores = normalise(key, m, cfg, hyper)
    out = _metrics(scores, m, cfg)
    if hubness:
        out.update(_hubness(scores, cfg))
    return out


def _free(key: str, cfg: DBNormConfig) -> tuple[str, ...]:
    """The hyperparameters of ``key`` left unset in ``cfg`` (tuned on validation)."""
    _, _, tuned = method_spec(key, cfg)
    return tuple(t for t in tuned if getattr(cfg, t) is None)


def _fixed_hyper(key: str, cfg: DBNormConfig) -> dict[str, float]:
    """The hyperparameters of ``key`` set in ``cfg``: used as given, never tuned."""
    _, _, tuned = method_spec(key, cfg)
    return {t: float(getattr(cfg, t)) for t in tuned if getattr(cfg, t) is not None}


def _grid(key: str, cfg: DBNormConfig) -> list[dict[str, float]]:
    free = _free(key, cfg)
    grids = {
        "beta_query": cfg.beta_query_grid,
        "beta_gallery": cfg.beta_gallery_grid,
        "alpha": cfg.alpha_grid,
    }
    if not free:
        return [{}]
    return [
        dict(zip(free, vals, strict=True))
        for vals in itertools.product(*(grids[t] for t in free))
    ]


def _default_hyper(key: str, cfg: DBNormConfig) -> dict[str, float]:
    _, _, tuned = method_spec(key, cfg)
    return {t: float(_fixed_hyper(key, cfg).get(t, FALLBACK[t])) for t in tuned}


def tune_method(
    key: str, val: Matrices | None, cfg: DBNormConfig
) -> tuple[dict[str, float], pd.DataFrame]:
    """Choose a method's hyperparameters on the validation matrices.

    Hyperparameters set in ``cfg`` are used as given; every grid point of the unset
    ones is evaluated on ``val`` and the best by ``cfg.tune_metric`` is kept (first
    grid point on ties). Without a validation split (``val is None``) unset values
    take :data:`FALLBACK`. ``dualdis-faithful`` takes the betas chosen for ``dualdis``
    (principled), so the two modes are compared at equal betas. Results are memoised
    on ``val``.

    Returns
    -------
    (best, grid) : dict, DataFrame
        The chosen hyperparameters and one row per grid point (``method``, the
        hyperparameters, the validation metrics).
    """
    if key == "dualdis-faithful":
        # the faithful mode is a parity check: it is evaluated at the principled mode's betas
        return tune_method("dualdis", val, cfg)
    if val is None:
        return _default_hyper(key, cfg), pd.DataFrame()
    fixed = _fixed_hyper(key, cfg)
    points = _grid(key, cfg)
    if points == [{}]:
        return fixed, pd.DataFrame()
    memo = ("tuned", key, tuple(map(tuple, (p.items() for p in points))), tuple(sorted(fixed.items())),
            cfg.k, cfg.nnn_k, cfg.tune_metric, cfg.ties, cfg.logit_scale)  # fmt: skip
    if memo in val._cache:
        return val._cache[memo]
    rows = []
    for p in points:
        point = {**fixed, **p}
        met = evaluate_method(key, val, cfg, point, hubness=False)
        rows.append({"method": key, **point, **met})
    grid = pd.DataFrame(rows)
    best = int(np.argmax(grid[cfg.tune_metric].to_numpy()))  # first maximum
    chosen = {**fixed, **{k: float(v) for k, v in points[best].items()}}
    val._cache[memo] = (chosen, grid)
    return val._cache[memo]


@dataclass(frozen=True, eq=False)
class MainResult:
    """Output of :func:`run_main`.

    Attributes
    ----------
    table : DataFrame
        One row per (dataset, direction, method) on the test split: metrics, hubness,
        chosen hyperparameters (``hyper``) and whether they were tuned (``tuned``).
    tuning : DataFrame
        Every validation evaluation (dataset, direction, method, grid point, metrics).
    """

    table: pd.DataFrame
    tuning: pd.DataFrame


def run_main(data: Any, cfg: DBNormConfig, *, name: str = "data",
             prepared: Mapping[tuple[str, str], Matrices] | None = None) -> MainResult:  # fmt: skip
    """Run every method of ``cfg.methods`` in every direction: tune on validation, test once.

    Parameters
    ----------
    data : PairedData or SimilarityData
    cfg : DBNormConfig
    name : str
        Dataset label written in the ``dataset`` column.
    prepared : mapping, optional
        The output of :func:`prepare` (computed here if not given).

    Returns
    -------
    MainResult

    Book
    ----
    :ref:`sec-dbnorm`, main table (notebook 40).
    """
    mats = dict(prepared) if prepared is not None else prepare(data, cfg)
    rows, grids = [], []
    for direction in cfg.directions:
        test = mats.get(("test", direction))
        if test is None:
            continue
        val = mats.get(("val", direction))
        for key in cfg.methods:
            needs = _banks_needed(key, cfg)
            if any(getattr(test, f"bank_{b}_sims") is None for b in needs):
                continue
            best, grid = tune_method(key, val, cfg)
            if len(grid) and key != "dualdis-faithful":
                grids.append(grid.assign(dataset=name, direction=direction))
            met = evaluate_method(key, test, cfg, best)
            rows.append({
                "dataset": name, "direction": direction, "method": key, "label": method_label(key),
                **met, "hyper": _fmt_hyper(best), "tuned": val is not None and bool(_free(key, cfg)),
                **{f"param_{k}": v for k, v in best.items()},
            })  # fmt: skip
    tuning = pd.concat(grids, ignore_index=True) if grids else pd.DataFrame()
    return MainResult(pd.DataFrame(rows), tuning)


def run_many(datasets: Mapping[str, Any], cfg: DBNormConfig) -> MainResult:
    """:func:`run_main` over several datasets (label -> data), concatenated."""
    results = [run_main(d, cfg, name=label) for label, d in datasets.items()]
    table = pd.concat([r.table for r in results], ignore_index=True)
    tuning = pd.concat([r.tuning for r in results if len(r.tuning)], ignore_index=True) if any(
        len(r.tuning) for r in results) else pd.DataFrame()  # fmt: skip
    return MainResult(table, tuning)


def missing_banks(
    key: str, data: Any, direction: str, cfg: DBNormConfig
) -> tuple[str, ...]:
    """The banks method ``key`` needs in ``direction`` that ``data`` lacks (empty: it runs).

    Names are ``"query"``, ``"gallery"`` (the banks of that direction: gallery->query
    swaps them) and ``"cross"`` (DBSN's query-bank x gallery-bank matrix, computed from
    embeddings only). Precomputed similarity matrices have no gallery->query direction:
    every bank is missing there.
    """
    if _is_paired(data):
        have = {
            "query": data.bank_query is not None,
            "gallery": data.bank_gallery is not None,
        }
        if direction == "gallery_to_query":
            have = {"query": have["gallery"], "gallery": have["query"]}
        have["cross"] = have["query"] and have["gallery"]
    elif direction == "query_to_gallery":
        have = {"query": data.bank_query_sims is not None,
                "gallery": data.bank_gallery_sims is not None, "cross": False}  # fmt: skip
    else:
        have = {"query": False, "gallery": False, "cross": False}
    return tuple(b for b in _banks_needed(key, cfg) if not have[b])


def _banks_needed(key: str, cfg: DBNormConfig) -> tuple[str, ...]:
    name, fixed, _ = method_spec(key, cfg)
    if name == "none":
        return ()
    if name in ("dualis", "dualdis"):
        return ("query", "gallery")
    if name == "dbsn":
        return ("query", "cross")
    return (fixed.get("bank", "query"),)


def _fmt_hyper(h: Mapping[str, float]) -> str:
    sym = {"beta_query": "βq", "beta_gallery": "βg", "alpha": "α"}
    return ", ".join(f"{sym.get(k, k)}={v:g}" for k, v in h.items())


def main_table(result: MainResult, metrics: Sequence[str] = ("R@1", "R@5", "R@10", "MdR", "MnR", "Rsum"),
               hub: Sequence[str] = ("hub_skewness",)) -> pd.DataFrame:  # fmt: skip
    """A display table: rows (dataset, direction, method label), metric columns, rounded to 2."""
    t = result.table
    cols = [*metrics, *[h for h in hub if h in t.columns], "hyper"]
    out = t.set_index(["dataset", "direction", "label"])[cols]
    return out.rename(
        columns={"hub_skewness": "skew N_k", "hub_antihub_rate": "anti-hubs"}
    ).round(2)


# --------------------------------------------------------------------------------------
# Ablations (notebook 42)
# --------------------------------------------------------------------------------------


def _tuned(
    key: str,
    mats: Mapping[tuple[str, str], Matrices],
    cfg: DBNormConfig,
    direction: str,
) -> dict[str, float]:
    return tune_method(key, mats.get(("val", direction)), cfg)[0]


def _subsample_rows(
    x: torch.Tensor | None, frac: float, gen: torch.Generator
) -> torch.Tensor | None:
    if x is None or frac >= 1.0:
        return x
    n = max(1, int(round(frac * x.shape[0])))
    idx = torch.randperm(x.shape[0], generator=gen)[:n].sort().values
    return x.index_select(0, idx.to(x.device))


def ablate_bank_size(mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, *,
                     fractions: Sequence[float] = (0.1, 0.25, 0.5, 1.0),
                     methods: Sequence[str] = ("is", "is-g", "dualis"),
                     direction: str = "query_to_gallery") -> pd.DataFrame:  # fmt: skip
    """R@1 / Rsum / skewness as one bank (or both) is subsampled to a fraction.

    Hyperparameters are tuned once on the full validation split, then kept fixed.
    Each fraction draws rows with ``cfg.seed``; ``varied`` says which bank shrank.
    """
    for f in fractions:
        check_probability(f, "fractions", "ablate_bank_size")
    test = mats[("test", direction)]
    rows = []
    for key in methods:
        hyper = _tuned(key, mats, cfg, direction)
        for varied in ("query", "gallery", "both"):
            for frac in fractions:
                gen = torch.Generator().manual_seed(cfg.seed)
                bq = (
                    _subsample_rows(test.bank_query_sims, frac, gen)
                    if varied in ("query", "both")
                    else test.bank_query_sims
                )
                bg = (
                    _subsample_rows(test.bank_gallery_sims, frac, gen)
                    if varied in ("gallery", "both")
                    else test.bank_gallery_sims
                )
                m = dataclasses.replace(test, bank_query_sims=bq, bank_gallery_sims=bg)
                met = evaluate_method(key, m, cfg, hyper)
                rows.append({"method": key, "label": method_label(key), "varied": varied, "fraction": frac,
                             "n_bank_query": None if bq is None else bq.shape[0],
                             "n_bank_gallery": None if bg is None else bg.shape[0], **met})  # fmt: skip
    return pd.DataFrame(rows)


def _run_keys(keys: Iterable[str], mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, direction: str,
              **extra: Any) -> list[dict[str, Any]]:  # fmt: skip
    test = mats[("test", direction)]
    rows = []
    for key in keys:
        hyper = _tuned(key, mats, cfg, direction)
        rows.append({"method": key, "label": method_label(key), **extra, **evaluate_method(key, test, cfg, hyper),
                     "hyper": _fmt_hyper(hyper)})  # fmt: skip
    return rows


def ablate_bank_choice(mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, *,
                       direction: str = "query_to_gallery") -> pd.DataFrame:  # fmt: skip
    """Query bank only vs gallery bank only vs both, for the static (IS) and dynamic (DIS) forms."""
    groups = {
        "query bank": ("is", "dis"),
        "gallery bank": ("is-g", "dis-g"),
        "both banks": ("dualis", "dualdis"),
    }
    rows = [{"method": "none", "label": method_label("none"), "banks": "none", "form": "-",
             **evaluate_method("none", mats[("test", direction)], cfg), "hyper": ""}]  # fmt: skip
    for banks, (static, dynamic) in groups.items():
        rows += _run_keys(
            [static], mats, cfg, direction, banks=banks, form="static (IS)"
        )
        rows += _run_keys(
            [dynamic], mats, cfg, direction, banks=banks, form="dynamic (DIS)"
        )
    return pd.DataFrame(rows)


def ablate_aggregation(mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, *,
                       direction: str = "query_to_gallery") -> pd.DataFrame:  # fmt: skip
    """DualIS with the product (DBNorm) vs the sum of the two inverted softmaxes, each tuned."""
    return pd.DataFrame(_run_keys(["dualis", "dualis-sum"], mats, cfg, direction))


def ablate_k(mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, *, ks: Sequence[int] = (1, 2, 5, 10),
             methods: Sequence[str] = ("dis", "dualdis"), direction: str = "query_to_gallery") -> pd.DataFrame:  # fmt: skip
    """Activation-set size ``k`` of DIS / DualDIS (betas tuned at ``cfg.k``, then fixed).

    Also reports the share of test queries gated (top-1 inside the query-bank
    activation set).
    """
    from hubrepro.normalize._base import first_argmax, topk_mask_rows

    test = mats[("test", direction)]
    top1 = first_argmax(test.sims)
    rows = []
    for key in methods:
        hyper = _tuned(key, mats, cfg, direction)
        for k in ks:
            check_int(k, "ks", "ablate_k", low=1, high=test.sims.shape[1])
            kcfg = dataclasses.replace(cfg, k=int(k))
            active = topk_mask_rows(test.bank_query_sims, int(k)).any(dim=0)
            gated = float(active[top1].float().mean()) * 100
            rows.append({"method": key, "label": method_label(key), "k": int(k), "gated_pct": gated,
                         **evaluate_method(key, test, kcfg, hyper)})  # fmt: skip
    return pd.DataFrame(rows)


def beta_grid(
    m: Matrices, cfg: DBNormConfig, *, key: str = "dualis", metric: str = "R@1"
) -> pd.DataFrame:
    """``metric`` of a dual method over the grid ``beta_query_grid x beta_gallery_grid``.

    Returns a DataFrame indexed by :math:`\\beta_q` with one column per :math:`\\beta_g`
    (the heat map of notebook 42).
    """
    check_choice(
        key, "key", "beta_grid", ("dualis", "dualis-sum", "dualdis", "dualdis-faithful")
    )
    vals = np.zeros((len(cfg.beta_query_grid), len(cfg.beta_gallery_grid)))
    for i, bq in enumerate(cfg.beta_query_grid):
        for j, bg in enumerate(cfg.beta_gallery_grid):
            vals[i, j] = evaluate_method(
                key, m, cfg, {"beta_query": bq, "beta_gallery": bg}, hubness=False
            )[metric]
    return pd.DataFrame(vals, index=pd.Index(cfg.beta_query_grid, name="beta_query"),
                        columns=pd.Index(cfg.beta_gallery_grid, name="beta_gallery"))  # fmt: skip


def ablate_shift(datasets: Mapping[str, Any], cfg: DBNormConfig, *,
                 methods: Sequence[str] = ("none", "is", "dis", "csls", "dualis", "dualdis"),
                 direction: str = "query_to_gallery") -> pd.DataFrame:  # fmt: skip
    """Robustness to shifted banks: each dataset (label -> data) tuned on its own validation split.

    The intended pairs are ``stdlib-code`` ``random`` vs ``by-module`` (banks from other
    modules) and a synthetic dataset with and without ``shift``. The table has one row
    per (bank setting, method) with the change in R@1 over the baseline.
    """
    rows = []
    for label, data in datasets.items():
        mats = prepare(data, dataclasses.replace(cfg, directions=(direction,)))
        part = _run_keys(methods, mats, cfg, direction, bank=label)
        base = next((r["R@1"] for r in part if r["method"] == "none"), float("nan"))
        for r in part:
            r["delta_R@1"] = r["R@1"] - base
        rows += part
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Hubness pictures (notebook 43)
# --------------------------------------------------------------------------------------


def occurrence_table(mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, *,
                     methods: Sequence[str] = ("none", "is", "dis", "dualis", "dualdis"),
                     direction: str = "query_to_gallery") -> pd.DataFrame:  # fmt: skip
    """k-occurrence :math:`N_k` of every item of the test gallery under each method.

    Returns a DataFrame indexed by gallery item with one column per method key
    (hyperparameters tuned on validation).
    """
    from hubrepro.hubness import k_occurrence

    test = mats[("test", direction)]
    k = min(cfg.hubness_k, test.sims.shape[1])
    cols = {}
    for key in methods:
        scores = normalise(key, test, cfg, _tuned(key, mats, cfg, direction))
        cols[key] = k_occurrence(scores, k=k).cpu().numpy()
    return pd.DataFrame(cols).rename_axis("item")


def hub_changes(
    occ: pd.DataFrame,
    *,
    top: int = 10,
    baseline: str = "none",
    texts: Sequence[str] | None = None,
    max_chars: int = 60,
) -> pd.DataFrame:
    """The ``top`` hubs of the baseline and their :math:`N_k` under every other method.

    Also adds, per method, the fraction of the baseline's top hubs that stop being
    hubs (:math:`N_k` at most twice the mean) as the attribute ``attrs["demoted"]``.
    ``texts`` (one per gallery item) adds an ``item`` column with the first line of
    each hub's text.
    """
    check_int(top, "top", "hub_changes", low=1)
    if baseline not in occ.columns:
        fail(
            "hub_changes",
            "baseline",
            f"a column of `occ` ({list(occ.columns)})",
            repr(baseline),
        )
    hubs = occ.sort_values(baseline, ascending=False, kind="stable").head(top)
    mean = float(occ[baseline].mean())
    out = hubs.copy()
    if texts is not None:
        first = [
            next((ln.strip() for ln in str(texts[i]).splitlines() if ln.strip()), "")
            for i in out.index
        ]
        out.insert(
            0,
            "text",
            [t if len(t) <= max_chars else t[: max_chars - 1] + "…" for t in first],
        )
    out.attrs["demoted"] = {
        c: float((hubs[c] <= 2 * mean).mean()) for c in occ.columns if c != baseline
    }
    out.attrs["hub_threshold"] = 2 * mean
    return out


def retrieval_examples(data: Any, mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, *,
                       method: str = "dualis", n_examples: int = 3, top: int = 3,
                       max_chars: int = 120) -> pd.DataFrame:  # fmt: skip
    """Queries whose top-1 changes under ``method``: query text, truth and top hits before/after.

    Picks the test queries (text->code, query->gallery) where the baseline's top-1 is
    wrong and ``method``'s is right, then those that it breaks, up to ``n_examples`` in
    total. Needs ``data.query_text`` / ``data.gallery_text``; the texts are those of the
    test split (the bank carve-out does not change it).
    """
    func = "retrieval_examples"
    if (
        getattr(data, "query_text", None) is None
        or getattr(data, "gallery_text", None) is None
    ):
        fail(
            func,
            "data",
            "a PairedData with `query_text` and `gallery_text`",
            type(data).__name__,
        )
    test = mats[("test", "query_to_gallery")]
    before = test.sims
    after = normalise(method, test, cfg, _tuned(method, mats, cfg, "query_to_gallery"))
    gt = (
        test.query_to_gallery
        if test.query_to_gallery is not None
        else torch.arange(before.shape[0])
    )
    gt = gt.to(before.device)
    b1, a1 = before.argmax(dim=1), after.argmax(dim=1)
    fixed = ((b1 != gt) & (a1 == gt)).nonzero().squeeze(1).tolist()
    broken = ((b1 == gt) & (a1 != gt)).nonzero().squeeze(1).tolist()
    picks = [(i, "fixed") for i in fixed[: max(1, n_examples - 1)]] + [
        (i, "broken") for i in broken[:1]
    ]
    picks = picks[:n_examples]

    def short(s: str) -> str:
        s = " ".join(str(s).split())
        return s if len(s) <= max_chars else s[: max_chars - 1] + "…"

    rows = []
    for i, what in picks:
        for rank in range(top):
            jb = int(before[i].topk(top).indices[rank])
            ja = int(after[i].topk(top).indices[rank])
            rows.append({
                "query": short(data.query_text[i]) if rank == 0 else "",
                "change": what if rank == 0 else "",
                "rank": rank + 1,
                "before": ("✓ " if jb == int(gt[i]) else "") + short(data.gallery_text[jb]),
                "after": ("✓ " if ja == int(gt[i]) else "") + short(data.gallery_text[ja]),
            })  # fmt: skip
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Reporting helpers (notebook 40)
# --------------------------------------------------------------------------------------


def describe_data(datasets: Mapping[str, Any]) -> pd.DataFrame:
    """Sizes of each dataset: test queries/gallery, bank sizes, kind and scale."""
    rows = []
    for label, d in datasets.items():
        if _is_paired(d):
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


def delta_frame(table: pd.DataFrame, metric: str = "R@1") -> pd.DataFrame:
    """``metric`` minus the baseline's, per (dataset, direction, method)."""
    base = table[table.method == "none"].set_index(["dataset", "direction"])[metric]
    out = table[table.method != "none"].copy()
    keys = pd.MultiIndex.from_arrays([out["dataset"], out["direction"]])
    out["delta"] = out[metric].to_numpy() - base.reindex(keys).to_numpy()
    return out


def plot_delta(
    table: pd.DataFrame, metric: str = "R@1", *, direction: str = "query_to_gallery"
) -> Any:
    """Bar chart of the change in ``metric`` over the baseline, one group per dataset."""
    import matplotlib.pyplot as plt

    d = delta_frame(table, metric)
    d = d[d.direction == direction]
    piv = d.pivot_table(index="label", columns="dataset", values="delta", sort=False)
    fig, ax = plt.subplots(
        figsize=(7.0, 0.35 * len(piv) * max(1, len(piv.columns)) ** 0.5 + 1.5)
    )
    piv.plot.barh(ax=ax, width=0.8)
    ax.axvline(0, color="black", lw=0.8)
    ax.invert_yaxis()
    ax.set_xlabel(
        f"{metric} − baseline {metric} (points), {direction.replace('_', ' ')}"
    )
    ax.set_ylabel("")
    ax.legend(title="dataset", loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def hubness_table(table: pd.DataFrame) -> pd.DataFrame:
    """Skewness (standard and retrieved-only), anti-hub rate (%), largest N_k, per method."""
    cols = {
        "hub_skewness": "skew N_k (all items)",
        "hub_skewness_nonzero": "skew N_k (retrieved only)",
        "hub_antihub_rate": "anti-hubs (%)",
        "hub_max_occurrence": "max N_k",
        "hub_robin_hood": "Robin Hood",
    }
    have = [c for c in cols if c in table.columns]
    out = table.set_index(["dataset", "direction", "label"])[have].rename(columns=cols)
    if "anti-hubs (%)" in out.columns:
        out["anti-hubs (%)"] = 100 * out["anti-hubs (%)"]
    return out.round(2)


def headlines(
    table: pd.DataFrame, *, direction: str = "query_to_gallery"
) -> dict[str, Any]:
    """Numbers the chapter pastes, from the first dataset of ``table`` (glue-key suffixes).

    Keys: ``txt-dataset``; ``val-r1-<method>`` and ``val-skew-<method>`` for every
    method key of the table (``-`` kept; ``none`` is the baseline); ``txt-best-method``
    and ``val-r1-best``; ``val-r1-base-g2q`` and ``val-r1-dualis-g2q`` when the reverse
    direction was run; ``val-dualis-gain-min`` / ``-max`` over all datasets.
    """
    if table.empty:
        fail("headlines", "table", "a non-empty main table", "an empty one")
    first = table["dataset"].iloc[0]
    t = table[(table.dataset == first) & (table.direction == direction)].set_index(
        "method"
    )
    out: dict[str, Any] = {"txt-dataset": str(first)}
    for key, row in t.iterrows():
        out[f"val-r1-{key}"] = float(row["R@1"])
        out[f"val-rsum-{key}"] = float(row["Rsum"])
        if "hub_skewness" in row:
            out[f"val-skew-{key}"] = float(row["hub_skewness"])
        for col in (c for c in t.columns if str(c).startswith("param_")):
            if pd.notna(row[col]):
                out[f"val-{col[6:].replace('_', '-')}-{key}"] = float(row[col])
    best = t["R@1"].idxmax()
    out["txt-best-method"] = method_label(str(best))
    out["val-r1-best"] = float(t.loc[best, "R@1"])
    rev = table[(table.dataset == first) & (table.direction != direction)].set_index(
        "method"
    )
    for key in ("none", "dualis"):
        if key in rev.index:
            out[f"val-r1-{'base' if key == 'none' else key}-g2q"] = float(
                rev.loc[key, "R@1"]
            )
    d = delta_frame(table)
    gains = d[(d.method == "dualis") & (d.direction == direction)]["delta"]
    if len(gains):
        out["val-dualis-gain-min"] = float(gains.min())
        out["val-dualis-gain-max"] = float(gains.max())
    out["val-n-datasets"] = int(table["dataset"].nunique())
    return out


# --------------------------------------------------------------------------------------
# Published vs reproduced (notebook 41)
# --------------------------------------------------------------------------------------

#: Claims of the DBNorm paper checked on published and reproduced numbers:
#: (label, method a, method b, kind); ``gain``: b > a; ``tie``: ``abs(b - a) <= tolerance``.
CLAIMS = (
    ("IS beats the baseline", "none", "is", "gain"),
    ("DIS matches IS (within the tolerance)", "is", "dis", "tie"),
    ("DualIS beats IS", "is", "dualis", "gain"),
    ("DualIS beats the baseline", "none", "dualis", "gain"),
    ("DualDIS matches DualIS (within the tolerance)", "dualis", "dualdis", "tie"),
)


_PUB_LABELS = {"none": "baseline", "is": "IS", "dis": "DIS (QB-Norm)", "dualis": "DualIS", "dualdis": "DualDIS",
               "dualis_or_dualdis": "DualIS or DualDIS", "csls": "CSLS", "gc": "GC", "nnn": "NNN",
               "dbnorm": "DBNorm (variant not stated)"}  # fmt: skip


def _fmt(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def published_vs_reproduced(published: pd.DataFrame, ours: pd.DataFrame | None = None, *,
                            setting: str | None = None, table: str = "dbnorm-main", metric: str = "R@1",
                            direction: str = "query_to_gallery") -> pd.DataFrame:  # fmt: skip
    """Published numbers (with source and confidence) beside ours.

    Parameters
    ----------
    published : DataFrame
        :func:`hubrepro.published.load_published` output.
    ours : DataFrame, optional
        A main table (:attr:`MainResult.table`) computed on the user's data for
        ``setting``.
    setting : str, optional
        The published setting that ``ours`` reproduces; every other row reads
        "needs your data" (the datasets cannot ship).

    Returns
    -------
    DataFrame
        Columns ``setting``, ``method``, ``published``, ``source``, ``confidence``,
        ``reproduced`` (strings, 2 decimals).
    """
    if setting is not None and setting not in set(published["setting"]):
        fail("published_vs_reproduced", "setting", "a `setting` of the published file", repr(setting),
             f"Known: {sorted(set(published.loc[published.table == table, 'setting']))}.")  # fmt: skip
    pub = published[
        (published.table == table)
        & (published.metric == metric)
        & (published.direction == direction)
    ]
    mine: dict[str, float] = {}
    if ours is not None and setting is not None:
        o = ours[ours.direction == direction].set_index("method")
        mine = {k: float(o.loc[k, metric]) for k in o.index}
    rows = []
    for r in pub.itertuples(index=False):
        key = "dualis" if r.method == "dualis_or_dualdis" else r.method
        if r.setting == setting and key in mine:
            rep = _fmt(mine[key])
        elif r.setting == setting:
            rep = "not run"
        else:
            rep = "needs your data"
        label = _PUB_LABELS.get(r.method, r.method)
        rows.append({"setting": r.setting, "method": label, "published": _fmt(r.value),
                     "source": r.source, "confidence": r.confidence, "reproduced": rep})  # fmt: skip
    return pd.DataFrame(rows)


def _claim_holds(a: float, b: float, kind: str, tol: float) -> bool:
    return b > a if kind == "gain" else abs(b - a) <= tol


def claims_table(published: pd.DataFrame, ours: pd.DataFrame, *, metric: str = "R@1",
                 direction: str = "query_to_gallery", tolerance: float = 0.5) -> pd.DataFrame:  # fmt: skip
    """How often each claim of :data:`CLAIMS` holds: published settings vs our datasets.

    The published side reads the ``dbnorm-main`` rows (a single "DualIS or DualDIS"
    number counts as DualIS); our side reads every dataset of the main table ``ours``.
    Cells are "k of n" (settings or datasets where both methods have a number).
    """
    pub = published[(published.table == "dbnorm-main") & (published.metric == metric)
                    & (published.direction == direction)]  # fmt: skip
    pub_vals: dict[str, dict[str, float]] = {}
    for r in pub.itertuples(index=False):
        key = "dualis" if r.method == "dualis_or_dualdis" else r.method
        pub_vals.setdefault(r.setting, {}).setdefault(key, float(r.value))
    o = ours[ours.direction == direction]
    our_vals = {
        ds: dict(zip(g["method"], g[metric].astype(float), strict=True))
        for ds, g in o.groupby("dataset")
    }

    def count(
        vals: dict[str, dict[str, float]], a: str, b: str, kind: str
    ) -> tuple[int, int]:
        have = [v for v in vals.values() if a in v and b in v]
        return sum(_claim_holds(v[a], v[b], kind, tolerance) for v in have), len(have)

    rows = []
    for label, a, b, kind in CLAIMS:
        pk, pn = count(pub_vals, a, b, kind)
        ok, on = count(our_vals, a, b, kind)
        rows.append({"claim": label, "published": f"{pk} of {pn} settings", "ours": f"{ok} of {on} datasets",
                     "published_share": pk / pn if pn else np.nan, "ours_share": ok / on if on else np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def baseline_mismatch(published: pd.DataFrame) -> pd.DataFrame:
    """DBNorm's baselines beside QB-Norm's for the same setting (spec §7.2)."""
    q = published[published.table == "baseline-mismatch"]
    d = published[(published.table == "dbnorm-main") & (published.method == "none")]
    rows = []
    for r in q.itertuples(index=False):
        backbone = r.backbone.replace("MMT-", "")
        m = d[
            (d.dataset == r.dataset) & (d.backbone.str.replace("MMT-", "") == backbone)
        ]
        if len(m) != 1:
            continue
        v = float(m["value"].iloc[0])
        rows.append({"setting": r.setting, "QB-Norm README": r.value, "DBNorm": v, "difference": v - r.value,
                     "source": f"{r.source} / {m['source'].iloc[0]}"})  # fmt: skip
    return pd.DataFrame(rows).set_index("setting")


def published_wide(published: pd.DataFrame, *, tables: Sequence[str]) -> pd.DataFrame:
    """Published rows of ``tables`` as a wide table: one row per (setting, metric), one column per method."""
    p = published[published.table.isin(tables)].copy()
    p["method"] = p["method"].map(lambda m: _PUB_LABELS.get(m, m))
    wide = p.pivot_table(
        index=["table", "setting", "metric"],
        columns="method",
        values="value",
        sort=False,
    )
    conf = p.groupby(["table", "setting", "metric"], sort=False)["confidence"].first()
    src = p.groupby(["table", "setting", "metric"], sort=False)["source"].first()
    wide["source"] = src
    wide["confidence"] = conf
    return wide


# --------------------------------------------------------------------------------------
# Plots of the ablations and hubness pictures (notebooks 42, 43)
# --------------------------------------------------------------------------------------


def plot_beta_heatmap(
    grid: pd.DataFrame, *, title: str = "", metric: str = "R@1"
) -> Any:
    """Heat map of a :func:`beta_grid` table, the best cell outlined."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    vals = grid.to_numpy()
    im = ax.imshow(vals, origin="lower", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [f"{v:g}" for v in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index])
    ax.set_xlabel(r"$\beta_g$ (gallery bank)")
    ax.set_ylabel(r"$\beta_q$ (query bank)")
    ax.grid(False)
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            ax.text(
                j,
                i,
                f"{vals[i, j]:.1f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white",
            )
    i, j = np.unravel_index(int(np.argmax(vals)), vals.shape)
    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2, color="red"))
    fig.colorbar(im, ax=ax, label=metric)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_bank_size(
    frame: pd.DataFrame, *, metric: str = "R@1", baseline: float | None = None
) -> Any:
    """``metric`` against the bank fraction, one panel per shrunk bank, one line per method."""
    import matplotlib.pyplot as plt

    varied = list(dict.fromkeys(frame["varied"]))
    fig, axes = plt.subplots(
        1, len(varied), figsize=(3.4 * len(varied), 3.2), sharey=True, squeeze=False
    )
    for ax, v in zip(axes[0], varied, strict=True):
        sub = frame[frame.varied == v]
        for label, g in sub.groupby("label", sort=False):
            ax.plot(g["fraction"], g[metric], marker="o", label=label)
        if baseline is not None:
            ax.axhline(baseline, color="black", lw=0.8, ls="--", label="baseline")
        ax.set_xscale("log")
        ax.set_xlabel("fraction of the bank kept")
        ax.set_title(f"{v} bank shrunk" if v != "both" else "both banks shrunk")
    axes[0][0].set_ylabel(metric)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_occurrence_hist(
    occ: pd.DataFrame, *, labels: Mapping[str, str] | None = None
) -> Any:
    """Histograms of :math:`N_k` (log count axis) for each method column of ``occ``."""
    import matplotlib.pyplot as plt

    cols = list(occ.columns)
    fig, axes = plt.subplots(
        1, len(cols), figsize=(2.6 * len(cols), 2.9), sharey=True, squeeze=False
    )
    top = int(occ.to_numpy().max())
    bins = (
        np.arange(0, top + 2) - 0.5 if top <= 60 else np.linspace(-0.5, top + 0.5, 40)
    )
    for ax, c in zip(axes[0], cols, strict=True):
        ax.hist(occ[c], bins=bins, log=True)
        ax.set_title((labels or {}).get(c, method_label(c)), fontsize=9)
        ax.set_xlabel(r"$N_k$")
    axes[0][0].set_ylabel("gallery items (log)")
    fig.tight_layout()
    return fig


def shift_datasets(cfg: DBNormConfig) -> dict[str, Any]:
    """The bank settings of the robustness ablation: label -> data.

    ``stdlib-code`` (or ``embedded``): ``"stdlib random"`` and ``"stdlib by-module"``
    (banks from other modules), then the first entry of ``cfg.synthetic_settings`` with
    each ``cfg.shift_values`` (``"synthetic shift <v>"``). ``synthetic``: only the
    latter. ``user``: the user's data alone (``"user"``).
    """
    from hubrepro.datasets import load_dataset

    out: dict[str, Any] = {}
    if cfg.dataset == "user" or cfg.data_dir:
        return {"user": _load_user(cfg)}
    if cfg.dataset in ("embedded", "stdlib-code"):
        for protocol in ("random", "by-module"):
            out[f"stdlib {protocol}"] = load_dataset(
                "stdlib-code", seed=cfg.seed, protocol=protocol, **cfg.dataset_options
            )
    base = (
        dict(next(iter(cfg.synthetic_settings.values())))
        if cfg.synthetic_settings
        else {}
    )
    for v in cfg.shift_values:
        out[f"synthetic shift {v:g}"] = load_dataset(
            "synthetic", seed=cfg.seed, **{**base, "shift": float(v)}
        )
    return out


def shift_headlines(shift: pd.DataFrame) -> dict[str, float]:
    """Glue-ready changes in R@1 from :func:`ablate_shift` (keys ``val-delta-<method>-<bank>``).

    Banks: ``random`` and ``bymodule`` (stdlib), ``shift-max`` (the largest synthetic
    shift) and ``shift-none`` (synthetic shift 0); also ``val-shift-max``.
    """
    out: dict[str, float] = {}
    names = {"stdlib random": "random", "stdlib by-module": "bymodule"}
    syn = [
        b for b in dict.fromkeys(shift["bank"]) if str(b).startswith("synthetic shift ")
    ]
    if syn:
        values = {b: float(str(b).rsplit(" ", 1)[1]) for b in syn}
        top = max(values, key=values.get)
        names[top] = "shift-max"
        out["val-shift-max"] = values[top]
        zero = [b for b, v in values.items() if v == 0.0]
        if zero and zero[0] != top:
            names[zero[0]] = "shift-none"
    for _, r in shift.iterrows():
        if r["bank"] in names and r["method"] != "none":
            out[f"val-delta-{r['method']}-{names[r['bank']]}"] = float(r["delta_R@1"])
    return out


# --------------------------------------------------------------------------------------
# Errata: faithful vs principled DualDIS (notebook 44)
# --------------------------------------------------------------------------------------


def faithful_vs_principled(mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, *,
                           direction: str = "query_to_gallery") -> dict[str, float]:  # fmt: skip
    """Compare the two DualDIS modes at the betas tuned for the principled one.

    Returns the share (percent) of test queries gated by both banks, by one, by
    neither (their top-1 on ``sims`` inside the activation sets), the share whose
    top-1 differs between the modes, and R@1 / MnR of each mode.

    Book: :ref:`sec-dbnorm-errata`.
    """
    from hubrepro.normalize._base import first_argmax, topk_mask_rows

    test = mats[("test", direction)]
    hyper = _tuned("dualdis", mats, cfg, direction)
    top1 = first_argmax(test.sims)
    gq = topk_mask_rows(test.bank_query_sims, cfg.k).any(dim=0)[top1]
    gg = topk_mask_rows(test.bank_gallery_sims, cfg.k).any(dim=0)[top1]
    p = normalise("dualdis", test, cfg, hyper)
    f = normalise("dualdis-faithful", test, cfg, hyper)
    mp, mf = _metrics(p, test, cfg), _metrics(f, test, cfg)
    pct = lambda x: 100 * float(x.float().mean())  # noqa: E731
    return {
        "gated_both_pct": pct(gq & gg),
        "gated_one_pct": pct(gq ^ gg),
        "gated_neither_pct": pct(~gq & ~gg),
        "top1_differs_pct": pct(p.argmax(dim=1) != f.argmax(dim=1)),
        "r1_principled": mp["R@1"],
        "r1_faithful": mf["R@1"],
        "mnr_principled": mp["MnR"],
        "mnr_faithful": mf["MnR"],
        **{f"param_{k}": v for k, v in hyper.items()},
    }


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
    if _is_paired(data):
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
    s = data.sims() if _is_paired(data) else data.masked().sims
    return s.detach().cpu().double().numpy()
