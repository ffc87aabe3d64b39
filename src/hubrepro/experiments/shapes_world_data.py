r"""The ``shapes-world`` data notebook (notebook 32, :ref:`sec-data-shapes`): samples and statistics.

:func:`run` generates one world (:func:`hubrepro.datasets.make_shapes_world`) and
describes it: split sizes and caption lengths, attribute frequencies, the long tail of
(shape, colour) pairs against the prior it was drawn from, how many test images each
test caption fits (its ambiguity) and how many test captions each image fits (the
*ground-truth occurrence*: images with common compositions are natural good hubs,
rare ones natural anti-hubs), and what the ``zipf`` knob does to these numbers.
:func:`headlines` collects the numbers the chapter quotes; the ``plot_*`` functions
draw its figures.

Book: :ref:`sec-data-shapes`.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from hubrepro import _validation as V
from hubrepro.datasets import shapes_world as sw
from hubrepro.hubness import skewness

__all__ = [
    "ShapesWorldDataConfig",
    "ShapesWorldDataResult",
    "run",
    "headlines",
    "plot_samples",
    "plot_long_tail",
    "plot_attributes",
    "plot_relevance",
]

_WORLD_FIELDS = (
    "n_train",
    "n_bank",
    "n_val",
    "n_test",
    "captions_per_image",
    "image_size",
    "zipf",
    "ambiguity",
    "multi_rate",
    "test_shift",
    "bank_shift",
)


@dataclass(frozen=True)
class ShapesWorldDataConfig:
    """Parameters of notebook 32 (names equal the notebook's parameters).

    The world knobs are those of :class:`~hubrepro.datasets.ShapesWorldConfig`
    (the others keep their defaults); ``zipfs`` are the long-tail exponents of the
    knob sweep, ``n_samples`` the images of the sample grid.
    """

    seed: int = 0
    n_train: int = 4000
    n_bank: int = 1000
    n_val: int = 500
    n_test: int = 1000
    captions_per_image: int = 5
    image_size: int = 24
    zipf: float = 1.0
    ambiguity: float = 0.0
    multi_rate: float = 0.8
    test_shift: float = 0.0
    bank_shift: float = 0.0
    zipfs: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
    sweep_images: int = 1000
    n_samples: int = 12
    artifact_dir: str = "_build/artifacts/32_shapes_world"
    device: str = "cpu"

    def __post_init__(self) -> None:
        f = "ShapesWorldDataConfig"
        V.check_int(self.n_samples, "n_samples", f, low=1, high=self.n_test)
        V.check_int(self.sweep_images, "sweep_images", f, low=10)
        for z in self.zipfs:
            V.check_positive(z, "zipfs", f, allow_zero=True)
        sw.ShapesWorldConfig(**self.world_options())  # validates the world knobs

    def world_options(self) -> dict[str, Any]:
        """The knobs passed to :func:`~hubrepro.datasets.make_shapes_world`."""
        return {name: getattr(self, name) for name in _WORLD_FIELDS}


@dataclass
class ShapesWorldDataResult:
    """What :func:`run` returns: the world and its tables (tidy DataFrames)."""

    world: sw.ShapesWorld
    sizes: pd.DataFrame
    attributes: pd.DataFrame
    long_tail: pd.DataFrame
    relevance: pd.DataFrame
    sweep: pd.DataFrame
    examples: pd.DataFrame
    stats: dict[str, float] = field(default_factory=dict)


def _sizes(world: sw.ShapesWorld) -> pd.DataFrame:
    rows = []
    for name in sw.SPLITS:
        s = world.split(name)
        lengths = s.token_mask.sum(1).double()
        rows.append(
            {
                "split": name,
                "images": s.n_images,
                "captions": s.n_captions,
                "distinct captions": len(set(s.captions)),
                "objects per image": float(s.n_objects.double().mean())
                if s.n_images
                else float("nan"),
                "words per caption": float(lengths.mean())
                if s.n_captions
                else float("nan"),
            }
        )
    return pd.DataFrame(rows).set_index("split")


def _attributes(world: sw.ShapesWorld) -> pd.DataFrame:
    """Share of each attribute value among the objects (scenes for background/count)."""
    rows = []
    for name in ("train", "test"):
        s = world.split(name)
        ob = s.objects[s.objects[:, :, 0] >= 0]
        for field_, values, col in (
            ("shape", sw.SHAPES, 0),
            ("colour", sw.COLOURS, 1),
            ("size", sw.SIZES, 2),
            ("texture", sw.TEXTURES, 3),
        ):
            counts = torch.bincount(ob[:, col], minlength=len(values)).double()
            for v, c in zip(values, (counts / counts.sum()).tolist(), strict=True):
                rows.append(
                    {"split": name, "attribute": field_, "value": v, "share": c}
                )
        for field_, data, values in (
            ("background", s.background, sw.BACKGROUNDS),
            ("objects", s.n_objects - 1, [str(i) for i in range(1, 10)]),
        ):
            counts = torch.bincount(data, minlength=len(values)).double()
            shares = (counts / counts.sum()).tolist()
            for v, c in zip(values, shares, strict=False):
                if field_ == "objects" and int(v) > world.config.max_objects:
                    continue
                rows.append(
                    {"split": name, "attribute": field_, "value": v, "share": c}
                )
    return pd.DataFrame(rows)


def _pair_shares(split: sw.WorldSplit) -> np.ndarray:
    ob = split.objects[split.objects[:, :, 0] >= 0]
    f = np.bincount((ob[:, 0] * len(sw.COLOURS) + ob[:, 1]).numpy(), minlength=42)
    return f / max(1, f.sum())


def _long_tail(world: sw.ShapesWorld) -> pd.DataFrame:
    rank = world.pair_rank.reshape(-1).numpy()
    order = np.argsort(rank)
    prior = np.arange(1, 43, dtype=float) ** -world.config.zipf
    prior /= prior.sum()
    names = [f"{c} {s}" for s in sw.SHAPES for c in sw.COLOURS]
    return pd.DataFrame(
        {
            "rank": np.arange(1, 43),
            "pair": [names[i] for i in order],
            "prior": prior,
            "train": _pair_shares(world.train)[order],
            "test": _pair_shares(world.test)[order],
        }
    ).set_index("rank")


def _relevance_stats(
    split: sw.WorldSplit, device: str
) -> tuple[pd.DataFrame, dict[str, float]]:
    rel = split.relevance(device=device).cpu()
    per_caption = rel.sum(1).double()  # images each caption fits
    per_image = rel.sum(0).double()  # captions each image fits
    own = per_image.new_zeros(per_image.shape).index_add_(
        0, split.caption_to_image, torch.ones(split.n_captions, dtype=torch.float64)
    )
    frame = pd.DataFrame(
        {
            "images per caption": pd.Series(per_caption.numpy()),
            "captions per image": pd.Series(per_image.numpy()),
        }
    )
    stats = {
        "mean_images_per_caption": float(per_caption.mean()),
        "median_images_per_caption": float(per_caption.median()),
        "share_unique_captions": float((per_caption == 1).double().mean()),
        "oracle_r1": float((1.0 / per_caption).mean()) * 100.0,
        "mean_captions_per_image": float(per_image.mean()),
        "gt_occurrence_skewness": float(skewness(per_image)),
        "share_only_own_captions": float((per_image == own).double().mean()),
    }
    return frame, stats


def _sweep(cfg: ShapesWorldDataConfig) -> pd.DataFrame:
    rows = []
    for z in cfg.zipfs:
        w = sw.make_shapes_world(
            seed=cfg.seed,
            **{
                **cfg.world_options(),
                "zipf": float(z),
                "n_train": 2,
                "n_bank": 0,
                "n_val": 0,
                "n_test": cfg.sweep_images,
                "image_size": 12,  # the statistics below never look at pixels
            },
        )
        shares = np.sort(_pair_shares(w.test))[::-1]
        _, st = _relevance_stats(w.test, cfg.device)
        rows.append(
            {
                "zipf": float(z),
                "top-5 pair share": float(shares[:5].sum()),
                "images per caption": st["mean_images_per_caption"],
                "oracle R@1": st["oracle_r1"],
                "GT-occurrence skewness": st["gt_occurrence_skewness"],
            }
        )
    return pd.DataFrame(rows).set_index("zipf")


def _examples(split: sw.WorldSplit, n: int) -> pd.DataFrame:
    rel = split.relevance()
    rows = []
    for c in range(min(n, split.n_captions)):
        rows.append(
            {
                "caption": split.captions[c],
                "image": int(split.caption_to_image[c]),
                "objects described": int(split.statements[c, 15]),
                "test images it fits": int(rel[c].sum()),
            }
        )
    return pd.DataFrame(rows)


def run(cfg: ShapesWorldDataConfig) -> ShapesWorldDataResult:
    """Generate the world of ``cfg`` and compute the data chapter's tables.

    Parameters
    ----------
    cfg : ShapesWorldDataConfig

    Returns
    -------
    ShapesWorldDataResult
        ``sizes`` (per split), ``attributes`` (share of each attribute value, train
        and test), ``long_tail`` (pair shares by popularity rank with the prior),
        ``relevance`` (per test caption / image counts), ``sweep`` (statistics against
        ``zipf``), ``examples`` (the first test captions) and ``stats`` (headline
        numbers of the test split).

    Book
    ----
    :ref:`sec-data-shapes`.
    """
    if not isinstance(cfg, ShapesWorldDataConfig):
        V.fail(
            "run", "cfg", "a ShapesWorldDataConfig", type(cfg).__name__, exc=TypeError
        )
    world = sw.make_shapes_world(seed=cfg.seed, **cfg.world_options())
    rel_frame, stats = _relevance_stats(world.test, cfg.device)
    stats.update(
        vocab_size=float(len(world.vocab)),
        max_len=float(world.meta["max_len"]),
    )
    return ShapesWorldDataResult(
        world=world,
        sizes=_sizes(world),
        attributes=_attributes(world),
        long_tail=_long_tail(world),
        relevance=rel_frame,
        sweep=_sweep(cfg),
        examples=_examples(world.test, 6 * world.config.captions_per_image),
        stats=stats,
    )


def headlines(result: ShapesWorldDataResult) -> dict[str, float]:
    """The numbers the chapter quotes (keys become ``nb32-val-<key>`` glue keys).

    Returns
    -------
    dict of str to float
        ``vocab-size``, ``max-len``, ``n-<split>`` images per split, ``captions-per-image``,
        ``words-per-caption``, ``images-per-caption`` (mean test images a test caption
        fits) and its median, ``unique-captions`` (% of test captions that fit one
        image), ``oracle-r1`` (% R@1 of a ranker that knows relevance and breaks ties at
        random), ``gt-skew`` (skewness of the captions each image fits),
        ``only-own`` (% of test images that only their own captions fit),
        ``top-pair`` and ``last-pair`` (% of training objects of the most and least
        common pair).
    """
    w, st = result.world, result.stats
    out = {
        "vocab-size": st["vocab_size"],
        "max-len": st["max_len"],
        "captions-per-image": float(w.config.captions_per_image),
        "words-per-caption": float(result.sizes.loc["train", "words per caption"]),
        "images-per-caption": st["mean_images_per_caption"],
        "median-images-per-caption": st["median_images_per_caption"],
        "unique-captions": 100.0 * st["share_unique_captions"],
        "oracle-r1": st["oracle_r1"],
        "gt-skew": st["gt_occurrence_skewness"],
        "only-own": 100.0 * st["share_only_own_captions"],
        "top-pair": 100.0 * float(result.long_tail["train"].iloc[0]),
        "last-pair": 100.0 * float(result.long_tail["train"].iloc[-1]),
    }
    for name in sw.SPLITS:
        out[f"n-{name}"] = float(w.split(name).n_images)
    return out


# ----------------------------------------------------------------------- figures
def plot_samples(
    world: sw.ShapesWorld,
    *,
    n: int = 12,
    split: str = "test",
    captions: int = 2,
    columns: int = 4,
) -> Any:
    """A grid of the first ``n`` images of ``split`` with ``captions`` of their captions each.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    s = world.split(split)
    n = min(n, s.n_images)
    rows = -(-n // columns)
    per = world.config.captions_per_image
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(2.3 * columns, 3.3 * rows),
        squeeze=False,
        gridspec_kw={"hspace": 0.05, "wspace": 0.12},
    )
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(s.images[i].permute(1, 2, 0).numpy(), interpolation="nearest")
        text = [
            textwrap.fill(f"“{s.captions[per * i + j]}”", 32)
            for j in range(min(captions, per))
        ]
        ax.text(
            0.0,
            -0.03,
            "\n".join(text),
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize=7.5,
        )
    return fig


def plot_long_tail(long_tail: pd.DataFrame, zipf: float) -> Any:
    """Share of each (shape, colour) pair by popularity rank (log-log), with the prior.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    r = long_tail.index.to_numpy()
    ax.plot(
        r, long_tail["prior"], "k--", lw=1, label=f"prior $\\propto r^{{-{zipf:g}}}$"
    )
    ax.plot(r, long_tail["train"], "o", ms=3.5, label="train objects")
    ax.plot(r, long_tail["test"], "s", ms=3, mfc="none", label="test objects")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("popularity rank $r$ of the (shape, colour) pair")
    ax.set_ylabel("share of objects")
    for i in (1, 2, len(r)):
        ax.annotate(
            long_tail.loc[i, "pair"],
            (i, long_tail.loc[i, "train"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
        )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_attributes(attributes: pd.DataFrame) -> Any:
    """Bar charts of the attribute frequencies, train against test.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(attributes["attribute"]))
    fig, axes = plt.subplots(1, len(names), figsize=(2.0 * len(names) + 1, 2.8))
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        sub = attributes[attributes["attribute"] == name]
        wide = sub.pivot_table(
            index="value", columns="split", values="share", sort=False
        )
        x = np.arange(len(wide))
        for j, split in enumerate(("train", "test")):
            if split in wide:
                ax.bar(x + (j - 0.5) * 0.4, wide[split], width=0.4, label=split)
        ax.set_xticks(x, wide.index, rotation=60, fontsize=7)
        ax.set_title(name, fontsize=9)
    np.atleast_1d(axes)[0].set_ylabel("share")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_relevance(relevance: pd.DataFrame) -> Any:
    """Histograms: test images per test caption, test captions per test image.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.0))
    per_cap = relevance["images per caption"].dropna()
    # integer-aligned logarithmic bins: counts are whole numbers
    edges = np.unique(np.floor(np.logspace(0, np.log10(per_cap.max() + 1), 30))) - 0.5
    axes[0].hist(per_cap, bins=edges)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("test images a caption fits")
    axes[0].set_ylabel("captions")
    axes[1].hist(relevance["captions per image"].dropna(), bins=40, color="C1")
    axes[1].set_xlabel("test captions an image fits")
    axes[1].set_ylabel("images")
    fig.tight_layout()
    return fig
