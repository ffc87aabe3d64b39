"""What a run trains and validates on: aligned pairs of embeddings or of raw inputs.

:class:`TrainData` holds the training pairs and a validation split, as float matrices
of frozen embeddings (for :class:`~hubrepro.heads.DualEncoderHeads`) or as raw inputs
(token ids and images, for :class:`~hubrepro.encoders.DualEncoder`). When a gallery
item has several queries (the captions of an image), ``train_query_to_gallery`` says
which, and :class:`EpochPairs` draws the pairs of each epoch from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from hubrepro import _validation as V

if TYPE_CHECKING:  # pragma: no cover
    from hubrepro.training._config import TrainConfig


@dataclass(frozen=True)
class TrainData:
    """Training pairs and a validation split (never the test split).

    Attributes
    ----------
    train_query, train_gallery : Tensor
        Training inputs, first dimension = rows: embeddings ``(n, d)`` or raw inputs
        (token ids ``(n, L)`` with padding id 0, images ``(n, 3, S, S)``). Without
        ``train_query_to_gallery`` row ``i`` of both is a positive pair.
    val_query, val_gallery : Tensor or None
        Validation queries and gallery items (same kinds as the training inputs).
    val_query_to_gallery : LongTensor or None
        Gallery index of each validation query (``None``: diagonal).
    train_query_to_gallery : LongTensor of shape (n_query,) or None
        The gallery row of each training query, for data with several queries per
        gallery item (the captions of an image); then an epoch trains on one query per
        item or on every pair (``TrainConfig.pair_sampling``).
    meta : dict
        What the model needs beyond the shapes, e.g. ``{"vocab_size": 120}`` for a
        dual encoder on token ids.
    """

    train_query: torch.Tensor
    train_gallery: torch.Tensor
    val_query: torch.Tensor | None = None
    val_gallery: torch.Tensor | None = None
    val_query_to_gallery: torch.Tensor | None = None
    train_query_to_gallery: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        f = "TrainData"
        # embeddings are float matrices; raw inputs of a backbone (token ids, images)
        # only need aligned rows
        q = V.as_tensor(self.train_query, "train_query", f)
        g = V.as_tensor(self.train_gallery, "train_gallery", f)
        if q.is_floating_point() and q.ndim == 2:
            V.check_matrix(q, "train_query", f)
        if g.is_floating_point() and g.ndim == 2:
            V.check_matrix(g, "train_gallery", f)
        if self.train_query_to_gallery is None:
            if q.shape[0] != g.shape[0]:
                V.fail(
                    f,
                    "train_gallery",
                    f"{q.shape[0]} rows (aligned with `train_query`)",
                    f"shape {tuple(g.shape)}",
                    "Pass train_query_to_gallery when gallery items have several queries.",
                )
        else:
            t = V.check_index_vector(
                self.train_query_to_gallery,
                "train_query_to_gallery",
                f,
                length=q.shape[0],
                upper=g.shape[0],
            )
            object.__setattr__(self, "train_query_to_gallery", t)
        if (self.val_query is None) != (self.val_gallery is None):
            V.fail(
                f, "val_gallery", "given together with `val_query`", "only one of them"
            )
        if not isinstance(self.meta, dict):
            V.fail(f, "meta", "a dict", type(self.meta).__name__, exc=TypeError)


@dataclass(frozen=True)
class EvalData:
    """A test split of raw inputs for :func:`~hubrepro.training.evaluate`.

    :class:`~hubrepro.datasets.PairedData` holds embeddings; a model trained end to
    end is evaluated on its inputs. Attributes as in ``PairedData``, and

    Attributes
    ----------
    relevant : BoolTensor of shape (n_query, n_gallery) or None
        Which query is relevant to which gallery item, when it is known exactly
        (``shapes-world``: :func:`~hubrepro.datasets.shapes_world.relevance`); then
        good and bad hubs are counted from it rather than from the concept labels.
    """

    name: str
    query: torch.Tensor
    gallery: torch.Tensor
    query_to_gallery: torch.Tensor | None = None
    query_labels: torch.Tensor | None = None
    gallery_labels: torch.Tensor | None = None
    relevant: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.relevant is not None:
            shape = (int(self.query.shape[0]), int(self.gallery.shape[0]))
            rel = V.as_tensor(self.relevant, "relevant", "EvalData")
            if tuple(rel.shape) != shape or rel.dtype != torch.bool:
                V.fail(
                    "EvalData",
                    "relevant",
                    f"a boolean matrix of shape {shape} (queries x gallery)",
                    f"{rel.dtype} of shape {tuple(rel.shape)}",
                )


class EpochPairs:
    """The pairs an epoch trains on, in its seeded order.

    Pairs are indexed ``0 .. n - 1``; :meth:`order` permutes them (seeded by the run's
    seed and the epoch, or the seed alone with ``fixed_epoch_order``) and :meth:`rows`
    maps pair indices to ``(query rows, gallery rows)``:

    - aligned data: pair ``i`` is row ``i`` of both;
    - several queries per gallery item, ``pair_sampling="all"``: pair ``i`` is query
      ``i`` with its gallery item;
    - ``pair_sampling="one-per-item"``: pair ``i`` is the ``i``-th gallery item (among
      those with a query) with one of its queries, drawn afresh each epoch.
    """

    def __init__(self, data: TrainData, cfg: TrainConfig) -> None:
        self.seed = cfg.seed
        self.fixed_order = cfg.fixed_epoch_order
        q2g = data.train_query_to_gallery
        self.q2g = q2g
        self.items: torch.Tensor | None = None
        if q2g is None:
            self.n = int(data.train_query.shape[0])
        elif cfg.pair_sampling == "all":
            self.n = int(q2g.shape[0])
        else:
            counts = torch.bincount(q2g, minlength=data.train_gallery.shape[0])
            self.items = (counts > 0).nonzero().squeeze(1)
            self._counts = counts[self.items]
            self._starts = torch.cumsum(counts, 0)[self.items] - self._counts
            self._by_item = torch.argsort(q2g, stable=True)
            self.n = int(self.items.shape[0])
        self._choice: tuple[int, torch.Tensor] | None = None

    def order(self, epoch: int) -> torch.Tensor:
        """The permutation of the pairs for ``epoch``."""
        gen = torch.Generator().manual_seed(
            self.seed * 1_000_003 + (0 if self.fixed_order else epoch)
        )
        return torch.randperm(self.n, generator=gen)

    def _queries(self, epoch: int) -> torch.Tensor:
        # one query row per item, drawn uniformly among the item's queries
        if self._choice is None or self._choice[0] != epoch:
            gen = torch.Generator().manual_seed(self.seed * 3_000_017 + epoch + 3)
            u = torch.rand(self.n, generator=gen, dtype=torch.float64)
            pick = (u * self._counts).long().clamp_max(self._counts - 1)
            self._choice = (epoch, self._by_item[self._starts + pick])
        return self._choice[1]

    def rows(self, idx: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(query rows, gallery rows)`` of the pairs ``idx`` in ``epoch``."""
        if self.q2g is None:
            return idx, idx
        if self.items is None:
            return idx, self.q2g[idx]
        return self._queries(epoch)[idx], self.items[idx]


