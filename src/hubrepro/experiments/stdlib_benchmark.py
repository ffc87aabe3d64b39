"""The stdlib-code benchmark (notebook 30, chapter :ref:`sec-data`): sizes, examples, baselines.

:func:`run` reports the split sizes of the embedded text-to-code benchmark under each
split protocol (:func:`split_sizes`), loads (and, the first time, embeds) its test
and bank splits, draws a few example pairs with the rank of the right code
(:func:`example_pairs`) and computes the retrieval and hubness baselines without
normalisation (:func:`baseline_table`); :func:`headlines` collects the numbers the
chapter quotes and :func:`plot_nk_histograms` draws its figure. With ``data_dir`` (or
another ``dataset``) the same baselines describe the user's data.

Book: :ref:`sec-data`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from hubrepro._validation import check_int, fail
from hubrepro.datasets import PairedData, SimilarityData, load_dataset
from hubrepro.datasets.stdlib_code import load_pairs, split_pairs
from hubrepro.datasets.synthetic import gap_norm, mean_cosine
from hubrepro.hubness import hubness_report, k_occurrence, skewness
from hubrepro.retrieval import evaluate_retrieval

__all__ = [
    "StdlibBenchmarkConfig",
    "StdlibBenchmarkResult",
    "run",
    "headlines",
    "baseline_table",
    "example_pairs",
    "plot_nk_histograms",
    "split_sizes",
]


@dataclass(frozen=True)
class StdlibBenchmarkConfig:
    """Parameters of notebook 30 (the stdlib-code baselines; names equal the notebook's parameters).

    Attributes
    ----------
    seed : int
        Seed of the splits and of the example draw.
    dataset : str
        ``"stdlib-code"``, ``"synthetic"`` or ``"user"``.
    data_dir : str or None
        A folder in the user layout; replaces the dataset.
    protocols : tuple of str
        Split protocols of stdlib-code (``"random"``, ``"by-module"``).
    n_query, n_bank : int or None
        Test and bank pairs kept (``None``: all).
    k : int
        Neighbourhood size of :math:`N_k`.
    cache_dir : str or None
        Embeddings cache (``None``: ``$HUBREPRO_CACHE`` or ``~/.cache/hubrepro``).
    device : str
        Where the text encoder runs.
    n_examples : int
        Example pairs shown.
    artifact_dir : str
        Where CSV/PNG artifacts and ``provenance.json`` go.
    """

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


@dataclass
class StdlibBenchmarkResult:
    """What :func:`run` returns.

    Attributes
    ----------
    config : StdlibBenchmarkConfig
    n_pairs, n_modules : int
        Pairs of the shipped file and the modules they come from.
    sizes : pandas.DataFrame
        :func:`split_sizes`, one row per protocol.
    data : dict of str to PairedData or SimilarityData
        The loaded data, by protocol (or ``"user"`` / the dataset's name).
    examples : pandas.DataFrame or None
        :func:`example_pairs` of the first data (``None`` without texts).
    baseline : pandas.DataFrame
        :func:`baseline_table`, one row per label of ``data``.
    """

    config: StdlibBenchmarkConfig
    n_pairs: int
    n_modules: int
    sizes: pd.DataFrame
    data: dict[str, Any]
    examples: pd.DataFrame | None
    baseline: pd.DataFrame


def run(cfg: StdlibBenchmarkConfig) -> StdlibBenchmarkResult:
    """Run notebook 30: split sizes, loading (and embedding), examples and baselines.

    Texts already in the embeddings cache are read back; the others are embedded on
    one thread and written to the cache one by one, so an interrupted run loses
    nothing.

    Parameters
    ----------
    cfg : StdlibBenchmarkConfig

    Returns
    -------
    StdlibBenchmarkResult

    Book
    ----
    :ref:`sec-data`.
    """
    if not isinstance(cfg, StdlibBenchmarkConfig):
        fail("run", "cfg", "a StdlibBenchmarkConfig", type(cfg).__name__, exc=TypeError)
    pairs = load_pairs()
    if cfg.data_dir is not None or cfg.dataset != "stdlib-code":
        label = cfg.dataset if cfg.data_dir is None else "user"
        data = {label: load_dataset(cfg.dataset, seed=cfg.seed, data_dir=cfg.data_dir)}
    else:
        data = {
            p: load_dataset(
                "stdlib-code",
                seed=cfg.seed,
                protocol=p,
                n_query=cfg.n_query,
                n_bank=cfg.n_bank,
                cache_dir=cfg.cache_dir,
                device=cfg.device,
                progress=False,
            )
            for p in cfg.protocols
        }
    first = next(iter(data.values()))
    examples = (
        example_pairs(first, cfg.n_examples, seed=cfg.seed)
        if getattr(first, "query_text", None) is not None
        else None
    )
    return StdlibBenchmarkResult(
        config=cfg,
        n_pairs=len(pairs),
        n_modules=len({p["module"] for p in pairs}),
        sizes=split_sizes(pairs, cfg.protocols, seed=cfg.seed),
        data=data,
        examples=examples,
        baseline=baseline_table(data, k=cfg.k),
    )


#: glue slug -> column of :func:`baseline_table` quoted for every label
_QUOTED = {
    "r1": "R@1",
    "r10": "R@10",
    "r1-g2q": "R@1 (g2q)",
    "skew": "skewness",
    "antihub": "antihub_rate",
    "gap": "gap_norm",
    "n-query": "n_query",
}


def headlines(result: StdlibBenchmarkResult) -> dict[str, Any]:
    """The numbers the chapter quotes (keys become ``nb30-<key>`` glue keys).

    Returns
    -------
    dict
        ``val-n-pairs``, ``val-n-modules``, ``val-n-bank-<protocol>``; and for every
        label of the data (``random``, ``by-module`` by default),
        ``val-<stat>-<label>`` for R@1, R@10, gallery-to-query R@1, skewness, anti-hub
        rate, modality gap and the number of test queries.
    """
    out: dict[str, Any] = {
        "val-n-pairs": result.n_pairs,
        "val-n-modules": result.n_modules,
    }
    for protocol in result.config.protocols:
        out[f"val-n-bank-{protocol}"] = int(result.sizes.loc[protocol, "n_bank"])
    for label in result.data:
        row = result.baseline.loc[label]
        for key, col in _QUOTED.items():
            out[f"val-{key}-{label}"] = float(row[col])
    return out


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
