"""The small dual encoders: shapes, masks, unit vectors, determinism, gradients, devices."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hubrepro.datasets import make_shapes_world
from hubrepro.encoders import (
    DualEncoder,
    EncoderConfig,
    ImageEncoder,
    TextEncoder,
    build_dual_encoder,
)
from hubrepro.losses import NeighborRetrLoss, centrality, wti_similarity

TINY = dict(
    image_size=16,
    channels=(8, 16),
    text_width=16,
    text_layers=1,
    text_heads=2,
    embed_dim=12,
)


def _model(seed: int = 0, **kw) -> DualEncoder:
    torch.manual_seed(seed)
    return build_dual_encoder(vocab_size=20, max_len=9, **{**TINY, **kw})


def _batch(seed: int = 0, n: int = 5):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, 20, (n, 7), generator=gen)
    lengths = torch.randint(1, 8, (n,), generator=gen)
    ids[torch.arange(7)[None, :] >= lengths[:, None]] = 0
    images = torch.randint(0, 256, (n, 3, 16, 16), generator=gen, dtype=torch.uint8)
    return ids, images


def test_shapes_keys_and_unit_local_vectors():
    m = _model()
    ids, images = _batch()
    out = m(ids, images, return_tokens=True)
    assert out["query_local"].shape == (5, 12) and out["gallery_local"].shape == (5, 12)
    assert out["query_global"].shape == (5, 12)
    assert out["gallery_global"].shape == (5, 12)
    assert out["query_tokens"].shape == (5, 7, 12)
    assert out["gallery_tokens"].shape == (5, 16, 12)  # a 4 x 4 grid of patches
    assert torch.equal(out["query_mask"], ids != 0)
    assert bool(out["gallery_mask"].all())
    for key in ("query_local", "gallery_local"):
        torch.testing.assert_close(out[key].norm(dim=1), torch.ones(5))
    # the global vectors are not normalised
    assert not torch.allclose(out["query_global"].norm(dim=1), torch.ones(5))
    assert sorted(m(ids, images)) == [
        "gallery_global",
        "gallery_local",
        "query_global",
        "query_local",
    ]


def test_local_is_the_normalised_mean_of_the_valid_tokens():
    m = _model()
    ids, images = _batch()
    for out in (m.query_features(ids), m.gallery_features(images)):
        w = out.mask.float()[..., None]
        mean = (out.tokens * w).sum(1) / w.sum(1)
        torch.testing.assert_close(out.local, F.normalize(mean, dim=-1))


def test_padding_changes_nothing():
    m = _model().eval()
    ids, _ = _batch()
    longer = torch.cat([ids, torch.zeros(5, 2, dtype=torch.long)], dim=1)
    a, b = m.query_features(ids), m.query_features(longer)
    torch.testing.assert_close(a.local, b.local)
    torch.testing.assert_close(a.global_, b.global_)
    torch.testing.assert_close(a.tokens, b.tokens[:, :7])


def test_samples_are_encoded_independently_of_their_batch():
    m = _model()
    ids, images = _batch()
    out = m(ids, images)
    for i in range(5):
        one = m(ids[i : i + 1], images[i : i + 1])
        for k in out:
            torch.testing.assert_close(one[k][0], out[k][i])
    # a word changed at a valid position changes the text vector
    other = ids.clone()
    other[0, 0] = 3 if ids[0, 0] != 3 else 4
    assert not torch.allclose(m.encode_query(other)[0][0], out["query_local"][0])


def test_word_order_reaches_the_text_vector():
    m = _model(text_layers=1)
    ids = torch.tensor([[2, 3, 4, 0], [4, 3, 2, 0]])
    out = m.query_features(ids)
    assert not torch.allclose(out.local[0], out.local[1])


def test_same_seed_same_model_and_outputs(seed):
    ids, images = _batch(seed)
    a, b = _model(seed), _model(seed)
    for (na, pa), (nb, pb) in zip(
        a.state_dict().items(), b.state_dict().items(), strict=True
    ):
        assert na == nb and torch.equal(pa, pb)
    oa, ob = a(ids, images), b(ids, images)
    for k in oa:
        assert torch.equal(oa[k], ob[k])
    assert not torch.equal(
        _model(seed + 1)(ids, images)["query_local"], oa["query_local"]
    )


def test_training_steps_are_bit_identical_on_cpu(seed):
    def run() -> torch.Tensor:
        m = _model(seed)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
        ids, images = _batch(seed, n=6)
        for _ in range(3):
            out = m(ids, images)
            s = out["query_local"] @ out["gallery_local"].T
            loss = F.cross_entropy(m.logit_scale() * s, torch.arange(6))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return torch.cat([p.detach().reshape(-1) for p in m.parameters()])

    assert torch.equal(run(), run())


def test_gradients_reach_both_towers_and_the_scale():
    m = _model()
    ids, images = _batch(n=6)
    out = m(ids, images)
    crit = NeighborRetrLoss(num_neighbors=3)
    loss = crit(
        out["query_local"],
        out["gallery_local"],
        out["query_global"],
        out["gallery_global"],
        m.logit_scale(),
        bank_query_local=out["query_local"].detach(),
        bank_gallery_local=out["gallery_local"].detach(),
    )
    loss.backward()
    for tower in (m.text, m.image):
        for name, p in tower.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
        assert all(float(p.grad.norm()) > 0 for p in tower.parameters())
    assert m.log_logit_scale.grad is not None and m.log_logit_scale.grad != 0
    fixed = _model(learn_logit_scale=False, logit_scale_init=100.0)
    assert not fixed.log_logit_scale.requires_grad
    assert float(fixed.logit_scale()) == pytest.approx(100.0)


def test_token_outputs_feed_wti_and_centrality():
    m = _model()
    ids, images = _batch()
    out = m(ids, images, return_tokens=True)
    s = wti_similarity(
        out["query_tokens"],
        out["query_mask"],
        out["gallery_tokens"],
        out["gallery_mask"],
    )
    assert s.shape == (5, 5) and bool((s.abs() <= 1 + 1e-6).all())
    c = centrality(out["query_global"], out["query_tokens"], out["query_mask"])
    assert c.shape == (5,) and torch.isfinite(c).all()


def test_float64_and_float_images():
    m = _model().double()
    ids, images = _batch()
    out = m(ids, images)
    assert all(v.dtype == torch.float64 for v in out.values())
    as_float = m(ids, images.double() / 255.0)
    torch.testing.assert_close(as_float["gallery_local"], out["gallery_local"])


def test_eval_mode_output_is_the_training_mode_output():
    m = _model()
    ids, images = _batch()
    a = m(ids, images)
    m.eval()
    b = m(ids, images)
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_batch_norm_option_and_no_position_binding():
    m = _model(norm="batch", position_mlp=False)
    assert any(isinstance(x, torch.nn.BatchNorm2d) for x in m.image.modules())
    assert m.image.position is None
    out = m(*_batch())
    assert out["gallery_local"].shape == (5, 12)


def test_config_round_trip_and_errors():
    cfg = EncoderConfig(**TINY)
    m = build_dual_encoder(cfg, vocab_size=20, max_len=9)
    assert m.embed_dim == 12
    with pytest.raises(ValueError, match="image_size"):
        ImageEncoder(image_size=20, channels=(8, 16, 32))
    with pytest.raises(ValueError, match="heads"):
        TextEncoder(10, 4, width=10, heads=3)
    with pytest.raises(ValueError, match="embed_dim"):
        DualEncoder(
            TextEncoder(10, 4, width=8, heads=2, embed_dim=4),
            ImageEncoder(image_size=8, channels=(4,), embed_dim=6),
        )
    with pytest.raises(TypeError, match="ImageEncoder"):
        DualEncoder(TextEncoder(10, 4, width=8, heads=2), torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="tokens long"):
        m.encode_query(torch.zeros(2, 10, dtype=torch.long))
    with pytest.raises(TypeError, match="integer tensor"):
        m.encode_query(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"\(n, 3, 16, 16\)"):
        m.encode_gallery(torch.zeros(2, 16, 16))
    with pytest.raises(ValueError, match="image_size"):
        m.encode_gallery(torch.zeros(2, 3, 24, 24))
    with pytest.raises(TypeError, match="unknown|type"):
        build_dual_encoder(vocab_size=20, max_len=9, channels="wide")


def test_trains_with_the_existing_trainer(tmp_path):
    """The trainer takes the encoders as they are: token ids and images as raw inputs."""
    from hubrepro.training import TrainConfig, TrainData, encode, train

    world = make_shapes_world(
        seed=0, n_train=32, n_bank=8, n_val=8, n_test=8, captions_per_image=2
    )
    tr, va = world.train, world.val
    data = TrainData(
        tr.tokens,
        tr.images[tr.caption_to_image],
        va.tokens,
        va.images,
        va.caption_to_image,
    )
    torch.manual_seed(0)
    model = build_dual_encoder(
        vocab_size=len(world.vocab),
        max_len=world.meta["max_len"],
        image_size=world.config.image_size,
        channels=(8, 16, 16),
        text_width=16,
        text_heads=2,
        embed_dim=16,
    )
    cfg = TrainConfig(
        epochs=1, batch_size=16, num_neighbors=4, mb_batch=2, progress=False
    )
    res = train(cfg, data, run_dir=tmp_path / "run", model=model)
    assert res.steps == 4 and len(res.history) == 1
    assert all(v == v for v in res.history[0].values())  # no NaN
    q, g = encode(res.model, world.test.tokens, world.test.images)
    paired = world.to_paired(q, g)
    assert paired.sims().shape == (world.test.n_captions, world.test.n_images)


@pytest.mark.gpu
def test_cuda_autocast_step():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    m = _model().cuda()
    ids, images = _batch(n=8)
    ids, images = ids.cuda(), images.cuda()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        out = m(ids, images, return_tokens=True)
        s = out["query_local"].float() @ out["gallery_local"].float().T
        loss = F.cross_entropy(m.logit_scale() * s, torch.arange(8, device="cuda"))
    assert out["query_local"].device.type == "cuda"
    assert out["gallery_tokens"].dtype == torch.float16
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    assert all(torch.isfinite(p).all() for p in m.parameters())
    cpu = _model()
    cpu.load_state_dict({k: v.cpu() for k, v in m.state_dict().items()})
    assert cpu(*_batch(n=8))["query_local"].device.type == "cpu"


@pytest.mark.slow
# torch.compile's CPU path imports torch.jit helpers that warn about their own deprecation
@pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
)
def test_torch_compile_matches_eager():
    m = _model().eval()
    ids, images = _batch()
    compiled = torch.compile(m)
    a, b = m(ids, images), compiled(ids, images)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_global_norm_fixes_the_scale_of_the_global_vectors():
    m = _model(global_norm=10.0)
    out = m(*_batch())
    for key in ("query_global", "gallery_global"):
        torch.testing.assert_close(out[key].norm(dim=1), torch.full((5,), 10.0))
    with pytest.raises(ValueError, match="global_norm"):
        _model(global_norm=0.0)
