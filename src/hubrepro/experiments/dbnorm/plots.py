r"""Figures of the DBNorm notebooks (40, 42, 43, 44).

Every function returns a matplotlib figure and leaves showing and saving it to the
caller (:func:`hubrepro.reporting.publish`).

Book: :ref:`sec-dbnorm`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .config import method_label
from .main import delta_frame

__all__ = [
    "plot_delta",
    "plot_beta_heatmap",
    "plot_bank_size",
    "plot_occurrence_hist",
    "plot_overflow",
]


def plot_delta(
    table: pd.DataFrame,
    metric: str = "R@1",
    *,
    direction: str = "query_to_gallery",
    intervals: pd.DataFrame | None = None,
) -> Any:
    """Bar chart of the change in ``metric`` over the baseline, one bar per dataset.

    With ``intervals`` (:func:`~hubrepro.experiments.dbnorm.main.delta_intervals`)
    each bar carries its 95 % interval as an error bar. The legend sits below the
    axes, where it covers no bar.
    """
    import matplotlib.pyplot as plt

    d = delta_frame(table, metric)
    d = d[d.direction == direction]
    piv = d.pivot_table(index="label", columns="dataset", values="delta", sort=False)
    n_ds = max(1, len(piv.columns))
    fig, ax = plt.subplots(figsize=(7.0, 0.32 * len(piv) * n_ds**0.5 + 2.0))
    xerr = None
    if intervals is not None and len(intervals):
        iv = intervals[intervals.direction == direction].copy()
        iv["label"] = iv["method"].map(method_label)
        lo = iv.pivot_table(index="label", columns="dataset", values="low", sort=False)
        hi = iv.pivot_table(index="label", columns="dataset", values="high", sort=False)
        lo, hi = lo.reindex_like(piv), hi.reindex_like(piv)
        # matplotlib wants, per series (dataset), a (2, n) array of distances
        xerr = {
            ds: np.vstack(
                [(piv[ds] - lo[ds]).to_numpy(), (hi[ds] - piv[ds]).to_numpy()]
            )
            for ds in piv.columns
        }
    height = 0.8 / n_ds
    ys = np.arange(len(piv))
    for j, ds in enumerate(piv.columns):
        ax.barh(
            ys - 0.4 + height * (j + 0.5),
            piv[ds].to_numpy(),
            height=height,
            label=str(ds),
            xerr=None if xerr is None else xerr[ds],
            error_kw={"elinewidth": 0.9, "capsize": 2, "ecolor": "0.25"},
        )
    ax.set_yticks(ys, list(piv.index))
    ax.axvline(0, color="black", lw=0.8)
    ax.invert_yaxis()
    words = {
        "query_to_gallery": "query → gallery",
        "gallery_to_query": "gallery → query",
    }
    ax.set_xlabel(
        f"change in {metric} over the unnormalised baseline (percentage points), "
        f"{words.get(direction, direction)}"
    )
    ax.set_ylabel("")
    ax.legend(
        title="dataset",
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18),
        ncol=min(n_ds, 4),
        frameon=False,
    )
    fig.tight_layout()
    return fig


def plot_beta_heatmap(
    grid: pd.DataFrame, *, title: str = "", metric: str = "R@1"
) -> Any:
    """Heat map of a :func:`~hubrepro.experiments.dbnorm.ablations.beta_grid` table, the best cell outlined."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    vals = grid.to_numpy()
    im = ax.imshow(vals, origin="lower", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [f"{v:g}" for v in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index])
    ax.set_xlabel(r"$\beta_g$ (gallery bank)")
    ax.set_ylabel(r"$\beta_q$ (query bank)")
    ax.grid(False)
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            ax.text(
                j,
                i,
                f"{vals[i, j]:.1f}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if im.norm(vals[i, j]) > 0.5 else "white",
            )
    i, j = np.unravel_index(int(np.argmax(vals)), vals.shape)
    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2, color="red"))
    fig.colorbar(im, ax=ax, label=metric)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_bank_size(
    frame: pd.DataFrame, *, metric: str = "R@1", baseline: float | None = None
) -> Any:
    """``metric`` against the bank fraction, one panel per shrunk bank, one line per method."""
    import matplotlib.pyplot as plt

    varied = list(dict.fromkeys(frame["varied"]))
    fig, axes = plt.subplots(
        1, len(varied), figsize=(3.4 * len(varied), 3.2), sharey=True, squeeze=False
    )
    for ax, v in zip(axes[0], varied, strict=True):
        sub = frame[frame.varied == v]
        for label, g in sub.groupby("label", sort=False):
            ax.plot(g["fraction"], g[metric], marker="o", label=label)
        if baseline is not None:
            ax.axhline(baseline, color="black", lw=0.8, ls="--", label="baseline")
        ax.set_xscale("log")
        ax.set_xlabel("fraction of the bank kept")
        ax.set_title(f"{v} bank shrunk" if v != "both" else "both banks shrunk")
    axes[0][0].set_ylabel(metric)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_occurrence_hist(
    occ: pd.DataFrame, *, labels: Mapping[str, str] | None = None
) -> Any:
    """Histograms of :math:`N_k` (log count axis) for each method column of ``occ``."""
    import matplotlib.pyplot as plt

    cols = list(occ.columns)
    fig, axes = plt.subplots(
        1, len(cols), figsize=(2.6 * len(cols), 2.9), sharey=True, squeeze=False
    )
    top = int(occ.to_numpy().max())
    bins = (
        np.arange(0, top + 2) - 0.5 if top <= 60 else np.linspace(-0.5, top + 0.5, 40)
    )
    for ax, c in zip(axes[0], cols, strict=True):
        ax.hist(occ[c], bins=bins, log=True)
        ax.set_title((labels or {}).get(c, method_label(c)), fontsize=9)
        ax.set_xlabel(r"$N_k$")
    axes[0][0].set_ylabel("gallery items (log)")
    fig.tight_layout()
    return fig


def plot_overflow(curve: pd.DataFrame) -> Any:
    """Share of non-finite DualIS outputs against beta, released code vs hubrepro (D5).

    ``curve`` is :func:`hubrepro.errata.overflow_curve` on matrices scaled by 100.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    ax.plot(curve["beta"], curve["released"], marker="o", label="released (direct exp)")
    ax.plot(curve["beta"], curve["ours"], marker="s", label="hubrepro (log-sum-exp)")
    ax.set_xscale("log")
    ax.set_xlabel(r"$\beta_q = \beta_g$ (matrices scaled by 100, float32)")
    ax.set_ylabel("non-finite outputs (%)")
    ax.legend()
    return fig
