r"""Post-hoc normalisers on trained models: do the gains stack?

Each trained model's test similarities are re-scored by the normalisers of
:mod:`hubrepro.normalize` (the variants of :mod:`hubrepro.normalize.variants`) with
the DBNorm protocol of :mod:`hubrepro.experiments.dbnorm.protocol`: the banks are the
model's encodings of **training pairs** (training captions, one per image, and
training images), the hyperparameters (:math:`\beta_q`, :math:`\beta_g`, NNN's
:math:`\alpha`) are tuned on the world's validation split against the same banks, and
the test split is scored once. Every gain over the raw similarities carries a paired
bootstrap interval over the test queries (:func:`hubrepro.inference.paired_bootstrap`);
across seeds, gains are summarised with a Student-t interval, and the difference of a
normaliser's gain on NeighborRetr and on InfoNCE is paired by seed
(:func:`stacking_table`).

Book: :ref:`sec-posthoc-vs-training`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from hubrepro import inference

from .config import StudyConfig

__all__ = ["posthoc_model", "stacking_table", "stacking_display", "gain_interval"]


def _paired(world: Any, split: str, q: torch.Tensor, g: torch.Tensor,
            bq: torch.Tensor, bg: torch.Tensor) -> Any:  # fmt: skip
    from hubrepro.datasets import PairedData

    s = world.split(split)
    return PairedData(
        name=f"{world.name}/{split}",
        query=q,
        gallery=g,
        query_to_gallery=s.caption_to_image,
        bank_query=bq,
        bank_gallery=bg,
    )


def _ranks(scores: torch.Tensor, m: Any, ties: str) -> torch.Tensor:
    # the ranks of the DBNorm protocol's metrics (rows of `scores` = the direction's queries)
    from hubrepro.retrieval import gallery_ranks, query_ranks

    if m.direction == "query_to_gallery":
        return query_ranks(scores, m.query_to_gallery, ties=ties)
    return gallery_ranks(scores.T, m.query_to_gallery, ties=ties)


def _dbnorm_config(cfg: StudyConfig, methods: Sequence[str]) -> Any:
    from hubrepro.experiments.dbnorm.config import DBNormConfig

    return DBNormConfig(
        methods=("none", *methods),
        directions=tuple(cfg.posthoc_directions),
        tune_metric="R@1",
        hubness_k=cfg.k,
        seed=cfg.seed,
        device="cpu",
    )


def posthoc_model(
    world: Any,
    feats: dict[str, tuple[torch.Tensor, torch.Tensor]],
    cfg: StudyConfig,
    *,
    methods: Sequence[str] | None = None,
    directions: Sequence[str] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Apply each normaliser to one model's test similarities, tuned on validation.

    Parameters
    ----------
    world : ShapesWorld
    feats : dict
        The model's features (:func:`~hubrepro.experiments.neighborretr.runs.encode_world`).
    cfg : StudyConfig
    methods, directions : sequence of str, optional
        Default ``cfg.posthoc_methods`` and ``cfg.posthoc_directions``.
    seed : int
        Seed of the bootstrap over queries.

    Returns
    -------
    DataFrame
        One row per (direction, method), ``none`` included: ``R@1``, ``R@5``,
        ``R@10``, ``MnR``, ``hub_skewness`` of the scores, the tuned hyperparameters
        (``hyper``), the gain in R@1 over ``none`` with its bootstrap interval over the
        direction's queries (``gain``, ``gain_low``, ``gain_high``).
    """
    from hubrepro.experiments.dbnorm.matrices import direction_matrices
    from hubrepro.experiments.dbnorm.protocol import (
        evaluate_method,
        format_hyper,
        normalise,
        tune_method,
    )

    methods = tuple(cfg.posthoc_methods if methods is None else methods)
    directions = tuple(cfg.posthoc_directions if directions is None else directions)
    dbcfg = _dbnorm_config(cfg, methods)
    bq, bg = feats["bank"]
    val = _paired(world, "val", *feats["val"], bq, bg)
    test = _paired(world, "test", *feats["test"], bq, bg)
    rows = []
    for direction in directions:
        vm = direction_matrices(val, direction)
        tm = direction_matrices(test, direction)
        base = inference.recall_hits(_ranks(tm.sims, tm, dbcfg.ties), 1)
        for key in ("none", *methods):
            best = {} if key == "none" else tune_method(key, vm, dbcfg)[0]
            met = evaluate_method(key, tm, dbcfg, best)
            hits = inference.recall_hits(
                _ranks(normalise(key, tm, dbcfg, best), tm, dbcfg.ties), 1
            )
            iv = inference.paired_bootstrap(base, hits, n_boot=cfg.n_boot, seed=seed)
            rows.append({
                "direction": direction, "method": key, "hyper": format_hyper(best),
                **{m: met[m] for m in ("R@1", "R@5", "R@10", "MnR", "hub_skewness")},
                "gain": iv.estimate, "gain_low": iv.low, "gain_high": iv.high,
            })  # fmt: skip
    return pd.DataFrame(rows)


