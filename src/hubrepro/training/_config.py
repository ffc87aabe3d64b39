"""The configuration of one training run, checked when it is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from hubrepro import _validation as V
from hubrepro.training._model import neighborretr_loss

#: Model kinds :func:`~hubrepro.training.build_model` builds from a config.
MODEL_KINDS = ("heads", "dual-encoder")

#: Keys of the validation metrics (``val_<key>`` in the history); ``select_metric``
#: is one of them.
VALIDATION_KEYS = (
    "Rsum",
    *(f"{d}_{m}" for d in ("q2g", "g2q") for m in ("R@1", "R@5", "R@10", "MdR", "MnR")),
    "gallery_skewness",
    "gallery_antihub_rate",
)

# fields of EncoderConfig that TrainConfig sets itself (one value per run)
_ENCODER_OWN = ("embed_dim", "logit_scale_init", "logit_scale_max", "learn_logit_scale")


@dataclass(frozen=True)
class TrainConfig:
    r"""Configuration of one NeighborRetr / InfoNCE training run.

    Field names equal the notebook parameters and the keys of ``configs/*.yaml``;
    build it with :func:`hubrepro.config.from_params`. Every value is checked here, so
    a bad value fails before a run folder is touched. Defaults are the released
    code's hyperparameters where they carry over (``zzezze/NeighborRetr``, commit
    04112ee, ``NeighborRetr/config/args_parser.py``; the table of
    :ref:`sec-neighborretr`); ``lr`` is larger because heads and small encoders start
    from random initialisation.

    Attributes
    ----------
    dataset : str
        Name for :func:`hubrepro.datasets.load_dataset` (``"synthetic"``,
        ``"stdlib-code"``, ``"user"``: frozen embeddings; ``"shapes-world"``: images
        and captions, for ``model="dual-encoder"``).
    dataset_options : dict
        Keyword options of the loader (e.g. ``{"protocol": "by-module"}``).
    data_dir : str or None
        A folder of the user's embeddings (``dataset="user"``).
    data_seed : int
        Seed of the data generator/split.
    n_val : int
        Items held out for validation and model selection: training gallery items
        (embeddings) or the images of the world's validation split (``shapes-world``).
    model : {"heads", "dual-encoder"}
        What is trained: :class:`~hubrepro.heads.DualEncoderHeads` on frozen embeddings,
        or :class:`~hubrepro.encoders.DualEncoder` (text and image towers) end to end
        on raw inputs. :func:`~hubrepro.training.resume` rebuilds the same kind.
    encoder : dict
        Architecture of the dual encoder: fields of
        :class:`~hubrepro.encoders.EncoderConfig` except those set here
        (``embed_dim`` and the logit-scale fields); ``image_size`` defaults to the
        data's. Must be empty for ``model="heads"``.
    loss : {"infonce", "neighborretr"}
        ``"infonce"`` = symmetric InfoNCE (all NeighborRetr terms off, :math:`\kappa=0`).
    kappa, tau_nal, tau_uniform, ot_beta, num_neighbors, w_uniform, w_neighbor, w_kl, sinkhorn_iters, sinkhorn_eps, normalize_global, kl_reduction, compat, nal_stats, detach_weights, detach_targets, centrality_exclude_self, tie_temperatures, separate_plans
        Passed to :class:`~hubrepro.losses.NeighborRetrLoss`.
    hidden_dim, global_dim
        Widths of :class:`~hubrepro.heads.DualEncoderHeads`.
    embed_dim, logit_scale_init, logit_scale_max, learn_logit_scale
        Size of the shared space and the logit scale :math:`\lambda`, of either model.
    mb_batch : int
        Bank capacity in batches: :math:`M` = ``mb_batch`` × ``batch_size``.
    bank_fill : {"random", "first"}
        Fill the bank from random batches (project) or the first ``mb_batch`` batches
        of the epoch (the released code's fixed order).
    bank_features : {"head", "raw"}
        Store detached model outputs (as the released code stores features) or the
        raw inputs, re-encoded by the current model at every step ("fresh bank").
    fixed_epoch_order : bool
        Use the same batch order every epoch (the released code calls ``set_epoch``
        on another sampler than the one it trains with).
    pair_sampling : {"one-per-item", "all"}
        Only for data with several queries per gallery item (``shapes-world``'s
        captions): ``"one-per-item"`` draws one query per gallery item each epoch, so
        no two queries of one item meet in a batch as false negatives; ``"all"`` trains
        on every pair each epoch (CLIP4Clip's practice, kept by the released code).
    per_rank_bank : bool
        Under DDP push each rank's own slice only (the released code without its
        distributed flag).
    epochs, batch_size, lr, weight_decay, warmup_proportion, grad_clip
        Optimisation (AdamW; ``batch_size`` is the global batch).
    amp : bool
        Mixed precision (float16 autocast and gradient scaling) on CUDA; ignored on CPU.
    seed, device, deterministic
        Seeding (:func:`~hubrepro.training.seed_everything`) and device (``"auto"``,
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``).
    checkpoint_every : int
        Steps between checkpoints (0: only at epoch ends).
    eval_k : int
        :math:`k` of the validation hubness statistics.
    eval_batch_size : int
        Rows per forward pass when encoding for validation and evaluation.
    select_metric : str
        Validation key maximised for ``best.pt`` (one of ``hubrepro.training.VALIDATION_KEYS``).
    progress : bool
        Show tqdm progress bars.
    """

    dataset: str = "synthetic"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    data_seed: int = 0
    n_val: int = 500
    model: Literal["heads", "dual-encoder"] = "heads"
    encoder: dict[str, Any] = field(default_factory=dict)
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
    pair_sampling: Literal["one-per-item", "all"] = "one-per-item"
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
    eval_batch_size: int = 4096
    select_metric: str = "Rsum"
    progress: bool = True

    def __post_init__(self) -> None:
        f = "TrainConfig"
        V.check_choice(self.model, "model", f, MODEL_KINDS)
        V.check_choice(self.loss, "loss", f, ("infonce", "neighborretr"))
        V.check_choice(self.bank_fill, "bank_fill", f, ("random", "first"))
        V.check_choice(self.bank_features, "bank_features", f, ("head", "raw"))
        V.check_choice(self.pair_sampling, "pair_sampling", f, ("one-per-item", "all"))
        for name in (
            "epochs",
            "batch_size",
            "mb_batch",
            "hidden_dim",
            "embed_dim",
            "global_dim",
            "eval_k",
            "eval_batch_size",
        ):
            V.check_int(getattr(self, name), name, f, low=1)
        V.check_int(self.n_val, "n_val", f, low=0)
        V.check_int(self.data_seed, "data_seed", f, low=0)
        V.check_int(self.checkpoint_every, "checkpoint_every", f, low=0)
        # the range seed_everything accepts: a bad seed fails before a run folder exists
        V.check_int(self.seed, "seed", f, low=0, high=2**32 - 1)
        if self.batch_size < 4:
            V.fail(f, "batch_size", "at least 4", self.batch_size)
        V.check_positive(self.lr, "lr", f)
        V.check_positive(self.weight_decay, "weight_decay", f, allow_zero=True)
        V.check_positive(self.grad_clip, "grad_clip", f, allow_zero=True)
        V.check_probability(self.warmup_proportion, "warmup_proportion", f)
        V.check_positive(self.logit_scale_init, "logit_scale_init", f)
        V.check_positive(self.logit_scale_max, "logit_scale_max", f)
        V.check_choice(self.select_metric, "select_metric", f, VALIDATION_KEYS)
        _check_device(self.device, f)
        _check_encoder(self, f)
        # the loss checks its own hyperparameters (kappa >= 0, 0 <= ot_beta <= 1, ...)
        neighborretr_loss(self)


def _check_device(device: Any, func: str) -> None:
    import torch

    if not isinstance(device, str):
        V.fail(func, "device", "a string", repr(device), exc=TypeError)
    if device == "auto":
        return
    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        V.fail(
            func,
            "device",
            "'auto' or a device torch knows ('cpu', 'cuda', 'cuda:N', 'mps')",
            repr(device),
        )


def _check_encoder(cfg: TrainConfig, func: str) -> None:
    if not isinstance(cfg.encoder, dict):
        V.fail(
            func,
            "encoder",
            "a mapping of EncoderConfig fields",
            type(cfg.encoder).__name__,
            exc=TypeError,
        )
    if cfg.model == "heads":
        if cfg.encoder:
            V.fail(
                func,
                "encoder",
                "empty for model='heads' (the options of model='dual-encoder')",
                sorted(cfg.encoder),
            )
        return
    own = sorted(set(cfg.encoder) & set(_ENCODER_OWN))
    if own:
        V.fail(
            func,
            "encoder",
            "free of the fields TrainConfig sets itself",
            own,
            "Set embed_dim and the logit_scale_* fields of TrainConfig instead.",
        )
    from hubrepro.config import from_params
    from hubrepro.encoders import EncoderConfig

    from_params(EncoderConfig, cfg.encoder)  # unknown keys and bad values fail here
