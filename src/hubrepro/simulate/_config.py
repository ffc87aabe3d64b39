"""Frozen parameter sets of the theory notebooks (field names = notebook parameters).

Part of :mod:`hubrepro.simulate`; import from there. Book: :ref:`sec-theory`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DimensionSweepConfig:
    """Parameters of notebook ``20_hubness_vs_dimension`` (claims R1, R5; E1, E3, E7)."""

    laws: tuple[str, ...] = (
        "gaussian",
        "uniform",
        "laplace",
        "student_t",
        "exponential",
        "lognormal",
    )
    dims: tuple[int, ...] = (3, 5, 10, 20, 50, 100, 200)
    metrics: tuple[str, ...] = ("euclidean", "cosine")
    n: int = 2000
    ks: tuple[int, ...] = (5, 10)
    replicates: int = 3
    hist_law: str = "gaussian"
    hist_dims: tuple[int, ...] = (3, 20, 100)
    embedding_dim: int = 512
    intrinsic_ranks: tuple[int, ...] = (5, 20, 100, 512)
    seed: int = 0
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/20_hubness_vs_dimension"


@dataclass(frozen=True)
class HubsNearMeanConfig:
    """Parameters of notebook ``21_hubs_near_mean`` (claims R2, R4, T1'; E2, E4)."""

    laws: tuple[str, ...] = (
        "gaussian",
        "uniform",
        "uniform_centred",
        "laplace",
        "anisotropic",
        "shifted",
        "mixture",
    )
    dims: tuple[int, ...] = (3, 10, 20, 50, 100)
    metrics: tuple[str, ...] = ("euclidean", "cosine")
    n: int = 2000
    k: int = 10
    local_k: int = 10
    replicates: int = 3
    scatter_laws: tuple[str, ...] = ("gaussian", "uniform")
    scatter_dims: tuple[int, ...] = (3, 20, 100)
    heatmap_d: int = 100
    seed: int = 0
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/21_hubs_near_mean"


@dataclass(frozen=True)
class TwoModalityConfig:
    """Parameters of notebook ``22_hubs_both_modalities`` (claims D1, T2, T3; E5, E6)."""

    cones: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    gaps: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    n: int = 1000
    d: int = 256
    sigma: float = 2.0
    latents: tuple[str, ...] = ("isotropic", "anisotropic")
    gap_alongs: tuple[str, ...] = ("orthogonal",)
    k: int = 10
    bank_size: int | None = None
    beta: float = 20.0
    hub_fraction: float = 0.01
    replicates: int = 2
    scatter_worlds: tuple[tuple[float, float], ...] = (
        (0.5, 0.0),
        (0.5, 0.5),
        (0.0, 0.5),
    )
    bank_cones: tuple[float, ...] = (0.5,)
    bank_latents: tuple[str, ...] = ("isotropic",)
    bank_methods: tuple[str, ...] = ("none", "is_q", "is_g", "dualis")
    seed: int = 0
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/22_hubs_both_modalities"
