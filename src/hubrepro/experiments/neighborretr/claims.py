r"""NeighborRetr's claims, each decided by a paired interval over seeds.

Each claim of NeighborRetr (``lin2025neighborretr``) the trained world can test is a
:class:`ClaimSpec`: two conditions, a metric and the claimed direction of the
difference. :func:`decide_claims` computes the interval of ``treatment − baseline``
paired by seed (:func:`~hubrepro.experiments.neighborretr.stats.paired_interval`) and
the verdict (:func:`hubrepro.inference.verdict`, with the metric's margin of no
practical difference), and returns :class:`~hubrepro.inference.Claim` rows for
:func:`hubrepro.inference.save_claims`. "NeighborRetr" is the official objective (the
authors' released behaviour; :ref:`sec-neighborretr`). A claim whose conditions were
not trained, or whose metric was not measured for both, is left out.

Book: :ref:`sec-neighborretr`, the claims table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from hubrepro import inference

from .config import StudyConfig
from .stats import METRICS, margin, paired_interval

__all__ = [
    "QBNORM",
    "ClaimSpec",
    "NR_CLAIMS",
    "claim_specs",
    "decide_claims",
    "d1_claim",
    "claims_table",
]

#: The pseudo-condition of the InfoNCE (scale 100) models re-scored by QB-Norm
#: (DIS with a query bank of training captions, tuned on validation).
QBNORM = "infonce-fixed-scale+dis"


@dataclass(frozen=True)
class ClaimSpec:
    """One claim: ``treatment − baseline`` in ``metric`` is claimed ``direction`` than zero."""

    key: str
    claim: str
    baseline: str
    treatment: str
    metric: str
    direction: str
    evidence: str


_NR = "neighborretr-official"
_NCE = "infonce-fixed-scale"

#: The claims of NeighborRetr the world tests (the largest :math:`\kappa` of the
#: sweep is filled in by :func:`claim_specs`).
NR_CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec("nr-r1-t2i", "Higher R@1 than InfoNCE, text→image", _NCE, _NR, "r1_t2i", "greater", "tbl-nr-deltas"),
    ClaimSpec("nr-r1-i2t", "Higher R@1 than InfoNCE, image→text", _NCE, _NR, "r1_i2t", "greater", "tbl-nr-deltas"),
    ClaimSpec("nr-r1-clip", "Higher R@1 than the CLIP recipe (learnt temperature)", "infonce", _NR, "r1_t2i", "greater", "tbl-nr-deltas"),
    ClaimSpec("nr-hubness", "Less hubness (skewness of N₁₀)", _NCE, _NR, "skew", "less", "fig-nr-curves"),
    ClaimSpec("nr-bad-hubs", "Fewer bad hubs (hub slots not relevant)", _NCE, _NR, "bad_hub", "less", "fig-nr-curves"),
    ClaimSpec("nr-antihubs", "Fewer anti-hubs (captions never retrieved)", _NCE, _NR, "antihub", "less", "fig-nr-k-occurrence"),
    ClaimSpec("nr-term-opt", "L_Opt contributes (R@1 text→image)", "no-uniform", _NR, "r1_t2i", "greater", "fig-nr-ablations"),
    ClaimSpec("nr-term-nbi", "L_Nbi contributes (R@1 text→image)", "no-neighbor", _NR, "r1_t2i", "greater", "fig-nr-ablations"),
    ClaimSpec("nr-term-kl", "L_KL contributes (R@1 text→image)", "no-kl", _NR, "r1_t2i", "greater", "fig-nr-ablations"),
    ClaimSpec("nr-term-kappa", "The centrality weight contributes (R@1 text→image)", "kappa-0", _NR, "r1_t2i", "greater", "fig-nr-ablations"),
    ClaimSpec("nr-good-vs-all", "Telling good from bad hubs beats suppressing all hubs (R@1 text→image)", QBNORM, _NR, "r1_t2i", "greater", "tbl-nr-deltas"),
    ClaimSpec("nr-kappa-sens", "κ matters: the paper's κ = 0.3 beats a large κ (R@1 text→image)", "kappa-max", _NR, "r1_t2i", "greater", "fig-nr-kappa"),
)  # fmt: skip


def _kappa(name: str) -> float | None:
    if name == _NR:
        return 0.3
    if name.startswith("kappa-"):
        try:
            return float(name[len("kappa-") :])
        except ValueError:
            return None
    return None


def claim_specs(conditions: Sequence[str]) -> list[ClaimSpec]:
    """The claims decidable from ``conditions`` (``kappa-max``: the largest κ trained)."""
    have = set(conditions) | {QBNORM}
    kappas = {c: _kappa(c) for c in conditions if c.startswith("kappa-")}
    kappas = {c: k for c, k in kappas.items() if k is not None and k > 0.3}
    out = []
    for spec in NR_CLAIMS:
        if spec.baseline == "kappa-max":
            if not kappas:
                continue
            top = max(kappas, key=kappas.__getitem__)
            spec = ClaimSpec(
                spec.key,
                f"κ matters: the paper's κ = 0.3 beats κ = {kappas[top]:g} (R@1 text→image)",
                top, spec.treatment, spec.metric, spec.direction, spec.evidence,
            )  # fmt: skip
        if spec.baseline in have and spec.treatment in have:
            out.append(spec)
    return out


def comparison_text(spec: ClaimSpec, cfg: StudyConfig) -> str:
    """What is subtracted from what, in words (the table's comparison column)."""
    base = (
        "InfoNCE (scale 100) + QB-Norm"
        if spec.baseline == QBNORM
        else cfg.label(spec.baseline)
    )
    return f"{cfg.label(spec.treatment)} − {base}: {METRICS[spec.metric].label}"


def decide_claims(runs: pd.DataFrame, cfg: StudyConfig) -> list[inference.Claim]:
    """Decide every claim of :func:`claim_specs` whose conditions are in ``runs``.

    ``runs`` holds one row per condition and seed (the :class:`Runs` frame, plus the
    rows of the pseudo-condition :data:`QBNORM` when the QB-Norm comparison was run).
    """
    present = set(runs["condition"])
    out = []
    for spec in claim_specs(sorted(present)):
        if spec.baseline not in present or spec.treatment not in present:
            continue
        col = METRICS[spec.metric].column
        if (
            col not in runs.columns
            or runs.loc[runs["condition"].isin([spec.baseline, spec.treatment]), col]
            .isna()
            .any()
        ):
            continue  # the metric was not measured for both conditions
        iv = paired_interval(runs, spec.baseline, spec.treatment, spec.metric)
        v = inference.verdict(
            iv, claim=spec.direction, equivalence=margin(cfg, spec.metric)
        )
        out.append(
            inference.Claim("NeighborRetr", spec.claim, v, iv, spec.evidence, spec.key)
        )
    return out


def d1_claim(
    geometry: pd.DataFrame, cfg: StudyConfig, condition: str = _NCE
) -> inference.Claim | None:
    r"""DBNorm's claim D1 on the learned geometry of ``condition``'s models.

    D1 (``wang2023balance``): hubs are similar to both modalities. As in chapter
    :ref:`sec-theory`, it holds when the Spearman correlations of :math:`N_k` with the
    similarity to the query bank (``rho_q``) and to the gallery bank (``rho_g``) both
    exceed ``cfg.d1_threshold``; the interval is that of
    :math:`\min(\rho_q, \rho_g)` minus the threshold, over seeds.
    """
    sub = geometry[geometry["condition"] == condition]
    if len(sub) < 2:
        return None
    low = sub[["rho_q", "rho_g"]].min(axis=1).to_numpy() - cfg.d1_threshold
    iv = inference.paired_t_interval([0.0] * len(low), low)
    claim = (
        f"Hubs are similar to both modalities (D1): both Spearman ρ above "
        f"{cfg.d1_threshold:g} on trained encoders"
    )
    return inference.Claim(
        "DBNorm", claim, inference.verdict(iv), iv, "tbl-nr-geometry", "db-d1-learned"
    )


def _other_comparison(c: inference.Claim, cfg: StudyConfig) -> str:
    if c.key == "db-d1-learned":
        return f"{cfg.label(_NCE)}: min(ρ_q, ρ_g) − {cfg.d1_threshold:g}"
    return ""


def claims_table(
    claims: Sequence[inference.Claim],
    cfg: StudyConfig,
    runs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The claims as the chapter shows them: claim, comparison, verdict, interval, evidence.

    ``evidence`` is the book label of the figure or table (``fig-nr-curves``);
    :func:`hubrepro.reporting.table` with ``links=["evidence"]`` makes it a numbered link.
    """
    specs = (
        {s.key: s for s in claim_specs(sorted(set(runs["condition"])))}
        if runs is not None
        else {}
    )
    rows = []
    for c in claims:
        spec = specs.get(c.key)
        d = METRICS[spec.metric].decimals if spec is not None else 2
        rows.append(
            {
                "claim": c.claim,
                "comparison": comparison_text(spec, cfg)
                if spec is not None
                else _other_comparison(c, cfg),
                "verdict": c.verdict,
                "difference [95 % interval]": c.interval.format(d)
                if c.interval
                else "—",
                "evidence": c.evidence,  # a book label: pass links=["evidence"] to reporting.table
            }
        )
    return pd.DataFrame(rows)
