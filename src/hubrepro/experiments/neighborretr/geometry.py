r"""The learned geometry: modality gap, cone, and DBNorm's claim D1 on trained encoders.

Chapter :ref:`sec-theory` tests DBNorm's claim D1 (``wang2023balance``: hubs are
similar to both modalities) and measures the modality gap (``liang2022mind``) on
simulated worlds. Here the same statistics are computed on the test features of each
trained model: the gap, the mean cosine within each modality and of matching pairs
(``hubrepro.datasets.synthetic.describe``), and the Spearman correlations
(:func:`hubrepro.simulate.spearman`) of each test image's :math:`N_k` with its mean
similarity to the query bank (training captions, ``rho_q``) and to the gallery bank
(training images, ``rho_g``), as :func:`hubrepro.simulate.two_modality_items` defines
them.

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from .config import StudyConfig

__all__ = ["geometry_row", "GEOMETRY_COLUMNS"]

#: Columns of a geometry row, with their display names.
GEOMETRY_COLUMNS = {
    "gap_norm": "modality gap ‖mean caption − mean image‖",
    "mean_cos_query": "mean cosine between captions",
    "mean_cos_gallery": "mean cosine between images",
    "mean_cos_pairs": "mean cosine of matching pairs",
    "rho_q": "ρ(N₁₀, similarity to the caption bank)",
    "rho_g": "ρ(N₁₀, similarity to the image bank)",
}


def geometry_row(
    world: Any, feats: dict[str, tuple[torch.Tensor, torch.Tensor]], cfg: StudyConfig
) -> dict[str, float]:
    """The geometry statistics of one model's features (from :func:`~hubrepro.experiments.neighborretr.runs.encode_world`)."""
    from hubrepro.datasets.synthetic import describe
    from hubrepro.hubness import k_occurrence
    from hubrepro.simulate import spearman

    q, g = feats["test"]
    bq, bg = feats["bank"]
    d = describe(world.to_paired(q, g), k=cfg.k)
    n_k = k_occurrence(q @ g.T, k=min(cfg.k, g.shape[0])).double()
    return {
        **{key: float(d[key]) for key in GEOMETRY_COLUMNS if key in d},
        "rho_q": spearman(n_k, (g @ bq.mean(0)).double()),
        "rho_g": spearman(n_k, (g @ bg.mean(0)).double()),
    }


def geometry_summary(geometry: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """Mean over seeds of each geometry statistic per condition (display names)."""
    cols = list(GEOMETRY_COLUMNS)
    out = geometry.groupby("condition", sort=False)[cols].mean()
    out.index = [cfg.label(c) for c in out.index]
    out.index.name = "training condition"
    return out.rename(columns=GEOMETRY_COLUMNS)
