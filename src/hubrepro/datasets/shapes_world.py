r"""``shapes-world``: a procedurally rendered image-caption world whose relevance is known exactly.

NeighborRetr (``lin2025neighborretr``) is a method for *training* dual encoders, and its
claims are about good and bad hubs: a gallery item that many queries retrieve is a
*good* hub when those queries are relevant to it. Real image-text benchmarks cannot
ship with a book and never say which captions fit which images beyond the paired one.
This module renders a small world that can: every image is a scene of one to a few
coloured shapes, every caption is generated from a grammar out of the scene's
attributes, and the relevance of **any** caption to **any** image follows exactly from
the attributes (:func:`relevance`).

The world
---------
*Scenes.* A scene has a background (``dark``, ``grey``, ``light``) and 1 to
``max_objects`` objects in distinct cells of a 3 x 3 grid, each with a shape (circle,
square, triangle, diamond, cross, ring), a colour (red, green, blue, yellow, purple,
orange, cyan), a size (small, large) and a texture (plain, striped). Large objects
overflow their cell and may occlude a neighbour (objects are drawn in order).

*Long tail.* The 42 (shape, colour) *pairs* are ranked by a permutation drawn from the
seed; object pairs are drawn with probability :math:`\pi_r \propto r^{-a}` for the pair
of rank :math:`r` (``zipf`` = :math:`a`; 0 = uniform). Common pairs make images that
many captions fit (natural good hubs); rare pairs make images that only their own
captions fit (natural anti-hubs). Sizes are equally likely, textures striped with
probability ``striped_rate``, backgrounds uniform.

*Images.* Rendered with numpy from signed distance functions (antialiased edges, no
font or drawing library), ``image_size`` pixels square, with per-object colour jitter
(``colour_jitter``), a jitter of each object's centre within its cell (``jitter``) and
uniform pixel noise of standard deviation ``pixel_noise``. Only IEEE-exact operations (arithmetic, square
roots) enter the pixels, so a seed gives the same bytes on every machine.

*Captions.* ``captions_per_image`` per image from a grammar with synonyms ("big" /
"large", "crimson" / "red", "disc" / "circle" / "round shape"), several word orders
("a big red circle in the top left", "top left: a big red circle", "there is ...",
"a circle that is big and red", bare fragments "red circle") and **partial**
descriptions: each attribute of a described object (shape, colour, size, texture,
position: a cell, a row or a column) is stated only with some probability, scaled down
by ``ambiguity`` (at ``ambiguity=1`` every description states one attribute), so "a
red circle" fits every image with a red circle in it. With probability ``multi_rate``
a caption of a multi-object scene describes two or three of its objects, the first two
in a spatial relation ("left of", "right of", "above", "below", "beside" = same row,
"and"/"with" = both present); a caption may add the background ("on a dark
background", ``background_rate``) or the number of objects ("two shapes: ...",
``count_rate``).

*Relevance.* Each caption carries its meaning as a *statement* (one integer row of
:data:`STATEMENT_FIELDS`): up to three object descriptors (shape, colour, size,
texture: ``-1`` = not stated; a 9-bit mask of allowed grid cells), the number of
descriptors, a relation, a background and a count (``-1`` = not stated). A caption is
**relevant** to an image when everything it states is true of the image: there are
distinct objects matching the descriptors, the first two stand in the relation, and
the background and object count agree. Every caption is relevant to its
own image by construction (a test checks it against a naive evaluator).

*Splits.* ``test`` (the retrieval benchmark: captions query images), ``val`` (model
selection), ``bank`` (the data of bank-based normalisers such as DBNorm's, drawn from
the training distribution unless ``bank_shift`` > 0) and ``train``. No discrete scene
(background plus the attributes of the object in each cell) occurs twice in the world,
so no image of one split has an attribute-identical twin in another. Scenes are drawn
by rejection under this constraint, which thins the most frequent one-object scenes
(more so when ``zipf`` is large); the splits are filled side by side in proportion to
their sizes, so the thinning is the same in every split. Captions are *not* unique:
"red circle" is a caption of many images, in every split, which is the point of
partial descriptions. ``test_shift`` = :math:`s` draws the test split's pairs from
:math:`(1-s)\pi + s\,\pi_{\rm perm}` (a permuted popularity; ``bank_shift``
likewise for the bank): a distribution shift between training and test. Each split has
its own random streams for scenes, pixels and captions.

Why a new container
-------------------
:class:`~hubrepro.datasets.PairedData` holds *embeddings* of a test split and a bank.
This world holds raw inputs (uint8 images and token ids) of four splits plus the
attributes that define relevance; embeddings exist only after an encoder has been
trained on ``train``. :class:`ShapesWorld` therefore keeps one :class:`WorldSplit` per
split, and :meth:`~hubrepro.datasets.ShapesWorld.to_paired` turns encoded test and bank features into a
``PairedData`` (captions = queries, images = gallery, as in text-to-image retrieval), so
everything downstream (normalisers, hubness, retrieval metrics) is unchanged.

Book: :ref:`sec-data-shapes`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hubrepro import _validation as V

from ._base import PairedData

__all__ = [
    "SHAPES",
    "COLOURS",
    "SIZES",
    "TEXTURES",
    "BACKGROUNDS",
    "RELATIONS",
    "STATEMENT_FIELDS",
    "SPLITS",
    "ShapesWorldConfig",
    "Vocabulary",
    "WorldSplit",
    "ShapesWorld",
    "make_shapes_world",
    "relevance",
    "naive_relevance",
    "relevance_hub_stats",
    "world_vocabulary",
]

#: Shapes, in index order (column 0 of :attr:`WorldSplit.objects`).
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")
#: Colours, in index order (column 1).
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "cyan")
#: Sizes (column 2).
SIZES = ("small", "large")
#: Textures (column 3).
TEXTURES = ("plain", "striped")
#: Backgrounds (:attr:`WorldSplit.background`).
BACKGROUNDS = ("dark", "grey", "light")
#: Relations between the two objects of a caption (``-1`` in a statement: one object).
RELATIONS = ("and", "left of", "right of", "above", "below", "beside")
#: Columns of a statement row (see the module docstring).
STATEMENT_FIELDS = (
    "shape1", "colour1", "size1", "texture1", "region1",
    "shape2", "colour2", "size2", "texture2", "region2",
    "shape3", "colour3", "size3", "texture3", "region3",
    "n_described", "relation", "background", "count",
)  # fmt: skip
_N_FIELDS = len(STATEMENT_FIELDS)
_F_NDESC, _F_REL, _F_BG, _F_COUNT = 15, 16, 17, 18
#: Split names.
SPLITS = ("test", "val", "bank", "train")
_ANY_REGION = 511  # all nine cells
_N_PAIRS = len(SHAPES) * len(COLOURS)

# --------------------------------------------------------------------- the lexicon
_SHAPE_WORDS = {
    "circle": ("circle", "disc", "round shape"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "triangular shape"),
    "diamond": ("diamond", "rhombus"),
    "cross": ("cross", "plus sign"),
    "ring": ("ring", "hoop", "donut"),
}
_GENERIC_NOUNS = ("shape", "object", "thing", "figure")
_COLOUR_WORDS = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald"),
    "blue": ("blue", "cobalt"),
    "yellow": ("yellow", "golden"),
    "purple": ("purple", "violet"),
    "orange": ("orange", "amber"),
    "cyan": ("cyan", "turquoise", "teal"),
}
_SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
_TEXTURE_WORDS = {"plain": ("plain", "solid"), "striped": ("striped", "stripy")}
_BACKGROUND_WORDS = {
    "dark": ("dark", "black"),
    "grey": ("grey", "gray"),
    "light": ("light", "white", "pale"),
}
_ROW_WORDS = (("top", "upper"), ("middle",), ("bottom", "lower"))
_COL_WORDS = (("left",), ("centre",), ("right",))
_RELATION_WORDS = {
    "and": ("and", "with"),
    "left of": ("left of", "to the left of"),
    "right of": ("right of", "to the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
    "beside": ("beside", "next to"),
}
_COUNT_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_COUNT_NOUNS = (("shape", "shapes"), ("object", "objects"), ("thing", "things"))
_TEMPLATE_WORDS = (
    "a", "an", "the", "there", "is", "that", "in", "at", "on", "corner", "row",
    "column", "side", "background", "of", ":", "centre", "middle",
)  # fmt: skip
_TOKEN_RE = re.compile(r"[a-z-]+|[:,]")

# rendering constants (fractions of the image size, RGB in [0, 1])
_RADIUS = (0.12, 0.2)  # small, large
_RGB = np.array(
    [
        [0.90, 0.15, 0.15],  # red
        [0.15, 0.72, 0.20],  # green
        [0.20, 0.35, 0.95],  # blue
        [0.95, 0.88, 0.15],  # yellow
        [0.62, 0.22, 0.82],  # purple
        [1.00, 0.55, 0.10],  # orange
        [0.15, 0.85, 0.90],  # cyan
    ],
    dtype=np.float32,
)
_BG_LEVEL = np.array([0.10, 0.45, 0.85], dtype=np.float32)


# ------------------------------------------------------------------------ config
@dataclass(frozen=True)
class ShapesWorldConfig:
    """Knobs of :func:`~hubrepro.datasets.make_shapes_world` (field names equal the notebook parameters)."""

    n_train: int = 4000  # training images
    n_bank: int = 1000  # bank images (data of bank-based normalisers)
    n_val: int = 500  # validation images
    n_test: int = 1000  # test images (the retrieval gallery)
    captions_per_image: int = 5  # captions generated per image
    image_size: int = 24  # pixels per side
    min_objects: int = 1  # objects per scene: uniform in [min_objects, max_objects]
    max_objects: int = 3
    zipf: float = 1.0  # long tail: P(pair of rank r) ~ r^(-zipf)
    striped_rate: float = 0.3  # probability that an object is striped
    ambiguity: float = 0.0  # in [0, 1]: fewer attributes stated per description
    multi_rate: float = 0.8  # multi-object scenes: captions describing 2-3 objects
    background_rate: float = 0.15  # captions stating the background
    count_rate: float = (
        0.1  # captions stating the number of objects (as "two shapes: ...")
    )
    jitter: float = 0.15  # object centre jitter, in cell widths (<= 0.5)
    colour_jitter: float = 0.06  # uniform per-channel colour jitter
    pixel_noise: float = 0.03  # std of the (uniform) pixel noise
    test_shift: float = 0.0  # in [0, 1]: pair popularity of the test split permuted
    bank_shift: float = 0.0  # in [0, 1]: the same for the bank

    def __post_init__(self) -> None:
        f = "ShapesWorldConfig"
        V.check_int(self.n_train, "n_train", f, low=2)
        for name in ("n_bank", "n_val"):
            V.check_int(getattr(self, name), name, f, low=0)
        V.check_int(self.n_test, "n_test", f, low=1)
        V.check_int(self.captions_per_image, "captions_per_image", f, low=1)
        V.check_int(self.image_size, "image_size", f, low=12, high=256)
        V.check_int(self.max_objects, "max_objects", f, low=1, high=9)
        V.check_int(self.min_objects, "min_objects", f, low=1, high=self.max_objects)
        V.check_positive(self.zipf, "zipf", f, allow_zero=True)
        for name in (
            "striped_rate",
            "ambiguity",
            "multi_rate",
            "background_rate",
            "count_rate",
            "test_shift",
            "bank_shift",
        ):
            V.check_probability(getattr(self, name), name, f)
        if V.check_positive(self.jitter, "jitter", f, allow_zero=True) > 0.5:
            V.fail(f, "jitter", "in [0, 0.5] (cell widths)", self.jitter)
        V.check_positive(self.colour_jitter, "colour_jitter", f, allow_zero=True)
        V.check_positive(self.pixel_noise, "pixel_noise", f, allow_zero=True)

    def split_sizes(self) -> dict[str, int]:
        """Images per split."""
        return {
            "test": self.n_test,
            "val": self.n_val,
            "bank": self.n_bank,
            "train": self.n_train,
        }


# -------------------------------------------------------------------- vocabulary
def _split_words(phrases: Iterable[str]) -> list[str]:
    return [w for p in phrases for w in _TOKEN_RE.findall(p)]


def world_vocabulary() -> Vocabulary:
    """Return the word-level vocabulary of the caption grammar (every word it can emit)."""
    words: list[str] = list(_TEMPLATE_WORDS) + list(_GENERIC_NOUNS) + list(_COUNT_WORDS)
    for table in (
        _SHAPE_WORDS,
        _COLOUR_WORDS,
        _SIZE_WORDS,
        _TEXTURE_WORDS,
        _BACKGROUND_WORDS,
        _RELATION_WORDS,
    ):
        for phrases in table.values():
            words += _split_words(phrases)
    rows = [w for ws in _ROW_WORDS for w in ws]
    cols = [w for ws in _COL_WORDS for w in ws]
    words += rows + cols + [f"{r}-{c}" for r in rows for c in cols]
    words += [w for pair in _COUNT_NOUNS for w in pair]
    return Vocabulary(sorted(set(words)))


class Vocabulary:
    """A word-level tokenizer: lower-case words and the punctuation ``:`` and ``,``.

    Ids 0 and 1 are ``<pad>`` and ``<unk>``; the given words follow in order.

    Parameters
    ----------
    words : sequence of str
        The vocabulary, without the two special tokens; no duplicates.

    Examples
    --------
    >>> voc = Vocabulary(["a", "circle", "red", ":"])
    >>> ids, mask = voc.encode(["a red circle", "red: a square"])
    >>> ids.tolist()
    [[2, 4, 3, 0], [4, 5, 2, 1]]
    >>> voc.decode(ids[1])
    'red: a <unk>'
    """

    PAD = "<pad>"
    UNK = "<unk>"
    pad_id = 0
    unk_id = 1

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if len(set(words)) != len(words) or {self.PAD, self.UNK} & set(words):
            V.fail(
                "Vocabulary",
                "words",
                "distinct words without <pad>/<unk>",
                "duplicates or special tokens",
            )
        self.itos: tuple[str, ...] = (self.PAD, self.UNK, *words)
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)})"

    @staticmethod
    def tokenize(text: str) -> list[str]:
        """Split ``text`` into lower-case word and punctuation tokens."""
        return _TOKEN_RE.findall(text.lower())

    def encode(
        self, texts: Sequence[str], *, max_len: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return token ids ``(n, L)`` (padded with 0) and the valid-token mask.

        Parameters
        ----------
        texts : sequence of str
            Unknown words map to ``<unk>``.
        max_len : int or None
            Pad or truncate to this length; ``None`` pads to the longest text.

        Returns
        -------
        ids : LongTensor of shape (n, L)
        mask : BoolTensor of shape (n, L)
            ``True`` at real tokens.
        """
        if isinstance(texts, str):
            V.fail(
                "Vocabulary.encode",
                "texts",
                "a sequence of strings",
                "a str",
                exc=TypeError,
            )
        toks = [self.tokenize(t) for t in texts]
        if any(not t for t in toks):
            V.fail(
                "Vocabulary.encode",
                "texts",
                "texts with at least one word",
                "an empty text",
            )
        n_len = max((len(t) for t in toks), default=1)
        if max_len is not None:
            n_len = V.check_int(max_len, "max_len", "Vocabulary.encode", low=1)
        ids = np.zeros((len(toks), n_len), dtype=np.int64)
        get = self.stoi.get
        for i, t in enumerate(toks):
            row = [get(w, self.unk_id) for w in t[:n_len]]
            ids[i, : len(row)] = row
        ids = torch.from_numpy(ids)
        return ids, ids != self.pad_id

    def decode(self, ids: Any) -> str:
        """Return the text of one row of ids (padding dropped; no space before ``:``/``,``)."""
        row = [int(i) for i in torch.as_tensor(ids).reshape(-1).tolist()]
        words = [self.itos[i] for i in row if i != self.pad_id]
        return " ".join(words).replace(" :", ":").replace(" ,", ",")


