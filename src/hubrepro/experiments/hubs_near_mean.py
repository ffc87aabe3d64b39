r"""Are hubs near the mean? (notebook 21, chapter :ref:`sec-theory`): claims R2, R4 and T1'.

:func:`run` draws per-point scatter data (:math:`N_k` against the distance to the
mean) and the seeded single-set grid whose Spearman correlations test claim R2 of
:cite:`radovanovic2010hubs` (points near the data mean become hubs), R4 (for
mixtures, near the *component* means) and the reconstructed cosine caveat T1' (data
symmetric about the origin have no mean direction; anisotropic data make local-density
hubs instead); :func:`headlines` gives the verdicts and numbers the chapter quotes;
the ``plot_*`` functions draw its figures.

Book: :ref:`sec-theory`, "Claims R2 and R4: hubs sit near the mean".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from hubrepro._validation import fail
from hubrepro.simulate import (
    derive_seed,
    sample,
    single_set_items,
    summarize,
    summary_value,
    verdict_r2,
)

from ._theory import (
    plot_heatmap,
    plot_lines,
    plot_scatter_grid,
    replicate_claim,
    single_set_grid,
)

__all__ = [
    "HubsNearMeanConfig",
    "HubsNearMeanResult",
    "run",
    "headlines",
    "claims",
    "plot_scatter",
    "plot_rho",
    "plot_centrality_heatmap",
]

#: glue slug -> (law, metric, statistic) quoted at ``heatmap_d``
_QUOTED = {
    "rho-gaussian-euclidean": ("gaussian", "euclidean", "rho_centrality"),
    "rho-uniform-euclidean": ("uniform", "euclidean", "rho_centrality"),
    "rho-gaussian-cosine": ("gaussian", "cosine", "rho_centrality"),
    "rho-uniform-cosine": ("uniform", "cosine", "rho_centrality"),
    "rho-centred-cosine": ("uniform_centred", "cosine", "rho_centrality"),
    "skew-gaussian-cosine": ("gaussian", "cosine", "skewness"),
    "skew-uniform-cosine": ("uniform", "cosine", "skewness"),
    "skew-centred-cosine": ("uniform_centred", "cosine", "skewness"),
    "skew-anisotropic-cosine": ("anisotropic", "cosine", "skewness"),
    "rho-anisotropic-cosine": ("anisotropic", "cosine", "rho_centrality"),
    "rho-local-anisotropic-cosine": ("anisotropic", "cosine", "rho_local_density"),
    "rho-mixture-global": ("mixture", "euclidean", "rho_centrality"),
    "rho-mixture-component": ("mixture", "euclidean", "rho_component_centrality"),
}


@dataclass(frozen=True)
class HubsNearMeanConfig:
    """Parameters of notebook ``21_hubs_near_mean`` (names equal the notebook's parameters).

    Attributes
    ----------
    laws : tuple of str
        Law specs (:func:`hubrepro.simulate.parse_law`).
    dims : tuple of int
        Dimensions of the sweep.
    metrics : tuple of str
        kNN geometries.
    n : int
        Points per set.
    k : int
        Neighbourhood size of :math:`N_k`.
    local_k : int
        :math:`K` of the local density :math:`r_K`.
    replicates : int
        Seeded replicates per cell.
    scatter_laws, scatter_dims : tuple
        Rows and columns of the scatter grid.
    heatmap_d : int
        Dimension of the centrality heat map and of the quoted numbers.
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
        "uniform_centred",
        "laplace",
        "anisotropic",
        "shifted",
        "mixture",
    )
    dims: tuple[int, ...] = (3, 10, 20, 50, 100)
    metrics: tuple[str, ...] = ("euclidean", "cosine")
    n: int = 2000
    k: int = 10
    local_k: int = 10
    replicates: int = 3
    scatter_laws: tuple[str, ...] = ("gaussian", "uniform")
    scatter_dims: tuple[int, ...] = (3, 20, 100)
    heatmap_d: int = 100
    seed: int = 0
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/21_hubs_near_mean"


