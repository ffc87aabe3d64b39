"""The shapes-world generator: determinism, disjoint splits, captions true of their images."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hubrepro.cli import main
from hubrepro.datasets import PairedData, ShapesWorld, load_dataset, make_shapes_world
from hubrepro.datasets import shapes_world as sw
from hubrepro.hub_quality import neighbor_label_stats

SMALL = dict(n_train=60, n_bank=20, n_val=10, n_test=30, captions_per_image=4)


@pytest.fixture(scope="module")
def world() -> ShapesWorld:
    return make_shapes_world(seed=3, **SMALL)


def _digest(w: ShapesWorld) -> str:
    h = hashlib.sha256()
    for name in sw.SPLITS:
        s = w.split(name)
        for t in (s.images, s.objects, s.background, s.statements, s.tokens):
            h.update(t.numpy().tobytes())
        h.update("\n".join(s.captions).encode())
    return h.hexdigest()


# ------------------------------------------------------------------ determinism
def test_same_seed_gives_identical_bytes(seed):
    a = make_shapes_world(seed=seed, **SMALL)
    b = make_shapes_world(seed=seed, **SMALL)
    assert _digest(a) == _digest(b)


def test_different_seeds_differ(seed):
    a = make_shapes_world(seed=seed, **SMALL)
    b = make_shapes_world(seed=seed + 1, **SMALL)
    assert not torch.equal(a.test.images, b.test.images)
    assert a.test.captions != b.test.captions


def test_splits_share_one_distribution_despite_rejection():
    """Rejection thins frequent one-object scenes alike in every split (no hidden shift)."""
    w = make_shapes_world(
        seed=0, zipf=2.0, n_train=2400, n_bank=0, n_val=0, n_test=800, image_size=12
    )
    one = {
        n: float((w.split(n).n_objects == 1).double().mean()) for n in ("train", "test")
    }
    assert one["test"] < 1 / 3 - 0.03  # thinned (a third without rejection)
    assert abs(one["train"] - one["test"]) < 0.04


def test_load_dataset_and_registry():
    w = load_dataset("shapes-world", seed=1, **SMALL)
    assert isinstance(w, ShapesWorld)
    assert _digest(w) == _digest(make_shapes_world(seed=1, **SMALL))
    with pytest.raises(TypeError, match="options of 'shapes-world'"):
        load_dataset("shapes-world", n_gallery=3)


def test_cli_data_list_shows_the_world(capsys):
    assert main(["data", "list"]) == 0
    assert "shapes-world" in capsys.readouterr().out


# --------------------------------------------------------------------- shapes
def test_shapes_and_dtypes(world):
    cfg = world.config
    for name, n in cfg.split_sizes().items():
        s = world.split(name)
        size = cfg.image_size
        assert s.images.shape == (n, 3, size, size) and s.images.dtype == torch.uint8
        assert s.objects.shape == (n, cfg.max_objects, 5)
        assert s.n_captions == n * cfg.captions_per_image
        assert s.statements.shape == (s.n_captions, len(sw.STATEMENT_FIELDS))
        assert s.tokens.shape == (s.n_captions, world.meta["max_len"])
        torch.testing.assert_close(
            s.caption_to_image,
            torch.arange(n).repeat_interleave(cfg.captions_per_image),
        )
        counts = s.n_objects
        assert bool(((counts >= cfg.min_objects) & (counts <= cfg.max_objects)).all())
        # absent objects are whole rows of -1, after the present ones
        present = s.objects[:, :, 0] >= 0
        assert bool((s.objects[~present] == -1).all())
        assert bool((present.int().diff(dim=1) <= 0).all())


def test_objects_occupy_distinct_cells(world):
    for name in sw.SPLITS:
        for row in world.split(name).objects.tolist():
            cells = [o[4] for o in row if o[0] >= 0]
            assert len(set(cells)) == len(cells)


# ----------------------------------------------------------------- no leakage
def _signature(objects: list[list[int]], background: int) -> tuple:
    return (background, tuple(sorted(tuple(o) for o in objects if o[0] >= 0)))


def test_no_scene_occurs_twice_in_the_world(seed):
    w = make_shapes_world(seed=seed, **{**SMALL, "n_train": 300, "zipf": 2.0})
    seen: dict[tuple, str] = {}
    for name in sw.SPLITS:
        s = w.split(name)
        for objs, bg in zip(s.objects.tolist(), s.background.tolist(), strict=True):
            key = _signature(objs, bg)
            assert key not in seen, f"a {name} scene repeats one of {seen.get(key)}"
            seen[key] = name


# ------------------------------------------------------ captions and relevance
def test_every_caption_is_relevant_to_its_own_image(world):
    for name in sw.SPLITS:
        s = world.split(name)
        rel = s.relevance()
        assert bool(rel[torch.arange(s.n_captions), s.caption_to_image].all()), name
        for c in range(s.n_captions):
            i = int(s.caption_to_image[c])
            assert sw.naive_relevance(
                s.statements[c].tolist(), s.objects[i].tolist(), int(s.background[i])
            )


def test_relevance_matrix_equals_the_naive_check(world):
    s = world.test
    rel = s.relevance()
    naive = torch.tensor(
        [
            [
                sw.naive_relevance(st_, ob, bg)
                for ob, bg in zip(
                    s.objects.tolist(), s.background.tolist(), strict=True
                )
            ]
            for st_ in s.statements.tolist()
        ]
    )
    assert torch.equal(rel, naive)
    # across splits: training captions against test images, in chunks
    cross = world.train.relevance(world.test, device="cpu")
    sub = torch.tensor(
        [
            [
                sw.naive_relevance(st_, ob, bg)
                for ob, bg in zip(
                    s.objects.tolist(), s.background.tolist(), strict=True
                )
            ]
            for st_ in world.train.statements[:40].tolist()
        ]
    )
    assert torch.equal(cross[:40], sub)
    assert torch.equal(
        sw.relevance(
            world.train.statements,
            s.objects,
            s.background,
            chunk_size=7,
        ),
        cross,
    )


def test_relevance_by_hand():
    # one image: a red circle top left (cell 0), a large blue square top right (cell 2)
    objects = torch.tensor([[[0, 0, 0, 0, 0], [1, 2, 1, 0, 2], [-1, -1, -1, -1, -1]]])
    bg = torch.tensor([1])
    any_ = [-1, -1, -1, -1, 511]

    def stmt(d1, d2=any_, d3=any_, n=1, rel=-1, back=-1, count=-1):
        return d1 + d2 + d3 + [n, rel, back, count]

    red_circle = [0, 0, -1, -1, 511]
    blue_sq = [1, 2, -1, -1, 511]
    cases = {
        "red circle": (stmt(red_circle), True),
        "red circle on the right": (stmt([0, 0, -1, -1, 0b100100100]), False),
        "red circle at the top": (stmt([0, 0, -1, -1, 0b000000111]), True),
        "small red circle": (stmt([0, 0, 0, -1, 511]), True),
        "large red circle": (stmt([0, 0, 1, -1, 511]), False),
        "red circle left of blue square": (stmt(red_circle, blue_sq, n=2, rel=1), True),
        "red circle right of blue square": (
            stmt(red_circle, blue_sq, n=2, rel=2),
            False,
        ),
        "red circle beside blue square": (stmt(red_circle, blue_sq, n=2, rel=5), True),
        "red circle above blue square": (stmt(red_circle, blue_sq, n=2, rel=3), False),
        "two red circles": (stmt(red_circle, red_circle, n=2, rel=0), False),
        "a shape and a shape": (stmt(any_, any_, n=2, rel=0), True),
        "three shapes": (stmt(any_, any_, any_, n=3, rel=0), False),
        "grey background": (stmt(red_circle, back=1), True),
        "dark background": (stmt(red_circle, back=0), False),
        "two objects": (stmt(red_circle, count=2), True),
        "one object": (stmt(red_circle, count=1), False),
    }
    for text, (s, want) in cases.items():
        got = bool(sw.relevance(torch.tensor([s]), objects, bg)[0, 0])
        assert got is want, text
        assert sw.naive_relevance(s, objects[0].tolist(), 1) is want, text


def _words_of(table: dict[str, tuple[str, ...]], text: str) -> set[str]:
    """Concepts of ``table`` whose synonyms occur in ``text`` as whole words."""
    return {
        k
        for k, syns in table.items()
        for syn in syns
        if re.search(rf"(?<![\w-]){re.escape(syn)}(?![\w-])", text)
    }


def test_caption_text_states_exactly_its_statement(world):
    """The realised words name the stated attributes and no others (an independent parse)."""
    for s in (world.test, world.train):
        for text, row in zip(s.captions, s.statements.tolist(), strict=True):
            n = row[15]
            descs = [row[5 * d : 5 * d + 5] for d in range(n)]
            for field, names, table in (
                (0, sw.SHAPES, sw._SHAPE_WORDS),
                (1, sw.COLOURS, sw._COLOUR_WORDS),
                (2, sw.SIZES, sw._SIZE_WORDS),
                (3, sw.TEXTURES, sw._TEXTURE_WORDS),
            ):
                stated = {names[d[field]] for d in descs if d[field] >= 0}
                assert _words_of(table, text) == stated, (text, field)
            said_bg = _words_of(
                {
                    k: tuple(f"{w} background" for w in v)
                    for k, v in sw._BACKGROUND_WORDS.items()
                },
                text,
            )
            assert said_bg == ({sw.BACKGROUNDS[row[17]]} if row[17] >= 0 else set()), (
                text
            )
            starts_with_count = text.split()[0] in sw._COUNT_WORDS
            assert starts_with_count == (row[18] >= 0), text
            if starts_with_count:
                assert text.split()[0] == sw._COUNT_WORDS[row[18] - 1], text
            if n >= 2:
                assert _words_of(
                    {k: v for k, v in sw._RELATION_WORDS.items()}, text
                ) & {sw.RELATIONS[row[16]]}, text


def test_rendered_objects_show_their_colour_at_their_cell():
    """Pixels agree with the attributes: the centre of each unoccluded object has its colour."""
    w = make_shapes_world(
        seed=5,
        n_train=2,
        n_bank=0,
        n_val=0,
        n_test=200,
        image_size=48,
        jitter=0.0,
        colour_jitter=0.0,
        pixel_noise=0.0,
        striped_rate=0.0,
    )
    s, size = w.test, 48
    cell = size / 3
    checked = 0
    for img, objs in zip(s.images, s.objects.tolist(), strict=True):
        present = [o for o in objs if o[0] >= 0]
        top = present[-1]  # drawn last: never occluded
        if sw.SHAPES[top[0]] == "ring":
            continue  # hollow centre
        x = int((top[4] % 3 + 0.5) * cell)
        y = int((top[4] // 3 + 0.5) * cell)
        want = np.round(sw._RGB[top[1]] * 255)
        got = img[:, y, x].numpy().astype(float)
        assert np.abs(got - want).max() <= 1, (top, got, want)
        checked += 1
    assert checked > 100


# ------------------------------------------------------------------- vocabulary
def test_vocabulary_round_trip_and_no_unknown_words(world):
    voc = world.vocab
    assert len(voc) == len(sw.world_vocabulary())
    for s in (world.test, world.train):
        assert not bool((s.tokens == voc.unk_id).any())
        for text, ids in zip(s.captions, s.tokens, strict=True):
            assert voc.decode(ids) == text
        ids, mask = voc.encode(list(s.captions))
        assert torch.equal(ids, s.tokens[:, : ids.shape[1]])
        assert torch.equal(mask, s.token_mask[:, : ids.shape[1]])


def test_vocabulary_is_the_grammar_lexicon():
    words = set(sw.world_vocabulary().itos[2:])
    for table in (sw._SHAPE_WORDS, sw._COLOUR_WORDS, sw._RELATION_WORDS):
        for syns in table.values():
            for syn in syns:
                assert set(syn.split()) <= words
    assert {"top-left", "lower-right", "middle-left", ":"} <= words
    assert "<pad>" not in words


def test_vocabulary_unknown_words_and_errors():
    voc = sw.Vocabulary(["a", "red", "circle"])
    ids, mask = voc.encode(["A Red Square"], max_len=5)
    assert ids.tolist() == [[2, 3, 1, 0, 0]]
    assert mask.tolist() == [[True, True, True, False, False]]
    assert voc.decode(ids[0]) == "a red <unk>"
    with pytest.raises(TypeError, match="sequence of strings"):
        voc.encode("a red circle")
    with pytest.raises(ValueError, match="at least one word"):
        voc.encode(["a", "  "])
    with pytest.raises(ValueError, match="distinct"):
        sw.Vocabulary(["a", "a"])


# ------------------------------------------------------------------- long tail
def _pair_freq(w: ShapesWorld) -> np.ndarray:
    ob = w.train.objects
    ob = ob[ob[:, :, 0] >= 0]
    pair = (ob[:, 0] * len(sw.COLOURS) + ob[:, 1]).numpy()
    f = np.bincount(pair, minlength=42).astype(float)
    rank = w.pair_rank.reshape(-1).numpy()
    return (f / f.sum())[np.argsort(rank)]  # frequency by popularity rank


def test_long_tail_follows_the_documented_prior():
    base = dict(n_train=3000, n_bank=0, n_val=0, n_test=10, image_size=12)
    shares = []
    for zipf in (0.0, 1.0, 2.0):
        f = _pair_freq(make_shapes_world(seed=2, zipf=zipf, **base))
        prior = np.arange(1, 43, dtype=float) ** -zipf
        prior /= prior.sum()
        # total variation distance to P(rank r) ~ r^(-zipf) (uniqueness thins little)
        assert 0.5 * np.abs(f - prior).sum() < 0.06, zipf
        shares.append(f[:3].sum())
    assert shares[0] < shares[1] < shares[2]


def test_test_shift_changes_the_test_distribution():
    base = dict(n_train=2000, n_bank=0, n_val=0, n_test=2000, image_size=12)

    def tv(shift: float) -> float:
        w = make_shapes_world(seed=4, test_shift=shift, **base)
        freqs = []
        for s in (w.train, w.test):
            ob = s.objects[s.objects[:, :, 0] >= 0]
            f = np.bincount((ob[:, 0] * 7 + ob[:, 1]).numpy(), minlength=42)
            freqs.append(f / f.sum())
        return 0.5 * float(np.abs(freqs[0] - freqs[1]).sum())

    assert tv(0.0) < 0.1 < tv(1.0)


def test_ambiguity_states_fewer_attributes():
    def stated(amb: float) -> float:
        w = make_shapes_world(
            seed=1, ambiguity=amb, n_train=400, n_bank=0, n_val=0, n_test=10
        )
        st_ = w.train.statements
        return float((st_[:, [0, 1, 2, 3]] >= 0).float().mean())

    assert stated(0.0) > stated(0.5) > stated(1.0)


# ---------------------------------------------------------------- conversions
def test_to_paired(world):
    t, b = world.test, world.bank
    q = torch.randn(t.n_captions, 8)
    g = torch.randn(t.n_images, 8)
    p = world.to_paired(q, g, torch.randn(b.n_captions, 8), torch.randn(b.n_images, 8))
    assert isinstance(p, PairedData)
    assert torch.equal(p.query_to_gallery, t.caption_to_image)
    assert torch.equal(p.bank_query_to_gallery, b.caption_to_image)
    assert p.query_text == t.captions
    assert torch.equal(p.gallery_labels, t.image_labels)
    assert p.meta["query_modality"] == "caption"
    assert world.to_paired(q, g).bank_query is None


# ------------------------------------------------------------ hub statistics
@settings(max_examples=30, deadline=None)
@given(
    st.integers(2, 12),
    st.integers(2, 12),
    st.integers(1, 4),
    st.integers(0, 2**31 - 1),
)
def test_relevance_hub_stats_generalises_label_stats(nq, ng, n_lab, s):
    gen = torch.Generator().manual_seed(s)
    sims = torch.randn(nq, ng, generator=gen, dtype=torch.float64)
    yq = torch.randint(0, n_lab, (nq,), generator=gen)
    yg = torch.randint(0, n_lab, (ng,), generator=gen)
    k = min(3, ng)
    want = neighbor_label_stats(sims, yq, yg, k=k, hub_factor=1.5)
    got = sw.relevance_hub_stats(sims, yq[:, None] == yg[None, :], k=k, hub_factor=1.5)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], nan_ok=True), key


def test_relevance_hub_stats_errors():
    s = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="of shape"):
        sw.relevance_hub_stats(s, torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean"):
        sw.relevance_hub_stats(s, torch.ones(2, 3))


# -------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("option", "value", "exc"),
    [
        ("zipf", -1.0, ValueError),
        ("ambiguity", 1.5, ValueError),
        ("image_size", 8, ValueError),
        ("max_objects", 10, ValueError),
        ("min_objects", 4, ValueError),
        ("jitter", 0.6, ValueError),
        ("n_test", 0, ValueError),
        ("captions_per_image", 1.5, TypeError),
    ],
)
def test_bad_options_are_refused(option, value, exc):
    with pytest.raises(exc, match=option):
        make_shapes_world(**{**SMALL, option: value})


def test_relevance_checks_its_inputs(world):
    s = world.test
    with pytest.raises(ValueError, match="statements"):
        sw.relevance(s.statements[:, :5], s.objects, s.background)
    with pytest.raises(ValueError, match="background"):
        sw.relevance(s.statements, s.objects, s.background[:3])
