"""Baselines, examples and figures of the data chapter (notebooks 30 and 31).

Book: :ref:`sec-data`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hubrepro._validation import check_int, fail

from ._base import PairedData, SimilarityData
from .synthetic import gap_norm, make_synthetic, mean_cosine

__all__ = [
    "StdlibBenchmarkConfig",
    "SyntheticSweepConfig",
    "baseline_table",
    "example_pairs",
    "knob_sweep",
    "plot_knob_sweep",
    "plot_nk_histograms",
    "split_sizes",
]


@dataclass(frozen=True)
class StdlibBenchmarkConfig:
    """Parameters of notebook 30 (the stdlib-code baselines)."""

    seed: int = 0
    dataset: str = "stdlib-code"
    data_dir: str | None = None
    protocols: tuple[str, ...] = ("random", "by-module")
    n_query: int | None = None
    n_bank: int | None = None
    k: int = 10
    cache_dir: str | None = None
    device: str = "cpu"
    n_examples: int = 4
    artifact_dir: str = "_build/artifacts/30_stdlib_benchmark"


@dataclass(frozen=True)
class SyntheticSweepConfig:
    """Parameters of notebook 31 (the synthetic generator's knobs)."""

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


def _sims_and_gt(
    data: PairedData | SimilarityData,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(data, SimilarityData):
        d = data.masked()
        return d.sims, d.query_to_gallery
    if isinstance(data, PairedData):
        return data.sims(), data.query_to_gallery
    fail(
        "baseline_table",
        "datasets",
        "a mapping of labels to PairedData or SimilarityData",
        type(data).__name__,
        exc=TypeError,
    )
    raise AssertionError  # unreachable


def baseline_table(
    datasets: Mapping[str, PairedData | SimilarityData], *, k: int = 10
) -> Any:
    """Retrieval and hubness baselines (no normalisation) of each dataset.

    Parameters
    ----------
    datasets : mapping of str to PairedData or SimilarityData
        Label -> data.
    k : int, default 10
        Neighbourhood size of :math:`N_k`.

    Returns
    -------
    pandas.DataFrame
        One row per label: sizes, query->gallery ``R@1``, ``R@5``, ``R@10``,
        ``MdR``, gallery->query ``R@1 (g2q)``, ``Rsum``, and the hubness of the
        gallery under the queries (``skewness``, ``robin_hood``, ``antihub_rate``,
        ``hub_occupancy``, ``max_occurrence``), with the modality ``gap_norm`` and
        ``mean_cos_gallery`` for embeddings (NaN for similarity matrices).

    Book
    ----
    :ref:`sec-data`.
    """
    import pandas as pd

    from hubrepro.hubness import hubness_report
    from hubrepro.retrieval import evaluate_retrieval

    k = check_int(k, "k", "baseline_table", low=1)
    rows = []
    for label, data in datasets.items():
        sims, gt = _sims_and_gt(data)
        res = evaluate_retrieval(sims, gt)
        hub = hubness_report(sims, k=min(k, sims.shape[1]))
        q2g, g2q = res["query_to_gallery"], res["gallery_to_query"]
        paired = isinstance(data, PairedData)
        rows.append(
            {
                "dataset": label,
                "n_query": int(sims.shape[0]),
                "n_gallery": int(sims.shape[1]),
                "n_bank": int(data.bank_query.shape[0])
                if paired and data.bank_query is not None
                else 0,
                "R@1": q2g["R@1"],
                "R@5": q2g["R@5"],
                "R@10": q2g["R@10"],
                "MdR": q2g["MdR"],
                "R@1 (g2q)": g2q["R@1"],
                "Rsum": res["Rsum"],
                "skewness": hub["skewness"],
                "robin_hood": hub["robin_hood"],
                "antihub_rate": hub["antihub_rate"],
                "hub_occupancy": hub["hub_occupancy"],
                "max_occurrence": hub["max_occurrence"],
                "gap_norm": gap_norm(data.query, data.gallery)
                if paired
                else float("nan"),
                "mean_cos_gallery": mean_cosine(data.gallery)
                if paired
                else float("nan"),
            }
        )
    return pd.DataFrame(rows).set_index("dataset")


def split_sizes(
    pairs: Sequence[dict[str, str]],
    protocols: Sequence[str],
    *,
    seed: int = 0,
    n_test: int = 1000,
) -> Any:
    """Sizes of the stdlib-code splits under each protocol (pairs and modules).

    Returns
    -------
    pandas.DataFrame
        One row per protocol: ``n_pairs``, ``n_test``, ``n_bank``, ``n_dropped``
        (the part of the boundary group left out), ``test_modules``, ``bank_modules``.
    """
    import pandas as pd

    from .stdlib_code import split_pairs

    rows = []
    for protocol in protocols:
        test, bank = split_pairs(pairs, protocol=protocol, seed=seed, n_test=n_test)
        rows.append(
            {
                "protocol": protocol,
                "n_pairs": len(pairs),
                "n_test": len(test),
                "n_bank": len(bank),
                "n_dropped": len(pairs) - len(test) - len(bank),
                "test_modules": len({pairs[i]["module"] for i in test}),
                "bank_modules": len({pairs[i]["module"] for i in bank}),
            }
        )
    return pd.DataFrame(rows).set_index("protocol")


def example_pairs(
    data: PairedData, n: int = 4, *, seed: int = 0, max_chars: int = 220
) -> Any:
    """A few test pairs with the rank of the right code under plain cosine retrieval.

    Returns
    -------
    pandas.DataFrame
        Columns ``query``, ``code`` (first ``max_chars`` characters), ``rank`` (1 = the
        right code is the top hit) and ``top hit`` (start of the best-scoring code).
    """
    import pandas as pd

    func = "example_pairs"
    if (
        not isinstance(data, PairedData)
        or data.query_text is None
        or data.gallery_text is None
    ):
        fail(
            func,
            "data",
            "a PairedData with query_text and gallery_text",
            type(data).__name__,
            exc=TypeError,
        )
    n = check_int(n, "n", func, low=1, high=data.n_query)
    idx = (
        torch.randperm(data.n_query, generator=torch.Generator().manual_seed(seed))[:n]
        .sort()
        .values
    )
    sims = data.sims()[idx]
    gt = data.gt[idx]
    right = sims.gather(1, gt[:, None])
    ranks = 1 + (sims > right).sum(1)
    top = sims.argmax(1)

    def cut(text: str) -> str:
        return text if len(text) <= max_chars else text[: max_chars - 1] + "…"

    return pd.DataFrame(
        {
            "query": [data.query_text[i] for i in idx.tolist()],
            "code": [cut(data.gallery_text[int(j)]) for j in gt.tolist()],
            "rank": ranks.tolist(),
            "top hit": [
                cut(data.gallery_text[int(j)]).split("\n")[0] for j in top.tolist()
            ],
        }
    )


def plot_nk_histograms(
    datasets: Mapping[str, PairedData | SimilarityData], *, k: int = 10
) -> Any:
    """Histograms of the gallery's k-occurrence :math:`N_k`, one panel per dataset.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from hubrepro.hubness import k_occurrence, skewness

    n = len(datasets)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.0), squeeze=False, sharey=True)
    for ax, (label, data) in zip(axes[0], datasets.items(), strict=True):
        sims, _ = _sims_and_gt(data)
        kk = min(k, sims.shape[1])
        n_k = k_occurrence(sims, k=kk).cpu()
        ax.hist(n_k.numpy(), bins=range(int(n_k.max()) + 2), color="C0", alpha=0.85)
        ax.set_yscale("log")
        ax.set_title(f"{label}\nskewness {skewness(n_k):.2f}", fontsize=9)
        ax.set_xlabel(f"$N_{{{kk}}}$ (times in a query's top {kk})")
    axes[0][0].set_ylabel("gallery items")
    fig.tight_layout()
    return fig


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
    import pandas as pd

    from .synthetic import describe

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
