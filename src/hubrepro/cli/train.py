"""``hubrepro train``: train a dual encoder with NeighborRetr or InfoNCE from a YAML config.

Start a run (projection heads on frozen embeddings, or with ``model: dual-encoder``
text and image towers end to end on ``shapes-world``)::

    hubrepro train --config configs/synthetic.yaml --set epochs=3 --set kappa=0.1
    hubrepro train --config configs/shapes_world.yaml

Continue an interrupted run exactly where its last checkpoint left it::

    hubrepro train --resume runs/synthetic

Several processes (GPUs, or CPU processes with gloo) through ``torchrun``::

    torchrun --nproc_per_node 4 -m hubrepro train --config CONFIG.yaml

The config holds fields of :class:`hubrepro.training.TrainConfig` plus ``run_dir``
(where the run is written; ``--run-dir`` overrides it). A run folder that holds a run
is never overwritten unless ``--overwrite`` is given, and then every file of the old
run is removed first. At the end the best model (by validation score) is evaluated once
on the test split, written to ``test_metrics.json``. Every file is written atomically;
a bad value, an unreadable config or a damaged checkpoint is reported in one line.

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from hubrepro.config import from_params


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``train`` on the top-level sub-command parser."""
    p = subparsers.add_parser(
        "train",
        help="train a dual encoder with NeighborRetr / InfoNCE (resumable)",
        description=(
            "Train a dual encoder (heads on frozen embeddings, or text and image "
            "towers end to end) with the NeighborRetr objective or InfoNCE."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--config", type=Path, help="YAML file of TrainConfig fields (+ run_dir)"
    )
    src.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (YAML value); repeatable",
    )
    p.add_argument(
        "--run-dir", type=Path, help="output directory (overrides the config's run_dir)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in a run dir that holds a run (its files are removed first)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _yaml(text: str, what: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ValueError(
            f"train: {what} must be valid YAML; got a syntax error{at} ({problem})."
        ) from None


def _overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"train: `--set` must be KEY=VALUE; got {item!r}.")
        out[key.strip()] = _yaml(value, f"the value of `--set {key.strip()}`")
    return out


def _load_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(
            f"train: `--config` must be an existing YAML file; got {str(path)!r}."
        )
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(
            f"train: `--config` {str(path)!r} must be a readable UTF-8 YAML file; "
            f"got {type(err).__name__}."
        ) from None
    params = _yaml(text, f"`--config` {str(path)!r}") or {}
    if not isinstance(params, dict):
        raise ValueError(
            f"train: `--config` must hold a mapping of TrainConfig fields; got {type(params).__name__}."
        )
    return params


def _init_distributed() -> None:
    # under torchrun (WORLD_SIZE > 1): one process per GPU (NCCL) or per CPU slot (gloo)
    import os

    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def run(args: argparse.Namespace) -> int:
    """Run the sub-command; return the exit status."""
    from hubrepro import training
    from hubrepro.training import _rundir

    _init_distributed()

    if args.resume is not None:
        if args.set:
            raise ValueError(
                "train: `--set` must not be combined with --resume; a run continues with its own config.json."
            )
        run_dir = args.resume
        cfg = from_params(training.TrainConfig, _rundir.read_config(run_dir))
        data, test = training.load_run_data(cfg)
        result = training.train(cfg, data, run_dir=run_dir, resume=True)
    else:
        params = _load_config(args.config)
        params.update(_overrides(args.set))
        run_dir = args.run_dir or params.pop("run_dir", None)
        params.pop("run_dir", None)
        if run_dir is None:
            raise ValueError(
                "train: `run_dir` must be given in the config or with --run-dir; got neither."
            )
        if args.no_progress:
            params["progress"] = False
        cfg = from_params(training.TrainConfig, params)
        data, test = training.load_run_data(cfg)
        result = training.train(cfg, data, run_dir=run_dir, overwrite=args.overwrite)
    metrics = training.evaluate(
        result.model, test, k=cfg.eval_k, batch_size=cfg.eval_batch_size
    )
    metrics = {
        "best_epoch": result.best_epoch,
        "best_val_score": result.best_score,
        **metrics,
    }
    _rundir.write_text(
        Path(run_dir, "test_metrics.json"), json.dumps(metrics, indent=1) + "\n"
    )
    print(
        f"run {run_dir}: best epoch {result.best_epoch} (validation {cfg.select_metric} "
        f"{result.best_score}); test Rsum {metrics['Rsum']:.1f}, "
        f"q2g R@1 {metrics['q2g_R@1']:.1f}, g2q R@1 {metrics['g2q_R@1']:.1f}"
    )
    return 0
