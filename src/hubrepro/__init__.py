"""hubrepro: hubness in cross-modal retrieval, reproduced.

A small PyTorch library behind the compendium's book and notebooks:

- :mod:`hubrepro.similarity` -- chunked cosine / dot-product similarity;
- :mod:`hubrepro.retrieval` -- R@K, MdR, MnR, Rsum in both directions;
- :mod:`hubrepro.hubness` -- k-occurrence, skewness, Robin Hood, hub occupancy;
- :mod:`hubrepro.normalize` -- IS, DIS (QB-Norm), CSLS, GC, DualIS, DualDIS, SN/DBSN, NNN,
  with saved statistics and distributed fits; :mod:`hubrepro.index` -- a FAISS index
  that ranks by the normalised score;
- :mod:`hubrepro.simulate` -- samplers and statistics of the hubness theory's
  Monte Carlo checks;
- :mod:`hubrepro.datasets` -- the embedded stdlib code-search benchmark, a synthetic
  CLIP-like generator, the rendered ``shapes-world`` and loaders for users' own data;
- :mod:`hubrepro.losses`, :mod:`hubrepro.ot`, :mod:`hubrepro.memory_bank`,
  :mod:`hubrepro.heads`, :mod:`hubrepro.encoders`, :mod:`hubrepro.training` --
  NeighborRetr training; :mod:`hubrepro.hub_quality` -- good and bad hubs;
- :mod:`hubrepro.inference` -- intervals and verdicts for the claims the book checks;
- :mod:`hubrepro.experiments` -- one driver per notebook family (configs in, tidy
  tables out);
- :mod:`hubrepro.reporting` -- tables, figures, provenance for the book.

Sub-modules are imported on first attribute access, so ``import hubrepro`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "similarity",
    "retrieval",
    "hubness",
    "normalize",
    "index",
    "simulate",
    "datasets",
    "losses",
    "memory_bank",
    "heads",
    "encoders",
    "hub_quality",
    "training",
    "reporting",
    "config",
    "io",
    "profiling",
    "classroom",
    "published",
    "inference",
    "ot",
    "errata",
    "experiments",
}

__all__ = ["__version__", *sorted(_SUBMODULES)]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"hubrepro.{name}")
    raise AttributeError(f"module 'hubrepro' has no attribute {name!r}")
