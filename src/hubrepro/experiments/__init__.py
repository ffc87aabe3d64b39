"""Experiment drivers: configs in, tidy DataFrames out.

Each notebook family has one module here, exposing a frozen config dataclass (its
fields are the notebook's parameters), ``run(cfg)`` and ``headlines(result)`` (the
numbers and verdicts the book quotes, as glue keys); the notebook itself only reads
its parameters, calls ``run``, draws the module's figures and glues the results.

=================================================  ========================================
module                                             notebook
=================================================  ========================================
:mod:`~hubrepro.experiments.primer`                10, hubness and retrieval metrics
:mod:`~hubrepro.experiments.hubness_vs_dimension`  20, hubness grows with dimension
:mod:`~hubrepro.experiments.hubs_near_mean`        21, are hubs near the mean?
:mod:`~hubrepro.experiments.hubs_both_modalities`  22, are hubs similar to both modalities?
:mod:`~hubrepro.experiments.stdlib_benchmark`      30, the stdlib-code benchmark
:mod:`~hubrepro.experiments.synthetic_generator`   31, the synthetic generator's knobs
:mod:`~hubrepro.experiments.shapes_world_data`     32, the shapes-world data
:mod:`~hubrepro.experiments.dbnorm`                40-44, the DBNorm reproduction
:mod:`~hubrepro.experiments.normalizer_cost`       45, what each normaliser costs
:mod:`~hubrepro.experiments.neighborretr`          50-52 and 60, NeighborRetr
:mod:`~hubrepro.experiments.environment`           70, environment and run times
:mod:`~hubrepro.experiments.ledger`                75, the claims ledger
=================================================  ========================================

The theory drivers (20-22, and 10's histograms) share the seeded single-set grid and
the figure types of the private ``_theory`` module; the science they loop over
(samplers, per-point statistics, summaries, verdicts) is :mod:`hubrepro.simulate`.
"""

from __future__ import annotations

__all__ = [
    "primer",
    "hubness_vs_dimension",
    "hubs_near_mean",
    "hubs_both_modalities",
    "stdlib_benchmark",
    "synthetic_generator",
    "shapes_world_data",
    "dbnorm",
    "normalizer_cost",
    "neighborretr",
    "environment",
    "ledger",
]
