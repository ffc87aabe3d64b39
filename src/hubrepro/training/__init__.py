r"""Seeded, resumable, device-agnostic training of dual encoders with NeighborRetr losses.

The trainer behind ``hubrepro train`` and the NeighborRetr notebooks. It trains, with
symmetric InfoNCE (``oord2018representation``) or the NeighborRetr objective
(``lin2025neighborretr``), either :class:`~hubrepro.heads.DualEncoderHeads` on frozen,
precomputed paired embeddings or :class:`~hubrepro.encoders.DualEncoder` (a text and
an image tower) end to end on token ids and images (``TrainConfig.model``), and

- seeds everything once (:func:`seed_everything`); batch order, the query drawn for
  each gallery item and bank sampling come from generators seeded by
  ``(seed, epoch)``, so a run is a function of its config;
- fills a :class:`~hubrepro.memory_bank.FIFOBank` at the start of each epoch, pushes
  each (gathered) batch after its step, clears it at the end of the epoch (NeighborRetr
  §4.3; ``NeighborRetr/utils/memory_bank.py`` of ``zzezze/NeighborRetr``, commit
  04112ee);
- uses AdamW with warm-up then cosine decay, global gradient clipping, AMP on CUDA;
- writes ``config.json``, ``metrics.jsonl`` / ``metrics.csv`` (one row per epoch),
  ``checkpoints/last.pt`` (every ``checkpoint_every`` steps and at each epoch end) and
  ``best.pt`` (best validation score — never the test split) into a run folder, each
  file atomically;
- resumes exactly from ``last.pt``: model, optimiser, scheduler, AMP scaler, RNG
  states, bank, epoch, position and step;
- runs under ``torchrun``: each rank takes its slice of the global batch, features are
  all-gathered *with gradient* before the loss and gradients are averaged, so the
  update equals a one-process step on the global batch; pushed bank rows are the
  gathered batch, so every rank holds the same bank.

:class:`Trainer` holds a run's state with ``state_dict`` / ``load_state_dict`` and
named steps (``fill_bank``, ``step``, ``end_epoch``); :func:`train` is the one-call
form. Epoch hooks measure a run as it trains without changing it: retrieval and
hubness curves (:class:`RetrievalCurve`) and the gradient of each term of the
objective against InfoNCE's (:class:`TermGradients`). The conditions of the book's experiments live in
:mod:`hubrepro.experiments.neighborretr`. Book: :ref:`sec-neighborretr`.
"""

from hubrepro.training._config import MODEL_KINDS, VALIDATION_KEYS, TrainConfig
from hubrepro.training._data import (
    EpochPairs,
    EvalData,
    TrainData,
    load_run_data,
    load_train_data,
    make_train_data,
    make_world_train_data,
    world_eval_data,
)
from hubrepro.training._distributed import gather_with_grad
from hubrepro.training._evaluate import (
    encode,
    evaluate,
    evaluate_features,
    validation_metrics,
)
from hubrepro.training._model import build_loss, build_model
from hubrepro.training._probes import (
    TERMS,
    RetrievalCurve,
    TermGradients,
    term_gradient_norms,
)
from hubrepro.training._run import resume, train
from hubrepro.training._rundir import RUN_FILES
from hubrepro.training._seed import seed_everything
from hubrepro.training._trainer import Trainer, TrainResult

__all__ = [
    "MODEL_KINDS",
    "RUN_FILES",
    "TERMS",
    "VALIDATION_KEYS",
    "EpochPairs",
    "EvalData",
    "RetrievalCurve",
    "TermGradients",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "Trainer",
    "build_loss",
    "build_model",
    "encode",
    "evaluate",
    "evaluate_features",
    "gather_with_grad",
    "load_run_data",
    "load_train_data",
    "make_train_data",
    "make_world_train_data",
    "resume",
    "seed_everything",
    "term_gradient_norms",
    "train",
    "validation_metrics",
    "world_eval_data",
]
