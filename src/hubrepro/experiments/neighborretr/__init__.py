r"""NeighborRetr where training matters: dual encoders trained from scratch on ``shapes-world``.

The driver of notebook 50, whose results chapters :ref:`sec-neighborretr` (the
conditions and the verdicts) and :ref:`sec-posthoc-vs-training` (post-hoc normalisers
on the trained models) show. Every run trains a
:class:`~hubrepro.encoders.DualEncoder` (a small CNN and a small text tower) from
random initialisation on the training split of a ``shapes-world``
(:mod:`hubrepro.datasets.shapes_world`) with :class:`~hubrepro.training.Trainer`,
under one of the conditions of :mod:`~hubrepro.experiments.neighborretr.config` (InfoNCE with a learnt temperature, the
CLIP recipe; InfoNCE at NeighborRetr's fixed scale; NeighborRetr ``fixed`` and
``official``; the official objective without each term; a :math:`\kappa` sweep;
raised term weights), for several seeds with the same data and budget. Every
comparison is paired by seed (:mod:`~hubrepro.experiments.neighborretr.stats`), every claim of NeighborRetr
(``lin2025neighborretr``) gets a verdict with its interval (:mod:`~hubrepro.experiments.neighborretr.claims`).

A notebook builds a :class:`StudyConfig`, calls :func:`run` once and publishes the
pieces of the :class:`StudyResult` (tables, figures, :func:`headlines`).

Modules: :mod:`~hubrepro.experiments.neighborretr.config` (conditions, :class:`StudyConfig`), :mod:`~hubrepro.experiments.neighborretr.runs` (training and
evaluation), :mod:`~hubrepro.experiments.neighborretr.stats` (summaries and paired differences), :mod:`~hubrepro.experiments.neighborretr.claims` (the
verdicts), :mod:`~hubrepro.experiments.neighborretr.geometry` (modality gap and DBNorm's D1 on the learned geometry),
:mod:`~hubrepro.experiments.neighborretr.posthoc` (normalisers on trained models), :mod:`~hubrepro.experiments.neighborretr.plots` (figures),
:mod:`~hubrepro.experiments.neighborretr.published` (the paper's numbers).

Book: :ref:`sec-neighborretr`, :ref:`sec-posthoc-vs-training`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from hubrepro import _validation as V
from hubrepro import inference

from .claims import (
    NR_CLAIMS,
    QBNORM,
    ClaimSpec,
    claim_specs,
    claims_table,
    d1_claim,
    decide_claims,
)
from .config import (
    BOOST_FIELDS,
    CONDITION_LABELS,
    CONDITIONS,
    OFFICIAL,
    StudyConfig,
    condition_label,
    condition_overrides,
)
from .cost import BENCH_FILE, step_cost, step_cost_headlines
from .geometry import GEOMETRY_COLUMNS, geometry_row, geometry_summary
from .plots import (
    plot_curves,
    plot_deltas,
    plot_gradients,
    plot_k_occurrence,
    plot_kappa,
    plot_stacking,
)
from .posthoc import gain_interval, posthoc_model, stacking_display, stacking_table
from .published import published_numbers
from .runs import CURVE_KEYS, Runs, encode_world, make_world, train_conditions
from .stats import (
    METRICS,
    Metric,
    delta_table,
    format_delta,
    margin,
    metric_values,
    paired_interval,
    summary_table,
)

__all__ = [
    "BOOST_FIELDS",
    "CONDITIONS",
    "CONDITION_LABELS",
    "CURVE_KEYS",
    "GEOMETRY_COLUMNS",
    "METRICS",
    "NR_CLAIMS",
    "OFFICIAL",
    "QBNORM",
    "ClaimSpec",
    "Metric",
    "Runs",
    "StudyConfig",
    "StudyResult",
    "claim_specs",
    "claims_table",
    "condition_label",
    "condition_overrides",
    "d1_claim",
    "decide_claims",
    "delta_table",
    "encode_world",
    "format_delta",
    "gain_interval",
    "geometry_row",
    "geometry_summary",
    "headlines",
    "k_occurrence_histograms",
    "make_world",
    "margin",
    "metric_values",
    "paired_interval",
    "plot_curves",
    "plot_deltas",
    "plot_gradients",
    "plot_k_occurrence",
    "plot_kappa",
    "plot_stacking",
    "posthoc_model",
    "published_numbers",
    "run",
    "stacking_display",
    "step_cost",
    "step_cost_headlines",
    "BENCH_FILE",
    "stacking_table",
    "summary_table",
    "train_conditions",
]

_NCE = "infonce-fixed-scale"
_NR = "neighborretr-official"


@dataclass
class StudyResult:
    """What :func:`run` returns.

    Attributes
    ----------
    cfg : StudyConfig
    world : ShapesWorld
        The generated world (training, validation and test splits).
    runs : DataFrame
        One row per condition and seed: ``best_epoch`` and the test metrics of
        :func:`~hubrepro.training.evaluate` (plus the rows of :data:`~hubrepro.experiments.neighborretr.claims.QBNORM`, the
        InfoNCE (scale 100) models re-scored by QB-Norm).
    history : DataFrame
        One row per condition, seed and epoch (training terms, validation metrics,
        the ``curve_*`` and ``grad_*`` columns of the epoch hooks).
    claims : list of Claim
        The verdicts (:func:`~hubrepro.experiments.neighborretr.claims.decide_claims`, and D1 on the learned geometry).
    geometry : DataFrame
        One row per condition and seed (:func:`~hubrepro.experiments.neighborretr.geometry.geometry_row`).
    hist : DataFrame
        :math:`N_k` (``k = cfg.hist_k``) of the test images under InfoNCE and
        NeighborRetr (first seed) and under the relevance oracle.
    posthoc : DataFrame or None
        One row per condition of ``cfg.posthoc_conditions``, seed, direction and
        normaliser (:func:`~hubrepro.experiments.neighborretr.posthoc.posthoc_model`); ``None`` when there is none.
    """

    cfg: StudyConfig
    world: Any
    runs: pd.DataFrame
    history: pd.DataFrame
    claims: list[inference.Claim]
    geometry: pd.DataFrame | None = None
    hist: pd.DataFrame | None = None
    posthoc: pd.DataFrame | None = None

    @property
    def conditions(self) -> list[str]:
        """The trained conditions, in training order (pseudo-conditions excluded)."""
        names = dict.fromkeys(self.runs["condition"])
        return [c for c in names if c != QBNORM]


def k_occurrence_histograms(
    models: dict[str, torch.nn.Module], world: Any, *, k: int, seed: int = 0
) -> pd.DataFrame:
    """:math:`N_k` of each test image under each model, and under the relevance oracle.

    The oracle ranks, for each test caption, the images relevant to it first (in a
    random order drawn from ``seed``), then the others: its :math:`N_k` is the
    distribution a perfect retriever of this world would give (the "ground truth" line
    of the paper's Fig. 2). Returns one column per model label plus ``"ground truth"``.
    """
    from hubrepro.hubness import k_occurrence
    from hubrepro.training import encode

    test = world.test
    out = {}
    for label, model in models.items():
        q, g = encode(model, test.tokens, test.images)
        out[label] = k_occurrence(q.float().cpu() @ g.float().cpu().T, k=k).numpy()
    rel = test.relevance().float()
    gen = torch.Generator().manual_seed(seed)
    oracle = rel + 0.5 * torch.rand(rel.shape, generator=gen)
    out["ground truth"] = k_occurrence(oracle, k=k).numpy()
    return pd.DataFrame(out)


def _qbnorm_rows(
    cfg: StudyConfig, world: Any, feats: dict, posthoc: pd.DataFrame | None
) -> pd.DataFrame:
    # QB-Norm (DIS with a query bank of training captions, tuned on validation) on the
    # InfoNCE (scale 100) models: "suppress all hubs" for the nr-good-vs-all claim
    rows = []
    for (cond, seed), f in feats.items():
        if cond != _NCE:
            continue
        ph = None
        if posthoc is not None:
            ph = posthoc[(posthoc["condition"] == cond) & (posthoc["seed"] == seed)]
        if (
            ph is None
            or not (
                (ph["method"] == "dis") & (ph["direction"] == "query_to_gallery")
            ).any()
        ):
            ph = posthoc_model(
                world,
                f,
                cfg,
                methods=("dis",),
                directions=("query_to_gallery",),
                seed=seed,
            )
        sel = (ph["method"] == "dis") & (ph["direction"] == "query_to_gallery")
        rows.append(
            {
                "condition": QBNORM,
                "seed": seed,
                "q2g_R@1": float(ph.loc[sel, "R@1"].iloc[0]),
            }
        )
    return pd.DataFrame(rows)


def run(cfg: StudyConfig) -> StudyResult:
    """Train every condition for every seed and measure everything the chapters show.

    Every condition of ``cfg.conditions`` is trained for every seed of ``cfg.seeds``
    (:func:`~hubrepro.experiments.neighborretr.runs.train_conditions`; training curves, and per-term gradients for
    ``cfg.gradient_conditions``); then, on the trained models: the geometry
    (:func:`~hubrepro.experiments.neighborretr.geometry.geometry_row`), the :math:`N_k` histograms of InfoNCE (scale 100) and
    NeighborRetr (official), the InfoNCE models re-scored by QB-Norm (the rows of
    :data:`~hubrepro.experiments.neighborretr.claims.QBNORM`), every normaliser of ``cfg.posthoc_methods`` on the models of
    ``cfg.posthoc_conditions`` (:func:`~hubrepro.experiments.neighborretr.posthoc.posthoc_model`), and the claims
    (:func:`~hubrepro.experiments.neighborretr.claims.decide_claims`, :func:`~hubrepro.experiments.neighborretr.claims.d1_claim`).
    """
    if not isinstance(cfg, StudyConfig):
        V.fail("run", "cfg", "a StudyConfig", type(cfg).__name__, exc=TypeError)
    missing = [c for c in cfg.posthoc_conditions if c not in cfg.conditions]
    if missing:
        V.fail(
            "run",
            "posthoc_conditions",
            "conditions that are also trained (in `conditions`)",
            missing,
        )
    world = make_world(cfg)
    trained = train_conditions(cfg, world)
    runs = trained.runs
    feats = {key: encode_world(m, world) for key, m in trained.models.items()}
    geometry = pd.DataFrame(
        [
            {"condition": c, "seed": s, **geometry_row(world, feats[(c, s)], cfg)}
            for (c, s) in feats
        ]
    )
    frames = []
    for (cond, seed), f in feats.items():
        if cond in cfg.posthoc_conditions:
            frames.append(
                posthoc_model(world, f, cfg, seed=seed).assign(
                    condition=cond, seed=seed
                )
            )
    posthoc = pd.concat(frames, ignore_index=True) if frames else None
    if _NCE in set(runs["condition"]):
        runs = pd.concat(
            [runs, _qbnorm_rows(cfg, world, feats, posthoc)], ignore_index=True
        )
    pick = {
        cfg.label(c): trained.models[(c, cfg.seed)]
        for c in (_NCE, _NR)
        if (c, cfg.seed) in trained.models
    }
    hist = k_occurrence_histograms(pick, world, k=cfg.hist_k, seed=cfg.seed)
    claims = decide_claims(runs, cfg)
    d1 = d1_claim(geometry, cfg)
    if d1 is not None:
        claims.append(d1)
    return StudyResult(
        cfg, world, runs, trained.history, claims, geometry, hist, posthoc
    )


def headlines(result: StudyResult) -> dict[str, float | int | str]:
    """The numbers the book quotes, keyed by glue-key suffix (``val-...``, ``txt-...``).

    Always: the sizes (``val-n-train``, ``val-n-test``, ``val-seeds``,
    ``val-n-conditions``, ``val-epochs``),
    the margins of the verdicts (``val-margin-r1``, ``val-margin-skew``, ``val-margin-rate``)
    and per trained condition the mean over seeds of each metric of :data:`~hubrepro.experiments.neighborretr.stats.METRICS`
    (``val-<metric>-<condition>``, e.g. ``val-r1_t2i-infonce``); the spread of mean
    text→image R@1 over the values of κ trained (``val-kappa-r1-range``); per
    claim its estimate, interval ends and verdict (``val-<key>``, ``val-<key>-low``,
    ``val-<key>-high``, ``txt-<key>``) and the verdict counts (``val-n-supported``,
    ...). With gradient probes: the mean over seeds and epochs of each term's relative
    gradient per condition (``val-grad-<term>-<condition>``, in percent); each
    normaliser's mean gain per condition and direction
    (``val-gain-<method>-<q2g|g2q>-<condition>``).
    """
    cfg, runs = result.cfg, result.runs
    out: dict[str, float | int | str] = {
        "val-n-train": int(result.world.train.n_images),
        "val-n-test": int(result.world.test.n_images),
        "val-seeds": int(cfg.n_seeds),
        "val-n-conditions": len(result.conditions),
        "val-epochs": int(cfg.epochs),
        "val-margin-r1": float(cfg.margin_r1),
        "val-margin-skew": float(cfg.margin_skew),
        "val-margin-rate": float(cfg.margin_rate),
    }
    for cond in result.conditions:
        for key in METRICS:
            out[f"val-{key}-{cond}"] = float(metric_values(runs, cond, key).mean())
    kappas = {0.3 if c == _NR else float(c[len("kappa-") :]): c for c in result.conditions
              if c == _NR or (c.startswith("kappa-") and c[len("kappa-") :].replace(".", "", 1).isdigit())}  # fmt: skip
    if len(kappas) > 1:
        r1 = [float(metric_values(runs, c, "r1_t2i").mean()) for c in kappas.values()]
        out["val-kappa-r1-range"] = max(r1) - min(r1)
    for c in result.claims:
        out[f"val-{c.key}"] = float(c.interval.estimate)
        out[f"val-{c.key}-low"] = float(c.interval.low)
        out[f"val-{c.key}-high"] = float(c.interval.high)
        out[f"txt-{c.key}"] = c.verdict
    if result.claims:
        for v in inference.VERDICTS:
            out[f"val-n-{v.replace(' ', '-')}"] = sum(
                c.verdict == v for c in result.claims
            )
    hist = result.history
    if "grad_rel_uniform" in hist.columns:
        for cond, sub in hist.groupby("condition", sort=False):
            if sub["grad_rel_uniform"].notna().any():
                for term in ("uniform", "neighbor", "kl", "kappa"):
                    out[f"val-grad-{term}-{cond}"] = 100 * float(
                        sub[f"grad_rel_{term}"].mean()
                    )
    if result.posthoc is not None:
        short = {"query_to_gallery": "q2g", "gallery_to_query": "g2q"}
        g = result.posthoc.groupby(["condition", "direction", "method"])["gain"].mean()
        for (cond, d, m), v in g.items():
            out[f"val-gain-{m}-{short[d]}-{cond}"] = float(v)
    return out