# ---------------------------------------------------------------------- containers
@dataclass(frozen=True, eq=False)
class WorldSplit:
    r"""One split of a :class:`ShapesWorld`: images, their attributes, captions, statements.

    Attributes
    ----------
    name : str
        ``"train"``, ``"bank"``, ``"val"`` or ``"test"``.
    images : ByteTensor of shape (n_images, 3, S, S)
        RGB, uint8 (divide by 255 for [0, 1]).
    objects : LongTensor of shape (n_images, max_objects, 5)
        Per object (in drawing order): shape, colour, size, texture, cell (indices into
        :data:`SHAPES`, :data:`COLOURS`, :data:`SIZES`, :data:`TEXTURES`; cell
        :math:`3 \cdot \mathrm{row} + \mathrm{col}`); rows of ``-1`` for absent objects.
    background : LongTensor of shape (n_images,)
        Index into :data:`BACKGROUNDS`.
    captions : tuple of str
        ``captions_per_image`` per image, image-major.
    caption_to_image : LongTensor of shape (n_captions,)
        The image each caption was generated from.
    statements : LongTensor of shape (n_captions, 19)
        The meaning of each caption, columns :data:`STATEMENT_FIELDS`.
    tokens : LongTensor of shape (n_captions, max_len)
        Token ids of the captions (:attr:`~hubrepro.datasets.ShapesWorld.vocab`), padded with 0.
    """

    name: str
    images: torch.Tensor
    objects: torch.Tensor
    background: torch.Tensor
    captions: tuple[str, ...]
    caption_to_image: torch.Tensor
    statements: torch.Tensor
    tokens: torch.Tensor

    @property
    def n_images(self) -> int:
        """Number of images."""
        return int(self.images.shape[0])

    @property
    def n_captions(self) -> int:
        """Number of captions."""
        return len(self.captions)

    @property
    def token_mask(self) -> torch.Tensor:
        """``True`` at real (non-padding) tokens of :attr:`tokens`."""
        return self.tokens != Vocabulary.pad_id

    @property
    def n_objects(self) -> torch.Tensor:
        """Objects per image, LongTensor of shape (n_images,)."""
        return (self.objects[:, :, 0] >= 0).sum(1)

    @property
    def image_labels(self) -> torch.Tensor:
        """(shape, colour) pair id ``shape * 7 + colour`` of each image's first-drawn object.

        A coarse concept label for label-based statistics
        (:func:`hubrepro.hub_quality.neighbor_label_stats`); :meth:`relevance` is exact.
        """
        return self.objects[:, 0, 0] * len(COLOURS) + self.objects[:, 0, 1]

    @property
    def caption_labels(self) -> torch.Tensor:
        """The :attr:`image_labels` of each caption's own image."""
        return self.image_labels[self.caption_to_image]

    def relevance(
        self, images: WorldSplit | None = None, *, device: str | torch.device = "cpu"
    ) -> torch.Tensor:
        """Return the exact relevance ``(n_captions, n_images)`` of these captions to ``images``.

        ``images`` defaults to this split's own images. See :func:`relevance`.
        """
        im = self if images is None else images
        return relevance(self.statements, im.objects, im.background, device=device)

    def __repr__(self) -> str:
        return (
            f"WorldSplit({self.name!r}, images={tuple(self.images.shape)}, "
            f"captions={self.n_captions})"
        )


