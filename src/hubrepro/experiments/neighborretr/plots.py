"""Figures of the NeighborRetr notebooks: curves, gradients, sweeps, differences, histograms.

Every figure has axis labels in words with units, a legend outside the data, and is
returned (not shown) for :func:`hubrepro.reporting.publish`.

Book: :ref:`sec-neighborretr`, :ref:`sec-posthoc-vs-training`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hubrepro import inference

from .config import StudyConfig
from .stats import METRICS, margin, metric_values

__all__ = [
    "CURVE_PANELS",
    "plot_curves",
    "plot_gradients",
    "plot_kappa",
    "plot_deltas",
    "plot_k_occurrence",
    "plot_stacking",
]

#: Panels of :func:`plot_curves`: history column, scale, axis label.
CURVE_PANELS = (
    ("curve_q2g_R@1", 1.0, "R@1 text→image (%)"),
    ("curve_g2q_R@1", 1.0, "R@1 image→text (%)"),
    ("curve_gallery_skewness", 1.0, "skewness of N₁₀ over the images"),
    ("curve_gallery_hub_occupancy", 100.0, "top-10 slots on hub images (%)"),
    ("curve_q2g_bad_hub_fraction", 100.0, "hub slots not relevant (%)"),
    ("curve_query_antihub_rate", 100.0, "captions never retrieved (%)"),
)

#: History columns of :func:`plot_gradients` and their names.
GRADIENT_LINES = (
    ("grad_rel_uniform", "L_Opt"),
    ("grad_rel_neighbor", "L_Nbi"),
    ("grad_rel_kl", "L_KL"),
    (
        "grad_rel_kappa",
        r"centrality weight $e^{\kappa C}$ (its change of the InfoNCE gradient)",
    ),
)


def _legend_below(fig: Any, ax: Any, ncol: int = 2) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False,
               bbox_to_anchor=(0.5, -0.02))  # fmt: skip


def plot_curves(
    history: pd.DataFrame, cfg: StudyConfig, conditions: Sequence[str]
) -> Any:
    """Retrieval and hubness on the test split after every epoch (mean over seeds, band = range)."""
    import matplotlib.pyplot as plt

    panels = [p for p in CURVE_PANELS if p[0] in history.columns]
    ncol = 3
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(10.5, 3.0 * nrow + 0.8), squeeze=False
    )
    for ax, (col, scale, label) in zip(axes.flat, panels, strict=False):
        for cond in conditions:
            sub = history[history["condition"] == cond]
            if sub.empty:
                continue
            g = sub.groupby("epoch")[col]
            mean, lo, hi = g.mean() * scale, g.min() * scale, g.max() * scale
            (line,) = ax.plot(
                mean.index, mean.to_numpy(), label=cfg.label(cond), lw=1.6
            )
            ax.fill_between(mean.index, lo.to_numpy(), hi.to_numpy(), alpha=0.15,
                            color=line.get_color(), lw=0)  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    _legend_below(fig, axes.flat[0], ncol=min(4, len(conditions)))
    return fig


def plot_gradients(
    history: pd.DataFrame, cfg: StudyConfig, conditions: Sequence[str]
) -> Any:
    """Each term's gradient norm relative to InfoNCE's, per epoch (mean over seeds; log scale)."""
    import matplotlib.pyplot as plt

    conds = [c for c in conditions if "grad_rel_kappa" in history.columns
             and history.loc[history["condition"] == c, "grad_rel_kappa"].notna().any()]  # fmt: skip
    n = max(1, len(conds))
    ncol = min(2, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(5.2 * ncol, 3.0 * nrow + 0.9), squeeze=False, sharey=True
    )
    for ax, cond in zip(axes.flat, conds, strict=False):
        sub = history[history["condition"] == cond]
        for col, name in GRADIENT_LINES:
            v = sub.groupby("epoch")[col].mean()
            v = v.where(v > 0)
            if v.notna().any():
                ax.plot(v.index, v.to_numpy(), marker="o", ms=3, label=name)
        ax.axhline(1.0, color="0.3", ls="--", lw=1, label="as strong as InfoNCE")
        ax.set_yscale("log")
        ax.set_title(cfg.label(cond), fontsize=10)
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("gradient norm / InfoNCE's")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0.16 / nrow, 1, 1))
    _legend_below(fig, axes.flat[0], ncol=3)
    return fig


def plot_kappa(
    runs: pd.DataFrame,
    cfg: StudyConfig,
    metrics: Sequence[str] = ("r1_t2i", "skew", "bad_hub"),
) -> Any:
    """Metrics against the centrality scale κ (official objective): mean with 95 % t-intervals over seeds."""
    import matplotlib.pyplot as plt

    pts = []
    for cond in sorted(set(runs["condition"])):
        k = 0.3 if cond == "neighborretr-official" else None
        if cond.startswith("kappa-"):
            k = float(cond[len("kappa-") :])
        if k is not None:
            pts.append((k, cond))
    pts.sort()
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False
    )
    for ax, key in zip(axes.flat, metrics, strict=True):
        xs, ys, err = [], [], []
        for k, cond in pts:
            v = metric_values(runs, cond, key).to_numpy()
            iv = inference.paired_t_interval(np.zeros(len(v)), v)
            xs.append(k)
            ys.append(iv.estimate)
            err.append(iv.high - iv.estimate)
        ax.errorbar(
            xs, ys, yerr=err, marker="o", capsize=3, label="NeighborRetr (official)"
        )
        if "infonce-fixed-scale" in set(runs["condition"]):
            ref = metric_values(runs, "infonce-fixed-scale", key).mean()
            ax.axhline(ref, color="0.4", ls="--", lw=1, label="InfoNCE (scale 100)")
        ax.set_xscale("symlog", linthresh=0.3)
        if xs:
            ax.set_xlim(-0.15, max(xs) * 1.4 + 0.1)
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:g}" for x in xs])
        ax.set_xlabel("centrality scale κ")
        ax.set_ylabel(METRICS[key].label)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    _legend_below(fig, axes.flat[0])
    return fig


def plot_deltas(
    deltas: pd.DataFrame, cfg: StudyConfig, metrics: Sequence[str], *, reference: str
) -> Any:
    """Paired differences against ``reference`` with 95 % intervals; the grey band is the margin."""
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if m in set(deltas["metric"])]
    labels = list(dict.fromkeys(deltas["label"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics) + 1.9, 0.5 * len(labels) + 1.6),
                             squeeze=False, sharey=True)  # fmt: skip
    y = np.arange(len(labels))
    for ax, key in zip(axes.flat, metrics, strict=True):
        sub = deltas[deltas["metric"] == key].set_index("label").reindex(labels)
        est = sub["estimate"].to_numpy()
        xerr = np.vstack([est - sub["low"].to_numpy(), sub["high"].to_numpy() - est])
        ax.barh(y, est, color="C0", alpha=0.7)
        ax.errorbar(est, y, xerr=xerr, fmt="none", ecolor="k", capsize=3, lw=1)
        mg = margin(cfg, key)
        ax.axvspan(-mg, mg, color="0.85", zorder=0)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel(f"difference in\n{METRICS[key].label}")
    axes.flat[0].set_yticks(y)
    axes.flat[0].set_yticklabels(
        [textwrap.fill(label, 22) for label in labels], fontsize=8
    )
    axes.flat[0].invert_yaxis()
    fig.suptitle(f"each condition minus {cfg.label(reference)}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_k_occurrence(hist: pd.DataFrame, *, k: int) -> Any:
    """Histogram lines of :math:`N_k` over the test images per model, and the relevance oracle (Fig. 2 style)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    top = int(np.ceil(np.nanquantile(hist.to_numpy(), 0.995))) + 1
    width = max(1, top // 40)
    bins = np.arange(0, top + width, width)
    for col in hist.columns:
        counts, _ = np.histogram(hist[col].to_numpy(), bins=bins)
        gt = col == "ground truth"
        ax.plot(
            bins[:-1], counts, label=col, lw=1.5 if gt else 2, ls="--" if gt else "-"
        )
    ax.set_xlabel(f"$N_{{{k}}}$: captions that have the image in their top {k}")
    ax.set_ylabel("number of test images")
    ax.set_xlim(0, top)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    _legend_below(fig, ax, ncol=3)
    return fig


def plot_stacking(stack: pd.DataFrame, cfg: StudyConfig) -> Any:
    """Gain in R@1 of each normaliser on the two models, with 95 % t-intervals over seeds."""
    import matplotlib.pyplot as plt

    from hubrepro.normalize.variants import variant_label

    dirs = list(dict.fromkeys(stack["direction"]))
    words = {"query_to_gallery": "text→image", "gallery_to_query": "image→text"}
    fig, axes = plt.subplots(
        len(dirs), 1, figsize=(7.5, 3.0 * len(dirs) + 0.8), squeeze=False, sharey=True
    )
    names = (cfg.label(stack.attrs["baseline"]), cfg.label(stack.attrs["treatment"]))
    for ax, d in zip(axes.flat, dirs, strict=True):
        sub = stack[stack["direction"] == d]
        x = np.arange(len(sub))
        for i, (col, name) in enumerate(zip(("gain_a", "gain_b"), names, strict=True)):
            est = sub[col].to_numpy()
            err = np.vstack(
                [
                    est - sub[f"{col}_low"].to_numpy(),
                    sub[f"{col}_high"].to_numpy() - est,
                ]
            )
            ax.bar(x + (i - 0.5) * 0.38, est, width=0.38, yerr=err, capsize=3, label=name,
                   color=f"C{i}", alpha=0.8)  # fmt: skip
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels(
            [variant_label(m).replace(" (", "\n(") for m in sub["method"]], fontsize=8
        )
        ax.set_title(words.get(d, d), fontsize=10)
    for ax in axes.flat:
        ax.set_ylabel("gain in R@1 (points)")
    fig.tight_layout(rect=(0, 0.1 / len(dirs), 1, 1))
    _legend_below(fig, axes.flat[0])
    return fig
