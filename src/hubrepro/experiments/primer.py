r"""The hubness primer (notebook 10, chapter :ref:`sec-hubness`): toy cases and a dimension sweep.

Two small, fully seeded experiments that illustrate every metric of
:mod:`hubrepro.retrieval` and :mod:`hubrepro.hubness`:

- :func:`toy_retrieval_example` -- a hand-sized score matrix with ties and several
  captions per video, whose ranks under the three tie policies can be checked by
  hand on the page; :func:`skewness_variants_example` -- how anti-hubs move the two
  skewness definitions;
- :func:`hubness_by_dimension` -- queries and gallery drawn independently from the
  uniform law on :math:`[0, 1]^d` (the setting of :cite:`radovanovic2010hubs`,
  sampled by :func:`hubrepro.simulate.sample`), compared by cosine similarity; the
  hubness statistics of the queries' top-k lists for each :math:`d`.

:class:`PrimerConfig` holds the notebook's parameters, :func:`run` runs all three,
:func:`headlines` collects the numbers the chapter quotes and
:func:`plot_nk_histograms` draws its figure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch

from hubrepro._validation import check_int, fail
from hubrepro.hubness import (
    antihub_rate,
    hubness_stats,
    k_occurrence_from_embeddings,
    skewness,
    skewness_nonzero,
)
from hubrepro.retrieval import TIES, evaluate_retrieval, gallery_ranks, query_ranks
from hubrepro.simulate import derive_seed, sample

from ._theory import plot_histograms

__all__ = [
    "PrimerConfig",
    "PrimerResult",
    "run",
    "headlines",
    "plot_nk_histograms",
    "toy_scores",
    "toy_retrieval_example",
    "skewness_variants_example",
    "hubness_by_dimension",
    "by_dimension_table",
]


@dataclasses.dataclass(frozen=True)
class PrimerConfig:
    """Parameters of notebook 10 (the names equal the notebook's parameters).

    Attributes
    ----------
    seed : int
        The notebook's one seed.
    n_query, n_gallery : int
        Sizes of the two independent sets of the dimension sweep.
    dim : int
        The dimension of the headline numbers (must be one of ``dims``).
    dims : tuple of int
        The dimensions of the sweep.
    k : int
        Neighbourhood size of :math:`N_k`.
    artifact_dir : str
        Where CSV/PNG artifacts and ``provenance.json`` go.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    seed: int = 0
    n_query: int = 3000
    n_gallery: int = 3000
    dim: int = 512
    dims: tuple[int, ...] = (3, 10, 30, 100, 512)
    k: int = 10
    artifact_dir: str = "_build/artifacts/10_hubness_metrics"
    device: str = "cpu"

    def __post_init__(self) -> None:
        func = "PrimerConfig"
        for name in ("n_query", "n_gallery", "dim", "k"):
            check_int(getattr(self, name), name, func, low=1)
        if not self.dims:
            fail(func, "dims", "a non-empty list of dimensions", self.dims)
        for d in self.dims:
            check_int(d, "dims", func, low=1)
        if self.dim not in self.dims:
            fail(func, "dim", f"one of `dims` {list(self.dims)}", self.dim)
        if self.k > self.n_gallery:
            fail(func, "k", f"at most n_gallery = {self.n_gallery}", self.k)


def toy_scores() -> tuple[torch.Tensor, torch.Tensor]:
    """Return the primer's toy problem: 6 captions x 3 videos, with ties.

    Captions 0-1 describe video 0, captions 2-4 video 1, caption 5 video 2.
    Caption 3 ties its video with a wrong one; caption 5's row is fully tied.

    Returns
    -------
    sims : Tensor of shape (6, 3), float64
    query_to_gallery : LongTensor of shape (6,)
    """
    sims = torch.tensor(
        [
            [0.9, 0.2, 0.1],
            [0.4, 0.6, 0.3],
            [0.3, 0.8, 0.2],
            [0.7, 0.7, 0.1],
            [0.2, 0.5, 0.6],
            [0.5, 0.5, 0.5],
        ],
        dtype=torch.float64,
    )
    return sims, torch.tensor([0, 0, 1, 1, 1, 2])


def toy_retrieval_example() -> dict[str, pd.DataFrame]:
    """Rank the toy problem under every tie policy and summarise it.

    Returns
    -------
    dict of DataFrame
        ``"sims"`` (the matrix, captions x videos, with the ground truth column),
        ``"query_ranks"`` (0-based text→video rank of each caption per policy),
        ``"gallery_ranks"`` (0-based video→text rank of each video per policy) and
        ``"metrics"`` (R@1, R@2, MdR, MnR per direction and policy).

    Book
    ----
    :ref:`sec-hubness-retrieval`.
    """
    sims, gt = toy_scores()
    videos = [f"video {j}" for j in range(sims.shape[1])]
    captions = [f"caption {i}" for i in range(sims.shape[0])]
    frame = pd.DataFrame(sims.numpy(), index=captions, columns=videos)
    frame["matches"] = [videos[int(g)] for g in gt]
    q = pd.DataFrame(
        {t: query_ranks(sims, gt, ties=t).numpy() for t in TIES}, index=captions
    )
    g = pd.DataFrame(
        {t: gallery_ranks(sims, gt, ties=t).numpy() for t in TIES}, index=videos
    )
    rows = []
    for t in TIES:
        res = evaluate_retrieval(sims, gt, ks=(1, 2), ties=t)
        for direction in ("query_to_gallery", "gallery_to_query"):
            rows.append({"ties": t, "direction": direction, **res[direction]})
    metrics = pd.DataFrame(rows).set_index(["ties", "direction"])
    return {"sims": frame, "query_ranks": q, "gallery_ranks": g, "metrics": metrics}


def skewness_variants_example(
    n_antihubs: Sequence[int] = (0, 10, 40, 160),
) -> pd.DataFrame:
    r"""Show how anti-hubs move the standard skewness but not the DBNorm-code variant.

    The retrieved items keep the same k-occurrences ``[1, 1, 2, 2, 3, 3, 4, 12]``
    (one hub); only the number of never-retrieved items (:math:`N_k = 0`) changes.
    :func:`~hubrepro.hubness.skewness` counts them, so it changes with every row;
    :func:`~hubrepro.hubness.skewness_nonzero` drops them, so it never moves.

    Parameters
    ----------
    n_antihubs : sequence of int, default (0, 10, 40, 160)
        Numbers of anti-hubs to append.

    Returns
    -------
    DataFrame
        Index ``n_antihubs``; columns ``n_gallery``, ``antihub_rate``, ``skewness``,
        ``skewness_nonzero``.

    Book
    ----
    :eq:`eq-hubness-skewness-nonzero`.
    """
    retrieved = [1, 1, 2, 2, 3, 3, 4, 12]
    rows = []
    for n0 in n_antihubs:
        n0 = check_int(n0, "n_antihubs", "skewness_variants_example", low=0)
        n_k = torch.tensor([0] * n0 + retrieved)
        rows.append(
            {
                "n_antihubs": n0,
                "n_gallery": n_k.numel(),
                "antihub_rate": antihub_rate(n_k),
                "skewness": skewness(n_k),
                "skewness_nonzero": skewness_nonzero(n_k),
            }
        )
    return pd.DataFrame(rows).set_index("n_antihubs")


def hubness_by_dimension(
    dims: Sequence[int],
    *,
    n_query: int,
    n_gallery: int,
    k: int = 10,
    seed: int = 0,
    device: Any = "cpu",
) -> tuple[pd.DataFrame, dict[int, torch.Tensor]]:
    r"""Hubness of cosine top-k retrieval between two independent uniform sets, per dimension.

    For each :math:`d`, queries and then gallery items are drawn independently from
    the uniform law on :math:`[0,1]^d` (:func:`hubrepro.simulate.sample`, law
    ``"uniform"``, from one generator seeded by
    :func:`hubrepro.simulate.derive_seed` ``(seed, "primer", d)``, so adding a
    dimension never changes the others), the queries retrieve their top-``k``
    gallery items by cosine similarity
    (:func:`hubrepro.hubness.k_occurrence_from_embeddings`), and the k-occurrences
    are summarised by :func:`hubrepro.hubness.hubness_stats`. This is claim R1 of
    :cite:`radovanovic2010hubs` in its cross-set form: the skewness of
    :math:`N_k` grows with :math:`d`.

    Parameters
    ----------
    dims : sequence of int
        Dimensions to sweep.
    n_query, n_gallery : int
        Set sizes.
    k : int, default 10
        Neighbourhood size.
    seed : int, default 0
        Base seed.
    device : str or torch.device, default "cpu"
        Where the similarity blocks are computed.

    Returns
    -------
    table : DataFrame
        One row per dimension (index ``d``), the columns of
        :func:`~hubrepro.hubness.hubness_stats` plus ``mean_occurrence``.
    n_k : dict
        ``{d: LongTensor (n_gallery,)}`` on the CPU, for histograms.

    Book
    ----
    :ref:`sec-hubness-koccurrence`.
    """
    func = "hubness_by_dimension"
    n_query = check_int(n_query, "n_query", func, low=1)
    n_gallery = check_int(n_gallery, "n_gallery", func, low=1)
    seed = check_int(seed, "seed", func)
    rows, counts = [], {}
    for d in dims:
        d = check_int(d, "dims", func, low=1)
        g = torch.Generator().manual_seed(derive_seed(seed, "primer", d))
        query = sample("uniform", n_query, d, generator=g, device=device)
        gallery = sample("uniform", n_gallery, d, generator=g, device=device)
        n_k = k_occurrence_from_embeddings(query, gallery, k=k, chunk_size=1024).cpu()
        counts[d] = n_k
        rows.append(
            {
                "d": d,
                **hubness_stats(n_k, k),
                "mean_occurrence": k * n_query / n_gallery,
            }
        )
    return pd.DataFrame(rows).set_index("d"), counts


@dataclasses.dataclass
class PrimerResult:
    """What :func:`run` returns.

    Attributes
    ----------
    config : PrimerConfig
    toy : dict of DataFrame
        :func:`toy_retrieval_example`.
    skewness_variants : DataFrame
        :func:`skewness_variants_example`.
    by_dimension : DataFrame
        :func:`hubness_by_dimension`, one row per dimension.
    n_k : dict of int to Tensor
        The k-occurrences of each dimension.
    """

    config: PrimerConfig
    toy: dict[str, pd.DataFrame]
    skewness_variants: pd.DataFrame
    by_dimension: pd.DataFrame
    n_k: dict[int, torch.Tensor]


def run(cfg: PrimerConfig) -> PrimerResult:
    """Run notebook 10: the toy ranks, the two skewness definitions and the dimension sweep.

    Parameters
    ----------
    cfg : PrimerConfig

    Returns
    -------
    PrimerResult

    Book
    ----
    :ref:`sec-hubness`.
    """
    if not isinstance(cfg, PrimerConfig):
        fail("run", "cfg", "a PrimerConfig", type(cfg).__name__, exc=TypeError)
    table, n_k = hubness_by_dimension(
        cfg.dims,
        n_query=cfg.n_query,
        n_gallery=cfg.n_gallery,
        k=cfg.k,
        seed=cfg.seed,
        device=cfg.device,
    )
    return PrimerResult(
        config=cfg,
        toy=toy_retrieval_example(),
        skewness_variants=skewness_variants_example(),
        by_dimension=table,
        n_k=n_k,
    )


#: glue slug -> column of :func:`~hubrepro.hubness.hubness_stats` quoted at ``dim``
_QUOTED = {
    "skew": "skewness",
    "skew-nonzero": "skewness_nonzero",
    "robin-hood": "robin_hood",
    "hub-occupancy": "hub_occupancy",
    "antihub": "antihub_rate",
    "gini": "gini",
    "max-occurrence": "max_occurrence",
}


def headlines(result: PrimerResult) -> dict[str, Any]:
    """The numbers the chapter quotes (keys become ``nb10-<key>`` glue keys).

    Returns
    -------
    dict
        ``val-toy-r1-<policy>`` (text-to-video R@1 of the toy problem under each tie
        policy); ``val-k``, ``val-n-query``, ``val-n-gallery``, ``val-d-low`` (the
        smallest dimension), ``val-d-high`` (``dim``); ``val-skew-low`` (skewness at
        the smallest dimension); at ``dim``, ``val-<statistic>-high`` for skewness,
        the DBNorm-code skewness, Robin Hood index, hub occupancy, anti-hub rate, Gini
        coefficient and maximum occurrence, and the anti-hub rate and hub occupancy in
        percent (``val-antihub-pct-high``, ``val-hub-occupancy-pct-high``).
    """
    cfg, table, metrics = result.config, result.by_dimension, result.toy["metrics"]
    out: dict[str, Any] = {
        f"val-toy-r1-{policy}": float(metrics.loc[(policy, "query_to_gallery"), "R@1"])
        for policy in TIES
    }
    d_lo = min(cfg.dims)
    head, low = table.loc[cfg.dim], table.loc[d_lo]
    out.update(
        {
            "val-k": cfg.k,
            "val-n-query": cfg.n_query,
            "val-n-gallery": cfg.n_gallery,
            "val-d-low": d_lo,
            "val-d-high": cfg.dim,
            "val-skew-low": float(low["skewness"]),
        }
    )
    for key, col in _QUOTED.items():
        out[f"val-{key}-high"] = float(head[col])
    out["val-antihub-pct-high"] = 100 * float(head["antihub_rate"])
    out["val-hub-occupancy-pct-high"] = 100 * float(head["hub_occupancy"])
    return out


def plot_nk_histograms(result: PrimerResult) -> Any:
    """:math:`N_k` histograms (log scale) at the smallest dimension and at ``dim``."""
    cfg = result.config
    return plot_histograms(
        {f"d = {d}": result.n_k[d] for d in (min(cfg.dims), cfg.dim)}, k=cfg.k
    )


def by_dimension_table(result: Any) -> pd.DataFrame:
    """Notebook 10's table of :func:`hubness_by_dimension`: a statistic per row, a dimension per column.

    Transposed so that the page holds it: the statistics' human names
    (:func:`hubrepro.reporting.column_label`) as rows, one column ``d = ...`` per
    dimension; the constant ``k`` is left out (the caption states it).
    """
    from hubrepro.reporting import column_label

    t = result.by_dimension
    t = t.drop(columns=[c for c in ("k",) if c in t.columns])
    out = t.rename(columns=column_label).T
    out.columns = [f"d = {d}" for d in out.columns]
    out.index.name = "statistic"
    return out
