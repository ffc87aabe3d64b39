r"""Monte Carlo checks of the hubness theory (book chapter :ref:`sec-theory`).

This module holds everything the theory chapter simulates:

- **samplers** for the single-set laws of the simulation programme (isotropic,
  uniform, heavy-tailed, anisotropic, shifted, mixture, low-rank and asymmetric
  laws), addressed by *law specs* such as ``"anisotropic:alpha=1"``
  (:func:`sample`, :func:`parse_law`, ``LAWS``);
- the **two-modality world** of the theory spec, section 3.2: queries and gallery
  items that share a latent, a cone direction :math:`u` of strength :math:`c` and a
  modality gap :math:`\gamma` along :math:`v` (:func:`sample_two_modality`);
- **chunked statistics**: exact kNN under Euclidean or cosine geometry without ever
  building an :math:`n\times n` matrix (:func:`knn`), k-occurrence, global
  centrality, local density :math:`r_K`, Spearman correlation with average ties
  (:func:`spearman`), Cohen's :math:`d` (:func:`cohens_d`);
- **drivers** returning tidy :class:`pandas.DataFrame` s over grids of laws,
  dimensions, metrics, :math:`k` and seeded replicates (:func:`simulate_single_set`,
  :func:`simulate_two_modality`), their per-item views for scatter plots
  (:func:`single_set_items`, :func:`two_modality_items`), confidence intervals over
  seeds (:func:`summarize`) and the acceptance-criterion verdicts of the chapter
  (:func:`verdict_r1`, :func:`verdict_r2`, :func:`verdict_d1`).

The claims checked are R1--R5 of Radovanović et al. :cite:`radovanovic2010hubs`, the
DBNorm claim D1 :cite:`wang2023balance` and the project's reconstructed statements
T1, T1', T2 (see the chapter). Every random draw comes from an explicit
``torch.Generator`` created on the CPU, so a seed gives the same numbers on every
device; the arithmetic then runs on ``device`` (CUDA when asked for).
"""

from __future__ import annotations

from ._config import (
    DimensionSweepConfig,
    HubsNearMeanConfig,
    TwoModalityConfig,
)
from ._drivers import (
    BANK_METHODS,
    simulate_bank_benefit,
    simulate_intrinsic_dimension,
    simulate_single_set,
    simulate_two_modality,
    single_set_items,
    two_modality_items,
)
from ._laws import (
    LAWS,
    METRICS,
    SYMMETRIC_LAWS,
    TwoModalitySample,
    parse_law,
    sample,
    sample_mixture,
    sample_two_modality,
    two_modality_directions,
)
from ._plots import (
    plot_heatmap,
    plot_histograms,
    plot_hub_boxes,
    plot_lines,
    plot_scatter_grid,
)
from ._stats import (
    cohens_d,
    derive_seed,
    global_centrality,
    k_occurrence_counts,
    knn,
    spearman,
)
from ._summaries import (
    paired_difference,
    summarize,
    summary_value,
    verdict_d1,
    verdict_r1,
    verdict_r2,
    verdict_t3,
)

__all__ = [
    "LAWS",
    "SYMMETRIC_LAWS",
    "METRICS",
    "parse_law",
    "sample",
    "sample_mixture",
    "TwoModalitySample",
    "two_modality_directions",
    "sample_two_modality",
    "knn",
    "k_occurrence_counts",
    "global_centrality",
    "spearman",
    "cohens_d",
    "derive_seed",
    "single_set_items",
    "simulate_single_set",
    "two_modality_items",
    "simulate_two_modality",
    "summarize",
    "verdict_r1",
    "verdict_r2",
    "verdict_d1",
    "BANK_METHODS",
    "simulate_bank_benefit",
    "verdict_t3",
    "summary_value",
    "paired_difference",
    "simulate_intrinsic_dimension",
    "DimensionSweepConfig",
    "HubsNearMeanConfig",
    "TwoModalityConfig",
    "plot_lines",
    "plot_histograms",
    "plot_scatter_grid",
    "plot_heatmap",
    "plot_hub_boxes",
]

# document and pickle the public objects under the package name, not the private files
for _name in __all__:
    _obj = globals()[_name]
    if callable(_obj) and getattr(_obj, "__module__", "").startswith(__name__ + "."):
        _obj.__module__ = __name__
del _name, _obj
