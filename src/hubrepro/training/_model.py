"""The model, objective and optimiser of a run, built from its config (and the data's sizes)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from hubrepro import _validation as V
from hubrepro.losses.neighborretr import NeighborRetrLoss

if TYPE_CHECKING:  # pragma: no cover
    from hubrepro.training._config import TrainConfig
    from hubrepro.training._data import TrainData


def build_model(cfg: TrainConfig, data: TrainData) -> torch.nn.Module:
    """Return a freshly initialised model of ``cfg.model`` sized for ``data`` (seed the RNG first).

    ``"heads"``: :class:`~hubrepro.heads.DualEncoderHeads` on embeddings of the data's
    widths. ``"dual-encoder"``: :class:`~hubrepro.encoders.DualEncoder` built by
    :func:`~hubrepro.encoders.build_dual_encoder` from ``cfg.encoder``, with the
    vocabulary size of ``data.meta["vocab_size"]``, the token length of the data's
    queries and the image size of its gallery.

    Parameters
    ----------
    cfg : TrainConfig
    data : TrainData
        Training pairs: embeddings (heads) or token ids and images (dual encoder).

    Returns
    -------
    torch.nn.Module
        With ``encode_query``, ``encode_gallery``, ``forward`` and ``logit_scale``.
    """
    func = "build_model"
    if cfg.model == "heads":
        from hubrepro.heads import DualEncoderHeads

        for name, x in (
            ("train_query", data.train_query),
            ("train_gallery", data.train_gallery),
        ):
            if not x.is_floating_point() or x.ndim != 2:
                V.fail(
                    func,
                    f"data.{name}",
                    "a float matrix of embeddings for model='heads'",
                    f"{x.dtype} of shape {tuple(x.shape)}",
                    "Train model='dual-encoder' on raw token ids and images.",
                )
        return DualEncoderHeads(
            data.train_query.shape[1],
            data.train_gallery.shape[1],
            hidden_dim=cfg.hidden_dim,
            embed_dim=cfg.embed_dim,
            global_dim=cfg.global_dim,
            logit_scale_init=cfg.logit_scale_init,
            logit_scale_max=cfg.logit_scale_max,
            learn_logit_scale=cfg.learn_logit_scale,
        )
    from hubrepro.encoders import EncoderConfig, build_dual_encoder

    ids, images = data.train_query, data.train_gallery
    if ids.is_floating_point() or ids.ndim != 2 or images.ndim != 4:
        V.fail(
            func,
            "data",
            "token ids (n, L) and images (n, 3, S, S) for model='dual-encoder'",
            f"query {tuple(ids.shape)} {ids.dtype}, gallery {tuple(images.shape)}",
            "Build it with make_world_train_data (dataset 'shapes-world').",
        )
    vocab = data.meta.get("vocab_size")
    if vocab is None:
        V.fail(
            func,
            "data.meta",
            "a 'vocab_size' entry for model='dual-encoder'",
            sorted(data.meta),
        )
    size = int(images.shape[-1])
    if cfg.encoder.get("image_size", size) != size:
        V.fail(
            func,
            "cfg.encoder",
            f"image_size {size} (that of the data's images) or none",
            cfg.encoder["image_size"],
        )
    options: dict[str, Any] = {**cfg.encoder, "image_size": size}
    return build_dual_encoder(
        EncoderConfig(),
        vocab_size=int(vocab),
        max_len=int(ids.shape[1]),
        embed_dim=cfg.embed_dim,
        logit_scale_init=cfg.logit_scale_init,
        logit_scale_max=cfg.logit_scale_max,
        learn_logit_scale=cfg.learn_logit_scale,
        **options,
    )


def neighborretr_loss(cfg: TrainConfig) -> NeighborRetrLoss:
    """The NeighborRetr objective with ``cfg``'s hyperparameters (whatever ``cfg.loss``)."""
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


def build_loss(cfg: TrainConfig) -> NeighborRetrLoss:
    """Return the objective of ``cfg``: NeighborRetr, or InfoNCE as its all-off special case."""
    if cfg.loss == "infonce":
        return NeighborRetrLoss(kappa=0.0, w_uniform=0.0, w_neighbor=0.0, w_kl=0.0)
    return neighborretr_loss(cfg)


def _lr_lambda(total: int, warmup: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return f


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # weight decay on matrices only (not on biases, norms or the logit scale)
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    other = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": other, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
