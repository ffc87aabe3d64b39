"""The one-call forms: train a run, resume a run from its folder."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from hubrepro.training import _rundir
from hubrepro.training._config import TrainConfig
from hubrepro.training._data import TrainData
from hubrepro.training._trainer import Trainer, TrainResult


def train(
    cfg: TrainConfig,
    data: TrainData,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    stop_after_steps: int | None = None,
    model: torch.nn.Module | None = None,
    epoch_hooks: Sequence[Callable[[Trainer], Mapping[str, Any]]] = (),
) -> TrainResult:
    """Train a dual encoder with InfoNCE or NeighborRetr: ``Trainer(...).open(...).fit()``.

    Implements the training procedure of NeighborRetr (``lin2025neighborretr``) with
    the project's choices (:class:`Trainer`): the model ``cfg.model`` builds
    (projection heads on frozen embeddings, or text and image towers end to end) or
    a given one.

    Parameters
    ----------
    cfg : TrainConfig
        The run's configuration.
    data : TrainData
        Training pairs and validation split (see
        :func:`~hubrepro.training.make_train_data`).
    run_dir : str or Path or None
        Where to write the config, metrics, checkpoints; ``None`` keeps everything in
        memory (no checkpoints, no resume).
    resume : bool, default False
        Continue from ``run_dir/checkpoints/last.pt``.
    overwrite : bool, default False
        Start afresh in a ``run_dir`` that holds a run: every artefact of the old run
        is removed first.
    stop_after_steps : int or None
        Stop (after checkpointing, if a run dir is given) once this many optimiser
        steps have been taken in total — to simulate an interruption.
    model : torch.nn.Module or None
        A dual encoder to fine-tune instead of the one ``cfg.model`` builds (see
        :class:`Trainer`).
    epoch_hooks : sequence of callables, optional
        Per-epoch measurements added to the history (see :class:`Trainer`).

    Returns
    -------
    TrainResult
        ``model`` is the best validation checkpoint (the final model without a
        validation split), ``final_model`` the last state.

    Raises
    ------
    FileExistsError
        If ``run_dir`` holds a run and neither ``resume`` nor ``overwrite`` is set.
    FileNotFoundError
        If ``resume`` is set and ``run_dir`` holds no started run.
    ValueError
        If the training set is smaller than one batch, on invalid data, a different
        config than the run's, or a damaged checkpoint.

    Notes
    -----
    Every file is written atomically, so a kill leaves each file old or new; a folder
    left by a start that was killed before its ``config.json`` is accepted by a new
    start, and a run killed before its first checkpoint is started from its
    beginning by ``resume``.
    """
    trainer = Trainer(cfg, data, model=model, run_dir=run_dir, epoch_hooks=epoch_hooks)
    return trainer.open(resume=resume, overwrite=overwrite).fit(
        stop_after_steps=stop_after_steps
    )


def resume(
    run_dir: str | Path, data: TrainData | None = None, **kwargs: Any
) -> TrainResult:
    """Continue the run in ``run_dir`` with its own ``config.json``.

    ``data`` defaults to the config's dataset
    (:func:`~hubrepro.training.load_train_data`); the model is rebuilt from the
    config's ``model`` kind.
    """
    from hubrepro.config import from_params
    from hubrepro.training._data import load_train_data

    rdir = Path(run_dir)
    cfg = from_params(TrainConfig, _rundir.read_config(rdir))
    if data is None:
        data = load_train_data(cfg)
    return train(cfg, data, run_dir=rdir, resume=True, **kwargs)
