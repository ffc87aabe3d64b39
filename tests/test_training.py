"""Trainer: exact resume, run-dir safety, validation-based selection, data split, CLI."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch
import yaml

from hubrepro.cli import main
from hubrepro.config import from_params
from hubrepro.experiments.neighborretr import CONDITIONS
from hubrepro.training import (
    TrainConfig,
    TrainData,
    make_train_data,
    seed_everything,
    train,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n=96, n_val=40, d=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n + n_val, d, generator=gen)
    rot = torch.linalg.qr(torch.randn(d, d, generator=gen))[0]
    q = z + 0.1 * torch.randn(n + n_val, d, generator=gen)
    g = z @ rot + 0.1 * torch.randn(n + n_val, d, generator=gen)
    return TrainData(q[:n], g[:n], q[n:], g[n:], None)


CFG = TrainConfig(
    hidden_dim=16, embed_dim=8, global_dim=8, batch_size=16, mb_batch=2, num_neighbors=4,
    epochs=2, lr=3e-3, progress=False, device="cpu", checkpoint_every=4, eval_k=5,
)  # fmt: skip


def _state_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _strip(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.mark.parametrize("stop", [5, 6])  # mid-epoch, and exactly at the epoch end
@pytest.mark.parametrize("compat", ["fixed", "official"])
def test_resume_is_bit_identical(tmp_path, stop, compat):
    cfg = dataclasses.replace(CFG, compat=compat)
    data = _data()
    straight = train(cfg, data, run_dir=tmp_path / "a")
    part = train(cfg, data, run_dir=tmp_path / "b", stop_after_steps=stop)
    assert part.steps == stop
    resumed = train(cfg, data, run_dir=tmp_path / "b", resume=True)
    assert resumed.steps == straight.steps == 12
    assert _state_equal(straight.final_model, resumed.final_model)
    assert _state_equal(straight.model, resumed.model)
    assert _strip(straight.history) == _strip(resumed.history)
    assert (tmp_path / "b" / "metrics.csv").read_text().count(
        "\n"
    ) == 3  # header + 2 epochs


def test_same_seed_same_result_and_inputs_untouched():
    data = _data()
    before = [
        t.clone()
        for t in (
            data.train_query,
            data.train_gallery,
            data.val_query,
            data.val_gallery,
        )
    ]
    a = train(dataclasses.replace(CFG, epochs=1), data)
    b = train(dataclasses.replace(CFG, epochs=1), data)
    assert _state_equal(a.final_model, b.final_model)
    after = (data.train_query, data.train_gallery, data.val_query, data.val_gallery)
    assert all(torch.equal(x, y) for x, y in zip(before, after, strict=True))
    c = train(dataclasses.replace(CFG, epochs=1, seed=7), data)
    assert not _state_equal(a.final_model, c.final_model)


def test_selection_on_validation_and_learning(tmp_path):
    cfg = dataclasses.replace(
        CFG, epochs=4, batch_size=32, lr=1e-2, **CONDITIONS["infonce"]
    )
    res = train(cfg, _data(n=512), run_dir=tmp_path / "run")
    scores = [row["val_Rsum"] for row in res.history]
    assert res.best_epoch == 1 + max(range(len(scores)), key=scores.__getitem__)
    assert res.best_score == max(scores)
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert best["epoch"] == res.best_epoch
    assert all(
        torch.equal(best["model"][k], v) for k, v in res.model.state_dict().items()
    )
    # an easy aligned problem: far above chance (R@1 = 2.5 % for 40 items)
    assert max(row["val_q2g_R@1"] for row in res.history) > 60
    cfg_back = from_params(
        TrainConfig, json.loads((tmp_path / "run" / "config.json").read_text())
    )
    assert cfg_back == cfg


def test_run_dir_is_never_overwritten(tmp_path):
    data = _data()
    cfg = dataclasses.replace(CFG, epochs=1)
    train(cfg, data, run_dir=tmp_path / "r")
    with pytest.raises(FileExistsError, match="overwrite"):
        train(cfg, data, run_dir=tmp_path / "r")
    train(cfg, data, run_dir=tmp_path / "r", overwrite=True)
    with pytest.raises(FileNotFoundError, match="last.pt"):
        train(cfg, data, run_dir=tmp_path / "empty", resume=True)
    with pytest.raises(ValueError, match="configuration"):
        train(
            dataclasses.replace(cfg, lr=0.5), data, run_dir=tmp_path / "r", resume=True
        )


def test_bad_config_and_data():
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="triplet")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=2)
    with pytest.raises(ValueError, match="unknown"):
        from_params(TrainConfig, {"kapa": 1.0})
    with pytest.raises(ValueError, match="at least one batch"):
        train(CFG, TrainData(torch.randn(8, 4), torch.randn(8, 4)))
    with pytest.raises(ValueError, match="aligned"):
        TrainData(torch.randn(8, 4), torch.randn(7, 4))
    with pytest.raises(TypeError, match="TrainData"):
        train(CFG, (torch.randn(8, 4), torch.randn(8, 4)))


def test_make_train_data_holds_out_whole_gallery_items():
    # 3 captions per gallery item; val items and all their captions leave the training set
    n_g, per = 30, 3
    b2g = torch.arange(n_g).repeat_interleave(per)
    bg = torch.randn(n_g, 4)
    bq = bg[b2g] + 0.01
    paired = SimpleNamespace(bank_query=bq, bank_gallery=bg, bank_query_to_gallery=b2g)
    td = make_train_data(paired, n_val=10, seed=1)
    assert td.train_query.shape[0] == (n_g - 10) * per and td.val_gallery.shape[0] == 10
    assert td.val_query.shape[0] == 10 * per
    # every validation query matches its validation gallery item
    torch.testing.assert_close(
        td.val_query - 0.01, td.val_gallery[td.val_query_to_gallery]
    )
    train_rows = {tuple(r.tolist()) for r in td.train_gallery}
    assert not any(tuple(r.tolist()) in train_rows for r in td.val_gallery)
    with pytest.raises(ValueError, match="bank"):
        make_train_data(SimpleNamespace(bank_query=None, bank_gallery=None), n_val=1)


def test_seed_everything_rejects_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


# --------------------------------------------------------------------------- CLI


def _write_config(tmp_path, **extra):
    cfg = {
        "dataset": "synthetic",
        "dataset_options": {"n_gallery": 60, "n_bank_gallery": 200, "dim": 16},
        "n_val": 40, "hidden_dim": 16, "embed_dim": 8, "global_dim": 8, "batch_size": 32,
        "mb_batch": 2, "num_neighbors": 4, "epochs": 1, "device": "cpu", **extra,
    }  # fmt: skip
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_cli_train_then_resume(tmp_path, capsys):
    cfg = _write_config(tmp_path)
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                str(cfg),
                "--run-dir",
                str(run),
                "--set",
                "kappa=0.1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "test Rsum" in capsys.readouterr().out
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert {"Rsum", "q2g_R@1", "gallery_skewness", "q2g_bad_hub_fraction"} <= set(
        metrics
    )
    assert json.loads((run / "config.json").read_text())["kappa"] == 0.1
    assert main(["train", "--resume", str(run)]) == 0
    # the same run dir again without --overwrite is refused with a one-line error
    assert main(["train", "--config", str(cfg), "--run-dir", str(run)]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--config", "missing.yaml", "--run-dir", "x"], "existing YAML file"),
        (["--config", "{cfg}", "--run-dir", "{tmp}/r", "--set", "kappa"], "KEY=VALUE"),
        (
            ["--config", "{cfg}", "--run-dir", "{tmp}/r", "--set", "kapa=1"],
            "unknown key",
        ),
        (
            ["--config", "{cfg}", "--run-dir", "{tmp}/r", "--set", "epochs=two"],
            "epochs",
        ),
        (["--config", "{cfg}"], "run_dir"),
        (["--resume", "{tmp}/nothing"], "config.json"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, argv, match):
    cfg = _write_config(tmp_path)
    argv = [a.format(cfg=cfg, tmp=tmp_path) for a in argv]
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "Traceback" not in err and err.count("\n") == 0


@pytest.mark.parametrize(
    "options",
    [{"bank_features": "raw"}, {"bank_fill": "first", "fixed_epoch_order": True}],
)
def test_bank_and_order_options_resume_exactly(tmp_path, options):
    cfg = dataclasses.replace(CFG, **options)
    data = _data()
    straight = train(cfg, data, run_dir=tmp_path / "a")
    train(cfg, data, run_dir=tmp_path / "b", stop_after_steps=7)
    resumed = train(cfg, data, run_dir=tmp_path / "b", resume=True)
    assert _state_equal(straight.final_model, resumed.final_model)
    # the option changes training (else the flag would be dead)
    assert not _state_equal(straight.final_model, train(CFG, data).final_model)


def test_bank_holds_the_latest_batches_in_fifo_order():
    cfg = dataclasses.replace(CFG, epochs=1)
    data = _data()
    res = train(cfg, data, stop_after_steps=4)
    order = torch.randperm(
        96, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003)
    )
    # the last pushed batch (step 4) is at the front; capacity mb_batch * batch_size
    assert len(res.bank) == cfg.mb_batch * cfg.batch_size
    assert res.bank.indices[:16].tolist() == order[48:64].tolist()
    assert res.bank.indices[16:32].tolist() == order[32:48].tolist()


# ------------------------------------------- run folders: nothing lost, nothing stuck

_CHILD = r"""
import io, os, pathlib, signal, sys
import torch
sys.path.insert(0, {tests!r})
from test_training import CFG, _data
from hubrepro.training import train
import dataclasses

