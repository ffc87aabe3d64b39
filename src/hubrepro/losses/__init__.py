"""Training objectives: symmetric InfoNCE and the NeighborRetr terms, one module per term.

- ``hubrepro.losses.contrastive`` -- symmetric InfoNCE (``oord2018representation``);
- ``hubrepro.losses.wti`` -- the fine-grained WTI similarity :math:`S`;
- ``hubrepro.losses.centrality`` -- centrality and the centrality-weighted InfoNCE
  :math:`L_{\\rm Wti}`;
- ``hubrepro.losses.neighbor`` -- the neighbour adjusting loss :math:`L_{\\rm Nbi}`;
- ``hubrepro.losses.uniform`` -- the uniform regularisation :math:`L_{\\rm Opt}`
  (its Sinkhorn plan comes from :mod:`hubrepro.ot`);
- ``hubrepro.losses.kl`` -- the KL consistency :math:`L_{\\rm KL}`;
- ``hubrepro.losses.neighborretr`` -- :class:`NeighborRetrLoss`, the four terms
  composed, with the flags of the released code's behaviour.

Each term has a functional form (validated inputs, one call) and an ``nn.Module`` form
(its hyperparameters fixed at construction); every name is importable from
``hubrepro.losses``. Book: :ref:`sec-neighborretr`.
"""

from hubrepro.losses.centrality import (
    CentralityWeightedInfoNCE,
    centrality,
    centrality_weighted_infonce,
    centrality_weights,
)
from hubrepro.losses.contrastive import SymmetricInfoNCE, symmetric_infonce
from hubrepro.losses.kl import KLConsistency, kl_consistency
from hubrepro.losses.neighbor import (
    NeighborAdjustingLoss,
    bank_centrality,
    neighbor_adjusting_loss,
    neighbor_targets,
)
from hubrepro.losses.neighborretr import COMPAT_FLAGS, NeighborRetrLoss
from hubrepro.losses.uniform import UniformRegularisation, uniform_regularisation
from hubrepro.losses.wti import WTISimilarity, wti_similarity
from hubrepro.ot import sinkhorn_plan

__all__ = [
    "COMPAT_FLAGS",
    "CentralityWeightedInfoNCE",
    "KLConsistency",
    "NeighborAdjustingLoss",
    "NeighborRetrLoss",
    "SymmetricInfoNCE",
    "UniformRegularisation",
    "WTISimilarity",
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
