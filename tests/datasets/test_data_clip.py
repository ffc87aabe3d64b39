"""The open_clip pipeline, end to end on CPU, with a random small model (no download)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hubrepro._compat import ensure_torchvision
from hubrepro.cli import main
from hubrepro.datasets import PairedData, load_dataset
from hubrepro.datasets.clip import embed_clip, read_captions

MODEL = "ViT-S-32"  # the smallest ViT config of open_clip 3.3 (about 43M parameters)


@pytest.fixture(scope="module")
def clip_model(tmp_path_factory):
    """A randomly initialised model, its preprocessing and its state dict on disk."""
    ensure_torchvision()
    import open_clip

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(MODEL, pretrained=None)
    model.eval()
    path = tmp_path_factory.mktemp("w") / "vit_s_32_random.pt"
    torch.save(model.state_dict(), path)
    return model, preprocess, path


@pytest.fixture(scope="module")
def weights(clip_model):
    return clip_model[2]


@pytest.fixture
def images(tmp_path):
    from PIL import Image

    d = tmp_path / "images"
    d.mkdir()
    colours = {
        "red.png": (255, 0, 0),
        "green.png": (0, 200, 0),
        "blue.png": (0, 0, 255),
    }
    for name, rgb in colours.items():
        arr = np.zeros((40, 50, 3), dtype=np.uint8) + np.array(rgb, dtype=np.uint8)
        arr[10:20, 10:30] = 255 - arr[10:20, 10:30]
        Image.fromarray(arr).save(d / name)
    return d


def _captions(tmp_path, fmt="csv"):
    rows = [
        ("red.png", "a red square"),
        ("green.png", "a green field"),
        ("red.png", "crimson, with a cyan bar"),
        ("blue.png", "the blue sky"),
    ]
    if fmt == "csv":
        p = tmp_path / "captions.csv"
        p.write_text("image,caption\n" + "".join(f'{i},"{c}"\n' for i, c in rows))
    else:
        p = tmp_path / "captions.jsonl"
        p.write_text(
            "".join(json.dumps({"image": i, "caption": c}) + "\n" for i, c in rows)
        )
    return p


def test_read_captions_formats_and_errors(tmp_path):
    a = read_captions(_captions(tmp_path, "csv"))
    b = read_captions(_captions(tmp_path, "jsonl"))
    assert a == b and a[2] == ("red.png", "crimson, with a cyan bar")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,text\nx.png,hello\n")
    with pytest.raises(ValueError, match="`image` and `caption` columns"):
        read_captions(bad)
    bad.write_text("image,caption\nx.png,\n")
    with pytest.raises(ValueError, match="line 2"):
        read_captions(bad)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "x.png", "caption": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        read_captions(bad)
    with pytest.raises(ValueError, match=".csv or .jsonl"):
        read_captions(_captions(tmp_path).rename(tmp_path / "c.txt"))
    with pytest.raises(FileNotFoundError):
        read_captions(tmp_path / "none.csv")


def test_embed_clip_end_to_end_on_cpu(clip_model, weights, images, tmp_path):
    out = tmp_path / "out"
    caps = _captions(tmp_path)
    paths = embed_clip(
        MODEL, weights, images, caps, out, device="cpu", batch_size=2, progress=False
    )
    assert {p.name for p in paths.values()} >= {
        "query.npy",
        "gallery.npy",
        "query_to_gallery.npy",
        "dataset.yml",
    }
    data = load_dataset("user", data_dir=out)
    assert isinstance(data, PairedData)
    assert data.gallery.shape == (3, 384) and data.query.shape == (4, 384)
    assert data.query_to_gallery.tolist() == [
        0,
        1,
        0,
        2,
    ]  # images in order of first mention
    torch.testing.assert_close(data.query.norm(dim=1), torch.ones(4))
    assert data.meta["gallery_modality"] == "image"
    # equal to the model run by hand on one image (so batching does not interact)
    from PIL import Image

    model, pre, _ = clip_model
    with torch.no_grad(), Image.open(images / "blue.png") as im:
        ref = torch.nn.functional.normalize(
            model.encode_image(pre(im.convert("RGB"))[None]), dim=-1
        )[0]
    torch.testing.assert_close(data.gallery[2], ref, atol=1e-5, rtol=1e-4)
    # refusing to overwrite
    with pytest.raises(FileExistsError, match="overwrite"):
        embed_clip(MODEL, weights, images, caps, out, device="cpu", progress=False)


@pytest.mark.slow
def test_cli_embed_clip_writes_test_and_bank(weights, images, tmp_path):
    caps = _captions(tmp_path)
    out = tmp_path / "out"
    for role in ("test", "bank"):
        rc = main(
            ["data", "embed-clip", "--model", MODEL, "--weights", str(weights), "--images", str(images),
             "--captions", str(caps), "--out", str(out), "--role", role, "--device", "cpu"]
        )  # fmt: skip
        assert rc == 0
    both = load_dataset("user", data_dir=out)
    assert both.bank_gallery.shape == (3, 384)
    assert both.bank_query_to_gallery.tolist() == [0, 1, 0, 2]
    torch.testing.assert_close(both.bank_gallery, both.gallery)


def test_embed_clip_input_errors(weights, images, tmp_path):
    caps = _captions(tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        embed_clip(
            MODEL, tmp_path / "missing.pt", images, caps, tmp_path / "o", progress=False
        )
    with pytest.raises(ValueError, match="open_clip model name"):
        embed_clip(
            "No-Such-Model", weights, images, caps, tmp_path / "o", progress=False
        )
    (images / "blue.png").unlink()
    with pytest.raises(FileNotFoundError, match="1 missing"):
        embed_clip(MODEL, weights, images, caps, tmp_path / "o", progress=False)
    with pytest.raises(ValueError, match="`role`"):
        embed_clip(
            MODEL, weights, images, caps, tmp_path / "o", role="train", progress=False
        )
    wrong = tmp_path / "wrong.pt"
    torch.save({"visual.proj": torch.zeros(2, 2)}, wrong)
    (images / "blue.png").write_bytes(b"")
    with pytest.raises(ValueError, match="do not fit"):
        embed_clip(MODEL, wrong, images, caps, tmp_path / "o", progress=False)


def test_cli_list_and_verify(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "stdlib-code" in out and "synthetic" in out and "user" in out
    assert main(["data", "verify"]) == 0
    assert "matches" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    rc = main(["data", "embed-clip", "--model", MODEL, "--weights", str(tmp_path / "w.pt"), "--images", str(tmp_path),
               "--captions", str(tmp_path / "c.csv"), "--out", str(tmp_path / "o")])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("hubrepro data: error:") and err.count("\n") == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "a tensor", "empty"])
def test_corrupt_weights_are_a_one_line_error(
    weights, images, tmp_path, capsys, damage
):
    bad = tmp_path / "bad.pt"
    if damage == "garbage":
        bad.write_bytes(b"\x80\x02not a checkpoint at all" * 10)
    elif damage == "truncated":
        with weights.open("rb") as fh:
            bad.write_bytes(fh.read(1 << 20))
    elif damage == "a tensor":
        torch.save(torch.zeros(3), bad)
    else:
        bad.write_bytes(b"")
    rc = main(["data", "embed-clip", "--model", MODEL, "--weights", str(bad), "--images", str(images),
               "--captions", str(_captions(tmp_path)), "--out", str(tmp_path / "o"), "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert (
        line.startswith("hubrepro data: error: load_clip: `weights`")
        and str(bad) in line
    )
    assert not (tmp_path / "o").exists()


def test_kill_during_embed_clip_keeps_the_old_files(weights, images, tmp_path):
    from _kill import kill_during_write

    out = tmp_path / "out"
    caps = _captions(tmp_path)
    embed_clip(MODEL, weights, images, caps, out, device="cpu", progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    argv = ["data", "embed-clip", "--model", MODEL, "--weights", str(weights), "--images", str(images),
            "--captions", str(caps), "--out", str(out), "--device", "cpu", "--overwrite", "--batch-size", "1"]  # fmt: skip
    kill_during_write(
        f"from hubrepro.cli import main; main({argv!r})", "write", tmp_path
    )
    assert {
        p.name: p.read_bytes() for p in out.iterdir() if not p.name.endswith(".tmp")
    } == before


def test_captions_that_are_not_utf8_name_the_file(tmp_path):
    p = tmp_path / "latin1.csv"
    p.write_bytes("image,caption\na.png,caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.csv' must be UTF-8 text"):
        read_captions(p)
