"""The synthetic CLIP-like generator (notebook 31, chapter :ref:`sec-data`): what its knobs do.

:func:`run` describes one draw of :func:`hubrepro.datasets.make_synthetic` at its
defaults (and the user's own data alongside, with ``data_dir``), then varies one knob
at a time, the others at their defaults (:func:`knob_sweep`), recording R@1, the
skewness of :math:`N_k`, the modality gap and the mean cosines (the cone effect);
:func:`headlines` collects the numbers the chapter quotes and
:func:`plot_knob_sweep` draws its figure.

Book: :ref:`sec-data`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from hubrepro._validation import fail
from hubrepro.datasets import describe, load_dataset
from hubrepro.datasets.synthetic import make_synthetic

__all__ = [
    "DEFAULT_GRID",
    "SyntheticSweepConfig",
    "SyntheticSweepResult",
    "run",
    "headlines",
    "knob_sweep",
    "plot_knob_sweep",
]


@dataclass(frozen=True)
class SyntheticSweepConfig:
    """Parameters of notebook 31 (the synthetic generator's knobs; names equal the notebook's parameters).

    Attributes
    ----------
    seed : int
        The one seed (the same draw in every cell of the sweep).
    n_gallery : int
        Test gallery items (and queries, one caption each).
    k : int
        Neighbourhood size of :math:`N_k`.
    dims, noises, gaps, cones, zipfs, captions : tuple
        Values of each knob of the sweep (an empty tuple leaves the knob out).
    data_dir : str or None
        Your own embeddings (user layout), described alongside.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    artifact_dir : str
        Where CSV/PNG artifacts and ``provenance.json`` go.
    """

    seed: int = 0
    n_gallery: int = 1000
    k: int = 10
    dims: tuple[int, ...] = (16, 64, 256, 1024)
    noises: tuple[float, ...] = (0.5, 1.0, 1.3, 2.0)
    gaps: tuple[float, ...] = (0.0, 0.4, 0.8, 1.2)
    cones: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    zipfs: tuple[float, ...] = (0.0, 1.0, 1.5)
    captions: tuple[int, ...] = (1, 5)
    data_dir: str | None = None
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/31_synthetic_generator"

    def grid(self) -> dict[str, list[Any]]:
        """The knob -> values mapping of :func:`knob_sweep` (empty lists dropped)."""
        grid = {
            "dim": list(self.dims),
            "noise": list(self.noises),
            "gap": list(self.gaps),
            "cone": list(self.cones),
            "zipf": list(self.zipfs),
            "captions_per_item": list(self.captions),
        }
        return {knob: values for knob, values in grid.items() if values}


@dataclass
class SyntheticSweepResult:
    """What :func:`run` returns.

    Attributes
    ----------
    config : SyntheticSweepConfig
    default : pandas.DataFrame
        :func:`hubrepro.datasets.describe` of the default draw (and of the user's
        data), one row per label.
    sweep : pandas.DataFrame
        :func:`knob_sweep`.
    """

    config: SyntheticSweepConfig
    default: pd.DataFrame
    sweep: pd.DataFrame


def run(cfg: SyntheticSweepConfig) -> SyntheticSweepResult:
    """Run notebook 31: describe the default draw, then sweep one knob at a time.

    Parameters
    ----------
    cfg : SyntheticSweepConfig

    Returns
    -------
    SyntheticSweepResult

    Book
    ----
    :ref:`sec-data`.
    """
    if not isinstance(cfg, SyntheticSweepConfig):
        fail("run", "cfg", "a SyntheticSweepConfig", type(cfg).__name__, exc=TypeError)
    default = load_dataset(
        "synthetic", seed=cfg.seed, n_gallery=cfg.n_gallery, device=cfg.device
    )
    stats = {"synthetic (defaults)": describe(default, k=cfg.k)}
    if cfg.data_dir is not None:
        stats["your data"] = describe(
            load_dataset("user", data_dir=cfg.data_dir), k=cfg.k
        )
    sweep = knob_sweep(
        cfg.grid(),
        base={"n_gallery": cfg.n_gallery},
        k=cfg.k,
        seed=cfg.seed,
        device=cfg.device,
    )
    return SyntheticSweepResult(config=cfg, default=pd.DataFrame(stats).T, sweep=sweep)


#: glue slug -> statistic of :func:`hubrepro.datasets.describe` of the default draw
_DEFAULT_QUOTED = {
    "r1": "R@1",
    "skew": "skewness",
    "gap": "gap_norm",
    "cos-gallery": "mean_cos_gallery",
    "cos-pairs": "mean_cos_pairs",
}
#: glue slug -> (knob, statistic) quoted at the first and last value of the knob
_SWEEP_QUOTED = {
    "skew-dim": ("dim", "skewness"),
    "r1-dim": ("dim", "R@1"),
    "r1-noise": ("noise", "R@1"),
    "r1-gap": ("gap", "R@1"),
    "cos-cone": ("cone", "mean_cos_gallery"),
    "skew-gap": ("gap", "skewness"),
    "skew-cone": ("cone", "skewness"),
}


def headlines(result: SyntheticSweepResult) -> dict[str, Any]:
    """The numbers the chapter quotes (keys become ``nb31-<key>`` glue keys).

    Returns
    -------
    dict
        ``val-default-<stat>`` (R@1, skewness, gap, mean cosine within the gallery
        and of matching pairs of the default draw); ``val-<stat>-<knob>-first`` /
        ``-last`` (a statistic at the first and last value of a knob) and
        ``val-<knob>-first`` / ``-last`` (those values) for the dimension, noise, gap
        and cone; NaN for a knob the sweep leaves out.
    """
    d = result.default.loc["synthetic (defaults)"]
    out: dict[str, Any] = {
        f"val-default-{key}": float(d[stat]) for key, stat in _DEFAULT_QUOTED.items()
    }
    frame = result.sweep

    def at(knob: str, column: str, pos: int) -> float:
        sub = frame[frame["knob"] == knob]
        return float(sub[column].iloc[pos]) if len(sub) else float("nan")

    for key, (knob, stat) in _SWEEP_QUOTED.items():
        out[f"val-{key}-first"] = at(knob, stat, 0)
        out[f"val-{key}-last"] = at(knob, stat, -1)
    for knob in ("dim", "noise", "gap", "cone"):
        out[f"val-{knob}-first"] = at(knob, "value", 0)
        out[f"val-{knob}-last"] = at(knob, "value", -1)
    return out


#: Knobs swept by :func:`knob_sweep` by default (one at a time, others at their defaults).
DEFAULT_GRID: dict[str, list[Any]] = {
    "dim": [16, 64, 256, 1024],
    "noise": [0.5, 1.0, 1.3, 2.0],
    "gap": [0.0, 0.4, 0.8, 1.2],
    "cone": [0.0, 0.5, 1.0, 2.0],
    "zipf": [0.0, 1.0, 1.5],
    "captions_per_item": [1, 5],
}


def knob_sweep(
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    k: int = 10,
    seed: int = 0,
    device: str = "cpu",
) -> Any:
    """Vary one generator knob at a time and record :func:`~hubrepro.datasets.describe`-style statistics.

    Parameters
    ----------
    grid : mapping of str to sequence, optional
        Knob -> values (fields of :class:`~hubrepro.datasets.SyntheticConfig`); default
        ``DEFAULT_GRID``.
    base : mapping, optional
        Values of the other knobs (e.g. ``{"n_gallery": 1000}``); the bank is kept
        tiny since only the test split is described.
    k : int, default 10
    seed : int, default 0
        Same seed in every cell, so cells differ only by the knob.
    device : str, default "cpu"

    Returns
    -------
    pandas.DataFrame
        Columns ``knob``, ``value``, ``R@1``, ``skewness``, ``gap_norm``,
        ``mean_cos_query``, ``mean_cos_gallery``, ``mean_cos_pairs``.

    Book
    ----
    :ref:`sec-data`.
    """
    grid = DEFAULT_GRID if grid is None else grid
    base = {"n_bank_gallery": 1, **dict(base or {})}
    rows = []
    for knob, values in grid.items():
        for value in values:
            opts = {**base, knob: value}
            data = make_synthetic(seed=seed, device=device, **opts)
            stats = describe(data, k=k)
            rows.append(
                {"knob": knob, "value": value, **{s: stats[s] for s in _SWEEP_STATS}}
            )
    return pd.DataFrame(rows)


_SWEEP_STATS = (
    "R@1",
    "skewness",
    "gap_norm",
    "mean_cos_query",
    "mean_cos_gallery",
    "mean_cos_pairs",
)


def plot_knob_sweep(
    frame: Any,
    stats: Sequence[str] = ("R@1", "skewness", "gap_norm", "mean_cos_gallery"),
) -> Any:
    """One row of panels per knob, one column per statistic, from :func:`knob_sweep`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    knobs = list(dict.fromkeys(frame["knob"]))
    fig, axes = plt.subplots(
        len(knobs),
        len(stats),
        figsize=(2.6 * len(stats), 1.9 * len(knobs)),
        squeeze=False,
    )
    for i, knob in enumerate(knobs):
        sub = frame[frame["knob"] == knob]
        for j, stat in enumerate(stats):
            ax = axes[i][j]
            ax.plot(range(len(sub)), sub[stat].to_numpy(), marker="o")
            ax.set_xticks(
                range(len(sub)),
                [f"{v:g}" if isinstance(v, float) else str(v) for v in sub["value"]],
            )
            if i == 0:
                ax.set_title(stat, fontsize=9)
            if j == 0:
                ax.set_ylabel(knob)
    fig.tight_layout()
    return fig
