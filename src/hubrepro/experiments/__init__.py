"""Experiment drivers: configs in, tidy DataFrames out.

- :mod:`hubrepro.experiments.dbnorm` -- the DBNorm reproduction (main table,
  ablations, hubness pictures), notebooks 40-44.
"""

from __future__ import annotations

__all__ = ["dbnorm"]