@dataclass
class HubsNearMeanResult:
    """What :func:`run` returns.

    Attributes
    ----------
    config : HubsNearMeanConfig
    items : dict
        ``(law, "d = <d>")`` -> per-point frame of
        :func:`hubrepro.simulate.single_set_items` (Euclidean), for the scatter grid.
    frame : pandas.DataFrame
        The tidy single-set grid.
    summary : pandas.DataFrame
        ``frame`` summarised over replicates.
    rho_table : pandas.DataFrame
        Mean :math:`\\rho(N_k`, distance to the mean) by metric and law against ``d``.
    verdicts : dict of str to str
        ``r2-euclidean``, ``r2-cosine`` (the unimodal laws) and ``r4`` (the mixture).
    """

    config: HubsNearMeanConfig
    items: dict[tuple[str, str], pd.DataFrame]
    frame: pd.DataFrame
    summary: pd.DataFrame
    rho_table: pd.DataFrame
    verdicts: dict[str, str]


def run(cfg: HubsNearMeanConfig) -> HubsNearMeanResult:
    """Run notebook 21: the scatter draws and the centrality grid with its verdicts.

    Centrality is measured in the metric's own geometry
    (:func:`hubrepro.simulate.global_centrality`). Criterion R2 is stated for the
    unimodal laws under each metric (at :math:`d\\ge20`), R4 for the mixture with the
    distance to the own component mean; a verdict whose data the parameters leave out
    is ``"not computed"``.

    Parameters
    ----------
    cfg : HubsNearMeanConfig

    Returns
    -------
    HubsNearMeanResult

    Book
    ----
    :ref:`sec-theory`, "Claims R2 and R4: hubs sit near the mean".
    """
    if not isinstance(cfg, HubsNearMeanConfig):
        fail("run", "cfg", "a HubsNearMeanConfig", type(cfg).__name__, exc=TypeError)
    items = {}
    for law in cfg.scatter_laws:
        for d in cfg.scatter_dims:
            x = sample(
                law,
                cfg.n,
                d,
                seed=derive_seed(cfg.seed, "scatter", law, d),
                device=cfg.device,
            )
            items[(law, f"d = {d}")] = single_set_items(x, k=cfg.k, local_k=cfg.local_k)
    frame = single_set_grid(
        cfg.laws,
        cfg.dims,
        n=cfg.n,
        ks=[cfg.k],
        metrics=cfg.metrics,
        local_k=cfg.local_k,
        replicates=cfg.replicates,
        seed=cfg.seed,
        device=cfg.device,
        experiment="E2",
    )
    summary = summarize(frame)
    unimodal = frame[~frame.law.str.startswith("mixture")]
    verdicts = {}
    for metric in ("euclidean", "cosine"):
        computed = metric in cfg.metrics and (unimodal.d >= 20).any()
        verdicts[f"r2-{metric}"] = (
            verdict_r2(unimodal, metric=metric)[0] if computed else "not computed"
        )
    mixture = frame[frame.law.str.startswith("mixture")]
    verdicts["r4"] = (
        "not computed"
        if mixture.empty or not (mixture.d >= 20).any()
        else verdict_r2(mixture, statistic="rho_component_centrality")[0]
    )
    rho = summary[summary.statistic == "rho_centrality"]
    return HubsNearMeanResult(
        config=cfg,
        items=items,
        frame=frame,
        summary=summary,
        rho_table=rho.pivot_table(index=["metric", "law"], columns="d", values="mean"),
        verdicts=verdicts,
    )


