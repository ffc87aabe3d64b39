"""Figures of the theory chapter: lines with bands, histograms, scatter grids, heat maps, box plots.

Part of :mod:`hubrepro.simulate`; import from there. Book: :ref:`sec-theory`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from ._stats import spearman


def _bands(ax: Any, frame: pd.DataFrame, x: str, label: str) -> None:
    frame = frame.sort_values(x)
    (line,) = ax.plot(frame[x], frame["mean"], marker="o", ms=3, label=label)
    if frame["ci_low"].notna().any():
        ax.fill_between(
            frame[x],
            frame["ci_low"],
            frame["ci_high"],
            color=line.get_color(),
            alpha=0.2,
            lw=0,
        )


def plot_lines(
    summary: pd.DataFrame,
    *,
    x: str = "d",
    hue: str = "law",
    panel: str | None = "metric",
    ylabel: str = "",
    logx: bool = True,
    reference: float | None = None,
) -> Any:
    """Lines of replicate means with confidence bands, one panel per ``panel`` value.

    ``summary`` is a :func:`summarize` output restricted to one statistic. Used for
    figures F1 (skewness vs :math:`d`) and F2b (:math:`\\rho` vs :math:`d`) of the
    theory chapter. Returns a matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    panels = [None] if panel is None else list(dict.fromkeys(summary[panel]))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 3.4), sharey=True, squeeze=False
    )
    for ax, pv in zip(axes[0], panels, strict=True):
        sub = summary if pv is None else summary[summary[panel] == pv]
        for hv, grp in sub.groupby(hue, sort=False):
            _bands(ax, grp, x, str(hv))
        if reference is not None:
            ax.axhline(reference, color="0.5", lw=0.8, ls="--")
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(x)
        if pv is not None:
            ax.set_title(f"{panel} = {pv}")
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_histograms(n_k_by_label: Mapping[str, Any], *, k: int) -> Any:
    r"""Histograms of :math:`N_k` with a log y-axis, one panel per label (figure F1b).

    In the style of Radovanović et al. 2010, Fig. 1. Returns a matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    labels = list(n_k_by_label)
    fig, axes = plt.subplots(
        1, len(labels), figsize=(3.4 * len(labels), 3.0), sharey=True, squeeze=False
    )
    for ax, lab in zip(axes[0], labels, strict=True):
        v = np.asarray(n_k_by_label[lab])
        counts = np.bincount(v)
        nz = counts > 0
        ax.plot(np.arange(counts.size)[nz], counts[nz] / v.size, marker="o", ms=3, lw=1)
        ax.set_yscale("log")
        ax.set_xlabel(f"$N_{{{k}}}$")
        ax.set_title(lab)
    axes[0][0].set_ylabel("fraction of points")
    fig.tight_layout()
    return fig


def plot_scatter_grid(
    items: Mapping[tuple[str, str], pd.DataFrame],
    *,
    x: str = "centrality",
    y: str = "n_k",
    xlabel: str = "",
) -> Any:
    r"""Scatter of ``y`` against ``x`` per (row, column) label, Spearman :math:`\rho` in titles (F2, F5).

    Returns a matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    rows = list(dict.fromkeys(r for r, _ in items))
    cols = list(dict.fromkeys(c for _, c in items))
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(3.0 * len(cols), 2.6 * len(rows)), squeeze=False
    )
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            f = items.get((r, c))
            if f is None:
                ax.set_visible(False)
                continue
            rho = spearman(
                torch.as_tensor(f[y].to_numpy().copy()),
                torch.as_tensor(f[x].to_numpy().copy()),
            )
            ax.scatter(f[x], f[y], s=2, alpha=0.3, rasterized=True)
            ax.set_title(f"{r}, {c}: ρ = {rho:.2f}", fontsize=9)
            if i == len(rows) - 1:
                ax.set_xlabel(xlabel or x)
            if j == 0:
                ax.set_ylabel(y)
    fig.tight_layout()
    return fig


def plot_heatmap(
    table: pd.DataFrame,
    *,
    title: str = "",
    zero_contour: bool = False,
    ax: Any = None,
    vmax: float = 1.0,
) -> Any:
    r"""Annotated heat map of a table of correlations in :math:`[-1, 1]` (F4, F5b).

    With ``zero_contour`` a contour is drawn where the value crosses 0 (the edge of
    the region where claim D1 holds, theory chapter). Returns the Figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(
            figsize=(1.0 + 0.9 * table.shape[1], 0.8 + 0.55 * table.shape[0])
        )
    else:
        fig = ax.figure
    vals = table.to_numpy(dtype=float)
    im = ax.imshow(
        vals,
        cmap="RdBu_r",
        vmin=-vmax,
        vmax=vmax,
        aspect="auto",
        origin="lower" if zero_contour else "upper",
    )
    ax.set_xticks(
        range(table.shape[1]), [str(c) for c in table.columns], rotation=30, ha="right"
    )
    ax.set_yticks(range(table.shape[0]), [str(r) for r in table.index])
    ax.set_xlabel(str(table.columns.name or ""))
    ax.set_ylabel(str(table.index.name or ""))
    ax.grid(False)
    for (i, j), v in np.ndenumerate(vals):
        if np.isfinite(v):
            ax.text(
                j,
                i,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if abs(v) > 0.6 * vmax else "black",
            )
    if zero_contour and min(vals.shape) > 1 and np.nanmin(vals) < 0 < np.nanmax(vals):
        ax.contour(vals, levels=[0.0], colors="k", linewidths=1.5)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def plot_hub_boxes(
    items: Mapping[str, pd.DataFrame], *, hub_fraction: float = 0.01
) -> Any:
    r"""Box plots of :math:`m_{B_q}` and :math:`m_{B_g}` for hubs vs the rest (F5c).

    Hubs are the top ``hub_fraction`` of gallery items by :math:`N_k`. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    names = list(items)
    fig, axes = plt.subplots(
        1, len(names), figsize=(3.2 * len(names), 3.0), sharey=True, squeeze=False
    )
    for ax, name in zip(axes[0], names, strict=True):
        f = items[name]
        n_hub = max(1, int(round(hub_fraction * len(f))))
        hub = np.zeros(len(f), dtype=bool)
        hub[np.argsort(-f["n_k"].to_numpy(), kind="stable")[:n_hub]] = True
        data = [f["m_bq"][hub], f["m_bq"][~hub], f["m_bg"][hub], f["m_bg"][~hub]]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(
            [1, 2, 3, 4], ["hubs\n$B_q$", "rest\n$B_q$", "hubs\n$B_g$", "rest\n$B_g$"]
        )
        ax.set_title(name, fontsize=9)
    axes[0][0].set_ylabel("mean cosine to the bank")
    fig.tight_layout()
    return fig