def make_train_data(data: Any, *, n_val: int = 500, seed: int = 0) -> TrainData:
    """Build training pairs and a validation split from a :class:`~hubrepro.datasets.PairedData`.

    The training pairs are the dataset's *bank* (its training split): bank query
    ``i`` with bank gallery ``bank_query_to_gallery[i]``. ``n_val`` bank gallery items
    and all their queries are held out for validation, so no validation item is seen
    in training. The test split (``query``/``gallery``) is untouched.
    """
    f = "make_train_data"
    if (
        getattr(data, "bank_query", None) is None
        or getattr(data, "bank_gallery", None) is None
    ):
        V.fail(
            f,
            "data",
            "a PairedData with a training bank (bank_query, bank_gallery)",
            type(data).__name__,
        )
    bq, bg = data.bank_query, data.bank_gallery
    b2g = data.bank_query_to_gallery
    if b2g is None:
        if bq.shape[0] != bg.shape[0]:
            V.fail(
                f,
                "data",
                "paired banks (bank_query_to_gallery or equal sizes)",
                f"{bq.shape[0]} vs {bg.shape[0]} rows",
            )
        b2g = torch.arange(bq.shape[0])
    n_g = bg.shape[0]
    n_val = V.check_int(n_val, "n_val", f, low=0, high=max(n_g - 8, 0))
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n_g, generator=gen)
    is_val = torch.zeros(n_g, dtype=torch.bool)
    is_val[perm[:n_val]] = True
    q_val = is_val[b2g]
    train = (~q_val).nonzero().squeeze(1)
    if n_val == 0:
        return TrainData(bq[train], bg[b2g[train]])
    val_items = is_val.nonzero().squeeze(1)
    remap = torch.full((n_g,), -1, dtype=torch.long)
    remap[val_items] = torch.arange(val_items.numel())
    vq = q_val.nonzero().squeeze(1)
    return TrainData(bq[train], bg[b2g[train]], bq[vq], bg[val_items], remap[b2g[vq]])


