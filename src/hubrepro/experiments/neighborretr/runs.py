r"""Training the conditions on ``shapes-world``: one run per condition and seed, evaluated once.

Every run trains a :class:`~hubrepro.encoders.DualEncoder` from scratch with
:class:`~hubrepro.training.Trainer` on the world's training split (one caption per
image per epoch), selects its epoch on the validation split, and is evaluated once on
the test split with :func:`~hubrepro.training.evaluate` (good and bad hubs from the
world's exact relevance). Epoch hooks record the curves: retrieval and hubness on the
test split (:class:`~hubrepro.training.RetrievalCurve`, one caption per image) and,
for the conditions of ``gradient_conditions``, the gradient of each term against
InfoNCE's (:class:`~hubrepro.training.TermGradients`). Neither changes a run.

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from .config import StudyConfig

__all__ = [
    "CURVE_KEYS",
    "Runs",
    "make_world",
    "train_conditions",
    "encode_world",
]

#: Keys of :func:`~hubrepro.training.evaluate` recorded at every epoch.
CURVE_KEYS = (
    "q2g_R@1",
    "g2q_R@1",
    "gallery_skewness",
    "gallery_hub_occupancy",
    "query_antihub_rate",
    "q2g_bad_hub_fraction",
    "q2g_good_neighbor_rate",
)


@dataclass
class Runs:
    """The trained runs of a study.

    Attributes
    ----------
    runs : DataFrame
        One row per condition and seed: ``condition``, ``seed``, ``best_epoch`` and the
        test metrics of :func:`~hubrepro.training.evaluate`.
    history : DataFrame
        One row per condition, seed and epoch: the trainer's history (training terms,
        validation metrics, ``curve_*`` and ``grad_*`` columns of the hooks).
    models : dict
        The selected model of each ``(condition, seed)``.
    """

    runs: pd.DataFrame
    history: pd.DataFrame
    models: dict[tuple[str, int], torch.nn.Module] = field(default_factory=dict)


def make_world(cfg: StudyConfig) -> Any:
    """The study's ``shapes-world`` (seed ``cfg.seed``; no bank split: the banks are training pairs)."""
    from hubrepro.datasets import make_shapes_world

    return make_shapes_world(seed=cfg.seed, n_bank=0, **cfg.world_options())


def train_conditions(
    cfg: StudyConfig, world: Any, conditions: Iterable[str] | None = None
) -> Runs:
    """Train every condition for every seed of ``cfg``; evaluate each run on the test split.

    Parameters
    ----------
    cfg : StudyConfig
    world : ShapesWorld
        From :func:`make_world`.
    conditions : iterable of str, optional
        Default ``cfg.conditions``.

    Returns
    -------
    Runs
    """
    from hubrepro.training import (
        RetrievalCurve,
        TermGradients,
        make_world_train_data,
        train,
        world_eval_data,
    )

    data = make_world_train_data(world)
    test = world_eval_data(world, "test")
    curve = None
    if cfg.curves:
        sub = world_eval_data(world, "test", captions_per_image=cfg.curve_captions)
        curve = RetrievalCurve(sub, keys=CURVE_KEYS, k=cfg.k)
    rows, hist = [], []
    models: dict[tuple[str, int], torch.nn.Module] = {}
    for cond in conditions if conditions is not None else cfg.conditions:
        for seed in cfg.seeds:
            hooks: list[Any] = [] if curve is None else [curve]
            if cond in cfg.gradient_conditions:
                hooks.append(TermGradients(seed=seed))
            res = train(cfg.train_config(cond, seed), data, epoch_hooks=hooks)
            met = _test_metrics(res.model, test, cfg.k)
            rows.append(
                {"condition": cond, "seed": seed, "best_epoch": res.best_epoch, **met}
            )
            hist += [{"condition": cond, "seed": seed, **row} for row in res.history]
            models[(cond, seed)] = res.model
    return Runs(pd.DataFrame(rows), pd.DataFrame(hist), models)


def _test_metrics(model: torch.nn.Module, test: Any, k: int) -> dict[str, float]:
    from hubrepro.training import evaluate

    return evaluate(model, test, k=k)


def encode_world(
    model: torch.nn.Module, world: Any, *, batch_size: int = 4096
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Encode the test, validation and bank data of ``world`` with a trained model.

    Returns ``{"test": (captions, images), "val": (captions, images), "bank":
    (captions, images)}`` of L2-normalised local features on the CPU. The bank is the
    *training* split, one caption per image (the first): the banks of the post-hoc
    normalisers are training pairs, as in DBNorm and QB-Norm.
    """
    from hubrepro.training import encode

    out = {}
    for split in ("test", "val"):
        s = world.split(split)
        q, g = encode(model, s.tokens, s.images, batch_size=batch_size)
        out[split] = (q.float().cpu(), g.float().cpu())
    tr = world.train
    first = torch.searchsorted(tr.caption_to_image, torch.arange(tr.n_images))
    q, g = encode(model, tr.tokens[first], tr.images, batch_size=batch_size)
    out["bank"] = (q.float().cpu(), g.float().cpu())
    return out
