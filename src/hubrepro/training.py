r"""Seeded, resumable, device-agnostic training of dual encoders with NeighborRetr losses.

The driver behind ``hubrepro train`` and the NeighborRetr notebooks (spec
``neighborretr.md`` §8-9). It trains :class:`~hubrepro.heads.DualEncoderHeads` on
frozen, precomputed paired embeddings — the CPU reproduction — with symmetric
InfoNCE (``oord2018representation``) or the NeighborRetr objective
(``lin2025neighborretr``), and

- seeds everything once (:func:`seed_everything`); batch order and bank sampling come
  from generators seeded by ``(seed, epoch)``, so a run is a function of its config;
- fills a :class:`~hubrepro.memory_bank.FIFOBank` at the start of each epoch, pushes
  each (gathered) batch after its step, clears it at the end of the epoch (spec §3);
- uses AdamW with warm-up then cosine decay, global gradient clipping, AMP on CUDA;
- writes ``config.json``, ``metrics.jsonl`` / ``metrics.csv`` (one row per epoch),
  ``checkpoints/last.pt`` (every ``checkpoint_every`` steps and at each epoch end) and
  ``best.pt`` (best validation score — never the test split) into a run directory;
- resumes exactly from ``last.pt``: model, optimiser, scheduler, AMP scaler, RNG
  states, bank, epoch, position and step;
- runs under ``torchrun``: each rank takes its slice of the global batch, features are
  all-gathered *with gradient* before the loss and gradients are averaged, so the
  update equals a one-process step on the global batch; pushed bank rows are the
  gathered batch, so every rank holds the same bank.

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import math
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist

from hubrepro import _validation as V
from hubrepro._compat import resolve_device
from hubrepro.config import to_params
from hubrepro.heads import DualEncoderHeads
from hubrepro.losses.neighborretr import NeighborRetrLoss
from hubrepro.memory_bank import FIFOBank

__all__ = [
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "CONDITIONS",
    "seed_everything",
    "make_train_data",
    "build_model",
    "build_loss",
    "gather_with_grad",
    "train",
    "resume",
    "encode",
    "load_train_data",
    "evaluate",
]


@dataclass(frozen=True)
class TrainConfig:
    r"""Configuration of one NeighborRetr / InfoNCE training run (spec §4, §8).

    Field names equal the notebook parameters and the keys of ``configs/*.yaml``;
    build it with :func:`hubrepro.config.from_params`. Defaults are the official
    hyperparameters where they carry over to heads on frozen embeddings (spec §4);
    ``lr`` is larger because the heads start from random initialisation.

    Attributes
    ----------
    dataset : str
        Name for :func:`hubrepro.datasets.load_dataset` (``"synthetic"``,
        ``"stdlib-code"``, ``"user"``).
    dataset_options : dict
        Keyword options of the loader (e.g. ``{"protocol": "by-module"}``).
    data_dir : str or None
        A folder of the user's embeddings (``dataset="user"``).
    data_seed : int
        Seed of the data generator/split.
    n_val : int
        Training gallery items held out for validation and model selection.
    loss : {"infonce", "neighborretr"}
        ``"infonce"`` = symmetric InfoNCE (all NeighborRetr terms off, :math:`\kappa=0`).
    kappa, tau_nal, tau_uniform, ot_beta, num_neighbors, w_uniform, w_neighbor, w_kl,
    sinkhorn_iters, sinkhorn_eps, normalize_global, kl_reduction, compat, nal_stats,
    detach_weights, detach_targets, centrality_exclude_self, tie_temperatures, separate_plans
        Passed to :class:`~hubrepro.losses.NeighborRetrLoss`.
    hidden_dim, embed_dim, global_dim, logit_scale_init, logit_scale_max, learn_logit_scale
        Passed to :class:`~hubrepro.heads.DualEncoderHeads`.
    mb_batch : int
        Bank capacity in batches: :math:`M` = ``mb_batch`` × ``batch_size``.
    bank_fill : {"random", "first"}
        Fill the bank from random batches (project) or the first ``mb_batch`` batches
        of the epoch (official, §5 row 8).
    bank_features : {"head", "raw"}
        Store detached head outputs (as the official code stores features) or the raw
        embeddings, re-projected by the current heads at every step ("fresh bank").
    fixed_epoch_order : bool
        Use the same batch order every epoch (official, §5 row 8).
    per_rank_bank : bool
        Under DDP push each rank's own slice only (official, §5 row 9).
    epochs, batch_size, lr, weight_decay, warmup_proportion, grad_clip
        Optimisation (AdamW; ``batch_size`` is the global batch).
    amp : bool
        Mixed precision on CUDA (ignored on CPU).
    seed, device, deterministic
        Seeding (:func:`seed_everything`) and device (``"auto"``, ``"cpu"``, ``"cuda"``).
    checkpoint_every : int
        Steps between checkpoints (0: only at epoch ends).
    eval_k : int
        :math:`k` of the validation hubness statistics.
    select_metric : str
        Validation key maximised for ``best.pt`` (``"Rsum"``).
    progress : bool
        Show tqdm progress bars.
    """

    dataset: str = "synthetic"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    data_seed: int = 0
    n_val: int = 500
    loss: Literal["infonce", "neighborretr"] = "neighborretr"
    kappa: float = 0.3
    tau_nal: float = 3.0
    tau_uniform: float = 3.0
    ot_beta: float = 0.7
    num_neighbors: int = 20
    w_uniform: float = 1.0
    w_neighbor: float = 1.0
    w_kl: float = 1.0
    sinkhorn_iters: int = 50
    sinkhorn_eps: float = 1.0
    normalize_global: bool = False
    kl_reduction: Literal["mean", "batchmean", "sum"] = "mean"
    compat: Literal["fixed", "official"] = "fixed"
    nal_stats: Literal["neighbours", "complement"] | None = None
    detach_weights: bool | None = None
    detach_targets: bool | None = None
    centrality_exclude_self: bool | None = None
    tie_temperatures: bool | None = None
    separate_plans: bool | None = None
    hidden_dim: int = 512
    embed_dim: int = 128
    global_dim: int = 128
    logit_scale_init: float = 100.0
    logit_scale_max: float = 100.0
    learn_logit_scale: bool = False
    mb_batch: int = 15
    bank_fill: Literal["random", "first"] = "random"
    bank_features: Literal["head", "raw"] = "head"
    fixed_epoch_order: bool = False
    per_rank_bank: bool = False
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.2
    warmup_proportion: float = 0.1
    grad_clip: float = 1.0
    amp: bool = True
    seed: int = 42
    device: str = "auto"
    deterministic: bool = False
    checkpoint_every: int = 0
    eval_k: int = 10
    select_metric: str = "Rsum"
    progress: bool = True

    def __post_init__(self) -> None:
        f = "TrainConfig"
        V.check_choice(self.loss, "loss", f, ("infonce", "neighborretr"))
        V.check_choice(self.bank_fill, "bank_fill", f, ("random", "first"))
        V.check_choice(self.bank_features, "bank_features", f, ("head", "raw"))
        for name in ("epochs", "batch_size", "mb_batch"):
            V.check_int(getattr(self, name), name, f, low=1)
        V.check_int(self.n_val, "n_val", f, low=0)
        V.check_int(self.checkpoint_every, "checkpoint_every", f, low=0)
        if self.batch_size < 4:
            V.fail(f, "batch_size", "at least 4", self.batch_size)
        V.check_positive(self.lr, "lr", f)
        V.check_positive(self.grad_clip, "grad_clip", f, allow_zero=True)
        V.check_probability(self.warmup_proportion, "warmup_proportion", f)


#: Named experimental conditions of the reproduction (spec §8): overrides of TrainConfig.
CONDITIONS: dict[str, dict[str, Any]] = {
    "infonce": {
        "loss": "infonce",
        "logit_scale_init": 1 / 0.07,
        "learn_logit_scale": True,
    },
    # InfoNCE at NeighborRetr's fixed logit scale 100: isolates the extra terms
    "infonce-fixed-scale": {"loss": "infonce"},
    "neighborretr": {"loss": "neighborretr"},
    "neighborretr-official": {"loss": "neighborretr", "compat": "official"},
    "no-uniform": {"loss": "neighborretr", "w_uniform": 0.0},
    "no-neighbor": {"loss": "neighborretr", "w_neighbor": 0.0},
    "no-kl": {"loss": "neighborretr", "w_kl": 0.0},
    "kappa-0": {"loss": "neighborretr", "kappa": 0.0},
}


@dataclass(frozen=True)
class TrainData:
    """Aligned training pairs and a validation split (never the test split).

    Attributes
    ----------
    train_query, train_gallery : Tensor of shape (n_train, d_query), (n_train, d_gallery)
        Row ``i`` of both is a positive pair.
    val_query, val_gallery : Tensor or None
        Validation queries and gallery items.
    val_query_to_gallery : LongTensor or None
        Gallery index of each validation query (``None``: diagonal).
    """

    train_query: torch.Tensor
    train_gallery: torch.Tensor
    val_query: torch.Tensor | None = None
    val_gallery: torch.Tensor | None = None
    val_query_to_gallery: torch.Tensor | None = None

    def __post_init__(self) -> None:
        f = "TrainData"
        # embeddings are float matrices; raw inputs of a backbone (token ids, images)
        # only need aligned rows
        q = V.as_tensor(self.train_query, "train_query", f)
        g = V.as_tensor(self.train_gallery, "train_gallery", f)
        if q.is_floating_point() and q.ndim == 2:
            V.check_matrix(q, "train_query", f)
        if g.is_floating_point() and g.ndim == 2:
            V.check_matrix(g, "train_gallery", f)
        if q.shape[0] != g.shape[0]:
            V.fail(
                f,
                "train_gallery",
                f"{q.shape[0]} rows (aligned with `train_query`)",
                f"shape {tuple(g.shape)}",
            )
        if (self.val_query is None) != (self.val_gallery is None):
            V.fail(
                f, "val_gallery", "given together with `val_query`", "only one of them"
            )


@dataclass
class TrainResult:
    """What :func:`train` returns: the best model (by validation) and the history."""

    model: DualEncoderHeads
    history: list[dict[str, Any]]
    best_epoch: int | None
    best_score: float | None
    run_dir: Path | None
    final_model: DualEncoderHeads
    steps: int
    bank: FIFOBank | None = None


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); optionally force deterministic kernels.

    The only global seeding in the library (style guide §10).

    Parameters
    ----------
    seed : int
        Seed in ``[0, 2**32)``.
    deterministic : bool, default False
        Also call ``torch.use_deterministic_algorithms(True)`` and disable cuDNN
        benchmarking (slower; needed for bit-exact GPU runs).
    """
    seed = V.check_int(seed, "seed", "seed_everything", low=0, high=2**32 - 1)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - other libraries may use the legacy global RNG
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def make_train_data(data: Any, *, n_val: int = 500, seed: int = 0) -> TrainData:
    """Build training pairs and a validation split from a :class:`~hubrepro.datasets.PairedData`.

    The training pairs are the dataset's *bank* (its training split): bank query
    ``i`` with bank gallery ``bank_query_to_gallery[i]``. ``n_val`` bank gallery items
    and all their queries are held out for validation, so no validation item is seen
    in training. The test split (``query``/``gallery``) is untouched.
    """
    f = "make_train_data"
    if (
        getattr(data, "bank_query", None) is None
        or getattr(data, "bank_gallery", None) is None
    ):
        V.fail(
            f,
            "data",
            "a PairedData with a training bank (bank_query, bank_gallery)",
            type(data).__name__,
        )
    bq, bg = data.bank_query, data.bank_gallery
    b2g = data.bank_query_to_gallery
    if b2g is None:
        if bq.shape[0] != bg.shape[0]:
            V.fail(
                f,
                "data",
                "paired banks (bank_query_to_gallery or equal sizes)",
                f"{bq.shape[0]} vs {bg.shape[0]} rows",
            )
        b2g = torch.arange(bq.shape[0])
    n_g = bg.shape[0]
    n_val = V.check_int(n_val, "n_val", f, low=0, high=max(n_g - 8, 0))
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n_g, generator=gen)
    is_val = torch.zeros(n_g, dtype=torch.bool)
    is_val[perm[:n_val]] = True
    q_val = is_val[b2g]
    train = (~q_val).nonzero().squeeze(1)
    if n_val == 0:
        return TrainData(bq[train], bg[b2g[train]])
    val_items = is_val.nonzero().squeeze(1)
    remap = torch.full((n_g,), -1, dtype=torch.long)
    remap[val_items] = torch.arange(val_items.numel())
    vq = q_val.nonzero().squeeze(1)
    return TrainData(bq[train], bg[b2g[train]], bq[vq], bg[val_items], remap[b2g[vq]])


def build_model(cfg: TrainConfig, query_dim: int, gallery_dim: int) -> DualEncoderHeads:
    """Return freshly initialised heads for ``cfg`` (seed the RNG first)."""
    return DualEncoderHeads(
        query_dim,
        gallery_dim,
        hidden_dim=cfg.hidden_dim,
        embed_dim=cfg.embed_dim,
        global_dim=cfg.global_dim,
        logit_scale_init=cfg.logit_scale_init,
        logit_scale_max=cfg.logit_scale_max,
        learn_logit_scale=cfg.learn_logit_scale,
    )


def build_loss(cfg: TrainConfig) -> NeighborRetrLoss:
    """Return the objective of ``cfg``: NeighborRetr, or InfoNCE as its all-off special case."""
    if cfg.loss == "infonce":
        return NeighborRetrLoss(kappa=0.0, w_uniform=0.0, w_neighbor=0.0, w_kl=0.0)
    return NeighborRetrLoss(
        kappa=cfg.kappa,
        tau_nal=cfg.tau_nal,
        tau_uniform=cfg.tau_uniform,
        ot_beta=cfg.ot_beta,
        num_neighbors=cfg.num_neighbors,
        w_uniform=cfg.w_uniform,
        w_neighbor=cfg.w_neighbor,
        w_kl=cfg.w_kl,
        sinkhorn_iters=cfg.sinkhorn_iters,
        sinkhorn_eps=cfg.sinkhorn_eps,
        normalize_global=cfg.normalize_global,
        kl_reduction=cfg.kl_reduction,
        compat=cfg.compat,
        nal_stats=cfg.nal_stats,
        detach_weights=cfg.detach_weights,
        detach_targets=cfg.detach_targets,
        centrality_exclude_self=cfg.centrality_exclude_self,
        tie_temperatures=cfg.tie_temperatures,
        separate_plans=cfg.separate_plans,
    )


# ------------------------------------------------------------------ distributed


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        rank, world = _dist()
        ctx.rank, ctx.n = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # every rank computes the same loss on the gathered batch: sum their gradients
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather ``x`` (batch, ...) from every rank, keeping the gradient to ``x``.

    Without an initialised process group this returns ``x``. Every rank must pass the
    same number of rows. The backward pass sums the gradients of all ranks, so with
    gradients averaged afterwards the update equals a one-process step on the global
    batch.
    """
    if _dist()[1] == 1:
        return x
    return _GatherWithGrad.apply(x)


def _average_gradients(model: torch.nn.Module) -> None:
    world = _dist()[1]
    if world == 1:
        return
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


# --------------------------------------------------------------------- helpers


@torch.no_grad()
def encode(
    model: DualEncoderHeads,
    query: torch.Tensor,
    gallery: torch.Tensor,
    *,
    batch_size: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the local (retrieval) features of ``query`` and ``gallery``, in eval mode."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    ql = torch.cat(
        [
            model.encode_query(query[i : i + batch_size].to(dev))[0]
            for i in range(0, query.shape[0], batch_size)
        ]
    )
    gl = torch.cat(
        [
            model.encode_gallery(gallery[i : i + batch_size].to(dev))[0]
            for i in range(0, gallery.shape[0], batch_size)
        ]
    )
    model.train(was)
    return ql, gl


def _validate(model: DualEncoderHeads, data: TrainData, k: int) -> dict[str, float]:
    from hubrepro.hubness import hubness_report
    from hubrepro.retrieval import evaluate_retrieval

    ql, gl = encode(model, data.val_query, data.val_gallery)  # type: ignore[arg-type]
    sims = ql @ gl.T
    res = evaluate_retrieval(sims, data.val_query_to_gallery)
    out = {"Rsum": float(res["Rsum"])}
    for d, short in (("query_to_gallery", "q2g"), ("gallery_to_query", "g2q")):
        for key, v in res[d].items():
            out[f"{short}_{key}"] = float(v)
    hub = hubness_report(sims, k=min(k, sims.shape[1]))
    out["gallery_skewness"] = float(hub["skewness"])
    out["gallery_antihub_rate"] = float(hub["antihub_rate"])
    return out


def _epoch_order(cfg: TrainConfig, n: int, epoch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(
        cfg.seed * 1_000_003 + (0 if cfg.fixed_epoch_order else epoch)
    )
    return torch.randperm(n, generator=gen)


def _bank_batches(
    cfg: TrainConfig, order: torch.Tensor, n_batches: int, epoch: int
) -> list[torch.Tensor]:
    b = cfg.batch_size
    m = min(cfg.mb_batch, n_batches)
    if cfg.bank_fill == "first":
        pick = range(m)
    else:
        gen = torch.Generator().manual_seed(cfg.seed * 7_000_003 + epoch + 1)
        pick = torch.randperm(n_batches, generator=gen)[:m].tolist()
    return [order[i * b : (i + 1) * b] for i in pick]


def _lr_lambda(total: int, warmup: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return f


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    other = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": other, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def _rng_state() -> dict[str, Any]:
    st: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: Mapping[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate((3, tuple(st["python"]), st["python_pos"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _prepare_run_dir(run_dir: Path, overwrite: bool, resume: bool) -> None:
    if resume:
        if not (run_dir / "checkpoints" / "last.pt").exists():
            raise FileNotFoundError(
                f"train: `run_dir` must hold checkpoints/last.pt to resume; got {run_dir} without one."
            )
        return
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"train: `run_dir` must be new or empty; got {run_dir}, which holds files. "
            "Pass overwrite=True (CLI: --overwrite) or resume it (CLI: --resume)."
        )
    if overwrite and run_dir.exists():
        for name in (
            "checkpoints/last.pt",
            "best.pt",
            "metrics.jsonl",
            "metrics.csv",
            "config.json",
        ):
            (run_dir / name).unlink(missing_ok=True)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    with open(run_dir / "metrics.jsonl", "w") as fh:
        for row in history:
            fh.write(json.dumps(row) + "\n")
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    with open(run_dir / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


def _progress(total: int, initial: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return contextlib.nullcontext(None)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=False)


# ----------------------------------------------------------------------- train


def train(
    cfg: TrainConfig,
    data: TrainData,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    stop_after_steps: int | None = None,
    model: torch.nn.Module | None = None,
) -> TrainResult:
    """Train dual-encoder heads on frozen embeddings with InfoNCE or NeighborRetr.

    Implements the training procedure of NeighborRetr (``lin2025neighborretr``) as
    described in spec ``neighborretr.md`` §3-4 and §8, with the project's fixes
    (validation-based model selection, reshuffled epochs, random bank fill).

    Parameters
    ----------
    cfg : TrainConfig
        The run's configuration.
    data : TrainData
        Training pairs and validation split (see :func:`make_train_data`).
    run_dir : str or Path or None
        Where to write the config, metrics, checkpoints; ``None`` keeps everything in
        memory (no checkpoints, no resume).
    resume : bool, default False
        Continue from ``run_dir/checkpoints/last.pt``.
    overwrite : bool, default False
        Allow starting afresh in a non-empty ``run_dir``.
    stop_after_steps : int or None
        Stop (after checkpointing, if a run dir is given) once this many optimiser
        steps have been taken in total — to simulate an interruption.
    model : torch.nn.Module or None
        A dual encoder to fine-tune instead of fresh heads (a copy is trained), e.g.
        :class:`~hubrepro.heads.OpenCLIPDualEncoder`: it must provide
        ``encode_query(x)`` and ``encode_gallery(x)`` returning ``(local, global)``,
        ``forward(query, gallery)`` returning the dict of
        :class:`~hubrepro.heads.DualEncoderHeads`, and ``logit_scale()``.

    Returns
    -------
    TrainResult
        ``model`` is the best validation checkpoint (the final model without a
        validation split), ``final_model`` the last state.

    Raises
    ------
    FileExistsError
        If ``run_dir`` holds files and neither ``resume`` nor ``overwrite`` is set.
    ValueError
        If the training set is smaller than one batch, or on invalid data.
    """
    f = "train"
    if not isinstance(cfg, TrainConfig):
        V.fail(f, "cfg", "a TrainConfig", type(cfg).__name__, exc=TypeError)
    if not isinstance(data, TrainData):
        V.fail(
            f,
            "data",
            "a TrainData (see make_train_data)",
            type(data).__name__,
            exc=TypeError,
        )
    rank, world = _dist()
    if cfg.batch_size % world:
        V.fail(f, "batch_size", f"divisible by the world size {world}", cfg.batch_size)
    n = data.train_query.shape[0]
    n_batches = n // cfg.batch_size
    if n_batches < 1:
        V.fail(
            f,
            "data",
            f"at least one batch of {cfg.batch_size} training pairs",
            f"{n} pairs",
        )
    device = resolve_device(cfg.device)
    rdir = Path(run_dir) if run_dir is not None else None
    if rdir is not None and rank == 0:
        _prepare_run_dir(rdir, overwrite, resume)
    if resume and rdir is None:
        V.fail(f, "run_dir", "given when resume=True", None)

    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    if model is None:
        model = build_model(cfg, data.train_query.shape[1], data.train_gallery.shape[1])
    else:
        model = copy.deepcopy(model)  # the caller's model is never modified
    model = model.to(device)
    initial = copy.deepcopy(model)
    criterion = build_loss(cfg)
    opt = _optimizer(model, cfg)
    total = cfg.epochs * n_batches
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _lr_lambda(total, int(cfg.warmup_proportion * total))
    )
    use_amp = bool(cfg.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    bank = FIFOBank(cfg.mb_batch * cfg.batch_size)
    tq, tg = data.train_query, data.train_gallery
    history: list[dict[str, Any]] = []
    step = epoch = pos = 0
    best_score: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    resumed_sums: dict[str, float] = {}

    if resume:
        ck = torch.load(
            rdir / "checkpoints" / "last.pt", map_location=device, weights_only=True
        )  # type: ignore[operator]
        if ck["config"] != json.loads(json.dumps(to_params(cfg))):
            V.fail(
                f,
                "cfg",
                "the configuration the run was started with",
                "a different one",
                "Resume with the run's own config.json.",
            )
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        bank.load_state_dict(ck["bank"])
        bank.to(device)
        step, epoch, pos = int(ck["step"]), int(ck["epoch"]), int(ck["pos"])
        history = json.loads(ck["history"])
        resumed_sums = json.loads(ck["epoch_sums"])
        best_score, best_epoch = ck["best_score"], ck["best_epoch"]
        if (rdir / "best.pt").exists():  # type: ignore[operator]
            best_state = torch.load(
                rdir / "best.pt", map_location=device, weights_only=True
            )["model"]  # type: ignore[operator]
        _set_rng_state(ck["rng"])
    elif rdir is not None and rank == 0:
        (rdir / "config.json").write_text(
            json.dumps(to_params(cfg), indent=1, sort_keys=True) + "\n"
        )

    def save(
        next_epoch: int, next_pos: int, epoch_sums: Mapping[str, float] | None = None
    ) -> None:
        if rdir is None or rank != 0:
            return
        state = {
            "config": json.loads(json.dumps(to_params(cfg))),
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(),
            "bank": bank.state_dict(),
            "rng": _rng_state(),
            "step": step,
            "epoch": next_epoch,
            "pos": next_pos,
            "history": json.dumps(history),
            "epoch_sums": json.dumps(dict(epoch_sums or {})),
            "best_score": best_score,
            "best_epoch": best_epoch,
        }
        tmp = rdir / "checkpoints" / "last.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, rdir / "checkpoints" / "last.pt")

    def bank_rows(
        idx: torch.Tensor,
        q_local: torch.Tensor | None = None,
        g_local: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        if cfg.bank_features == "raw":
            return {"query": tq[idx].to(device), "gallery": tg[idx].to(device)}
        if q_local is None:
            with torch.no_grad(), _autocast(device, use_amp):
                q_local = model.encode_query(tq[idx].to(device))[0].float()
                g_local = model.encode_gallery(tg[idx].to(device))[0].float()
        return {"query": q_local, "gallery": g_local}  # type: ignore[dict-item]

    def bank_view() -> tuple[torch.Tensor | None, torch.Tensor | None]:
        bq, bg = bank.get("query"), bank.get("gallery")
        if cfg.bank_features == "raw" and bq is not None:
            with torch.no_grad():
                bq = model.encode_query(bq)[0].float()
                bg = model.encode_gallery(bg)[0].float()  # type: ignore[arg-type]
        return bq, bg

    local_b = cfg.batch_size // world
    stopped = False
    while epoch < cfg.epochs and not stopped:
        order = _epoch_order(cfg, n, epoch)
        model.train()
        if pos == 0:
            was = model.training
            model.eval()
            bank.clear()
            for idx in _bank_batches(cfg, order, n_batches, epoch):
                mine = (
                    idx
                    if cfg.per_rank_bank is False
                    else idx[rank * local_b : (rank + 1) * local_b]
                )
                bank.push_front(bank_rows(mine), mine.to(device))
            model.train(was)
            sums: dict[str, float] = {}
        else:
            sums = dict(resumed_sums)
        t0 = time.perf_counter()
        with _progress(
            n_batches,
            pos,
            cfg.progress and rank == 0,
            f"epoch {epoch + 1}/{cfg.epochs}",
        ) as bar:
            while pos < n_batches:
                idx = order[pos * cfg.batch_size : (pos + 1) * cfg.batch_size]
                mine = idx[rank * local_b : (rank + 1) * local_b]
                q, g = tq[mine].to(device), tg[mine].to(device)
                with _autocast(device, use_amp):
                    out = model(q, g)
                out = {k: gather_with_grad(v.float()) for k, v in out.items()}
                bq, bg = bank_view()
                terms = criterion(
                    out["query_local"], out["gallery_local"], out["query_global"], out["gallery_global"],
                    model.logit_scale(), bank_query_local=bq, bank_gallery_local=bg, return_terms=True,
                )  # fmt: skip
                opt.zero_grad(set_to_none=True)
                scaler.scale(terms["loss"]).backward()
                _average_gradients(model)
                if cfg.grad_clip > 0:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(opt)
                scaler.update()
                sched.step()
                # push the gathered batch (every rank the same) or, officially, the rank's own
                if cfg.per_rank_bank:
                    bank.push_front(
                        bank_rows(
                            mine,
                            out["query_local"].detach()[
                                rank * local_b : (rank + 1) * local_b
                            ],
                            out["gallery_local"].detach()[
                                rank * local_b : (rank + 1) * local_b
                            ],
                        ),
                        mine.to(device),
                    )
                else:
                    bank.push_front(
                        bank_rows(
                            idx,
                            out["query_local"].detach(),
                            out["gallery_local"].detach(),
                        ),
                        idx.to(device),
                    )
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                step += 1
                pos += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{float(terms['loss']):.3f}")
                if (
                    cfg.checkpoint_every
                    and step % cfg.checkpoint_every == 0
                    and pos < n_batches
                ):
                    save(epoch, pos, sums)
                if (
                    stop_after_steps is not None
                    and step >= stop_after_steps
                    and pos < n_batches
                ):
                    stopped = True
                    break
        if stopped:
            break
        bank.clear()
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": step,
            "lr": sched.get_last_lr()[0],
            "logit_scale": float(model.logit_scale().detach()),
        }
        row.update({f"train_{k}": v / n_batches for k, v in sums.items()})
        row["seconds"] = time.perf_counter() - t0
        if data.val_query is not None:
            val = _validate(model, data, cfg.eval_k)
            row.update({f"val_{k}": v for k, v in val.items()})
            score = val.get(cfg.select_metric)
            if score is None:
                V.fail(
                    f,
                    "select_metric",
                    f"a validation key ({sorted(val)})",
                    repr(cfg.select_metric),
                )
            if best_score is None or score > best_score:
                best_score, best_epoch = float(score), epoch + 1
                best_state = {
                    k: v.detach().clone() for k, v in model.state_dict().items()
                }
                if rdir is not None and rank == 0:
                    torch.save(
                        {"model": best_state, "epoch": best_epoch, "score": best_score},
                        rdir / "best.pt",
                    )
        history.append(row)
        epoch += 1
        pos = 0
        if rdir is not None and rank == 0:
            _write_metrics(rdir, history)
        save(epoch, 0)
        if stop_after_steps is not None and step >= stop_after_steps:
            stopped = True
    if stopped:
        save(epoch, pos, sums)
    final = model
    best = model
    if best_state is not None:
        best = initial
        best.load_state_dict(best_state)
    return TrainResult(
        model=best,
        history=history,
        best_epoch=best_epoch,
        best_score=best_score,
        run_dir=rdir,
        final_model=final,
        steps=step,
        bank=bank,
    )


def _autocast(device: torch.device, enabled: bool) -> Any:
    if enabled:
        return torch.autocast(device_type=device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def resume(
    run_dir: str | Path, data: TrainData | None = None, **kwargs: Any
) -> TrainResult:
    """Continue the run in ``run_dir`` with its own ``config.json``.

    ``data`` defaults to rebuilding the training data from the config's dataset
    (:func:`hubrepro.datasets.load_dataset` + :func:`make_train_data`).
    """
    from hubrepro.config import from_params

    rdir = Path(run_dir)
    cfg_file = rdir / "config.json"
    if not cfg_file.exists():
        raise FileNotFoundError(
            f"resume: `run_dir` must hold config.json; got {rdir} without one."
        )
    cfg = from_params(TrainConfig, json.loads(cfg_file.read_text()))
    if data is None:
        data = load_train_data(cfg)
    return train(cfg, data, run_dir=rdir, resume=True, **kwargs)


def load_train_data(cfg: TrainConfig) -> TrainData:
    """Load ``cfg.dataset`` and split its training bank into training and validation."""
    from hubrepro.datasets import load_dataset

    paired = load_dataset(
        cfg.dataset, seed=cfg.data_seed, data_dir=cfg.data_dir, **cfg.dataset_options
    )
    return make_train_data(paired, n_val=cfg.n_val, seed=cfg.data_seed)


def evaluate(
    model: DualEncoderHeads, data: Any, *, k: int = 10, hub_factor: float = 2.0
) -> dict[str, float]:
    """Evaluate trained heads on the test split of a :class:`~hubrepro.datasets.PairedData`.

    Returns one flat dict: R@1/5/10, MdR, MnR per direction (``q2g_*``, ``g2q_*``)
    and ``Rsum`` (:func:`hubrepro.retrieval.evaluate_retrieval`); hubness of the
    gallery under the queries (``gallery_*``) and of the queries under the gallery
    (``query_*``) from :func:`hubrepro.hubness.hubness_report`; and, when the data
    has concept labels, the good/bad-hub statistics of
    :func:`hubrepro.hub_quality.neighbor_label_stats` in both directions.

    Book: :ref:`sec-neighborretr`.
    """
    from hubrepro.hub_quality import neighbor_label_stats
    from hubrepro.hubness import hubness_report
    from hubrepro.retrieval import evaluate_retrieval

    ql, gl = encode(model, data.query, data.gallery)
    sims = (ql @ gl.T).cpu()
    res = evaluate_retrieval(sims, data.query_to_gallery)
    out: dict[str, float] = {"Rsum": float(res["Rsum"])}
    for d, short in (("query_to_gallery", "q2g"), ("gallery_to_query", "g2q")):
        out.update({f"{short}_{m}": float(v) for m, v in res[d].items()})
    for side, mat in (("gallery", sims), ("query", sims.T)):
        rep = hubness_report(mat, k=min(k, mat.shape[1]))
        out.update({f"{side}_{m}": float(v) for m, v in rep.items() if m != "k"})
    if data.query_labels is not None and data.gallery_labels is not None:
        for short, mat, a, b in (
            ("q2g", sims, data.query_labels, data.gallery_labels),
            ("g2q", sims.T, data.gallery_labels, data.query_labels),
        ):
            st = neighbor_label_stats(
                mat, a, b, k=min(k, mat.shape[1]), hub_factor=hub_factor
            )
            out.update({f"{short}_{m}": float(v) for m, v in st.items() if m != "k"})
    return out