def headlines(result: HubsNearMeanResult) -> dict[str, Any]:
    """The verdicts and numbers the chapter quotes (keys become ``nb21-<key>`` glue keys).

    Returns
    -------
    dict
        ``txt-r2-euclidean-verdict``, ``txt-r2-cosine-verdict``, ``txt-r4-verdict``;
        ``val-heatmap-d``, ``val-k``, ``val-n``, ``val-replicates``; and the
        replicate means at ``heatmap_d`` of the correlations and skewness the chapter
        discusses (``val-rho-gaussian-euclidean``, ..., ``val-rho-mixture-component``;
        NaN where the grid has no such cell).
    """
    cfg = result.config
    out: dict[str, Any] = {
        f"txt-{name}-verdict": verdict for name, verdict in result.verdicts.items()
    }
    out.update(
        {
            "val-heatmap-d": cfg.heatmap_d,
            "val-k": cfg.k,
            "val-n": cfg.n,
            "val-replicates": cfg.replicates,
        }
    )
    for key, (law, metric, stat) in _QUOTED.items():
        out[f"val-{key}"] = summary_value(
            result.summary,
            law=law,
            metric=metric,
            d=cfg.heatmap_d,
            k=cfg.k,
            statistic=stat,
        )
    return out


def plot_scatter(result: HubsNearMeanResult) -> Any:
    """:math:`N_k` against the distance to the mean, one panel per law and dimension."""
    return plot_scatter_grid(result.items, xlabel="distance to the mean")


def plot_rho(result: HubsNearMeanResult) -> Any:
    r"""Spearman :math:`\rho(N_k`, distance to the mean) against :math:`d`, one panel per metric."""
    s = result.summary
    return plot_lines(
        s[s.statistic == "rho_centrality"],
        ylabel=r"Spearman $\rho(N_k$, distance to mean$)$",
        reference=0.0,
    )


def plot_centrality_heatmap(result: HubsNearMeanResult) -> Any:
    r"""Which centre? :math:`\rho` of :math:`N_k` with each centrality at ``heatmap_d``, per law.

    One heat map per metric: the distance to the global mean, the local density
    :math:`r_K` and (mixtures) the distance to the own component mean.
    """
    import matplotlib.pyplot as plt

    cfg, s = result.config, result.summary
    at_d = s[(s.d == cfg.heatmap_d) & s.statistic.str.startswith("rho_")]
    fig, axes = plt.subplots(
        1, len(cfg.metrics), figsize=(5.2 * len(cfg.metrics), 3.8), squeeze=False
    )
    for ax, metric in zip(axes[0], cfg.metrics, strict=True):
        table = at_d[at_d.metric == metric].pivot_table(
            index="law", columns="statistic", values="mean"
        )
        table.columns = [c.removeprefix("rho_") for c in table.columns]
        plot_heatmap(table, title=f"{metric}, d = {cfg.heatmap_d}", ax=ax)
    fig.tight_layout()
    return fig


def claims(
    result: HubsNearMeanResult, *, threshold: float = -0.5, d_min: int = 20
) -> list[Any]:
    r"""Claims R2 and R4 for the claims ledger (``th-r2``, ``th-r4``), intervals over replicates.

    R2: :math:`\rho(N_k, \text{distance to the mean}) <` ``threshold`` at every
    :math:`d \ge` ``d_min`` for every unimodal law (Euclidean); R4: the same with the
    distance to the point's own component mean for the mixture. Each is decided on
    its least favourable case (the theory drivers' ``replicate_claim``).
    """
    f = result.frame
    f = f[f.d >= d_min]
    out = []
    uni = f[~f.law.str.startswith("mixture") & (f.statistic == "rho_centrality")
            & (f.metric == "euclidean")]  # fmt: skip
    if len(uni):
        out.append(replicate_claim(
            uni, ["law", "d", "k"], null=threshold, claim="less",
            text=f"R2: hubs sit near the mean, rho(N_k, distance to the mean) < {threshold:g} "
                 f"at d >= {d_min} (Euclidean, every unimodal law)",
            key="th-r2", evidence="fig-theory-rho-vs-dim"))  # fmt: skip
    mix = f[
        f.law.str.startswith("mixture") & (f.statistic == "rho_component_centrality")
    ]
    if len(mix):
        out.append(replicate_claim(
            mix, ["law", "metric", "d", "k"], null=threshold, claim="less",
            text=f"R4: in a mixture, hubs sit near their own component's mean "
                 f"(rho < {threshold:g} at d >= {d_min})",
            key="th-r4", evidence="fig-theory-centrality-heatmap"))  # fmt: skip
    return out