def die():
    os.kill(os.getpid(), signal.SIGKILL)

hook, run_dir = sys.argv[1], pathlib.Path(sys.argv[2]).resolve()
if hook == "mid-best":
    # a kill in the middle of writing best.pt: half the bytes are out, then SIGKILL
    real = torch.save
    def target(f):
        if hasattr(f, "fileno"):  # an open file: the path behind its descriptor
            return os.readlink(f"/proc/self/fd/{{f.fileno()}}")
        return str(f)
    def save(obj, f, *args, **kwargs):
        if "best.pt" in target(f):
            buf = io.BytesIO()
            real(obj, buf, *args, **kwargs)
            half = buf.getvalue()[: len(buf.getvalue()) // 2]
            if hasattr(f, "write"):
                f.write(half)
                f.flush()
            else:
                pathlib.Path(f).write_bytes(half)
            die()
        return real(obj, f, *args, **kwargs)
    torch.save = save
elif hook == "config-created":
    # a kill right after the file that will hold config.json is created, empty
    real_os_open, real_io_open = os.open, io.open
    def os_open(path, flags, *args, **kwargs):
        fd = real_os_open(path, flags, *args, **kwargs)
        if "config.json" in str(path) and flags & os.O_CREAT:
            die()
        return fd
    def io_open(file, mode="r", *args, **kwargs):
        fh = real_io_open(file, mode, *args, **kwargs)
        if "config.json" in str(file) and ("w" in mode or "x" in mode):
            die()
        return fh
    os.open, io.open = os_open, io_open
train(dataclasses.replace(CFG, epochs=1), _data(), run_dir=run_dir)
"""


def _killed_child(tmp_path, hook):
    import pathlib
    import subprocess
    import sys

    run = tmp_path / "run"
    script = _CHILD.format(tests=str(pathlib.Path(__file__).parent))
    proc = subprocess.run(
        [sys.executable, "-c", script, hook, str(run)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr  # SIGKILL at the hook
    return run


def test_kill_while_writing_best_pt_leaves_a_resumable_run(tmp_path):
    cfg = dataclasses.replace(CFG, epochs=1)
    run = _killed_child(tmp_path, "mid-best")
    best = run / "best.pt"
    # best.pt is absent or whole (the write was atomic); last.pt of step 4 is whole
    assert not best.exists() or torch.load(best, weights_only=True)["epoch"] == 1
    resumed = train(cfg, _data(), run_dir=run, resume=True)
    straight = train(cfg, _data())
    assert _state_equal(resumed.final_model, straight.final_model)
    assert _state_equal(resumed.model, straight.model)
    assert torch.load(best, weights_only=True)["epoch"] == 1


def test_kill_while_creating_config_leaves_a_folder_a_new_start_accepts(
    tmp_path, capsys
):
    run = _killed_child(tmp_path, "config-created")
    assert run.is_dir() and not (run / "config.json").exists()
    # resume explains that nothing was started; a new start needs no --overwrite
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and err.count("\n") == 1
    res = train(dataclasses.replace(CFG, epochs=1), _data(), run_dir=run)
    assert res.steps == 6 and (run / "config.json").is_file()


def test_failed_start_leaves_nothing_behind(tmp_path, capsys):
    cfg = _write_config(tmp_path)
    run = tmp_path / "run"
    for bad in ("seed=-1", "weight_decay=-0.1", "device=banana", "select_metric=R@1"):
        argv = ["train", "--config", str(cfg), "--run-dir", str(run), "--set", bad]
        assert main(argv) == 2, bad
        err = capsys.readouterr().err.strip()
        assert bad.split("=")[0] in err and err.count("\n") == 0, err
        assert not run.exists()
    # the same folder then takes a valid start without --overwrite
    assert main(["train", "--config", str(cfg), "--run-dir", str(run)]) == 0


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it(tmp_path):
    cfg = dataclasses.replace(CFG, epochs=1)
    run = tmp_path / "run"
    train(cfg, _data(), run_dir=run, stop_after_steps=1)
    (run / "checkpoints" / "last.pt").unlink()  # as if killed before checkpointing
    resumed = train(cfg, _data(), run_dir=run, resume=True)
    assert _state_equal(resumed.final_model, train(cfg, _data()).final_model)
    with pytest.raises(ValueError, match="configuration"):
        (run / "checkpoints" / "last.pt").unlink()
        train(dataclasses.replace(cfg, lr=0.5), _data(), run_dir=run, resume=True)


def test_overwrite_clears_every_artefact_of_the_old_run(tmp_path):
    cfg_file = _write_config(tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg_file), "--run-dir", str(run)]) == 0
    assert (run / "test_metrics.json").is_file() and (run / "best.pt").is_file()
    (run / "notes.txt").write_text("mine")  # not an artefact of the run: kept
    params = from_params(
        TrainConfig, json.loads((run / "config.json").read_text())
    )  # the same run again, interrupted after one step
    from hubrepro.training import load_train_data

    train(params, load_train_data(params), run_dir=run, overwrite=True,
          stop_after_steps=1)  # fmt: skip
    left = sorted(p.name for p in run.iterdir())
    assert left == ["checkpoints", "config.json", "notes.txt"]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.pt"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "foreign"])
@pytest.mark.parametrize("name", ["checkpoints/last.pt", "best.pt"])
def test_damaged_checkpoint_is_a_one_line_error(tmp_path, capsys, damage, name):
    cfg = _write_config(tmp_path, epochs=2)
    run = tmp_path / "run"
    argv = ["train", "--config", str(cfg), "--run-dir", str(run), "--set", "epochs=1"]
    assert main(argv) == 0
    capsys.readouterr()
    path = run / name
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"something": torch.zeros(2)}, path)
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "damaged" in err and str(path) in err, err
    assert "Traceback" not in err and err.count("\n") == 0


@pytest.mark.parametrize(
    "text, where",
    [("epochs: [1,\n", "line 2"), ("a: b: c\n", "line 1"), ("x:\n\t- 1\n", "line 2")],
)
def test_invalid_yaml_is_a_one_line_error(tmp_path, capsys, text, where):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert main(["train", "--config", str(bad), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "valid YAML" in err and where in err and err.count("\n") == 0, err
    cfg = _write_config(tmp_path)
    argv = ["train", "--config", str(cfg), "--run-dir", str(tmp_path / "r"),
            "--set", "kappa=[0.1"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--set kappa" in err and err.count("\n") == 0
    assert not (tmp_path / "r").exists()


def test_config_values_are_checked_where_the_config_is_built():
    for kwargs, match in [
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"device": "banana"}, "device"),
        ({"select_metric": "accuracy"}, "select_metric"),
        ({"kappa": -1.0}, "kappa"),
        ({"ot_beta": 2.0}, "ot_beta"),
        ({"logit_scale_init": 0.0}, "logit_scale_init"),
        ({"eval_batch_size": 0}, "eval_batch_size"),
    ]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**kwargs)


def test_shipped_configs_are_valid_train_configs():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "configs"
    files = sorted(root.glob("*.yaml"))
    assert files
    for f in files:
        params = yaml.safe_load(f.read_text())
        params.pop("run_dir")
        cfg = from_params(TrainConfig, params)
        assert cfg.model in ("heads", "dual-encoder"), f.name