@dataclass(frozen=True, eq=False)
class ShapesWorld:
    """A generated ``shapes-world``: four splits, the vocabulary and the config.

    Attributes
    ----------
    name : str
        ``"shapes-world"``.
    config : ShapesWorldConfig
    train, bank, val, test : WorldSplit
    vocab : Vocabulary
        The grammar's word-level vocabulary (:func:`~hubrepro.datasets.shapes_world.world_vocabulary`).
    pair_rank : LongTensor of shape (6, 7)
        Popularity rank (0 = most common) of each (shape, colour) pair in training.
    meta : dict
        Seed, config, generator version, sizes.

    Book
    ----
    :ref:`sec-data-shapes`.
    """

    name: str
    config: ShapesWorldConfig
    train: WorldSplit
    bank: WorldSplit
    val: WorldSplit
    test: WorldSplit
    vocab: Vocabulary
    pair_rank: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> WorldSplit:
        """Return the split called ``name`` (one of :data:`~hubrepro.datasets.shapes_world.SPLITS`)."""
        return getattr(self, V.check_choice(name, "name", "ShapesWorld.split", SPLITS))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={self.split(s).n_images}" for s in SPLITS)
        return (
            f"ShapesWorld({sizes}, captions_per_image={self.config.captions_per_image}, "
            f"image_size={self.config.image_size}, vocab={len(self.vocab)})"
        )

    def to_paired(
        self,
        query: torch.Tensor,
        gallery: torch.Tensor,
        bank_query: torch.Tensor | None = None,
        bank_gallery: torch.Tensor | None = None,
        *,
        split: str = "test",
        bank: str = "bank",
    ) -> PairedData:
        """Wrap encoded features as a :class:`~hubrepro.datasets.PairedData`.

        Parameters
        ----------
        query : Tensor of shape (n_captions, d)
            Features of the captions of ``split`` (in their order).
        gallery : Tensor of shape (n_images, d)
            Features of the images of ``split``.
        bank_query, bank_gallery : Tensor or None
            Features of the captions and images of the ``bank`` split.
        split, bank : str
            Which splits the features belong to (default ``"test"`` and ``"bank"``).

        Returns
        -------
        PairedData
            ``query_to_gallery`` = ``caption_to_image``, concept labels
            (:attr:`~hubrepro.datasets.shapes_world.WorldSplit.image_labels`), caption texts; ``meta`` names the world.
        """
        t = self.split(split)
        b = self.split(bank) if bank_query is not None else None
        return PairedData(
            name=self.name,
            query=query,
            gallery=gallery,
            query_to_gallery=t.caption_to_image,
            bank_query=bank_query,
            bank_gallery=bank_gallery,
            bank_query_to_gallery=None if b is None else b.caption_to_image,
            query_labels=t.caption_labels,
            gallery_labels=t.image_labels,
            bank_query_labels=None if b is None else b.caption_labels,
            bank_gallery_labels=None if b is None else b.image_labels,
            query_text=t.captions,
            bank_query_text=None if b is None else b.captions,
            meta={
                **self.meta,
                "split": split,
                "bank_split": bank if b is not None else None,
                "query_modality": "caption",
                "gallery_modality": "image",
            },
        )


