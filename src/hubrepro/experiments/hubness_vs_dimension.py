r"""Hubness grows with dimension (notebook 20, chapter :ref:`sec-theory`): claims R1 and R5.

:func:`run` draws the seeded single-set grid of laws x dimensions x metrics x
replicates (claim R1 of :cite:`radovanovic2010hubs`, with the asymmetric exponential
and log-normal laws asking whether symmetry is needed), the :math:`N_k` histograms of
one law, and the intrinsic-dimension experiment (claim R5: rank-:math:`m` data
embedded in :math:`\R^D` against plain :math:`d=m` data); :func:`headlines` gives the
verdicts and numbers the chapter quotes; the ``plot_*`` functions draw its figures.

Book: :ref:`sec-theory`, "Claim R1: hubness grows with dimension".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from hubrepro._validation import check_int, fail
from hubrepro.simulate import (
    derive_seed,
    sample,
    single_set_items,
    summarize,
    summary_value,
    verdict_r1,
)

from ._theory import (
    as_list,
    plot_histograms,
    plot_lines,
    replicate_claim,
    single_set_grid,
)

__all__ = [
    "DimensionSweepConfig",
    "DimensionSweepResult",
    "run",
    "headlines",
    "claims",
    "intrinsic_dimension_grid",
    "plot_skewness",
    "plot_nk_histograms",
    "plot_intrinsic",
]

#: laws whose skewness the chapter quotes at the smallest and largest dimension
_QUOTED_LAWS = ("gaussian", "uniform", "exponential", "lognormal")
_ASYMMETRIC_LAWS = ("exponential", "lognormal")


@dataclass(frozen=True)
class DimensionSweepConfig:
    """Parameters of notebook ``20_hubness_vs_dimension`` (names equal the notebook's parameters).

    Attributes
    ----------
    laws : tuple of str
        Law specs (:func:`hubrepro.simulate.parse_law`).
    dims : tuple of int
        Dimensions of the sweep.
    metrics : tuple of str
        kNN geometries: ``"euclidean"``, ``"cosine"``, ``"cosine_centred"``.
    n : int
        Points per set.
    ks : tuple of int
        Neighbourhood sizes; the largest is the one of the figures and headlines.
    replicates : int
        Seeded replicates per cell.
    hist_law : str
        Law of the :math:`N_k` histograms.
    hist_dims : tuple of int
        Dimensions of the histograms.
    embedding_dim : int
        :math:`D` of the intrinsic-dimension experiment.
    intrinsic_ranks : tuple of int
        Intrinsic dimensions :math:`m`, each at most ``embedding_dim``.
    seed : int
        The notebook's one seed.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    artifact_dir : str
        Where CSV/PNG artifacts and ``provenance.json`` go.
    """

    laws: tuple[str, ...] = (
        "gaussian",
        "uniform",
        "laplace",
        "student_t",
        "exponential",
        "lognormal",
    )
    dims: tuple[int, ...] = (3, 5, 10, 20, 50, 100, 200)
    metrics: tuple[str, ...] = ("euclidean", "cosine")
    n: int = 2000
    ks: tuple[int, ...] = (5, 10)
    replicates: int = 3
    hist_law: str = "gaussian"
    hist_dims: tuple[int, ...] = (3, 20, 100)
    embedding_dim: int = 512
    intrinsic_ranks: tuple[int, ...] = (5, 20, 100, 512)
    seed: int = 0
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/20_hubness_vs_dimension"


@dataclass
class DimensionSweepResult:
    """What :func:`run` returns.

    Attributes
    ----------
    config : DimensionSweepConfig
    frame : pandas.DataFrame
        The tidy single-set grid (one row per law, metric, d, k, replicate, statistic).
    summary : pandas.DataFrame
        ``frame`` summarised over replicates (:func:`hubrepro.simulate.summarize`).
    skew_table : pandas.DataFrame
        Mean skewness of :math:`N_k` (largest ``k``) by metric and law against ``d``.
    verdicts : dict of str to str
        ``r1`` (Euclidean), ``r1-cosine`` and ``e7`` (the asymmetric laws under
        Euclidean distance): ``"supported"``, ``"not supported"`` or ``"not computed"``.
    r1_detail : pandas.DataFrame or None
        Per law and ``k``: the share of replicates with an increase (Euclidean).
    histograms : dict of str to pandas.Series
        :math:`N_k` of one draw of ``hist_law`` per dimension of ``hist_dims``.
    intrinsic_frame : pandas.DataFrame
        The tidy frame of :func:`intrinsic_dimension_grid`.
    intrinsic : pandas.DataFrame
        Its skewness summarised per curve and :math:`m`.
    intrinsic_table : pandas.DataFrame
        Mean skewness, :math:`m` against the two curves.
    """

    config: DimensionSweepConfig
    frame: pd.DataFrame
    summary: pd.DataFrame
    skew_table: pd.DataFrame
    verdicts: dict[str, str]
    r1_detail: pd.DataFrame | None
    histograms: dict[str, Any] = field(default_factory=dict)
    intrinsic_frame: pd.DataFrame | None = None
    intrinsic: pd.DataFrame | None = None
    intrinsic_table: pd.DataFrame | None = None

    @property
    def k(self) -> int:
        """The neighbourhood size of the figures and headlines (the largest ``k``)."""
        return max(self.config.ks)


def intrinsic_dimension_grid(
    ranks: Iterable[int] = (5, 20, 100, 512),
    embedding_dim: int = 512,
    *,
    n: int = 2000,
    k: int = 10,
    metric: str = "euclidean",
    replicates: int = 3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> pd.DataFrame:
    r"""Hubness of rank-:math:`m` data embedded in :math:`\R^D` against plain :math:`d=m` data (claim R5).

    Runs the single-set grid for ``low_rank:rank=m`` at ``d = embedding_dim`` (label
    ``"embedded in D"``) and for ``gaussian`` at ``d = m`` (label ``"plain, d = m"``).
    Claim R5 predicts the two curves coincide: the orthonormal embedding preserves all
    distances, so hubness depends on :math:`m` only.

    Returns
    -------
    pandas.DataFrame
        The tidy single-set frame with ``law`` replaced by the label and an extra
        column ``m``.
    """
    func = "intrinsic_dimension_grid"
    ranks = [check_int(m, "ranks", func, low=1) for m in as_list(ranks, "ranks", func)]
    embedding_dim = check_int(embedding_dim, "embedding_dim", func, low=1)
    if max(ranks) > embedding_dim:
        fail(func, "ranks", f"at most embedding_dim = {embedding_dim}", max(ranks))
    common = dict(
        n=n,
        ks=[k],
        metrics=[metric],
        replicates=replicates,
        seed=seed,
        device=device,
        dtype=dtype,
    )
    emb = single_set_grid(
        [f"low_rank:rank={m}" for m in ranks],
        [embedding_dim],
        experiment="E3",
        **common,
    )
    emb["m"] = emb["law"].str.split("=").str[1].astype(int)
    emb["law"] = f"embedded in D = {embedding_dim}"
    plain = single_set_grid(["gaussian"], ranks, experiment="E3", **common)
    plain["m"] = plain["d"]
    plain["law"] = "plain, d = m"
    return pd.concat([emb, plain], ignore_index=True)


def run(cfg: DimensionSweepConfig) -> DimensionSweepResult:
    """Run notebook 20: the dimension sweep, the histograms and the intrinsic-dimension curves.

    Every cell (law, :math:`d`, replicate) is an independent draw whose seed is
    derived from ``cfg.seed`` and the cell (:func:`hubrepro.simulate.derive_seed`),
    so extending the grid never changes the other cells.

    Parameters
    ----------
    cfg : DimensionSweepConfig

    Returns
    -------
    DimensionSweepResult

    Book
    ----
    :ref:`sec-theory`, "Claim R1: hubness grows with dimension".
    """
    if not isinstance(cfg, DimensionSweepConfig):
        fail("run", "cfg", "a DimensionSweepConfig", type(cfg).__name__, exc=TypeError)
    frame = single_set_grid(
        cfg.laws,
        cfg.dims,
        n=cfg.n,
        ks=cfg.ks,
        metrics=cfg.metrics,
        replicates=cfg.replicates,
        seed=cfg.seed,
        device=cfg.device,
        experiment="E1",
    )
    summary = summarize(frame)
    k = max(cfg.ks)
    skew = summary[(summary.statistic == "skewness") & (summary.k == k)]
    euclidean = "euclidean" in cfg.metrics
    r1, r1_detail = (
        verdict_r1(frame, metric="euclidean") if euclidean else ("not computed", None)
    )
    asym = frame[frame.law.isin(_ASYMMETRIC_LAWS)]
    verdicts = {
        "r1": r1,
        "r1-cosine": verdict_r1(frame, metric="cosine")[0]
        if "cosine" in cfg.metrics
        else "not computed",
        "e7": verdict_r1(asym, metric="euclidean")[0]
        if len(asym) and euclidean
        else "not computed",
    }
    histograms = {}
    for d in cfg.hist_dims:
        x = sample(
            cfg.hist_law,
            cfg.n,
            d,
            seed=derive_seed(cfg.seed, "hist", d),
            device=cfg.device,
        )
        histograms[f"{cfg.hist_law}, d = {d}"] = single_set_items(x, k=k)["n_k"]
    e3_frame = intrinsic_dimension_grid(
        cfg.intrinsic_ranks,
        cfg.embedding_dim,
        n=cfg.n,
        k=k,
        replicates=cfg.replicates,
        seed=cfg.seed,
        device=cfg.device,
    )
    e3 = summarize(
        e3_frame[e3_frame.statistic == "skewness"], by=["law", "m", "statistic"]
    )
    return DimensionSweepResult(
        config=cfg,
        frame=frame,
        summary=summary,
        skew_table=skew.pivot_table(
            index=["metric", "law"], columns="d", values="mean"
        ),
        verdicts=verdicts,
        r1_detail=r1_detail,
        histograms=histograms,
        intrinsic_frame=e3_frame,
        intrinsic=e3,
        intrinsic_table=e3.pivot_table(index="m", columns="law", values="mean"),
    )


def headlines(result: DimensionSweepResult) -> dict[str, Any]:
    """The verdicts and numbers the chapter quotes (keys become ``nb20-<key>`` glue keys).

    Returns
    -------
    dict
        ``txt-r1-verdict``, ``txt-r1-cosine-verdict``, ``txt-e7-verdict``; the grid's
        ``val-d-low``, ``val-d-high``, ``val-k``, ``val-n``, ``val-replicates``;
        ``val-skew-<law>-<metric>-<low|high>``, the mean skewness at the smallest and
        largest dimension for the Gaussian, uniform, exponential and log-normal laws
        under both metrics (NaN where the grid has no such cell); and
        ``val-intrinsic-max-gap`` (the largest gap between the two R5 curves) and
        ``val-intrinsic-span`` (the range of the embedded curve).
    """
    cfg, k = result.config, result.k
    d_lo, d_hi = min(cfg.dims), max(cfg.dims)
    out: dict[str, Any] = {
        "txt-r1-verdict": result.verdicts["r1"],
        "txt-r1-cosine-verdict": result.verdicts["r1-cosine"],
        "txt-e7-verdict": result.verdicts["e7"],
        "val-d-low": d_lo,
        "val-d-high": d_hi,
        "val-k": k,
        "val-n": cfg.n,
        "val-replicates": cfg.replicates,
    }
    for law in _QUOTED_LAWS:
        for metric in ("euclidean", "cosine"):
            for tag, d in (("low", d_lo), ("high", d_hi)):
                out[f"val-skew-{law}-{metric}-{tag}"] = summary_value(
                    result.summary,
                    law=law,
                    metric=metric,
                    d=d,
                    k=k,
                    statistic="skewness",
                )
    table = result.intrinsic_table
    out["val-intrinsic-max-gap"] = float(
        (table.iloc[:, 0] - table.iloc[:, 1]).abs().max()
    )
    out["val-intrinsic-span"] = float(table.iloc[:, 0].max() - table.iloc[:, 0].min())
    return out


def plot_skewness(result: DimensionSweepResult) -> Any:
    """Skewness of :math:`N_k` against :math:`d`, one line per law, one panel per metric."""
    s = result.summary
    skew = s[(s.statistic == "skewness") & (s.k == result.k)]
    return plot_lines(skew, ylabel=f"skewness of $N_{{{result.k}}}$", reference=0.0)


def plot_nk_histograms(result: DimensionSweepResult) -> Any:
    """The :math:`N_k` histograms of ``hist_law``, one panel per dimension (log scale)."""
    return plot_histograms(result.histograms, k=result.k)


def plot_intrinsic(result: DimensionSweepResult) -> Any:
    """Skewness against the intrinsic dimension :math:`m`: embedded in :math:`D` and plain."""
    return plot_lines(
        result.intrinsic,
        x="m",
        panel=None,
        ylabel=f"skewness of $N_{{{result.k}}}$",
    )


def claims(result: DimensionSweepResult) -> list[Any]:
    """Claim R1 for the claims ledger (``th-r1``), with its 95 % interval over replicates.

    The skewness of :math:`N_k` at the largest minus the smallest dimension, per law
    and :math:`k` (Euclidean distance), decided on the least favourable law
    (the theory drivers' ``replicate_claim``).
    """
    f = result.frame
    sub = f[(f.statistic == "skewness") & (f.metric == "euclidean")]
    if sub.empty:
        return []
    lo, hi = int(sub.d.min()), int(sub.d.max())
    return [
        replicate_claim(
            sub[sub.d.isin([lo, hi])], ["law", "k"], null=0.0, claim="greater",
            text=f"R1: the skewness of N_k grows with the dimension for i.i.d. data "
                 f"(Euclidean; d = {lo} to {hi}, every law)",
            key="th-r1", evidence="fig-theory-skew-vs-dim", paired_on=("d", lo, hi),
        )
    ]  # fmt: skip
