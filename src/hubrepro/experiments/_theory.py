"""Shared machinery of the theory notebooks (10, 20, 21, 22): the single-set grid and the figures.

Private: each notebook's driver (:mod:`~hubrepro.experiments.hubness_vs_dimension`,
:mod:`~hubrepro.experiments.hubs_near_mean`, :mod:`~hubrepro.experiments.hubs_both_modalities`,
:mod:`~hubrepro.experiments.primer`) is the public entry point. The science (samplers,
per-point statistics, summaries, verdicts) is :mod:`hubrepro.simulate`; this module
loops it over seeded grids and draws the chapter's figure types (lines with bands,
histograms, scatter grids, heat maps). Book: :ref:`sec-theory`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from hubrepro import hubness
from hubrepro._validation import check_choice, check_int, fail
from hubrepro.simulate import (
    METRICS,
    derive_seed,
    parse_law,
    sample,
    sample_mixture,
    single_set_items,
    spearman,
)


def as_list(x: Any, name: str, func: str) -> list:
    """A notebook parameter as a non-empty list (a lone value becomes a one-item list)."""
    if isinstance(x, str | int | float):
        return [x]
    if not isinstance(x, Sequence) or not len(x):
        fail(func, name, "a non-empty list", repr(x), exc=TypeError)
    return list(x)


def single_set_grid(
    laws: Iterable[str],
    dims: Iterable[int],
    *,
    n: int = 2000,
    ks: Iterable[int] = (10,),
    metrics: Iterable[str] = ("euclidean", "cosine"),
    replicates: int = 3,
    seed: int = 0,
    local_k: int = 10,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    chunk_size: int = 2048,
    experiment: str = "single_set",
) -> pd.DataFrame:
    r"""Monte Carlo grid of hubness statistics for single sets (notebooks 20 and 21).

    For every law spec, dimension :math:`d`, replicate and metric, draws ``n`` points
    (:func:`hubrepro.simulate.sample`, seed :func:`~hubrepro.simulate.derive_seed`
    ``(seed, law, d, replicate)``, shared by the metrics), computes
    :func:`~hubrepro.simulate.single_set_items` (one chunked kNN pass) and records,
    for each :math:`k`:

    - ``skewness`` :math:`S_{N_k}` and ``skewness_nonzero`` (claim R1), from
      :func:`hubrepro.hubness.skewness` / :func:`~hubrepro.hubness.skewness_nonzero`;
    - ``antihub_rate`` :math:`\Pr[N_k=0]` and ``max_occurrence``;
    - ``rho_centrality`` :math:`\rho(N_k,\lVert x-\bar x\rVert)` in the metric's
      geometry (claims R2/T1; negative = hubs central);
    - ``rho_local_density`` :math:`\rho(N_k,r_K)` (claim T1');
    - ``rho_component_centrality`` for ``mixture`` laws (claim R4).

    Parameters
    ----------
    laws : list of str
        Law specs (:func:`~hubrepro.simulate.parse_law`); for ``low_rank`` the rank
        is the intrinsic and ``d`` the embedding dimension (claim R5).
    dims : list of int
    n : int, default 2000
    ks : list of int, default (10,)
    metrics : list of str, default ("euclidean", "cosine")
    replicates : int, default 3
        Seeded replicates per cell; :func:`~hubrepro.simulate.summarize` turns them
        into intervals.
    seed : int, default 0
    local_k : int, default 10
        :math:`K` of :math:`r_K`.
    device, dtype, chunk_size
        Where and how the kNN runs.
    experiment : str
        A label copied into the ``experiment`` column.

    Returns
    -------
    pandas.DataFrame
        Tidy: columns ``experiment, law, metric, d, k, seed, statistic, value``
        (``seed`` is the replicate number).
    """
    func = "single_set_grid"
    laws = [str(law) for law in as_list(laws, "laws", func)]
    parsed = [parse_law(law) for law in laws]
    dims = [check_int(d, "dims", func, low=1) for d in as_list(dims, "dims", func)]
    ks = [check_int(k, "ks", func, low=1) for k in as_list(ks, "ks", func)]
    metrics = [
        check_choice(m, "metrics", func, METRICS)
        for m in as_list(metrics, "metrics", func)
    ]
    n = check_int(n, "n", func, low=2)
    replicates = check_int(replicates, "replicates", func, low=1)
    seed = check_int(seed, "seed", func, low=0)
    local_k = check_int(local_k, "local_k", func, low=1, high=n - 1)
    if max(ks) > n - 1:
        fail(func, "ks", f"at most n - 1 = {n - 1}", max(ks))
    rows: list[tuple] = []
    for law, (name, opts) in zip(laws, parsed, strict=True):
        if name == "low_rank" and opts["rank"] > min(dims):
            fail(
                func, "dims", f"at least the rank {opts['rank']} of {law!r}", min(dims)
            )
        for d in dims:
            for rep in range(replicates):
                g = torch.Generator().manual_seed(derive_seed(seed, law, d, rep))
                labels = None
                if name == "mixture":
                    x, labels, _ = sample_mixture(
                        n, d, **opts, generator=g, device=device, dtype=dtype
                    )
                else:
                    x = sample(law, n, d, generator=g, device=device, dtype=dtype)
                for metric in metrics:
                    items = single_set_items(
                        x,
                        k=ks,
                        metric=metric,
                        local_k=local_k,
                        labels=labels,
                        chunk_size=chunk_size,
                    )
                    col = {c: torch.tensor(items[c].to_numpy()) for c in items}
                    for k in ks:
                        n_k = col[f"n_{k}"]
                        stats = {
                            "skewness": hubness.skewness(n_k),
                            "skewness_nonzero": hubness.skewness_nonzero(n_k),
                            "antihub_rate": hubness.antihub_rate(n_k),
                            "max_occurrence": float(n_k.max()),
                            "rho_centrality": spearman(n_k, col["centrality"]),
                            "rho_local_density": spearman(n_k, col["local_density"]),
                        }
                        if labels is not None:
                            stats["rho_component_centrality"] = spearman(
                                n_k, col["component_centrality"]
                            )
                        rows.extend(
                            (experiment, law, metric, d, k, rep, s, v)
                            for s, v in stats.items()
                        )
    return pd.DataFrame(
        rows,
        columns=["experiment", "law", "metric", "d", "k", "seed", "statistic", "value"],
    )


# --------------------------------------------------------------------------- figures


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

    ``summary`` is a :func:`hubrepro.simulate.summarize` output restricted to one
    statistic (skewness or :math:`\\rho` against :math:`d`, R@1 gain against
    :math:`\\gamma`). Returns a matplotlib Figure.
    """

    panels = [None] if panel is None else list(dict.fromkeys(summary[panel]))
    fig, axes = panel_grid(len(panels), 4.2, 3.4)
    for ax, pv in zip(axes, panels, strict=False):
        sub = summary if pv is None else summary[summary[panel] == pv]
        for hv, grp in sub.groupby(hue, sort=False):
            _bands(ax, grp, x, str(hv))
        if reference is not None:
            ax.axhline(reference, color="0.5", lw=0.8, ls="--")
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(_AXIS_WORDS.get(x, x))
        if pv is not None:
            ax.set_title(f"{panel} = {pv}")
    for ax in axes[:: min(len(panels), _MAX_COLUMNS)]:
        ax.set_ylabel(ylabel)
    # one legend below the panels, where it covers no line
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4),
                   fontsize=8, frameon=False)  # fmt: skip
        rows = -(-len(panels) // _MAX_COLUMNS)
        fig.tight_layout(rect=(0, 0.1 + 0.04 * (-(-len(labels) // 4)) / rows, 1, 1))
    else:
        fig.tight_layout()
    return fig


#: panels per row of a multi-panel figure: more wrap onto a new row, so a figure stays
#: readable at the width of the book's text column
_MAX_COLUMNS = 3
_AXIS_WORDS = {
    "dim": "dimension d",
    "d": "dimension d",
    "gap": "modality gap γ",
    "gamma": "modality gap γ",
    "m": "intrinsic dimension m",
}


def panel_grid(n: int, width: float, height: float) -> tuple[Any, list[Any]]:
    """A figure of ``n`` panels in rows of at most three (shared y), unused cells hidden.

    Returns the figure and the list of the ``n`` axes in reading order.
    """
    import matplotlib.pyplot as plt

    cols = max(1, min(n, _MAX_COLUMNS))
    rows = -(-n // cols)
    fig, grid = plt.subplots(
        rows, cols, figsize=(width * cols, height * rows), sharey=True, squeeze=False
    )
    axes = list(grid.ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def plot_histograms(n_k_by_label: Mapping[str, Any], *, k: int) -> Any:
    r"""Histograms of :math:`N_k` with a log y-axis, one panel per label.

    In the style of Radovanović et al. 2010, Fig. 1. Returns a matplotlib Figure.
    """

    labels = list(n_k_by_label)
    fig, axes = panel_grid(len(labels), 3.4, 3.0)
    for ax, lab in zip(axes, labels, strict=False):
        v = np.asarray(n_k_by_label[lab])
        counts = np.bincount(v)
        nz = counts > 0
        ax.plot(np.arange(counts.size)[nz], counts[nz] / v.size, marker="o", ms=3, lw=1)
        ax.set_yscale("log")
        ax.set_xlabel(f"$N_{{{k}}}$")
        ax.set_title(lab)
    for ax in axes[:: min(len(labels), _MAX_COLUMNS)]:
        ax.set_ylabel("fraction of points")
    fig.tight_layout()
    return fig


def plot_scatter_grid(
    items: Mapping[tuple[str, str], pd.DataFrame],
    *,
    x: str = "centrality",
    y: str = "n_k",
    xlabel: str = "",
) -> Any:
    r"""Scatter of ``y`` against ``x`` per (row, column) label, Spearman :math:`\rho` in titles.

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
    r"""Annotated heat map of a table of correlations in :math:`[-1, 1]`.

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


def replicate_claim(
    frame: pd.DataFrame,
    cases: Sequence[str],
    *,
    null: float,
    claim: str,
    text: str,
    key: str,
    evidence: str,
    paired_on: tuple[str, Any, Any] | None = None,
) -> Any:
    r"""One theory claim (``th-...``) decided on its worst case, with a 95 % interval over replicates.

    ``frame`` holds one ``value`` per replicate (``seed``) and case (the columns
    ``cases``, e.g. law and :math:`k`). For each case the interval is Student-t over
    the replicates (:func:`hubrepro.inference.paired_t_interval`) of the value minus
    ``null`` or, with ``paired_on=(column, low, high)``, of the paired difference
    ``value[high] - value[low]`` (e.g. the skewness at the largest minus the smallest
    dimension). The claim must hold in *every* case, so it is decided
    (:func:`hubrepro.inference.verdict` with ``claim``) on the case least favourable
    to it: the smallest lower bound for ``"greater"``, the largest upper bound for
    ``"less"``. With a single replicate there is no interval and the verdict is
    *inconclusive*.
    """
    from hubrepro.inference import Claim, paired_t_interval, verdict

    worst, where = None, None
    single = False
    for case, g in frame.groupby(list(cases), sort=False):
        if paired_on is not None:
            col, lo, hi = paired_on
            w = g.pivot_table(index="seed", columns=col, values="value").dropna()
            if lo not in w.columns or hi not in w.columns:
                continue
            a, b = w[lo].to_numpy(), w[hi].to_numpy()
        else:
            b = g["value"].to_numpy(dtype=float)
            a = np.full(b.shape, float(null))
        if len(b) < 2:
            single = True
            continue
        iv = paired_t_interval(a, b)
        bad = -iv.low if claim == "greater" else iv.high
        if worst is None or bad > (-worst.low if claim == "greater" else worst.high):
            worst, where = iv, case

    def said(note: str) -> str:  # "claim (scope)" + note -> "claim (scope; note)"
        return f"{text[:-1]}; {note})" if text.endswith(")") else f"{text} ({note})"

    if worst is None:
        why = "one replicate: no interval" if single else "no case computed"
        return Claim("Theory", said(why), "inconclusive", None, evidence, key)
    case = where if isinstance(where, tuple) else (where,)
    named = ", ".join(f"{c} {v}" for c, v in zip(cases, case, strict=True))
    return Claim(
        "Theory",
        said(f"least favourable case: {named}"),
        verdict(worst, claim=claim),
        worst,
        evidence,
        key,
    )
