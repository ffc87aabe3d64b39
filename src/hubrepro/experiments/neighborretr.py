r"""The small-scale NeighborRetr reproduction: conditions × seeds, sweeps, post-hoc stacking.

The driver of notebooks 50-52 and 60: train projection heads on frozen embeddings
(:mod:`hubrepro.training`) with InfoNCE (``oord2018representation``), NeighborRetr
(``lin2025neighborretr``) under both ``compat`` settings and with each term removed
(:data:`CONDITIONS`); evaluate on the test split (model selection on a validation split
held out of the training bank); summarise over seeds; sweep :math:`\kappa` and the
bank size; and apply the post-hoc normalisers of :mod:`hubrepro.normalize` to each
trained model. A notebook builds a :class:`StudyConfig`, calls :func:`run` once and
publishes the summaries of the :class:`StudyResult` and its :func:`headlines`.

Book: :ref:`sec-neighborretr`, :ref:`sec-posthoc-vs-training`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from hubrepro import _validation as V
from hubrepro.training import (
    TrainConfig,
    TrainData,
    encode,
    evaluate,
    make_train_data,
    train,
)

__all__ = [
    "CONDITIONS",
    "CONDITION_LABELS",
    "STUDIES",
    "StudyConfig",
    "StudyResult",
    "run",
    "headlines",
    "retrieval_summary",
    "hubness_summary",
    "zero_occurrence",
    "sweep_summary",
    "posthoc_summary",
    "posthoc_gain",
    "load_study_data",
    "train_config",
    "run_conditions",
    "summarise",
    "k_occurrence_histograms",
    "run_sweep",
    "posthoc_stacking",
    "plot_k_occurrence",
    "plot_sweep",
    "published_numbers",
]

#: Named experimental conditions of the book's reproduction: overrides of
#: :class:`~hubrepro.training.TrainConfig` (:ref:`sec-neighborretr`).
CONDITIONS: dict[str, dict[str, Any]] = {
    "infonce": {
        "loss": "infonce",
        "logit_scale_init": 1 / 0.07,
        "learn_logit_scale": True,
    },
    # InfoNCE at NeighborRetr's fixed logit scale 100: isolates the extra terms
    "infonce-fixed-scale": {"loss": "infonce"},
    "neighborretr": {"loss": "neighborretr"},
    "neighborretr-official": {"loss": "neighborretr", "compat": "official"},
    "no-uniform": {"loss": "neighborretr", "w_uniform": 0.0},
    "no-neighbor": {"loss": "neighborretr", "w_neighbor": 0.0},
    "no-kl": {"loss": "neighborretr", "w_kl": 0.0},
    "kappa-0": {"loss": "neighborretr", "kappa": 0.0},
}

#: Display names of the conditions of :data:`CONDITIONS`.
CONDITION_LABELS = {
    "frozen": "frozen embeddings (no training)",
    "infonce": "InfoNCE (learnt scale)",
    "infonce-fixed-scale": "InfoNCE (scale 100)",
    "neighborretr": "NeighborRetr (fixed)",
    "neighborretr-official": "NeighborRetr (official)",
    "no-uniform": "NeighborRetr − L_Opt",
    "no-neighbor": "NeighborRetr − L_Nbi",
    "no-kl": "NeighborRetr − L_KL",
    "kappa-0": "NeighborRetr, κ = 0",
}


#: What :func:`run` does: train the conditions (notebooks 50, 51), sweep
#: :math:`\kappa` and the bank size (52), or stack post-hoc normalisers on trained
#: models (60).
STUDIES = ("conditions", "sensitivity", "posthoc")


@dataclass(frozen=True)
class StudyConfig:
    """Parameters of notebooks 50-52 and 60 (field names = notebook parameters).

    ``study`` (one of :data:`STUDIES`) selects what :func:`run` computes; the other
    fields are the data, the training budget and the study's own settings.
    """

    study: str = "conditions"
    seed: int = 0
    dataset: str = "synthetic"
    dataset_options: dict[str, Any] = field(
        default_factory=lambda: {"n_gallery": 1000, "n_bank_gallery": 4000}
    )
    data_dir: str | None = None
    conditions: tuple[str, ...] = tuple(CONDITIONS)
    n_seeds: int = 2
    epochs: int = 3
    batch_size: int = 128
    mb_batch: int = 15
    n_val: int = 300
    hidden_dim: int = 512
    embed_dim: int = 128
    global_dim: int = 128
    lr: float = 1e-3
    k: int = 10
    hist_k: int = 15
    sweep_kappa: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0, 3.0)
    sweep_mb_batch: tuple[int, ...] = (1, 5, 15, 40)
    posthoc_methods: tuple[str, ...] = ("is", "dualis", "dbsn")
    posthoc_beta: float = 20.0
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/neighborretr"

    def __post_init__(self) -> None:
        f = "StudyConfig"
        V.check_choice(self.study, "study", f, STUDIES)
        for c in self.conditions:
            V.check_choice(c, "conditions", f, tuple(CONDITIONS))
        V.check_int(self.n_seeds, "n_seeds", f, low=1)


def load_study_data(cfg: StudyConfig) -> tuple[Any, TrainData]:
    """Load the dataset (test split + training bank) and split the bank into train/val."""
    from hubrepro.datasets import load_dataset

    data = load_dataset(
        cfg.dataset, seed=cfg.seed, data_dir=cfg.data_dir, **cfg.dataset_options
    )
    return data, make_train_data(data, n_val=cfg.n_val, seed=cfg.seed)


def train_config(
    cfg: StudyConfig, condition: str, seed: int, **overrides: Any
) -> TrainConfig:
    """The :class:`~hubrepro.training.TrainConfig` of one condition and seed."""
    base = TrainConfig(
        dataset=cfg.dataset,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        mb_batch=cfg.mb_batch,
        n_val=cfg.n_val,
        hidden_dim=cfg.hidden_dim,
        embed_dim=cfg.embed_dim,
        global_dim=cfg.global_dim,
        lr=cfg.lr,
        eval_k=cfg.k,
        seed=seed,
        device=cfg.device,
        progress=False,
    )
    return dataclasses.replace(base, **{**CONDITIONS[condition], **overrides})


def _frozen_metrics(data: Any, k: int) -> dict[str, float]:
    identity = _Identity()
    return evaluate(identity, data, k=k)  # type: ignore[arg-type]


class _Identity(torch.nn.Module):
    # stands in for trained heads: the frozen embeddings themselves
    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def encode_query(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.nn.functional.normalize(x, dim=-1), x

    def encode_gallery(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.nn.functional.normalize(x, dim=-1), x


def run_conditions(
    cfg: StudyConfig, data: Any, train_data: TrainData, *, keep_models: bool = True
) -> tuple[pd.DataFrame, dict[tuple[str, int], Any]]:
    """Train every condition for ``cfg.n_seeds`` seeds; evaluate each on the test split.

    Returns a tidy frame (one row per condition × seed, plus the ``frozen`` row) with
    the columns of :func:`hubrepro.training.evaluate` and ``best_epoch``, and the
    trained models keyed by ``(condition, seed)``.
    """
    rows = [{"condition": "frozen", "seed": -1, **_frozen_metrics(data, cfg.k)}]
    models: dict[tuple[str, int], Any] = {}
    for cond in cfg.conditions:
        for s in range(cfg.seed, cfg.seed + cfg.n_seeds):
            res = train(train_config(cfg, cond, s), train_data)
            rows.append(
                {
                    "condition": cond,
                    "seed": s,
                    "best_epoch": res.best_epoch,
                    **evaluate(res.model, data, k=cfg.k),
                }
            )
            if keep_models:
                models[(cond, s)] = res.model
    return pd.DataFrame(rows), models


def summarise(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Mean and standard deviation over seeds per condition, as ``"mean ± sd"`` strings and numbers.

    Returns a frame indexed by display label with, for each column, ``<col>`` (mean)
    and ``<col> sd``.
    """
    g = df.groupby("condition", sort=False)[columns]
    mean, sd = g.mean(), g.std(ddof=1).fillna(0.0)
    out = pd.DataFrame(index=mean.index)
    for c in columns:
        out[c] = mean[c]
        out[f"{c} sd"] = sd[c]
    out.index = [CONDITION_LABELS.get(i, i) for i in out.index]
    out.index.name = "condition"
    return out


