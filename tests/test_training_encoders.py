"""The trainer trains the dual encoder (text and image towers) end to end on shapes-world:
one query per image per epoch, both objectives, exact resume from the config alone, the
CLI, and AMP on CUDA (marked gpu)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml

from hubrepro.cli import main
from hubrepro.datasets import make_shapes_world
from hubrepro.encoders import DualEncoder
from hubrepro.training import (
    EpochPairs,
    TrainConfig,
    TrainData,
    Trainer,
    evaluate,
    load_train_data,
    make_world_train_data,
    resume,
    train,
    world_eval_data,
)

pytestmark = pytest.mark.usefixtures("one_thread")

WORLD = {
    "n_train": 48, "n_bank": 0, "n_val": 12, "n_test": 12, "captions_per_image": 3,
    "image_size": 16,
}  # fmt: skip
ENC = {"channels": [8, 16], "text_width": 16, "text_heads": 2, "text_layers": 1}
CFG = TrainConfig(
    dataset="shapes-world", dataset_options={k: v for k, v in WORLD.items() if k != "n_val"},
    n_val=WORLD["n_val"], model="dual-encoder", encoder=ENC, embed_dim=8, batch_size=8,
    mb_batch=2, num_neighbors=3, epochs=2, lr=3e-3, device="cpu", progress=False,
    eval_k=5, checkpoint_every=4,
)  # fmt: skip


@pytest.fixture(scope="module")
def world():
    return make_shapes_world(seed=0, **WORLD)


def _state_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_world_train_data_keeps_raw_inputs_and_caption_map(world):
    data = make_world_train_data(world)
    assert (
        data.train_query.dtype == torch.long and data.train_gallery.dtype == torch.uint8
    )
    assert data.train_query.shape[0] == 3 * data.train_gallery.shape[0]
    assert torch.equal(data.train_query_to_gallery, world.train.caption_to_image)
    assert data.val_query.shape[0] == 36 and data.meta["vocab_size"] == len(world.vocab)
    # the config's data path builds the same data (what resume relies on)
    again = load_train_data(CFG)
    for name in ("train_query", "train_gallery", "val_query", "val_gallery"):
        assert torch.equal(getattr(again, name), getattr(data, name))


def test_one_caption_per_image_per_epoch(world):
    data = make_world_train_data(world)
    q2g = data.train_query_to_gallery
    pairs = EpochPairs(data, CFG)
    assert pairs.n == world.train.n_images
    picks = []
    for epoch in range(3):
        order = pairs.order(epoch)
        q, g = pairs.rows(order, epoch)
        # every image once, with one of its own captions
        assert sorted(g.tolist()) == list(range(world.train.n_images))
        assert torch.equal(q2g[q], g)
        # hence no batch holds two captions of one image (no false negatives)
        for b in range(0, len(order), CFG.batch_size):
            gb = g[b : b + CFG.batch_size]
            assert gb.unique().numel() == gb.numel()
        picks.append(pairs.rows(torch.arange(pairs.n), epoch)[0])
    # the caption drawn for an image changes between epochs, and every caption is used
    assert not torch.equal(picks[0], picks[1])
    assert len(set(torch.cat(picks).tolist())) > world.train.n_images
    every = EpochPairs(data, dataclasses.replace(CFG, pair_sampling="all"))
    assert every.n == data.train_query.shape[0]
    q, g = every.rows(every.order(0), 0)
    assert sorted(q.tolist()) == list(range(every.n)) and torch.equal(q2g[q], g)


@pytest.mark.parametrize("loss", ["infonce", "neighborretr"])
def test_dual_encoder_trains_end_to_end(world, loss):
    cfg = dataclasses.replace(CFG, loss=loss, epochs=3)
    data = make_world_train_data(world)
    trainer = Trainer(cfg, data)
    assert isinstance(trainer.model, DualEncoder)
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    res = trainer.fit()
    assert res.steps == 3 * (world.train.n_images // cfg.batch_size)
    # both towers learn, and the training loss falls
    moved = {
        k.split(".")[0]
        for k, v in res.final_model.state_dict().items()
        if not torch.equal(v, start[k])
    }
    assert {"text", "image"} <= moved
    losses = [row["train_loss"] for row in res.history]
    assert losses[-1] < losses[0]
    terms = {"train_wti", "train_uniform", "train_neighbor", "train_kl"}
    assert terms <= set(res.history[0])
    if loss == "neighborretr":
        assert all(res.history[0][t] > 0 for t in terms)
    else:
        assert res.history[0]["train_neighbor"] == 0.0
    # the bank holds encoded captions and images, indexed by image
    assert res.bank is not None and len(res.bank) == 0  # cleared at the epoch end
    metrics = evaluate(res.model, world_eval_data(world), k=5)
    assert 0 <= metrics["q2g_R@1"] <= 100 and "q2g_bad_hub_fraction" in metrics
    assert all(v == v for v in metrics.values())  # no NaN


@pytest.mark.parametrize("stop", [5, 6])  # mid-epoch, and exactly at the epoch end
def test_resume_with_encoders_is_bit_identical(tmp_path, world, stop):
    data = make_world_train_data(world)
    straight = train(CFG, data, run_dir=tmp_path / "a")
    part = train(CFG, data, run_dir=tmp_path / "b", stop_after_steps=stop)
    assert part.steps == stop
    # from the run folder alone: the config rebuilds the world and the dual encoder
    resumed = resume(tmp_path / "b")
    assert isinstance(resumed.final_model, DualEncoder)
    assert resumed.steps == straight.steps == 12
    assert _state_equal(straight.final_model, resumed.final_model)
    assert _state_equal(straight.model, resumed.model)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in straight.history]
    assert strip == [
        {k: v for k, v in r.items() if k != "seconds"} for r in resumed.history
    ]


def test_trainer_state_dict_round_trip_in_memory(world):
    # the named steps and state_dict/load_state_dict, without a run folder
    data = make_world_train_data(world)
    a = Trainer(CFG, data)
    a.begin_epoch()
    for pos in range(3):
        a.step(a.batch(pos))
    state = a.state_dict()
    b = Trainer(CFG, data)
    b.load_state_dict(state)
    assert b.pos == 3 and b.step_count == 3 and len(b.bank) == len(a.bank)
    ra, rb = a.fit(), b.fit()
    assert _state_equal(ra.final_model, rb.final_model)
    with pytest.raises(ValueError, match="configuration"):
        Trainer(dataclasses.replace(CFG, lr=0.5), data).load_state_dict(state)


def test_model_kind_and_encoder_options_are_checked(world):
    with pytest.raises(ValueError, match="model"):
        TrainConfig(model="transformer")
    with pytest.raises(ValueError, match="encoder"):
        TrainConfig(encoder={"channels": [8]})  # heads take no encoder options
    with pytest.raises(ValueError, match="embed_dim"):
        TrainConfig(model="dual-encoder", encoder={"embed_dim": 4})
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig(model="dual-encoder", encoder={"widht": 4})
    data = make_world_train_data(world)
    with pytest.raises(ValueError, match="float matrix"):
        Trainer(dataclasses.replace(CFG, model="heads", encoder={}), data)
    no_vocab = TrainData(data.train_query, data.train_gallery,
                         train_query_to_gallery=data.train_query_to_gallery)  # fmt: skip
    with pytest.raises(ValueError, match="vocab_size"):
        Trainer(CFG, no_vocab)
    with pytest.raises(ValueError, match="image_size"):
        Trainer(dataclasses.replace(CFG, encoder={**ENC, "image_size": 32}), data)


def test_cli_trains_the_dual_encoder_on_shapes_world(tmp_path, capsys):
    params = {k: v for k, v in json.loads(json.dumps(CFG.__dict__)).items()}
    params.update(epochs=1, checkpoint_every=0)
    cfg = tmp_path / "world.yaml"
    cfg.write_text(yaml.safe_dump(params))
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--run-dir", str(run)]) == 0
    assert "test Rsum" in capsys.readouterr().out
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert {"Rsum", "q2g_R@1", "gallery_skewness", "q2g_bad_hub_fraction"} <= set(
        metrics
    )
    assert json.loads((run / "config.json").read_text())["model"] == "dual-encoder"


@pytest.mark.gpu
def test_amp_training_on_cuda(world):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cfg = dataclasses.replace(CFG, device="cuda", amp=True, epochs=1)
    trainer = Trainer(cfg, make_world_train_data(world))
    assert trainer.use_amp and trainer.scaler.is_enabled()
    res = trainer.fit()
    assert next(res.final_model.parameters()).device.type == "cuda"
    assert all(torch.isfinite(torch.tensor(v)) for v in res.history[0].values())
