"""Two CPU processes (gloo) equal one process on the same global batch.

Checks the loss and every gradient of one step with features all-gathered with
gradient, and a short :func:`hubrepro.training.train` run: the final weights and the
memory bank (pushed from gathered batches) agree with a one-process run and across
ranks.
"""

from __future__ import annotations

import dataclasses
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hubrepro.training import (
    TrainConfig,
    TrainData,
    build_loss,
    build_model,
    gather_with_grad,
    train,
)
from hubrepro.training._distributed import _average_gradients

WORLD = 2
CFG = TrainConfig(
    hidden_dim=16, embed_dim=8, global_dim=8, batch_size=16, mb_batch=2, num_neighbors=4,
    epochs=1, lr=3e-3, progress=False, device="cpu",
)  # fmt: skip


def _data():
    gen = torch.Generator().manual_seed(0)
    return TrainData(
        torch.randn(64, 6, generator=gen), torch.randn(64, 6, generator=gen)
    )


def _step(cfg, q, g, bank_q, bank_g):
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, TrainData(q, g))
    out = {k: gather_with_grad(v) for k, v in model(q, g).items()}
    loss = build_loss(cfg)(
        out["query_local"], out["gallery_local"], out["query_global"], out["gallery_global"],
        model.logit_scale(), bank_query_local=bank_q, bank_gallery_local=bank_g,
    )  # fmt: skip
    loss.backward()
    _average_gradients(model)
    return loss.detach(), {
        n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
    }


def _worker(rank, port, out_dir, compat):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        cfg = dataclasses.replace(CFG, compat=compat)
        data = _data()
        b = cfg.batch_size // WORLD
        bank = torch.Generator().manual_seed(1)
        bq, bg = torch.randn(20, 8, generator=bank), torch.randn(20, 8, generator=bank)
        sl = slice(rank * b, (rank + 1) * b)
        loss, grads = _step(
            cfg, data.train_query[:16][sl], data.train_gallery[:16][sl], bq, bg
        )
        res = train(cfg, data, stop_after_steps=3)
        torch.save(
            {
                "loss": loss,
                "grads": grads,
                "model": res.final_model.state_dict(),
                "bank": res.bank.state_dict(),
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("compat", ["fixed", "official"])
def test_two_gloo_processes_equal_one(tmp_path, compat):
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    mp.spawn(
        _worker, args=(_free_port(), str(tmp_path), compat), nprocs=WORLD, join=True
    )
    ranks = [
        torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)
    ]

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = dataclasses.replace(CFG, compat=compat)
        data = _data()
        bank = torch.Generator().manual_seed(1)
        bq, bg = torch.randn(20, 8, generator=bank), torch.randn(20, 8, generator=bank)
        loss, grads = _step(cfg, data.train_query[:16], data.train_gallery[:16], bq, bg)
        single = train(cfg, data, stop_after_steps=3)
    finally:
        torch.set_num_threads(n)

    for r in ranks:
        torch.testing.assert_close(r["loss"], loss, rtol=1e-5, atol=1e-6)
        assert r["grads"].keys() == grads.keys()
        for k in grads:
            torch.testing.assert_close(r["grads"][k], grads[k], rtol=1e-4, atol=1e-6)
        for k, v in single.final_model.state_dict().items():
            torch.testing.assert_close(r["model"][k], v, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(
            r["bank"]["indices"], single.bank.state_dict()["indices"]
        )
        for k, v in single.bank.state_dict()["features"].items():
            torch.testing.assert_close(
                r["bank"]["features"][k], v, rtol=1e-4, atol=1e-5
            )
    # the bank is the same on every rank
    assert torch.equal(ranks[0]["bank"]["indices"], ranks[1]["bank"]["indices"])
