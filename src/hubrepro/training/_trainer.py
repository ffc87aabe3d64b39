"""The trainer: a run's state, its named steps, and checkpoints that resume bit for bit."""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hubrepro import _validation as V
from hubrepro._compat import resolve_device
from hubrepro.config import to_params
from hubrepro.memory_bank import FIFOBank
from hubrepro.training import _rundir
from hubrepro.training._config import TrainConfig
from hubrepro.training._data import EpochPairs, TrainData
from hubrepro.training._distributed import _average_gradients, _dist, gather_with_grad
from hubrepro.training._evaluate import validation_metrics
from hubrepro.training._model import _lr_lambda, _optimizer, build_loss, build_model
from hubrepro.training._seed import _rng_state, _set_rng_state, seed_everything

# what every checkpoint (checkpoints/last.pt) holds
_STATE_KEYS = (
    "config",
    "model",
    "optimizer",
    "scheduler",
    "scaler",
    "bank",
    "rng",
    "step",
    "epoch",
    "pos",
    "history",
    "epoch_sums",
    "best_score",
    "best_epoch",
)


@dataclass
class TrainResult:
    """What :func:`~hubrepro.training.train` returns: the best model (by validation) and the history."""

    model: torch.nn.Module
    history: list[dict[str, Any]]
    best_epoch: int | None
    best_score: float | None
    run_dir: Path | None
    final_model: torch.nn.Module
    steps: int
    bank: FIFOBank | None = None


