"""Training objectives: symmetric InfoNCE and the NeighborRetr terms.

Book: :ref:`sec-neighborretr`.
"""

from hubrepro.losses.contrastive import SymmetricInfoNCE, symmetric_infonce
from hubrepro.losses.neighborretr import (
    COMPAT_FLAGS,
    NeighborRetrLoss,
    bank_centrality,
    centrality,
    centrality_weighted_infonce,
    centrality_weights,
    kl_consistency,
    neighbor_adjusting_loss,
    neighbor_targets,
    sinkhorn_plan,
    uniform_regularisation,
    wti_similarity,
)

__all__ = [
    "COMPAT_FLAGS",
    "NeighborRetrLoss",
    "SymmetricInfoNCE",
    "bank_centrality",
    "centrality",
    "centrality_weighted_infonce",
    "centrality_weights",
    "kl_consistency",
    "neighbor_adjusting_loss",
    "neighbor_targets",
    "sinkhorn_plan",
    "symmetric_infonce",
    "uniform_regularisation",
    "wti_similarity",
]