def gain_interval(
    posthoc: pd.DataFrame, condition: str, method: str, direction: str
) -> inference.Interval:
    """Interval over seeds of ``method``'s gain in R@1 on ``condition``'s models."""
    sub = posthoc[
        (posthoc["condition"] == condition)
        & (posthoc["method"] == method)
        & (posthoc["direction"] == direction)
    ].sort_values("seed")
    return inference.paired_t_interval(np.zeros(len(sub)), sub["gain"].to_numpy())


def _stacking_reading(
    gain_nr: inference.Interval, diff: inference.Interval, margin: float
) -> str:
    # the chapter's reading rule, applied: a gain that survives on the NeighborRetr model
    # stacks; one that is smaller there was partly removed by training
    on_nr = inference.verdict(gain_nr, claim="greater", equivalence=margin)
    smaller = inference.verdict(diff, claim="less", equivalence=margin)
    if on_nr == "supported":
        return "stacks, but smaller" if smaller == "supported" else "stacks"
    if on_nr == "not supported":
        return "does not stack"
    return "inconclusive"


def stacking_table(
    posthoc: pd.DataFrame, cfg: StudyConfig, baseline: str, treatment: str
) -> pd.DataFrame:
    """Per direction and normaliser: its gain on each model and the paired difference.

    Columns ``direction``, ``method``, ``gain_<baseline>``/``gain_<treatment>`` (mean
    over seeds) with ``_low``/``_high`` t-intervals, ``difference`` (treatment −
    baseline gain, paired by seed) with its interval, and ``reading``: *stacks* when
    the gain on the treatment's model is above zero (interval), *stacks, but smaller*
    when it is also smaller than on the baseline's, *does not stack* when it lies
    inside the R@1 margin or below zero, *inconclusive* otherwise.
    """
    rows = []
    for direction in cfg.posthoc_directions:
        for method in cfg.posthoc_methods:
            ia = gain_interval(posthoc, baseline, method, direction)
            ib = gain_interval(posthoc, treatment, method, direction)
            ga = _gains(posthoc, baseline, method, direction)
            gb = _gains(posthoc, treatment, method, direction)
            seeds = sorted(set(ga.index) & set(gb.index))
            d = inference.paired_t_interval(
                ga.loc[seeds].to_numpy(), gb.loc[seeds].to_numpy()
            )
            rows.append({
                "direction": direction, "method": method,
                "gain_a": ia.estimate, "gain_a_low": ia.low, "gain_a_high": ia.high,
                "gain_b": ib.estimate, "gain_b_low": ib.low, "gain_b_high": ib.high,
                "difference": d.estimate, "difference_low": d.low, "difference_high": d.high,
                "n": d.n, "reading": _stacking_reading(ib, d, cfg.margin_r1),
            })  # fmt: skip
    out = pd.DataFrame(rows)
    out.attrs["baseline"], out.attrs["treatment"] = baseline, treatment
    return out


def _gains(
    posthoc: pd.DataFrame, condition: str, method: str, direction: str
) -> pd.Series:
    sub = posthoc[
        (posthoc["condition"] == condition)
        & (posthoc["method"] == method)
        & (posthoc["direction"] == direction)
    ]
    return sub.set_index("seed")["gain"]


def stacking_display(stack: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """:func:`stacking_table` for the page: one row per direction and normaliser.

    Cells ``"+1.2 [0.3, 2.1]"`` (points of R@1) for the gain on each model and their
    paired difference, and the reading of :func:`stacking_table`.
    """
    from hubrepro.normalize.variants import variant_label

    words = {"query_to_gallery": "text→image", "gallery_to_query": "image→text"}
    a, b = cfg.label(stack.attrs["baseline"]), cfg.label(stack.attrs["treatment"])

    def cell(r: Any, col: str) -> str:
        iv = inference.Interval(
            r[col], r[f"{col}_low"], r[f"{col}_high"], 0.95, int(r["n"]), ""
        )
        return iv.format(1)

    rows = [
        {
            "direction": words.get(r["direction"], r["direction"]),
            "normaliser": variant_label(r["method"]),
            f"gain on {a}": cell(r, "gain_a"),
            f"gain on {b}": cell(r, "gain_b"),
            "difference of the gains": cell(r, "difference"),
            "reading": r["reading"],
        }
        for _, r in stack.iterrows()
    ]
    return pd.DataFrame(rows)
