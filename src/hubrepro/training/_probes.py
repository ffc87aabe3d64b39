r"""Measurements taken during training: the epoch hooks behind the book's curves.

:class:`RetrievalCurve` evaluates the model on a held-out split at the end of every
epoch (retrieval both ways, hubness, good and bad hubs); :class:`TermGradients`
measures how hard each term of the NeighborRetr objective pulls on the encoder,
relative to plain InfoNCE (:func:`term_gradient_norms`). Both are passed to
:class:`~hubrepro.training.Trainer` as ``epoch_hooks``; neither changes the run (no
optimiser step, no draw from the global random state), so a run with hooks is
bit-identical to one without.

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from hubrepro import _validation as V

if TYPE_CHECKING:  # pragma: no cover
    from hubrepro.training._trainer import Trainer

__all__ = ["TERMS", "RetrievalCurve", "TermGradients", "term_gradient_norms"]

#: The extra terms of NeighborRetr and their weight fields in
#: :class:`~hubrepro.training.TrainConfig`: ``term -> weight field``.
TERMS = {"uniform": "w_uniform", "neighbor": "w_neighbor", "kl": "w_kl"}


class RetrievalCurve:
    """An epoch hook: :func:`~hubrepro.training.evaluate` on a fixed split, some keys kept.

    Parameters
    ----------
    data : EvalData
        The split to evaluate (e.g. ``world_eval_data(world, captions_per_image=1)``).
    keys : sequence of str or None
        Keys of :func:`~hubrepro.training.evaluate` to record (``None``: all).
    k : int, default 10
        :math:`k` of the hubness and hub-quality statistics.
    prefix : str, default ``"curve_"``
        Prefix of the history columns.
    batch_size : int, default 4096
        Rows per forward pass.

    Notes
    -----
    Model selection never sees these numbers (it uses the validation split), so a
    curve on the test split only shows how training unfolds.
    """

    def __init__(
        self,
        data: Any,
        *,
        keys: Sequence[str] | None = None,
        k: int = 10,
        prefix: str = "curve_",
        batch_size: int = 4096,
    ) -> None:
        f = "RetrievalCurve"
        for name in ("query", "gallery", "query_to_gallery"):
            if not hasattr(data, name):
                V.fail(
                    f,
                    "data",
                    "an EvalData or PairedData",
                    type(data).__name__,
                    exc=TypeError,
                )
        self.data = data
        self.keys = None if keys is None else tuple(keys)
        self.k = V.check_int(k, "k", f, low=1)
        self.prefix = str(prefix)
        self.batch_size = V.check_int(batch_size, "batch_size", f, low=1)

    def __call__(self, trainer: Trainer) -> dict[str, float]:
        from hubrepro.training._evaluate import evaluate

        met = evaluate(trainer.model, self.data, k=self.k, batch_size=self.batch_size)
        keys = self.keys if self.keys is not None else tuple(met)
        return {f"{self.prefix}{key}": float(met[key]) for key in keys if key in met}


def _norm(grads: Sequence[torch.Tensor | None], keep: Sequence[bool]) -> float:
    total = 0.0
    for g, k in zip(grads, keep, strict=True):
        if k and g is not None:
            total += float(g.double().pow(2).sum())
    return math.sqrt(total)


def term_gradient_norms(trainer: Trainer, idx: torch.Tensor) -> dict[str, float]:
    r"""How hard each term of the objective pulls on the retrieval path, relative to InfoNCE.

    On the pairs ``idx`` of the current epoch (the trainer's data, model, objective and
    memory bank as they are), computes the gradient of each weighted term with respect
    to the parameters the retrieval vectors depend on -- those that symmetric InfoNCE
    on the local similarities :math:`S` reaches -- and returns its norm relative to the
    norm of InfoNCE's gradient :math:`\nabla L_{\rm NCE}` at the run's logit scale:

    - ``grad_rel_<term>`` = :math:`\lVert\nabla (w\,L_{\rm term})\rVert/\lVert\nabla
      L_{\rm NCE}\rVert` for ``uniform`` (:math:`L_{\rm Opt}`), ``neighbor``
      (:math:`L_{\rm Nbi}`) and ``kl`` (:math:`L_{\rm KL}`); 0 when the weight is 0;
    - ``grad_rel_kappa`` = :math:`\lVert\nabla L_{\rm Wti}-\nabla L_{\rm NCE}\rVert/
      \lVert\nabla L_{\rm NCE}\rVert`, what the centrality weights :math:`e^{\kappa C}`
      change in the contrastive gradient (0 at :math:`\kappa=0`);
    - ``grad_infonce`` = :math:`\lVert\nabla L_{\rm NCE}\rVert` itself.

    Nothing is stepped or accumulated (``torch.autograd.grad`` only); the forward pass
    runs in float32 in training mode. NeighborRetr (``lin2025neighborretr``), Eq. 3-15;
    the terms are those of :class:`~hubrepro.losses.NeighborRetrLoss`.

    Parameters
    ----------
    trainer : Trainer
    idx : LongTensor
        Pair indices of the current epoch (at least 2).

    Returns
    -------
    dict of str to float
    """
    from hubrepro.losses import symmetric_infonce

    f = "term_gradient_norms"
    idx = V.as_tensor(idx, "idx", f).long()
    if idx.ndim != 1 or idx.numel() < 2:
        V.fail(f, "idx", "a vector of at least 2 pair indices", tuple(idx.shape))
    model, crit, cfg = trainer.model, trainer.criterion, trainer.cfg
    was = model.training
    # a forward pass in training mode updates BatchNorm's running statistics: restore them
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    model.train()
    try:
        q, g = trainer._inputs(*trainer.pairs.rows(idx, trainer.epoch))
        out = {k: v.float() for k, v in model(q, g).items()}
        bq, bg = trainer._bank_view()
        scale = model.logit_scale()
        terms = crit(
            out["query_local"], out["gallery_local"], out["query_global"],
            out["gallery_global"], scale, bank_query_local=bq, bank_gallery_local=bg,
            return_terms=True,
        )  # fmt: skip
        s = (
            F.normalize(out["query_local"], dim=-1)
            @ F.normalize(out["gallery_local"], dim=-1).T
        )
        reference = symmetric_infonce(s, scale)
        params = [p for p in model.parameters() if p.requires_grad]

        def grads(loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
            return torch.autograd.grad(
                loss, params, retain_graph=True, allow_unused=True
            )

        g_ref = grads(reference)
        keep = [gr is not None for gr in g_ref]
        ref_norm = _norm(g_ref, keep)
        res = {"grad_infonce": ref_norm}
        g_wti = grads(terms["wti"])
        diff = [
            None if a is None or b is None else a - b
            for a, b in zip(g_wti, g_ref, strict=True)
        ]
        res["grad_rel_kappa"] = _norm(diff, keep) / ref_norm if ref_norm else 0.0
        for term, weight_field in TERMS.items():
            w = float(getattr(cfg, weight_field)) if cfg.loss == "neighborretr" else 0.0
            t = terms[term]
            if w == 0 or not t.requires_grad:
                res[f"grad_rel_{term}"] = 0.0
                continue
            res[f"grad_rel_{term}"] = (
                _norm(grads(w * t), keep) / ref_norm if ref_norm else 0.0
            )
    finally:
        model.train(was)
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
    return res


class TermGradients:
    """An epoch hook: :func:`term_gradient_norms` on a fixed probe batch of pairs.

    Parameters
    ----------
    n_pairs : int or None
        Pairs in the probe batch (default: the run's batch size, capped at the data).
    seed : int, default 0
        Seed of the probe batch (a fixed draw of pair indices, the same every epoch; the
        caption drawn for each image changes with the epoch as in training).
    """

    def __init__(self, n_pairs: int | None = None, *, seed: int = 0) -> None:
        f = "TermGradients"
        self.n_pairs = (
            None if n_pairs is None else V.check_int(n_pairs, "n_pairs", f, low=2)
        )
        self.seed = V.check_int(seed, "seed", f, low=0)

    def __call__(self, trainer: Trainer) -> dict[str, float]:
        n = min(self.n_pairs or trainer.cfg.batch_size, trainer.pairs.n)
        gen = torch.Generator().manual_seed(self.seed)
        idx = torch.randperm(trainer.pairs.n, generator=gen)[:n]
        return term_gradient_norms(trainer, idx)