def make_world_train_data(world: Any) -> TrainData:
    """Training pairs and validation split of a :class:`~hubrepro.datasets.ShapesWorld`.

    Token ids of the captions (queries) and images (gallery) of the world's ``train``
    split, with ``caption_to_image`` as ``train_query_to_gallery`` (several captions
    per image); its ``val`` split validates (none when it is empty). The ``bank`` and
    ``test`` splits are untouched.
    """
    f = "make_world_train_data"
    for name in ("train", "val", "vocab"):
        if not hasattr(world, name):
            V.fail(f, "world", "a ShapesWorld", type(world).__name__, exc=TypeError)
    tr, va = world.train, world.val
    has_val = va.n_images > 0 and va.n_captions > 0
    return TrainData(
        train_query=tr.tokens,
        train_gallery=tr.images,
        val_query=va.tokens if has_val else None,
        val_gallery=va.images if has_val else None,
        val_query_to_gallery=va.caption_to_image if has_val else None,
        train_query_to_gallery=tr.caption_to_image,
        meta={"vocab_size": len(world.vocab), "source": world.name},
    )


def world_eval_data(
    world: Any,
    split: str = "test",
    *,
    captions_per_image: int | None = None,
    relevance: bool = True,
) -> EvalData:
    """The ``split`` of a :class:`~hubrepro.datasets.ShapesWorld` as :class:`EvalData`.

    Captions query images; the labels are the coarse (shape, colour) concept labels of
    :attr:`~hubrepro.datasets.shapes_world.WorldSplit.image_labels`, and ``relevant``
    is the exact caption-image relevance of the world
    (:meth:`~hubrepro.datasets.shapes_world.WorldSplit.relevance`), from which
    :func:`~hubrepro.training.evaluate` counts good and bad hubs.

    Parameters
    ----------
    world : ShapesWorld
    split : str, default "test"
    captions_per_image : int or None
        Keep only the first this many captions of each image (e.g. 1 for cheap
        per-epoch curves); ``None`` keeps them all.
    relevance : bool, default True
        Compute the exact relevance matrix (``n_captions x n_images`` booleans).
    """
    f = "world_eval_data"
    s = world.split(split)
    q2g = s.caption_to_image
    keep = torch.arange(q2g.shape[0])
    if captions_per_image is not None:
        c = V.check_int(captions_per_image, "captions_per_image", f, low=1)
        first = torch.searchsorted(
            q2g, q2g
        )  # first caption row of each caption's image
        keep = (keep - first < c).nonzero().squeeze(1)
    rel = s.relevance()[keep] if relevance else None
    return EvalData(
        name=f"{world.name}/{split}",
        query=s.tokens[keep],
        gallery=s.images,
        query_to_gallery=q2g[keep],
        query_labels=s.caption_labels[keep],
        gallery_labels=s.image_labels,
        relevant=rel,
    )


def _load(cfg: TrainConfig) -> Any:
    from hubrepro.datasets import load_dataset

    options = dict(cfg.dataset_options)
    if cfg.dataset == "shapes-world" and cfg.data_dir is None:
        if "n_val" in options:
            V.fail(
                "load_train_data",
                "dataset_options",
                "free of n_val for shapes-world",
                options["n_val"],
                "Set the TrainConfig field n_val: it sizes the world's validation split.",
            )
        options["n_val"] = cfg.n_val
    return load_dataset(
        cfg.dataset, seed=cfg.data_seed, data_dir=cfg.data_dir, **options
    )


def _is_world(data: Any) -> bool:
    from hubrepro.datasets import ShapesWorld

    return isinstance(data, ShapesWorld)


def load_train_data(cfg: TrainConfig) -> TrainData:
    """Load ``cfg.dataset`` and return its training pairs and validation split.

    Embeddings: the dataset's training bank split by :func:`make_train_data`
    (``cfg.n_val`` gallery items held out). ``shapes-world``: the world's train and val
    splits (:func:`make_world_train_data`; ``cfg.n_val`` validation images).
    """
    return load_run_data(cfg)[0]


def load_run_data(cfg: TrainConfig) -> tuple[TrainData, Any]:
    """Load ``cfg.dataset`` once: the training data and the test split to evaluate on.

    Returns ``(TrainData, test)`` with ``test`` a :class:`~hubrepro.datasets.PairedData`
    (embeddings) or an :class:`EvalData` of the world's test split.
    """
    loaded = _load(cfg)
    if _is_world(loaded):
        return make_world_train_data(loaded), world_eval_data(loaded)
    return make_train_data(loaded, n_val=cfg.n_val, seed=cfg.data_seed), loaded
