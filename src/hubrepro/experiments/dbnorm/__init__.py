r"""The DBNorm reproduction driver: main table, tuning, ablations, hubness pictures, errata.

One module per concern, one per notebook:

- :mod:`~hubrepro.experiments.dbnorm.config` -- :class:`DBNormConfig` (the notebooks'
  parameters) and the driver's view of the method vocabulary
  (:mod:`hubrepro.normalize.variants`);
- :mod:`~hubrepro.experiments.dbnorm.matrices` -- data loading, the similarity
  matrices of each split and direction, and the cache of fitted normalisers;
- :mod:`~hubrepro.experiments.dbnorm.protocol` -- score a method, tune it on the
  validation split carved from the bank, evaluate it once on the test split;
- :mod:`~hubrepro.experiments.dbnorm.main` -- notebook 40, the main table;
- :mod:`~hubrepro.experiments.dbnorm.comparison` -- notebook 41, published numbers
  beside ours (the published-number tables are :mod:`hubrepro.published`);
- :mod:`~hubrepro.experiments.dbnorm.claims` -- notebook 41, DBNorm's claims decided
  with 95 % intervals on every dataset (the ``db-`` lines of the claims ledger);
- :mod:`~hubrepro.experiments.dbnorm.ablations` -- notebook 42;
- :mod:`~hubrepro.experiments.dbnorm.pictures` -- notebook 43;
- :mod:`~hubrepro.experiments.dbnorm.released` -- notebook 44, the released code's
  defects (:mod:`hubrepro.errata`) and the two DualDIS modes;
- :mod:`~hubrepro.experiments.dbnorm.plots` -- the figures.

Each notebook module exposes ``run(cfg)`` and ``headlines(result)``; the names used
by the CLI (``hubrepro dbnorm``) and earlier code are importable from this package.

Book: :ref:`sec-dbnorm`.
"""

from __future__ import annotations

from .ablations import (
    ablate_aggregation,
    ablate_bank_choice,
    ablate_bank_size,
    ablate_k,
    ablate_shift,
    beta_grid,
    shift_datasets,
    shift_headlines,
)
from .claims import DecidedClaims, claims_long, decide_claims
from .config import (
    DIRECTIONS,
    FALLBACK,
    METHOD_KEYS,
    RECALL_SUM,
    TUNED,
    DBNormConfig,
    method_label,
    method_spec,
)
from .main import (
    MainResult,
    delta_frame,
    delta_intervals,
    headlines,
    hubness_pivot,
    hubness_table,
    interval_headlines,
    leaders,
    main_table,
    metrics_table,
    recall_table,
    run,
    run_main,
    run_many,
    skew_interval,
)
from .matrices import (
    Matrices,
    describe_data,
    direction_matrices,
    full_test_sims,
    load_data,
    prepare,
    small_matrices,
)
from .pictures import hub_changes, occurrence_table, retrieval_examples
from .plots import (
    plot_bank_size,
    plot_beta_heatmap,
    plot_delta,
    plot_occurrence_hist,
    plot_overflow,
)
from .protocol import (
    estimator,
    evaluate_method,
    missing_banks,
    normalise,
    tune_method,
)
from .released import faithful_vs_principled

__all__ = [
    "DIRECTIONS",
    "METHOD_KEYS",
    "FALLBACK",
    "TUNED",
    "RECALL_SUM",
    "DBNormConfig",
    "method_spec",
    "method_label",
    "Matrices",
    "load_data",
    "direction_matrices",
    "prepare",
    "describe_data",
    "small_matrices",
    "full_test_sims",
    "estimator",
    "normalise",
    "evaluate_method",
    "tune_method",
    "missing_banks",
    "MainResult",
    "run",
    "run_main",
    "run_many",
    "main_table",
    "delta_frame",
    "hubness_table",
    "headlines",
    "recall_table",
    "metrics_table",
    "hubness_pivot",
    "delta_intervals",
    "skew_interval",
    "leaders",
    "interval_headlines",
    "ablate_bank_size",
    "ablate_bank_choice",
    "ablate_aggregation",
    "ablate_k",
    "beta_grid",
    "ablate_shift",
    "shift_datasets",
    "shift_headlines",
    "occurrence_table",
    "hub_changes",
    "retrieval_examples",
    "faithful_vs_principled",
    "DecidedClaims",
    "decide_claims",
    "claims_long",
    "plot_delta",
    "plot_beta_heatmap",
    "plot_bank_size",
    "plot_occurrence_hist",
    "plot_overflow",
]
