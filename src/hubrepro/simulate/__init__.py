r"""Monte Carlo science of the hubness theory (book chapter :ref:`sec-theory`).

This package holds what the theory chapter's simulations are made of:

- **samplers** for the single-set laws of the simulations (isotropic, uniform,
  heavy-tailed, anisotropic, shifted, mixture, low-rank and asymmetric laws),
  addressed by *law specs* such as ``"anisotropic:alpha=1"`` (:func:`sample`,
  :func:`parse_law`, ``LAWS``), and **seeds** per grid cell (:func:`derive_seed`);
- the **two-modality world** of the chapter's claim D1: queries and gallery items
  that share a latent, a cone direction :math:`u` of strength :math:`c` and a
  modality gap :math:`\gamma` along :math:`v` (:func:`sample_two_modality`);
- **per-point statistics** of one draw: k-occurrence from exact chunked kNN
  (:func:`hubrepro.hubness.knn`, never an :math:`n\times n` matrix), global
  centrality, local density :math:`r_K`, similarity to the banks
  (:func:`single_set_items`, :func:`two_modality_items`), Spearman correlation with
  average ties (:func:`spearman`), Cohen's :math:`d` (:func:`cohens_d`);
- **summaries** over seeded replicates (:func:`summarize`, :func:`paired_difference`,
  :func:`summary_value`) and the acceptance criteria of the chapter
  (:func:`verdict_r1`, :func:`verdict_r2`, :func:`verdict_d1`, :func:`verdict_t3`).

The claims checked are R1--R5 of Radovanović et al. :cite:`radovanovic2010hubs`, the
DBNorm claim D1 :cite:`wang2023balance` and the project's reconstructed statements
T1, T1', T2, T3 (see the chapter). The Monte Carlo grids over laws, dimensions, worlds
and seeds that produce the chapter's tables are the drivers of notebooks 20-22 in
:mod:`hubrepro.experiments`. Every random draw comes from an explicit
``torch.Generator`` created on the CPU, so a seed gives the same numbers on every
device; the arithmetic then runs on ``device`` (CUDA when asked for).
"""

from __future__ import annotations

from ._items import single_set_items, two_modality_items
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
from ._stats import (
    cohens_d,
    derive_seed,
    global_centrality,
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
    "derive_seed",
    "global_centrality",
    "spearman",
    "cohens_d",
    "single_set_items",
    "two_modality_items",
    "summarize",
    "summary_value",
    "paired_difference",
    "verdict_r1",
    "verdict_r2",
    "verdict_d1",
    "verdict_t3",
]

# document and pickle the public objects under the package name, not the private files
for _name in __all__:
    _obj = globals()[_name]
    if callable(_obj) and getattr(_obj, "__module__", "").startswith(__name__ + "."):
        _obj.__module__ = __name__
del _name, _obj
