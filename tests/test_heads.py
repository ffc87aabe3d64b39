"""Heads: shapes and normalisation; the open_clip fine-tuning path with a tiny random
CLIP (no download), trained for a few steps by the real trainer."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hubrepro.heads import DualEncoderHeads, OpenCLIPDualEncoder, load_openclip
from hubrepro.training import TrainConfig, TrainData, train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_heads_shapes_norms_and_scale_clamp(generator):
    m = DualEncoderHeads(
        6, 5, hidden_dim=8, embed_dim=4, global_dim=3, logit_scale_init=500.0
    )
    out = m(
        torch.randn(7, 6, generator=generator), torch.randn(7, 5, generator=generator)
    )
    torch.testing.assert_close(out["query_local"].norm(dim=-1), torch.ones(7))
    assert out["gallery_global"].shape == (7, 3)
    assert float(m.logit_scale().detach()) == pytest.approx(100.0)
    fixed = DualEncoderHeads(6, 5, learn_logit_scale=False)
    assert not fixed.log_logit_scale.requires_grad


def test_heads_bad_arguments():
    with pytest.raises(ValueError, match="embed_dim"):
        DualEncoderHeads(4, 4, embed_dim=0)
    with pytest.raises(TypeError, match="open_clip CLIP"):
        OpenCLIPDualEncoder(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="local weights file"):
        load_openclip("ViT-B-32", pretrained="openai")


def _tiny_clip():
    from hubrepro._compat import ensure_torchvision

    if not ensure_torchvision():
        pytest.skip("torchvision is not installed")
    open_clip = pytest.importorskip("open_clip")
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    vision = CLIPVisionCfg(
        layers=1, width=32, head_width=16, patch_size=8, image_size=16
    )
    text = CLIPTextCfg(context_length=8, vocab_size=64, width=32, heads=2, layers=1)
    return open_clip.CLIP(embed_dim=16, vision_cfg=vision, text_cfg=text)


def test_openclip_backbone_fine_tunes_with_every_term():
    clip = _tiny_clip()
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, 64, (32, 8), generator=gen)
    images = torch.randn(32, 3, 16, 16, generator=gen)
    data = TrainData(tokens, images, tokens[:8], images[:8], None)
    model = OpenCLIPDualEncoder(clip)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(
        batch_size=8,
        mb_batch=2,
        num_neighbors=3,
        epochs=1,
        lr=1e-3,
        progress=False,
        device="cpu",
        eval_k=3,
    )
    res = train(cfg, data, model=model)
    assert res.steps == 4 and res.history[0]["train_neighbor"] > 0
    trained = res.final_model.state_dict()
    assert any(
        not torch.equal(trained[k], before[k]) for k in before
    )  # the backbone moved
    assert all(
        torch.equal(model.state_dict()[k], v) for k, v in before.items()
    )  # caller's model untouched
    again = train(dataclasses.replace(cfg), data, model=model)
    assert all(
        torch.equal(again.final_model.state_dict()[k], v) for k, v in trained.items()
    )