def _autocast(device: torch.device, enabled: bool) -> Any:
    if enabled:
        return torch.autocast(device_type=device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def _progress(total: int, initial: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return contextlib.nullcontext(None)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=False)


def _metrics_csv(history: list[dict[str, Any]]) -> str:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    return buf.getvalue()


def _config_json(cfg: TrainConfig) -> dict[str, Any]:
    # the config as it reads back from config.json (tuples become lists, etc.)
    return json.loads(json.dumps(to_params(cfg)))


class Trainer:
    r"""One training run: model, objective, optimiser, memory bank and their state.

    Implements the training procedure of NeighborRetr (``lin2025neighborretr``; the
    released ``NeighborRetr/training/trainer.py`` and ``utils/memory_bank.py`` of
    ``zzezze/NeighborRetr``, commit 04112ee) with the project's choices of the table
    in :ref:`sec-neighborretr` (validation-based model selection, reshuffled epochs,
    random bank fill). :func:`~hubrepro.training.train` is ``Trainer(...).fit()``.

    Parameters
    ----------
    cfg : TrainConfig
        The run's configuration (checked when it was built).
    data : TrainData
        Training pairs and validation split (:func:`~hubrepro.training.make_train_data`,
        :func:`~hubrepro.training.make_world_train_data`).
    model : torch.nn.Module or None
        A dual encoder to fine-tune instead of the model ``cfg.model`` builds (a copy is
        trained), e.g. :class:`~hubrepro.heads.OpenCLIPDualEncoder`: it must provide
        ``encode_query(x)`` and ``encode_gallery(x)`` returning ``(local, global)``,
        ``forward(query, gallery)`` returning the dict of
        :class:`~hubrepro.heads.DualEncoderHeads`, and ``logit_scale()``.
    run_dir : str or Path or None
        Where :meth:`open` and the steps write the config, metrics and checkpoints;
        ``None`` keeps everything in memory.
    epoch_hooks : sequence of callables, optional
        Called as ``hook(trainer)`` at the end of every epoch, after the last step and
        before the bank is cleared; each returns a mapping of numbers that is added to
        the epoch's history row (e.g. :class:`~hubrepro.training.RetrievalCurve`,
        :class:`~hubrepro.training.TermGradients`). A hook must leave the run as it
        found it (no optimiser step, no draw from the global random state), so that a
        run with hooks trains exactly as one without; the hooks are not part of a
        checkpoint: give them again to the trainer of a resumed run.

    Notes
    -----
    Building a trainer seeds everything (:func:`seed_everything`) and initialises the
    model; it reads and writes no file. The named steps, which :meth:`fit` runs in
    order, are

    - :meth:`begin_epoch` -- the epoch's pair order and, at its start, :meth:`fill_bank`
      (the bank filled with ``mb_batch`` batches encoded without gradient);
    - :meth:`step` -- one optimiser step on a global batch of pairs (all-gathered
      features under ``torchrun``), then the batch pushed to the bank;
    - :meth:`end_epoch` -- the epoch hooks, the bank cleared, validation, ``best.pt``
      when the score improves, the history row, ``metrics.*`` and a checkpoint.

    The memory bank is filled and pushed only when the objective reads it (NeighborRetr
    with ``w_neighbor > 0``); for InfoNCE and the NeighborRetr ablation without
    :math:`L_{\rm Nbi}` it stays empty, which changes no number (the bank is encoded
    without gradient and draws from its own generator).

    :meth:`state_dict` / :meth:`load_state_dict` hold everything a resume needs
    (model, optimiser, scheduler, AMP scaler, RNG states, bank, epoch, position in the
    epoch, history, best model), so a resumed run is bit-identical to an uninterrupted
    one on CPU. Mixed precision (float16 autocast with gradient scaling) is used on
    CUDA when ``cfg.amp``.

    Examples
    --------
    >>> import torch
    >>> from hubrepro.training import TrainConfig, TrainData, Trainer
    >>> cfg = TrainConfig(hidden_dim=8, embed_dim=4, global_dim=4, batch_size=8,
    ...                   mb_batch=1, num_neighbors=2, epochs=1, device="cpu",
    ...                   progress=False)
    >>> x = torch.randn(16, 6)
    >>> trainer = Trainer(cfg, TrainData(x, x + 0.1))
    >>> result = trainer.fit()
    >>> result.steps, len(result.history)
    (2, 1)
    """

    def __init__(
        self,
        cfg: TrainConfig,
        data: TrainData,
        *,
        model: torch.nn.Module | None = None,
        run_dir: str | Path | None = None,
        epoch_hooks: Sequence[Callable[[Trainer], Mapping[str, Any]]] = (),
    ) -> None:
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
        self.cfg, self.data = cfg, data
        self.epoch_hooks = tuple(epoch_hooks)
        for hook in self.epoch_hooks:
            if not callable(hook):
                V.fail(
                    f,
                    "epoch_hooks",
                    "callables hook(trainer) -> mapping",
                    type(hook).__name__,
                    exc=TypeError,
                )
        self.rank, self.world = _dist()
        if cfg.batch_size % self.world:
            V.fail(
                f,
                "batch_size",
                f"divisible by the world size {self.world}",
                cfg.batch_size,
            )
        self.pairs = EpochPairs(data, cfg)
        self.n_batches = self.pairs.n // cfg.batch_size
        if self.n_batches < 1:
            V.fail(
                f,
                "data",
                f"at least one batch of {cfg.batch_size} training pairs",
                f"{self.pairs.n} pairs",
            )
        self.device = resolve_device(cfg.device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        seed_everything(cfg.seed, deterministic=cfg.deterministic)
        if model is None:
            model = build_model(cfg, data)
        else:
            model = copy.deepcopy(model)  # the caller's model is never modified
        self.model = model.to(self.device)
        self._initial = copy.deepcopy(self.model)
        self.criterion = build_loss(cfg)
        self.optimizer = _optimizer(self.model, cfg)
        total = cfg.epochs * self.n_batches
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_lambda(total, int(cfg.warmup_proportion * total))
        )
        self.use_amp = bool(cfg.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.bank = FIFOBank(cfg.mb_batch * cfg.batch_size)
        # only L_Nbi reads the bank: other objectives skip encoding and pushing it
        self.uses_bank = cfg.loss == "neighborretr" and cfg.w_neighbor > 0
        self.history: list[dict[str, Any]] = []
        self.step_count = self.epoch = self.pos = 0
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.epoch_sums: dict[str, float] = {}
        self._order: torch.Tensor | None = None
        self._t0 = 0.0

    # ------------------------------------------------------------------- files
    @property
    def _writes(self) -> bool:
        return self.run_dir is not None and self.rank == 0

    def open(self, *, resume: bool = False, overwrite: bool = False) -> Trainer:
        """Start the run folder, or restore the run from it; return ``self``.

        A new run clears any old run there (``overwrite``) and writes
        ``config.json``; ``resume`` loads ``checkpoints/last.pt`` and ``best.pt``
        (a run stopped before its first checkpoint starts from its beginning). Bad
        states of the folder are refused with a one-line error before anything is
        written (the states are described in the notes of
        :func:`~hubrepro.training.train`).
        """
        f = "train"
        if self.run_dir is None:
            if resume:
                V.fail(f, "run_dir", "given when resume=True", None)
            return self
        rdir = self.run_dir
        mode = _rundir.prepare(rdir, resume=resume, overwrite=overwrite)
        if mode != "new" and _rundir.read_config(rdir) != _config_json(self.cfg):
            V.fail(
                f,
                "cfg",
                "the configuration the run was started with",
                "a different one",
                "Resume with the run's own config.json.",
            )
        if mode == "resume":
            state = _rundir.load(rdir / _rundir.LAST, self.device, _STATE_KEYS)
            best = None
            if (rdir / _rundir.BEST).exists():
                best = _rundir.load(rdir / _rundir.BEST, self.device, ("model",))
            state["best_model"] = None if best is None else best["model"]
            self.load_state_dict(state)
        elif self.rank == 0:
            if mode == "new":
                _rundir.open_new(rdir, _config_json(self.cfg))
            else:
                _rundir.open_restart(rdir)
        return self

    def save_checkpoint(self) -> None:
        """Write ``checkpoints/last.pt`` (the state without the best model, in ``best.pt``)."""
        if not self._writes:
            return
        state = self._state()
        state.pop("best_model")
        _rundir.save(self.run_dir / _rundir.LAST, state)  # type: ignore[operator]

    def _save_best(self) -> None:
        if self._writes:
            _rundir.save(
                self.run_dir / _rundir.BEST,  # type: ignore[operator]
                {
                    "model": self.best_state,
                    "epoch": self.best_epoch,
                    "score": self.best_score,
                },
            )

    def _write_metrics(self) -> None:
        if self._writes:
            rdir = self.run_dir
            lines = "".join(json.dumps(row) + "\n" for row in self.history)
            _rundir.write_text(rdir / "metrics.jsonl", lines)  # type: ignore[operator]
            _rundir.write_text(rdir / "metrics.csv", _metrics_csv(self.history))  # type: ignore[operator]

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs (tensors, numbers and JSON strings), as a copy.

        The tensors are copies, so training on afterwards leaves the snapshot as it
        was (``torch``'s own ``state_dict`` methods return references).
        """
        return copy.deepcopy(self._state())

    def _state(self) -> dict[str, Any]:
        # references to the live tensors: written to disk at once, or copied
        return {
            "config": _config_json(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "bank": self.bank.state_dict(),
            "rng": _rng_state(),
            "step": self.step_count,
            "epoch": self.epoch,
            "pos": self.pos,
            "history": json.dumps(self.history),
            "epoch_sums": json.dumps(dict(self.epoch_sums if self.pos else {})),
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_model": self.best_state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (of a run with the same config)."""
        if state["config"] != _config_json(self.cfg):
            V.fail(
                "train",
                "cfg",
                "the configuration the run was started with",
                "a different one",
                "Resume with the run's own config.json.",
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.bank.load_state_dict(state["bank"])
        self.bank.to(self.device)
        self.step_count = int(state["step"])
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self.history = json.loads(state["history"])
        self.epoch_sums = json.loads(state["epoch_sums"])
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        self.best_state = state.get("best_model")
        _set_rng_state(state["rng"])

    # ------------------------------------------------------------------ steps
    def _inputs(
        self, q_rows: torch.Tensor, g_rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.data
        return d.train_query[q_rows].to(self.device), d.train_gallery[g_rows].to(
            self.device
        )

    def _bank_rows(
        self,
        rows: tuple[torch.Tensor, torch.Tensor],
        q_local: torch.Tensor | None = None,
        g_local: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        if self.cfg.bank_features == "raw":
            q, g = self._inputs(*rows)
            return {"query": q, "gallery": g}
        if q_local is None:
            q, g = self._inputs(*rows)
            with torch.no_grad(), _autocast(self.device, self.use_amp):
                q_local = self.model.encode_query(q)[0].float()
                g_local = self.model.encode_gallery(g)[0].float()
        return {"query": q_local, "gallery": g_local}  # type: ignore[dict-item]

    def _bank_view(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        bq, bg = self.bank.get("query"), self.bank.get("gallery")
        if self.cfg.bank_features == "raw" and bq is not None:
            with torch.no_grad():
                bq = self.model.encode_query(bq)[0].float()
                bg = self.model.encode_gallery(bg)[0].float()  # type: ignore[arg-type]
        return bq, bg

    def _push(self, idx: torch.Tensor, **local: torch.Tensor | None) -> None:
        # the bank's row indices are the pairs' gallery rows (the dataset items)
        rows = self.pairs.rows(idx, self.epoch)
        self.bank.push_front(self._bank_rows(rows, **local), rows[1].to(self.device))

    def _bank_batches(self) -> list[torch.Tensor]:
        cfg, order = self.cfg, self._order
        b, m = cfg.batch_size, min(cfg.mb_batch, self.n_batches)
        if cfg.bank_fill == "first":
            pick = range(m)
        else:
            gen = torch.Generator().manual_seed(cfg.seed * 7_000_003 + self.epoch + 1)
            pick = torch.randperm(self.n_batches, generator=gen)[:m].tolist()
        return [order[i * b : (i + 1) * b] for i in pick]  # type: ignore[index]

    def fill_bank(self) -> None:
        """Clear the bank and fill it with ``mb_batch`` batches encoded without gradient.

        The batches are the epoch's first (``bank_fill="first"``) or a seeded random
        sample of its batches; under ``per_rank_bank`` each rank keeps its slice.
        """
        local_b = self.cfg.batch_size // self.world
        was = self.model.training
        self.model.eval()
        self.bank.clear()
        for idx in self._bank_batches():
            mine = (
                idx
                if self.cfg.per_rank_bank is False
                else idx[self.rank * local_b : (self.rank + 1) * local_b]
            )
            self._push(mine)
        self.model.train(was)

    def begin_epoch(self) -> None:
        """Draw the epoch's pair order; at the epoch's start, fill the bank."""
        self._order = self.pairs.order(self.epoch)
        self.model.train()
        if self.pos == 0:
            if self.uses_bank:
                self.fill_bank()
            self.epoch_sums = {}
        self._t0 = time.perf_counter()

    def batch(self, pos: int) -> torch.Tensor:
        """The pair indices of batch ``pos`` of the current epoch (global batch)."""
        b = self.cfg.batch_size
        return self._order[pos * b : (pos + 1) * b]  # type: ignore[index]

    def step(self, idx: torch.Tensor) -> dict[str, float]:
        """One optimiser step on the global batch of pairs ``idx``; return the loss terms.

        Each rank encodes its slice; features are all-gathered with gradient, the loss
        is computed on the global batch against the bank, gradients are averaged
        (clipped, scaled under AMP), and the batch is pushed to the front of the bank.
        """
        cfg, model = self.cfg, self.model
        local_b = cfg.batch_size // self.world
        lo, hi = self.rank * local_b, (self.rank + 1) * local_b
        mine = idx[lo:hi]
        q, g = self._inputs(*self.pairs.rows(mine, self.epoch))
        with _autocast(self.device, self.use_amp):
            out = model(q, g)
        out = {k: gather_with_grad(v.float()) for k, v in out.items()}
        bq, bg = self._bank_view()
        terms = self.criterion(
            out["query_local"], out["gallery_local"], out["query_global"], out["gallery_global"],
            model.logit_scale(), bank_query_local=bq, bank_gallery_local=bg, return_terms=True,
        )  # fmt: skip
        opt, scaler = self.optimizer, self.scaler
        opt.zero_grad(set_to_none=True)
        scaler.scale(terms["loss"]).backward()
        _average_gradients(model)
        if cfg.grad_clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        self.scheduler.step()
        ql, gl = out["query_local"].detach(), out["gallery_local"].detach()
        # push the gathered batch (every rank the same) or, as released, the rank's own
        if not self.uses_bank:
            pass
        elif cfg.per_rank_bank:
            self._push(mine, q_local=ql[lo:hi], g_local=gl[lo:hi])
        else:
            self._push(idx, q_local=ql, g_local=gl)
        values = {k: float(v.detach()) for k, v in terms.items()}
        for k, v in values.items():
            self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v
        self.step_count += 1
        self.pos += 1
        return values

    def end_epoch(self) -> dict[str, Any]:
        """Close the epoch: run the hooks, clear the bank, validate, keep the best model, checkpoint.

        Returns the epoch's history row (``epoch``, ``step``, ``lr``, ``logit_scale``,
        ``train_<term>`` means, ``seconds``, the hooks' values and ``val_<metric>``).
        """
        cfg, data = self.cfg, self.data
        row: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "step": self.step_count,
            "lr": self.scheduler.get_last_lr()[0],
            "logit_scale": float(self.model.logit_scale().detach()),
        }
        row.update(
            {f"train_{k}": v / self.n_batches for k, v in self.epoch_sums.items()}
        )
        row["seconds"] = time.perf_counter() - self._t0
        for hook in self.epoch_hooks:
            row.update({str(k): float(v) for k, v in dict(hook(self)).items()})
        self.bank.clear()
        if data.val_query is not None:
            val = validation_metrics(
                self.model,
                data.val_query,
                data.val_gallery,  # type: ignore[arg-type]
                data.val_query_to_gallery,
                k=cfg.eval_k,
                batch_size=cfg.eval_batch_size,
            )
            row.update({f"val_{k}": v for k, v in val.items()})
            score = val[cfg.select_metric]
            if self.best_score is None or score > self.best_score:
                self.best_score, self.best_epoch = float(score), self.epoch + 1
                self.best_state = {
                    k: v.detach().clone() for k, v in self.model.state_dict().items()
                }
                self._save_best()
        self.history.append(row)
        self.epoch += 1
        self.pos = 0
        self._write_metrics()
        self.save_checkpoint()
        return row

    # -------------------------------------------------------------------- loop
    def fit(self, *, stop_after_steps: int | None = None) -> TrainResult:
        """Run the remaining epochs (from the restored position); return the result.

        Parameters
        ----------
        stop_after_steps : int or None
            Stop (after checkpointing, if there is a run folder) once this many
            optimiser steps have been taken in total -- to simulate an interruption.
        """
        cfg = self.cfg
        stopped = False
        while self.epoch < cfg.epochs and not stopped:
            self.begin_epoch()
            with _progress(
                self.n_batches,
                self.pos,
                cfg.progress and self.rank == 0,
                f"epoch {self.epoch + 1}/{cfg.epochs}",
            ) as bar:
                while self.pos < self.n_batches:
                    terms = self.step(self.batch(self.pos))
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{terms['loss']:.3f}")
                    more = self.pos < self.n_batches
                    if (
                        cfg.checkpoint_every
                        and self.step_count % cfg.checkpoint_every == 0
                        and more
                    ):
                        self.save_checkpoint()
                    if (
                        stop_after_steps is not None
                        and self.step_count >= stop_after_steps
                        and more
                    ):
                        stopped = True
                        break
            if stopped:
                break
            self.end_epoch()
            if stop_after_steps is not None and self.step_count >= stop_after_steps:
                stopped = True
        if stopped:
            self.save_checkpoint()
        return self.result()

    def result(self) -> TrainResult:
        """The current :class:`TrainResult` (best model by validation, final model)."""
        best = self.model
        if self.best_state is not None:
            best = copy.deepcopy(self._initial)
            best.load_state_dict(self.best_state)
        return TrainResult(
            model=best,
            history=self.history,
            best_epoch=self.best_epoch,
            best_score=self.best_score,
            run_dir=self.run_dir,
            final_model=self.model,
            steps=self.step_count,
            bank=self.bank,
        )