def k_occurrence_histograms(
    models: dict[str, Any], data: Any, *, k: int = 15
) -> pd.DataFrame:
    """N_k of the test gallery under each model's queries, plus the label-based GT (Fig. 2).

    Returns a frame with one column per model label and, when the data has labels, a
    ``ground truth`` column from :func:`hubrepro.hub_quality.gt_occurrence` (the oracle
    spreading each query's k slots over same-label items).
    """
    from hubrepro.hub_quality import gt_occurrence
    from hubrepro.hubness import k_occurrence

    cols: dict[str, Any] = {}
    for label, model in models.items():
        ql, gl = encode(model, data.query, data.gallery)
        cols[label] = k_occurrence(ql @ gl.T, k=k).numpy()
    if data.query_labels is not None and data.gallery_labels is not None:
        cols["ground truth"] = gt_occurrence(
            data.query_labels, data.gallery_labels, k=k
        ).numpy()
    return pd.DataFrame(cols)


def run_sweep(
    cfg: StudyConfig,
    data: Any,
    train_data: TrainData,
    param: str,
    values: tuple[Any, ...],
    *,
    condition: str = "neighborretr",
) -> pd.DataFrame:
    """Train ``condition`` for each value of one TrainConfig field and each seed; evaluate."""
    rows = []
    for v in values:
        for s in range(cfg.seed, cfg.seed + cfg.n_seeds):
            res = train(train_config(cfg, condition, s, **{param: v}), train_data)
            rows.append({param: v, "seed": s, **evaluate(res.model, data, k=cfg.k)})
    return pd.DataFrame(rows)