# ------------------------------------------------------------------------ scenes
def _pair_prior(zipf: float, rank: np.ndarray) -> np.ndarray:
    """P(pair) for pairs given by flat id, from their popularity ``rank`` (0 = first)."""
    p = (rank.astype(np.float64) + 1.0) ** (-zipf)
    return p / p.sum()


def _candidates(
    rng: np.random.Generator, prior: np.ndarray, cfg: ShapesWorldConfig
) -> Iterator[tuple[np.ndarray, int, bytes]]:
    """Endless random scenes ``(objects (max_objects, 5), background, signature)``."""
    mo = cfg.max_objects
    while True:
        m = 256
        n_obj = rng.integers(cfg.min_objects, cfg.max_objects + 1, size=m)
        pairs = rng.choice(_N_PAIRS, size=(m, mo), p=prior)
        size = rng.integers(0, 2, size=(m, mo))
        texture = (rng.random((m, mo)) < cfg.striped_rate).astype(np.int64)
        cells = np.argsort(rng.random((m, 9)), axis=1, kind="stable")[:, :mo]
        bg = rng.integers(0, len(BACKGROUNDS), size=m)
        present = np.arange(mo)[None, :] < n_obj[:, None]
        cand = np.stack(
            [pairs // len(COLOURS), pairs % len(COLOURS), size, texture, cells], axis=2
        )
        cand[~present] = -1
        # the signature of a scene: its background and the object in each cell
        code = 1 + (pairs * 2 + size) * 2 + texture
        sig = np.zeros((m, 10), dtype=np.int16)
        sig[:, 0] = bg
        rows = np.repeat(np.arange(m), mo).reshape(m, mo)
        sig[rows[present], 1 + cells[present]] = code[present]
        for j in range(m):
            yield cand[j], int(bg[j]), sig[j].tobytes()


def _draw_scenes(
    streams: dict[str, Iterator[tuple[np.ndarray, int, bytes]]],
    sizes: dict[str, int],
    cfg: ShapesWorldConfig,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Scenes of every split, none twice in the world: ``{split: (objects, background)}``.

    A candidate whose signature was already taken is redrawn from its split's stream.
    The splits are filled side by side, each in proportion to its size, so that the
    scenes that rejection thins (frequent one-object scenes) are thinned alike in
    every split and the splits keep one distribution.
    """
    mo = cfg.max_objects
    out = {
        k: (np.full((n, mo, 5), -1, dtype=np.int64), np.zeros(n, dtype=np.int64))
        for k, n in sizes.items()
    }
    filled = dict.fromkeys(sizes, 0)
    seen: set[bytes] = set()
    budget = 200 * sum(sizes.values()) + 10_000
    while True:
        todo = [k for k in sizes if filled[k] < sizes[k]]
        if not todo:
            return out
        k = min(todo, key=lambda name: (filled[name] + 1) / sizes[name])
        objects, background = out[k]
        for _ in range(budget):
            cand, bg, key = next(streams[k])
            if key not in seen:
                break
        else:  # pragma: no cover - needs an absurdly small world
            V.fail(
                "make_shapes_world",
                "config",
                "a world with enough distinct scenes",
                f"no new scene for split {k!r} after {budget} draws",
                "Lower `zipf`, raise `max_objects` or ask for fewer images.",
            )
        seen.add(key)
        objects[filled[k]] = cand
        background[filled[k]] = bg
        filled[k] += 1


# ----------------------------------------------------------------------- render
def _alpha(
    shape: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    r: np.ndarray,
    centre: np.ndarray,
) -> np.ndarray:
    """Coverage in [0, 1], shape (m, S, S), of m objects, antialiased by their signed distance."""
    out = np.empty((shape.shape[0], centre.shape[0], centre.shape[0]), np.float32)
    for s in range(len(SHAPES)):
        idx = np.nonzero(shape == s)[0]
        if idx.size == 0:
            continue
        x = centre[None, None, :] - cx[idx, None, None]  # (k, 1, S)
        y = centre[None, :, None] - cy[idx, None, None]  # (k, S, 1)
        rr = r[idx, None, None]
        ax, ay = np.abs(x), np.abs(y)
        if SHAPES[s] == "circle":
            d = np.sqrt(x * x + y * y) - rr
        elif SHAPES[s] == "square":
            d = np.maximum(ax, ay) - np.float32(0.85) * rr
        elif SHAPES[s] == "diamond":
            d = (ax + ay - np.float32(1.2) * rr) * np.float32(0.70710678)
        elif SHAPES[s] == "triangle":
            # apex up at (0, -r), base at y = 0.8 r from x = -r to r
            k = np.float32(1.0 / np.sqrt(1.8 * 1.8 + 1.0))
            top = y + rr
            d = np.maximum(
                y - np.float32(0.8) * rr,
                np.maximum(
                    (np.float32(1.8) * x - top) * k, (np.float32(-1.8) * x - top) * k
                ),
            )
        elif SHAPES[s] == "cross":
            w = np.float32(0.34) * rr
            d = np.minimum(np.maximum(ax - rr, ay - w), np.maximum(ax - w, ay - rr))
        else:  # ring
            d = (
                np.abs(np.sqrt(x * x + y * y) - np.float32(0.7) * rr)
                - np.float32(0.3) * rr
            )
        out[idx] = d
    np.subtract(np.float32(0.5), out, out=out)
    return np.clip(out, 0.0, 1.0, out=out)


def _render(
    rng: np.random.Generator,
    objects: np.ndarray,
    background: np.ndarray,
    cfg: ShapesWorldConfig,
) -> np.ndarray:
    """Images (n, 3, S, S) uint8 of the scenes."""
    n, mo, _ = objects.shape
    s = cfg.image_size
    cell = np.float32(s / 3.0)
    tint = (rng.random((n, 3), dtype=np.float32) - 0.5) * np.float32(0.08)
    canvas = np.empty((n, 3, s, s), dtype=np.float32)
    canvas[:] = (_BG_LEVEL[background][:, None] + tint)[:, :, None, None]
    jit = (rng.random((n, mo, 2), dtype=np.float32) - 0.5) * np.float32(
        2 * cfg.jitter * cell
    )
    cjit = (rng.random((n, mo, 3), dtype=np.float32) - 0.5) * np.float32(
        2 * cfg.colour_jitter
    )
    # uniform noise of standard deviation `pixel_noise` (cheaper than Gaussian)
    noise = rng.random((n, 3, s, s), dtype=np.float32)
    noise -= np.float32(0.5)
    noise *= np.float32(cfg.pixel_noise * np.sqrt(12.0))
    centre = np.arange(s, dtype=np.float32) + np.float32(0.5)
    stripe = ((np.arange(s)[:, None] + np.arange(s)[None, :]) // 2) % 2 == 1
    radius = np.array(_RADIUS, dtype=np.float32) * np.float32(s)
    for slot in range(mo):
        idx = np.nonzero(objects[:, slot, 0] >= 0)[0]
        for a in range(0, idx.size, 4096):
            im = idx[a : a + 4096]
            o = objects[im, slot]
            cx = ((o[:, 4] % 3).astype(np.float32) + np.float32(0.5)) * cell
            cy = ((o[:, 4] // 3).astype(np.float32) + np.float32(0.5)) * cell
            alpha = _alpha(
                o[:, 0],
                cx + jit[im, slot, 0],
                cy + jit[im, slot, 1],
                radius[o[:, 2]],
                centre,
            )
            colour = np.clip(_RGB[o[:, 1]] + cjit[im, slot], 0.0, 1.0)
            dark = (o[:, 3] == 1)[:, None, None] & stripe[None]
            shade = np.where(dark, np.float32(0.45), np.float32(1.0))
            sub = canvas[im]
            for c in range(3):
                sub[:, c] += (colour[:, c, None, None] * shade - sub[:, c]) * alpha
            canvas[im] = sub
    canvas += noise
    np.clip(canvas, 0.0, 1.0, out=canvas)
    canvas *= np.float32(255.0)
    canvas += np.float32(0.5)
    return canvas.astype(np.uint8)  # truncation of non-negative values: rounding


# ---------------------------------------------------------------------- captions
class _Draw:
    """Uniform numbers from a generator, drawn in blocks (fast scalar draws)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.buf = rng.random(4096).tolist()
        self.i = 0

    def u(self) -> float:
        if self.i == len(self.buf):
            self.buf = self.rng.random(4096).tolist()
            self.i = 0
        self.i += 1
        return self.buf[self.i - 1]

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[min(int(self.u() * len(seq)), len(seq) - 1)]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _region_phrase(draw: _Draw, row: int, col: int, kind: str) -> tuple[int, str, str]:
    """(mask, phrase with preposition, bare phrase) for a cell, row or column."""
    if kind == "cell":
        mask = 1 << (3 * row + col)
        if row == 1 and col == 1:
            word = draw.pick(("centre", "middle"))
            return mask, f"in the {word}", word
        rw = "middle" if row == 1 else draw.pick(_ROW_WORDS[row])
        cw = _COL_WORDS[col][0]
        bare = f"{rw} {cw}" if draw.u() < 0.8 else f"{rw}-{cw}"
        if row != 1 and col != 1 and draw.u() < 0.3:
            return mask, f"in the {bare} corner", bare
        return mask, f"{draw.pick(('in the', 'at the'))} {bare}", bare
    if kind == "row":
        mask = 0b111 << (3 * row)
        if row == 1:
            return mask, "in the middle row", "middle row"
        word = draw.pick(_ROW_WORDS[row])
        return mask, f"at the {word}", word
    mask = 0b001001001 << col
    if col == 1:
        return mask, "in the centre column", "centre column"
    word = _COL_WORDS[col][0]
    if draw.u() < 0.5:
        return mask, f"on the {word}", word
    return mask, f"on the {word} side", f"{word} side"


# probability that a description states each attribute (times 1 - ambiguity)
_BASE_P = {"shape": 0.85, "colour": 0.85, "size": 0.5, "texture": 0.35, "position": 0.4}


def _descriptor(
    obj: np.ndarray, draw: _Draw, ambiguity: float, p_position: float
) -> tuple[list[int], dict[str, str], str | None, str | None]:
    """Statement fields, adjective/noun words and position phrases of one object."""
    keep = 1.0 - ambiguity
    p = dict(_BASE_P, position=p_position)
    stated = {a: draw.u() < pa * keep for a, pa in p.items()}
    if not any(stated.values()):
        stated[draw.pick(tuple(p))] = True
    shape, colour, size, texture, cell = (int(v) for v in obj)
    fields = [
        shape if stated["shape"] else -1,
        colour if stated["colour"] else -1,
        size if stated["size"] else -1,
        texture if stated["texture"] else -1,
        _ANY_REGION,
    ]
    words = {
        "size": draw.pick(_SIZE_WORDS[SIZES[size]]) if stated["size"] else "",
        "texture": draw.pick(_TEXTURE_WORDS[TEXTURES[texture]])
        if stated["texture"]
        else "",
        "colour": draw.pick(_COLOUR_WORDS[COLOURS[colour]]) if stated["colour"] else "",
        "noun": draw.pick(_SHAPE_WORDS[SHAPES[shape]])
        if stated["shape"]
        else draw.pick(_GENERIC_NOUNS),
    }
    pp = bare = None
    if stated["position"]:
        kind = draw.pick(("cell", "cell", "row", "column"))
        fields[4], pp, bare = _region_phrase(draw, cell // 3, cell % 3, kind)
    return fields, words, pp, bare


def _noun_phrase(words: dict[str, str], article: bool) -> str:
    np_ = " ".join(w for w in (words["size"], words["texture"], words["colour"]) if w)
    np_ = f"{np_} {words['noun']}" if np_ else words["noun"]
    return f"{_article(np_)} {np_}" if article else np_


def _single(
    draw: _Draw, words: dict[str, str], pp: str | None, bare: str | None
) -> str:
    adjs = [w for w in (words["size"], words["texture"], words["colour"]) if w]
    forms = ["plain", "plain", "fragment", "there"]
    if pp is not None:
        forms.append("front")
    if adjs:
        forms.append("that")
    form = draw.pick(forms)
    tail = f" {pp}" if pp else ""
    if form == "front":
        return f"{bare}: {_noun_phrase(words, True)}"
    if form == "fragment":
        return _noun_phrase(words, False) + tail
    if form == "there":
        return f"there is {_noun_phrase(words, True)}{tail}"
    if form == "that":
        noun = words["noun"]
        return f"{_article(noun)} {noun}{tail} that is {' and '.join(adjs)}"
    return _noun_phrase(words, True) + tail


def _true_relations(c1: int, c2: int) -> list[int]:
    r1, k1, r2, k2 = c1 // 3, c1 % 3, c2 // 3, c2 % 3
    rel = [RELATIONS.index("and")]
    if k1 < k2:
        rel.append(RELATIONS.index("left of"))
    if k1 > k2:
        rel.append(RELATIONS.index("right of"))
    if r1 < r2:
        rel.append(RELATIONS.index("above"))
    if r1 > r2:
        rel.append(RELATIONS.index("below"))
    if r1 == r2:
        rel.append(RELATIONS.index("beside"))
    return rel


def _caption(
    objs: np.ndarray, bg: int, draw: _Draw, cfg: ShapesWorldConfig
) -> tuple[str, list[int]]:
    present = [o for o in objs if o[0] >= 0]
    n = len(present)
    st = [-1, -1, -1, -1, _ANY_REGION] * 3 + [1, -1, -1, -1]
    if n >= 2 and draw.u() < cfg.multi_rate:
        # two or three distinct objects; a relation between the first two
        m = 2 if n == 2 else 2 + int(draw.u() < 0.5)
        order = list(range(n))
        for a in range(m):  # partial Fisher-Yates shuffle
            b = a + min(int(draw.u() * (n - a)), n - a - 1)
            order[a], order[b] = order[b], order[a]
        phrases = []
        for a in range(m):
            f, w, pp, _ = _descriptor(
                present[order[a]], draw, cfg.ambiguity, 0.5 * _BASE_P["position"]
            )
            st[5 * a : 5 * a + 5] = f
            phrases.append(_noun_phrase(w, True) + (f" {pp}" if pp else ""))
        c1, c2 = int(present[order[0]][4]), int(present[order[1]][4])
        rel = draw.pick(_true_relations(c1, c2))
        st[_F_NDESC], st[_F_REL] = m, rel
        text = f"{phrases[0]} {draw.pick(_RELATION_WORDS[RELATIONS[rel]])} {phrases[1]}"
        if m == 3:
            text += f" and {phrases[2]}"
    else:
        f1, w1, pp1, bare1 = _descriptor(
            present[min(int(draw.u() * n), n - 1)],
            draw,
            cfg.ambiguity,
            _BASE_P["position"],
        )
        st[0:5] = f1
        text = _single(draw, w1, pp1, bare1)
    if draw.u() < cfg.background_rate:
        st[_F_BG] = bg
        word = draw.pick(_BACKGROUND_WORDS[BACKGROUNDS[bg]])
        text += f" on {_article(word)} {word} background"
    # (no count in front of a caption that already starts with "position:")
    if draw.u() < cfg.count_rate and ":" not in text:
        st[_F_COUNT] = n
        singular, plural = draw.pick(_COUNT_NOUNS)
        text = f"{_COUNT_WORDS[n - 1]} {singular if n == 1 else plural}: {text}"
    return text, st


def _captions(
    rng: np.random.Generator,
    objects: np.ndarray,
    background: np.ndarray,
    cfg: ShapesWorldConfig,
) -> tuple[list[str], np.ndarray]:
    draw = _Draw(rng)
    texts: list[str] = []
    stmts: list[list[int]] = []
    for i in range(objects.shape[0]):
        for _ in range(cfg.captions_per_image):
            t, s = _caption(objects[i], int(background[i]), draw, cfg)
            texts.append(t)
            stmts.append(s)
    return texts, np.asarray(stmts, dtype=np.int64).reshape(-1, _N_FIELDS)


# ---------------------------------------------------------------------- relevance
def _rel_table(objects: torch.Tensor) -> torch.Tensor:
    """(n_relations, n_images, O, O): relation r holds between objects o1 and o2."""
    present = objects[:, :, 0] >= 0
    cell = objects[:, :, 4].clamp_min(0)
    row, col = cell // 3, cell % 3
    both = present[:, :, None] & present[:, None, :]
    o = objects.shape[1]
    distinct = ~torch.eye(o, dtype=torch.bool, device=objects.device)[None]
    r1, r2 = row[:, :, None], row[:, None, :]
    c1, c2 = col[:, :, None], col[:, None, :]
    table = torch.stack(
        [
            torch.ones_like(both),  # and
            c1 < c2,  # left of
            c1 > c2,  # right of
            r1 < r2,  # above
            r1 > r2,  # below
            r1 == r2,  # beside (same row)
        ]
    )
    return table & (both & distinct)[None]


def _match(desc: torch.Tensor, objects: torch.Tensor) -> torch.Tensor:
    """(c, n_images, O): object o of image i satisfies descriptor row c (5 fields)."""
    present = objects[:, :, 0] >= 0
    ok = present[None]
    for f in range(4):
        want = desc[:, f][:, None, None]
        ok = ok & ((want < 0) | (objects[None, :, :, f] == want))
    cell = objects[:, :, 4].clamp_min(0)
    in_region = (desc[:, 4][:, None, None] >> cell[None]) & 1
    return ok & (in_region == 1)


def relevance(
    statements: torch.Tensor,
    objects: torch.Tensor,
    background: torch.Tensor,
    *,
    chunk_size: int = 256,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    r"""Return whether each caption is relevant to each image: everything it states is true.

    A caption describing :math:`m \in \{1, 2, 3\}` objects is relevant to image
    :math:`i` when (a) :math:`i` has :math:`m` *distinct* objects matching the
    descriptors (every stated shape, colour, size and texture equal, the cell inside
    the stated region); (b) for :math:`m \ge 2`, the stated relation holds between the
    objects matching descriptors 1 and 2 (left of / right of: column order; above /
    below: row order; beside: same row; and: both present); (c) the stated background
    and number of objects, if any, equal the image's.

    Parameters
    ----------
    statements : LongTensor of shape (n_captions, 19)
        Columns :data:`STATEMENT_FIELDS` (:attr:`WorldSplit.statements`).
    objects : LongTensor of shape (n_images, max_objects, 5)
        :attr:`WorldSplit.objects`.
    background : LongTensor of shape (n_images,)
    chunk_size : int, default 256
        Captions per block (memory ``chunk_size * n_images * max_objects**3`` bools).
    device : str or torch.device, default "cpu"
        Where to compute; the result is on this device.

    Returns
    -------
    BoolTensor of shape (n_captions, n_images)

    See Also
    --------
    naive_relevance : the same, one pair at a time (the tests' reference).

    Book
    ----
    :ref:`sec-data-shapes`.
    """
    func = "relevance"
    st = V.as_tensor(statements, "statements", func)
    ob = V.as_tensor(objects, "objects", func)
    bg = V.as_tensor(background, "background", func)
    if st.ndim != 2 or st.shape[1] != _N_FIELDS:
        V.fail(func, "statements", f"of shape (n, {_N_FIELDS})", tuple(st.shape))
    if ob.ndim != 3 or ob.shape[2] != 5:
        V.fail(func, "objects", "of shape (n_images, max_objects, 5)", tuple(ob.shape))
    if bg.shape != (ob.shape[0],):
        V.fail(func, "background", f"of shape ({ob.shape[0]},)", tuple(bg.shape))
    chunk_size = V.check_int(chunk_size, "chunk_size", func, low=1)
    dev = torch.device(device)
    st, ob, bg = st.long().to(dev), ob.long().to(dev), bg.long().to(dev)
    rel = _rel_table(ob)
    n_obj = (ob[:, :, 0] >= 0).sum(1)
    o = ob.shape[1]
    # o3 differs from o1 and o2 (o1 != o2 is part of every relation)
    eye = torch.eye(o, dtype=torch.bool, device=dev)
    third = ~(eye[:, None, :] | eye[None, :, :])  # (O, O, O)
    out = torch.empty(st.shape[0], ob.shape[0], dtype=torch.bool, device=dev)
    for a in range(0, st.shape[0], chunk_size):
        s = st[a : a + chunk_size]
        m1, m2, m3 = (_match(s[:, 5 * d : 5 * d + 5], ob) for d in range(3))
        nd = s[:, _F_NDESC]
        ok = m1.any(2)
        two = (nd >= 2).nonzero().squeeze(1)
        if two.numel():
            pair = m1[two, :, :, None] & m2[two, :, None, :] & rel[s[two, _F_REL]]
            ok[two] = pair.flatten(2).any(2)
            three = (nd[two] == 3).nonzero().squeeze(1)
            if three.numel():
                triple = pair[three, ..., None] & m3[two[three], :, None, None, :]
                ok[two[three]] = (triple & third).flatten(2).any(2)
        want_bg, want_n = s[:, _F_BG : _F_BG + 1], s[:, _F_COUNT : _F_COUNT + 1]
        ok &= (want_bg < 0) | (bg[None] == want_bg)
        ok &= (want_n < 0) | (n_obj[None] == want_n)
        out[a : a + chunk_size] = ok
    return out


def naive_relevance(statement: Sequence[int], objects: Any, background: int) -> bool:
    """Relevance of one caption to one image, by plain loops (a reference for tests).

    Parameters
    ----------
    statement : sequence of 19 ints
        One row of :attr:`WorldSplit.statements`.
    objects : array-like of shape (max_objects, 5)
        One image's :attr:`WorldSplit.objects` rows.
    background : int

    Returns
    -------
    bool
    """
    s = [int(v) for v in statement]
    objs = [tuple(int(v) for v in o) for o in objects if int(o[0]) >= 0]
    descs = [s[5 * d : 5 * d + 5] for d in range(s[_F_NDESC])]

    def fits(o: tuple[int, ...], d: list[int]) -> bool:
        return all(d[f] < 0 or d[f] == o[f] for f in range(4)) and bool(
            (d[4] >> o[4]) & 1
        )

    def holds(rel: int, o1: tuple[int, ...], o2: tuple[int, ...]) -> bool:
        (r1, c1), (r2, c2) = divmod(o1[4], 3), divmod(o2[4], 3)
        return [True, c1 < c2, c1 > c2, r1 < r2, r1 > r2, r1 == r2][rel]

    if s[_F_BG] >= 0 and s[_F_BG] != background:
        return False
    if s[_F_COUNT] >= 0 and s[_F_COUNT] != len(objs):
        return False
    for chosen in itertools.permutations(objs, len(descs)):
        if not all(fits(o, d) for o, d in zip(chosen, descs, strict=True)):
            continue
        if len(descs) == 1 or holds(s[_F_REL], chosen[0], chosen[1]):
            return True
    return False


def relevance_hub_stats(
    sims: Any,
    relevant: Any,
    *,
    k: int = 10,
    hub_factor: float = 2.0,
    chunk_size: int = 4096,
) -> dict[str, float]:
    r"""Good and bad hubs when relevance is known exactly (a relevance matrix, not labels).

    The generalisation of :func:`hubrepro.hub_quality.neighbor_label_stats` from
    "same concept label" to any relevance relation: a slot :math:`(i, j)`,
    :math:`j \in \mathrm{top}_k(i)`, is *good* when query :math:`i` is relevant to
    gallery item :math:`j`; hubs are the items with :math:`N_k \ge`
    ``hub_factor`` :math:`\cdot k` (NeighborRetr, ``lin2025neighborretr``, §3: a hub is
    good when the queries that retrieve it are relevant to it).

    Parameters
    ----------
    sims : Tensor of shape (n_query, n_gallery)
        Scores, higher = closer.
    relevant : BoolTensor of shape (n_query, n_gallery)
        E.g. :func:`relevance` for captions against images, or its transpose for images
        against captions.
    k : int, default 10
    hub_factor : float, default 2.0
    chunk_size : int, default 4096
        Query rows per block.

    Returns
    -------
    dict
        The keys of ``neighbor_label_stats``: ``k``, ``good_neighbor_rate``,
        ``bad_hub_fraction``, ``good_hub_fraction`` (``nan`` without hubs),
        ``hub_occupancy``, ``n_hubs``.

    Examples
    --------
    >>> import torch
    >>> s = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.1]])
    >>> rel = torch.tensor([[True, False, False], [False, True, True]])
    >>> st = relevance_hub_stats(s, rel, k=1, hub_factor=2)
    >>> st["bad_hub_fraction"], st["good_neighbor_rate"]
    (0.5, 0.5)

    Book
    ----
    :ref:`sec-data-shapes`.
    """
    func = "relevance_hub_stats"
    s = V.check_matrix(sims, "sims", func)
    rel = V.as_tensor(relevant, "relevant", func)
    if rel.shape != s.shape:
        V.fail(
            func, "relevant", f"of shape {tuple(s.shape)}", f"shape {tuple(rel.shape)}"
        )
    if rel.dtype != torch.bool:
        V.fail(func, "relevant", "a boolean tensor", str(rel.dtype), exc=TypeError)
    nq, ng = s.shape
    k = V.check_int(k, "k", func, low=1, high=ng)
    hub_factor = V.check_positive(hub_factor, "hub_factor", func)
    chunk_size = V.check_int(chunk_size, "chunk_size", func, low=1)
    rel = rel.to(s.device)
    tops, goods = [], []
    for a in range(0, nq, chunk_size):
        top = s[a : a + chunk_size].topk(k, dim=1).indices
        tops.append(top)
        goods.append(rel[a : a + chunk_size].gather(1, top))
    top, good = torch.cat(tops), torch.cat(goods)
    n_k = torch.bincount(top.reshape(-1), minlength=ng)
    on_hub = (n_k >= hub_factor * k)[top]
    n_hub_slots = int(on_hub.sum())
    bad = float((on_hub & ~good).sum()) / n_hub_slots if n_hub_slots else float("nan")
    return {
        "k": k,
        "good_neighbor_rate": float(good.float().mean()),
        "bad_hub_fraction": bad,
        "good_hub_fraction": 1.0 - bad if n_hub_slots else float("nan"),
        "hub_occupancy": n_hub_slots / float(nq * k),
        "n_hubs": int((n_k >= hub_factor * k).sum()),
    }


# ------------------------------------------------------------------------- world
#: Version of the generator; bump it when a change alters the bytes of a seed's world.
GENERATOR_VERSION = 1


def _stream(seed: int, split: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(split, purpose))
    )


def make_shapes_world(
    config: ShapesWorldConfig | None = None, *, seed: int = 0, **options: Any
) -> ShapesWorld:
    """Generate a ``shapes-world``: four splits of rendered scenes with captions.

    Parameters
    ----------
    config : ShapesWorldConfig, optional
        The knobs; keyword ``options`` override its fields (e.g. ``zipf=1.5``).
    seed : int, default 0
        Everything (pair popularity, scenes, pixels, captions) follows from it; the
        same seed and knobs give bit-identical tensors and texts on every machine.
    **options
        Fields of :class:`ShapesWorldConfig`.

    Returns
    -------
    ShapesWorld

    Raises
    ------
    ValueError, TypeError
        For unknown options or out-of-range values.

    Notes
    -----
    Generation runs on the CPU with numpy (a few seconds for the defaults); move the
    tensors with ``.to(device)`` where they are used. Book: :ref:`sec-data-shapes`.

    Examples
    --------
    >>> w = make_shapes_world(seed=0, n_train=20, n_bank=0, n_val=0, n_test=10)
    >>> tuple(w.test.images.shape), w.test.n_captions
    ((10, 3, 24, 24), 50)
    >>> bool(w.test.relevance()[torch.arange(50), w.test.caption_to_image].all())
    True
    """
    func = "make_shapes_world"
    from hubrepro.config import from_params, to_params

    cfg = config if config is not None else ShapesWorldConfig()
    if not isinstance(cfg, ShapesWorldConfig):
        V.fail(func, "config", "a ShapesWorldConfig", type(cfg).__name__, exc=TypeError)
    if options:
        cfg = from_params(ShapesWorldConfig, {**to_params(cfg), **options})
    seed = V.check_int(seed, "seed", func, low=0, high=2**63 - 1)
    root = _stream(seed, 0, 0)
    perm = root.permutation(_N_PAIRS)  # perm[r] = the pair of rank r
    rank = np.empty(_N_PAIRS, dtype=np.int64)
    rank[perm] = np.arange(_N_PAIRS)
    prior = _pair_prior(cfg.zipf, rank)
    shifted_rank = rank[root.permutation(_N_PAIRS)]
    shifted = _pair_prior(cfg.zipf, shifted_rank)
    shift = {"test": cfg.test_shift, "bank": cfg.bank_shift}
    vocab = world_vocabulary()
    splits: dict[str, WorldSplit] = {}
    streams = {}
    for i, name in enumerate(SPLITS, start=1):
        s = shift.get(name, 0.0)
        p = (1.0 - s) * prior + s * shifted
        streams[name] = _candidates(_stream(seed, i, 0), p / p.sum(), cfg)
    scenes = _draw_scenes(streams, cfg.split_sizes(), cfg)
    max_len = 0
    raw: dict[
        str, tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray]
    ] = {}
    for i, name in enumerate(SPLITS, start=1):
        objects, bg = scenes[name]
        images = _render(_stream(seed, i, 1), objects, bg, cfg)
        texts, stmts = _captions(_stream(seed, i, 2), objects, bg, cfg)
        max_len = max([max_len, *(len(Vocabulary.tokenize(t)) for t in texts)])
        raw[name] = (objects, bg, images, texts, stmts)
    for name, (objects, bg, images, texts, stmts) in raw.items():
        tokens = (
            vocab.encode(texts, max_len=max_len)[0]
            if texts
            else torch.zeros(0, max_len, dtype=torch.long)
        )
        splits[name] = WorldSplit(
            name=name,
            images=torch.from_numpy(images),
            objects=torch.from_numpy(objects),
            background=torch.from_numpy(bg),
            captions=tuple(texts),
            caption_to_image=torch.arange(len(bg)).repeat_interleave(
                cfg.captions_per_image
            ),
            statements=torch.from_numpy(stmts),
            tokens=tokens,
        )
    return ShapesWorld(
        name="shapes-world",
        config=cfg,
        vocab=vocab,
        pair_rank=torch.from_numpy(rank.reshape(len(SHAPES), len(COLOURS))),
        meta={
            "source": "shapes-world",
            "seed": seed,
            "config": to_params(cfg),
            "generator_version": GENERATOR_VERSION,
            "max_len": max_len,
            "query_modality": "caption",
            "gallery_modality": "image",
        },
        **splits,
    )
