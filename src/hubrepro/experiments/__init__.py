"""Experiment drivers: configs in, tidy DataFrames out.

- ``hubrepro.experiments.dbnorm`` -- the DBNorm reproduction (main table,
  ablations, hubness pictures), notebooks 40-44.
- :mod:`hubrepro.experiments.neighborretr` -- the small-scale NeighborRetr
  reproduction (conditions, sweeps, post-hoc stacking), notebooks 50-52 and 60.
- :mod:`hubrepro.experiments.normalizer_cost` -- what each normaliser costs and
  the race against the authors' pipeline, notebook 45.
- :mod:`hubrepro.experiments.primer` -- the hubness primer (toy ranks, hubness
  against dimension), notebook 10.
"""

from __future__ import annotations

__all__ = ["dbnorm", "neighborretr", "normalizer_cost", "primer"]