def posthoc_stacking(
    cfg: StudyConfig, data: Any, train_data: TrainData, models: dict[str, Any]
) -> pd.DataFrame:
    """Apply each post-hoc normaliser to each trained model's test similarities.

    The banks are the model's encodings of the training pairs (never the test
    split): ``bank_query_sims`` = training queries × test gallery and
    ``bank_gallery_sims`` = training gallery × test gallery. Returns one row per
    (model, method) with the query→gallery metrics and gallery hubness.
    """
    from hubrepro.hubness import hubness_report
    from hubrepro.normalize import normalize
    from hubrepro.retrieval import evaluate_retrieval

    hyper = {
        "is": {"beta_query": cfg.posthoc_beta},
        "dis": {"beta_query": cfg.posthoc_beta},
        "dualis": {"beta_query": cfg.posthoc_beta, "beta_gallery": cfg.posthoc_beta},
        "dualdis": {"beta_query": cfg.posthoc_beta, "beta_gallery": cfg.posthoc_beta},
    }
    rows = []
    for label, model in models.items():
        ql, gl = encode(model, data.query, data.gallery)
        bq, bg = encode(model, train_data.train_query, train_data.train_gallery)
        sims = ql @ gl.T
        pq, pg = bq @ gl.T, bg @ gl.T
        for method in ("none", *cfg.posthoc_methods):
            if method == "none":
                out = sims
            else:
                extra = (
                    {"bank_cross_sims": bq @ bg.T} if method in ("sn", "dbsn") else {}
                )
                out = normalize(
                    method,
                    sims,
                    bank_query_sims=pq,
                    bank_gallery_sims=pg,
                    **extra,
                    **hyper.get(method, {}),
                )
            ev = evaluate_retrieval(out, data.query_to_gallery)
            hub = hubness_report(out, k=cfg.k)
            rows.append({
                "model": label, "method": method,
                **{f"q2g_{m}": float(v) for m, v in ev["query_to_gallery"].items()},
                "gallery_skewness": float(hub["skewness"]), "gallery_antihub_rate": float(hub["antihub_rate"]),
            })  # fmt: skip
    return pd.DataFrame(rows)


