r"""The DBNorm evaluation protocol: score a method, tune it on validation, evaluate once.

Protocol
--------
* Hyperparameters (:math:`\beta_q`, :math:`\beta_g`, NNN's :math:`\alpha`) left at
  ``None`` are chosen on a **validation split carved from the bank**
  (:meth:`hubrepro.datasets.PairedData.split_bank`): validation queries and gallery
  items are bank pairs, and the remaining bank items are the bank of both the
  validation and the test evaluation. The test split is never looked at while tuning.
  Ties in the tuning criterion go to the first grid point (grids are ordered). A value
  set in the config is used as given and never tuned; without a validation split
  (similarity matrices, or no gallery bank) an unset value takes
  :data:`~hubrepro.experiments.dbnorm.config.FALLBACK`.
* Gallery->query retrieval swaps the roles of the banks
  (:func:`~hubrepro.experiments.dbnorm.matrices.direction_matrices`). It needs
  embeddings; with a :class:`~hubrepro.datasets.SimilarityData` only query->gallery
  is run.
* :math:`\beta` grids are given on the cosine scale; on logit-scaled matrices
  (``SimilarityData.scale == "logit"``) they are divided by ``logit_scale``.
* The scores are those of the estimators of :mod:`hubrepro.normalize`, fitted on the
  split's banks once per hyperparameter setting
  (:meth:`~hubrepro.experiments.dbnorm.matrices.Matrices.fitted`).

Book: :ref:`sec-dbnorm-protocol`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from hubrepro.normalize import BaseNormalizer

from .config import FALLBACK, RECALL_SUM, DBNormConfig, banks_needed, method_spec
from .matrices import Matrices, is_paired

__all__ = [
    "estimator",
    "normalise",
    "item_ranks",
    "evaluate_method",
    "tune_method",
    "missing_banks",
    "format_hyper",
]


def _beta_unit(m: Matrices, cfg: DBNormConfig) -> float:
    return 1.0 / cfg.logit_scale if m.scale == "logit" else 1.0


def estimator(
    key: str, m: Matrices, cfg: DBNormConfig, hyper: Mapping[str, Any] | None = None
) -> BaseNormalizer:
    """The estimator of method ``key`` fitted on the banks of ``m`` (cached on ``m``).

    The estimator and its fixed options are the variant's
    (:func:`~hubrepro.experiments.dbnorm.config.method_spec`); ``hyper`` overrides
    them. Betas are on the cosine scale and converted with ``logit_scale`` for
    logit-scaled matrices; NNN's ``k`` left unset is its default capped at the bank.
    """
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
    return m.fitted(name, params)


def normalise(
    key: str, m: Matrices, cfg: DBNormConfig, hyper: Mapping[str, Any] | None = None
) -> torch.Tensor:
    """Scores of method ``key`` on ``m`` (rows = queries of ``m.direction``).

    :func:`estimator` (fitted on the banks of ``m`` once per hyperparameter setting)
    transforms ``m.sims``; the baseline ``"none"`` returns a copy of ``m.sims``.
    """
    if method_spec(key, cfg)[0] == "none":
        return m.sims.clone()
    return estimator(key, m, cfg, hyper).transform(m.sims)


def item_ranks(scores: torch.Tensor, m: Matrices, cfg: DBNormConfig) -> torch.Tensor:
    """0-based rank of the right answer of every ranked item (the queries of ``m.direction``)."""
    from hubrepro.retrieval import gallery_ranks, query_ranks

    if m.direction == "query_to_gallery":
        return query_ranks(scores, m.query_to_gallery, ties=cfg.ties)
    return gallery_ranks(scores.T, m.query_to_gallery, ties=cfg.ties)


def metrics(
    scores: torch.Tensor,
    m: Matrices,
    cfg: DBNormConfig,
    ranks: torch.Tensor | None = None,
) -> dict[str, float]:
    """R@1/5/10, MdR, MnR and R@1+5+10 (:data:`~hubrepro.experiments.dbnorm.config.RECALL_SUM`), direction of ``m``."""
    from hubrepro.retrieval import metrics_from_ranks

    if ranks is None:
        ranks = item_ranks(scores, m, cfg)
    met = {k: float(v) for k, v in metrics_from_ranks(ranks).items()}
    met[RECALL_SUM] = met["R@1"] + met["R@5"] + met["R@10"]
    return met


def _hubness(scores: torch.Tensor, cfg: DBNormConfig) -> dict[str, float]:
    from hubrepro.hubness import hubness_report

    k = min(cfg.hubness_k, scores.shape[1])
    rep = hubness_report(scores, k=k)
    return {f"hub_{key}": float(v) for key, v in rep.items() if key != "k"}


def evaluate_method(key: str, m: Matrices, cfg: DBNormConfig, hyper: Mapping[str, Any] | None = None,
                    *, hubness: bool = True, items: dict | None = None) -> dict[str, float]:  # fmt: skip
    """R@1/5/10, MdR, MnR, R@1+5+10 (this direction) and, if asked, hubness of the scores.

    The hubness keys are ``hub_<key>`` of :func:`hubrepro.hubness.hubness_report`
    (standard skewness over all items, zeros included; ``hub_skewness_nonzero`` is
    the released code's variant). When ``items`` is a dict it receives the per-item
    results the intervals of the book are bootstrapped from: ``"ranks"`` (0-based
    rank of each ranked item's right answer) and ``"topk"`` (each ranked item's top
    ``hubness_k`` indices, whose counts are :math:`N_k`), as NumPy arrays, and
    ``"n_cols"`` (the number of retrievable items).
    """
    scores = normalise(key, m, cfg, hyper)
    ranks = item_ranks(scores, m, cfg)
    out = metrics(scores, m, cfg, ranks)
    if hubness:
        out.update(_hubness(scores, cfg))
    if items is not None:
        k = min(cfg.hubness_k, scores.shape[1])
        items["ranks"] = ranks.detach().cpu().double().numpy()
        items["topk"] = torch.topk(scores, k, dim=1).indices.cpu().numpy()
        items["n_cols"] = int(scores.shape[1])
    return out


def free_hyper(key: str, cfg: DBNormConfig) -> tuple[str, ...]:
    """The hyperparameters of ``key`` left unset in ``cfg`` (tuned on validation)."""
    _, _, tuned = method_spec(key, cfg)
    return tuple(t for t in tuned if getattr(cfg, t) is None)


def _fixed_hyper(key: str, cfg: DBNormConfig) -> dict[str, float]:
    """The hyperparameters of ``key`` set in ``cfg``: used as given, never tuned."""
    _, _, tuned = method_spec(key, cfg)
    return {t: float(getattr(cfg, t)) for t in tuned if getattr(cfg, t) is not None}


def _grid(key: str, cfg: DBNormConfig) -> list[dict[str, float]]:
    free = free_hyper(key, cfg)
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
    take :data:`~hubrepro.experiments.dbnorm.config.FALLBACK`. ``dualdis-faithful`` takes the betas chosen for ``dualdis``
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
    memo = (key, tuple(map(tuple, (p.items() for p in points))), tuple(sorted(fixed.items())),
            cfg.k, cfg.nnn_k, cfg.tune_metric, cfg.ties, cfg.logit_scale)  # fmt: skip
    if memo in val._memo:
        return val._memo[memo]
    rows = []
    for p in points:
        point = {**fixed, **p}
        met = evaluate_method(key, val, cfg, point, hubness=False)
        rows.append({"method": key, **point, **met})
    grid = pd.DataFrame(rows)
    best = int(np.argmax(grid[cfg.tune_metric].to_numpy()))  # first maximum
    chosen = {**fixed, **{k: float(v) for k, v in points[best].items()}}
    val._memo[memo] = (chosen, grid)
    return val._memo[memo]


def tuned(
    key: str,
    mats: Mapping[tuple[str, str], Matrices],
    cfg: DBNormConfig,
    direction: str,
) -> dict[str, float]:
    """The hyperparameters of ``key`` chosen on the validation split of ``mats`` (if any)."""
    return tune_method(key, mats.get(("val", direction)), cfg)[0]


def missing_banks(
    key: str, data: Any, direction: str, cfg: DBNormConfig
) -> tuple[str, ...]:
    """The banks method ``key`` needs in ``direction`` that ``data`` lacks (empty: it runs).

    Names are ``"query"``, ``"gallery"`` (the banks of that direction: gallery->query
    swaps them) and ``"cross"`` (DBSN's query-bank x gallery-bank matrix, computed from
    embeddings only). Precomputed similarity matrices have no gallery->query direction:
    every bank is missing there.
    """
    if is_paired(data):
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
    return tuple(b for b in banks_needed(key) if not have[b])


def format_hyper(h: Mapping[str, float]) -> str:
    """Hyperparameters as text, e.g. ``βq=20, βg=5``."""
    sym = {"beta_query": "βq", "beta_gallery": "βg", "alpha": "α"}
    return ", ".join(f"{sym.get(k, k)}={v:g}" for k, v in h.items())