def plot_k_occurrence(hist: pd.DataFrame, *, k: int) -> Any:
    """Histogram lines of N_k per model and the GT reference (NeighborRetr Fig. 2 style)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    top = int(np.ceil(hist.to_numpy().max())) + 1
    bins = np.arange(0, top + 1)
    for col in hist.columns:
        counts, _ = np.histogram(hist[col].to_numpy(), bins=bins)
        ax.plot(
            bins[:-1],
            counts,
            label=col,
            lw=2 if col != "ground truth" else 1.5,
            ls="--" if col == "ground truth" else "-",
        )
    ax.set_xlabel(f"$N_{{{k}}}$ (times a gallery item is in a query's top-{k})")
    ax.set_ylabel("number of gallery items")
    ax.set_xlim(0, min(top, 8 * k))
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def plot_sweep(
    df: pd.DataFrame,
    param: str,
    metrics: tuple[str, ...] = ("q2g_R@1", "gallery_skewness"),
) -> Any:
    """Mean ± sd over seeds of ``metrics`` against the swept ``param``."""
    import matplotlib.pyplot as plt

    g = df.groupby(param)[list(metrics)]
    mean, sd = g.mean(), g.std(ddof=1).fillna(0.0)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.0))
    for ax, m in zip(list(axes) if len(metrics) > 1 else [axes], metrics, strict=True):
        ax.errorbar(
            mean.index.astype(float), mean[m], yerr=sd[m], marker="o", capsize=3
        )
        ax.set_xlabel(param)
        ax.set_ylabel(m)
        if param == "kappa" or param == "mb_batch":
            ax.set_xscale("symlog", linthresh=0.1 if param == "kappa" else 1)
    fig.tight_layout()
    return fig


def published_numbers(path: str | None = None) -> pd.DataFrame:
    """Load ``data/published/neighborretr.csv`` (quantity, value, source, confidence, note).

    Every published NeighborRetr number with where it was read and a confidence label
    (the table of :ref:`sec-neighborretr`). Raises ``ValueError`` on a missing column, an empty
    source or an unknown confidence label.
    """
    from pathlib import Path

    from hubrepro.published import CONFIDENCE

    p = (
        Path(path)
        if path
        else Path(__file__).resolve().parents[3]
        / "data"
        / "published"
        / "neighborretr.csv"
    )
    df = pd.read_csv(p)
    cols = ["quantity", "value", "source", "confidence", "note"]
    if list(df.columns) != cols:
        V.fail(
            "published_numbers",
            "path",
            f"a CSV with the columns {cols}",
            list(df.columns),
        )
    bad = df[~df["confidence"].isin(CONFIDENCE) | df["source"].isna()]
    if len(bad):
        V.fail(
            "published_numbers",
            "path",
            f"rows with a source and a confidence in {CONFIDENCE}",
            f"row {int(bad.index[0]) + 1}",
        )
    return df.set_index("quantity")


# ---------------------------------------------------------------- the driver


@dataclass
class StudyResult:
    """What :func:`run` returns; the fields the study did not compute are ``None``.

    Attributes
    ----------
    cfg : StudyConfig
    data : PairedData
        The test split and the training bank.
    train_data : TrainData
        Training pairs and the validation split carved from the bank.
    runs : DataFrame or None
        One row per condition × seed (and the ``frozen`` row): the columns of
        :func:`hubrepro.training.evaluate` and ``best_epoch`` (conditions, posthoc).
    models : dict or None
        Trained models keyed by ``(condition, seed)``.
    hist : DataFrame or None
        :math:`N_k` of the test gallery under InfoNCE and NeighborRetr (first seed) and
        the label-based ground truth (conditions).
    sweeps : dict of DataFrame or None
        ``{"kappa": ..., "mb_batch": ...}``, one row per value × seed (sensitivity).
    posthoc : DataFrame or None
        One row per (model, method) (posthoc).
    """

    cfg: StudyConfig
    data: Any
    train_data: TrainData
    runs: pd.DataFrame | None = None
    models: dict[tuple[str, int], Any] | None = None
    hist: pd.DataFrame | None = None
    sweeps: dict[str, pd.DataFrame] | None = None
    posthoc: pd.DataFrame | None = None


def run(cfg: StudyConfig) -> StudyResult:
    """Run the study ``cfg.study`` (one of :data:`STUDIES`) and return its results.

    ``"conditions"``: every condition for ``cfg.n_seeds`` seeds, evaluated on the test
    split, and the :math:`N_k` histograms of InfoNCE and NeighborRetr
    (:func:`run_conditions`, :func:`k_occurrence_histograms`); ``"sensitivity"``:
    NeighborRetr for each value of ``cfg.sweep_kappa`` and ``cfg.sweep_mb_batch``
    (:func:`run_sweep`); ``"posthoc"``: the conditions, then each post-hoc normaliser
    on each trained model (:func:`posthoc_stacking`).
    """
    if not isinstance(cfg, StudyConfig):
        V.fail("run", "cfg", "a StudyConfig", type(cfg).__name__, exc=TypeError)
    data, train_data = load_study_data(cfg)
    res = StudyResult(cfg, data, train_data)
    if cfg.study == "sensitivity":
        res.sweeps = {
            "kappa": run_sweep(cfg, data, train_data, "kappa", cfg.sweep_kappa),
            "mb_batch": run_sweep(
                cfg, data, train_data, "mb_batch", cfg.sweep_mb_batch
            ),
        }
        return res
    res.runs, res.models = run_conditions(cfg, data, train_data)
    if cfg.study == "conditions":
        pick = {
            CONDITION_LABELS[c]: res.models[(c, cfg.seed)]
            for c in ("infonce", "neighborretr")
            if (c, cfg.seed) in res.models
        }
        res.hist = k_occurrence_histograms(pick, data, k=cfg.hist_k)
    else:
        labelled = {CONDITION_LABELS[c]: m for (c, _), m in res.models.items()}
        res.posthoc = posthoc_stacking(cfg, data, train_data, labelled)
    return res


_RETRIEVAL = [
    f"{d}_{m}" for d in ("q2g", "g2q") for m in ("R@1", "R@5", "R@10", "MdR", "MnR")
]
_HUBNESS = [
    "gallery_skewness",
    "gallery_antihub_rate",
    "gallery_hub_occupancy",
    "query_skewness",
]
_HUB_QUALITY = [
    "q2g_bad_hub_fraction",
    "g2q_bad_hub_fraction",
    "q2g_good_neighbor_rate",
]
_SWEEP = ["q2g_R@1", "g2q_R@1", "Rsum", "gallery_skewness", "q2g_bad_hub_fraction"]


def _has_labels(result: StudyResult) -> bool:
    return result.runs is not None and "q2g_bad_hub_fraction" in result.runs


def retrieval_summary(result: StudyResult) -> pd.DataFrame:
    """R@K, MdR, MnR in both directions and Rsum per condition (mean and sd over seeds)."""
    return summarise(result.runs, [*_RETRIEVAL, "Rsum"])  # type: ignore[arg-type]


def hubness_summary(result: StudyResult) -> pd.DataFrame:
    """Hubness per condition (mean and sd over seeds).

    Gallery skewness, anti-hub rate and hub occupancy, query skewness, and with concept
    labels the bad-hub fractions and the good-neighbour rate
    (:func:`hubrepro.hub_quality.neighbor_label_stats`), else the query anti-hub rate.
    """
    extra = _HUB_QUALITY if _has_labels(result) else ["query_antihub_rate"]
    return summarise(result.runs, [*_HUBNESS, *extra])  # type: ignore[arg-type]


def zero_occurrence(result: StudyResult) -> pd.DataFrame:
    """Test gallery items with :math:`N_k = 0` (anti-hubs) per model and for the ground truth."""
    return (result.hist == 0).sum().to_frame("items with N_k = 0")  # type: ignore[operator]


def sweep_summary(result: StudyResult, param: str) -> pd.DataFrame:
    """Mean retrieval, skewness and bad-hub fraction per value of the swept ``param``."""
    df = result.sweeps[param]  # type: ignore[index]
    return df.groupby(param)[[c for c in _SWEEP if c in df]].mean()


def posthoc_summary(result: StudyResult) -> pd.DataFrame:
    """Query→gallery retrieval and gallery hubness per (model, method)."""
    cols = ["q2g_R@1", "q2g_R@5", "q2g_MnR", "gallery_skewness", "gallery_antihub_rate"]
    return result.posthoc.set_index(["model", "method"])[cols]  # type: ignore[union-attr]


def posthoc_gain(result: StudyResult) -> pd.DataFrame:
    """Change of query→gallery R@1 brought by each normaliser (rows) on each model (columns)."""
    r1 = result.posthoc.pivot(index="method", columns="model", values="q2g_R@1")  # type: ignore[union-attr]
    return r1 - r1.loc["none"]


def headlines(result: StudyResult) -> dict[str, float | int]:
    """The numbers the book quotes, keyed by glue-key suffix (``val-...``).

    Conditions: the sizes (``val-n-train``, ``val-n-test``, ``val-seeds``,
    ``val-epochs``, ``val-hist-k``) and per condition (``frozen`` included) the mean
    over seeds of q2g and g2q R@1, Rsum, q2g MnR, gallery skewness and, with concept
    labels, the q2g bad-hub fraction (``val-r1-q2g-<condition>``, ...). Sensitivity:
    the spread of mean R@1 over the values of each sweep (``val-kappa-r1-range``,
    ``val-bank-r1-range``). Posthoc: R@1 without normaliser and each normaliser's gain
    for the InfoNCE and NeighborRetr models (``val-r1-none-<model>``,
    ``val-gain-<method>-<model>``).
    """
    cfg = result.cfg
    out: dict[str, float | int] = {}
    if result.sweeps is not None:
        for param, key in (("kappa", "kappa"), ("mb_batch", "bank")):
            spread = result.sweeps[param].groupby(param)["q2g_R@1"].mean()
            out[f"val-{key}-r1-range"] = float(spread.max() - spread.min())
        return out
    if result.posthoc is not None:
        r1 = result.posthoc.pivot(index="method", columns="model", values="q2g_R@1")
        gain = posthoc_gain(result)
        for key in ("infonce", "neighborretr"):
            label = CONDITION_LABELS[key]
            if label in r1.columns:
                out[f"val-r1-none-{key}"] = float(r1.loc["none", label])
                for method in cfg.posthoc_methods:
                    out[f"val-gain-{method}-{key}"] = float(gain.loc[method, label])
        return out
    out["val-n-train"] = int(result.train_data.train_query.shape[0])
    out["val-n-test"] = int(result.data.gallery.shape[0])
    out["val-seeds"] = cfg.n_seeds
    out["val-epochs"] = cfg.epochs
    out["val-hist-k"] = cfg.hist_k
    cols = [("q2g_R@1", "r1-q2g"), ("g2q_R@1", "r1-g2q"), ("Rsum", "rsum"),
            ("q2g_MnR", "mnr-q2g"), ("gallery_skewness", "skew")]  # fmt: skip
    if _has_labels(result):
        cols.append(("q2g_bad_hub_fraction", "bad-hub"))
    runs = result.runs
    mean = runs.groupby("condition")[[c for c, _ in cols]].mean()  # type: ignore[union-attr]
    for cond in mean.index:
        for col, key in cols:
            out[f"val-{key}-{cond}"] = float(mean.loc[cond, col])
    return out
