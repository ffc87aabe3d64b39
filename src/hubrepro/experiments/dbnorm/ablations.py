r"""Notebook 42: the DBNorm ablations (banks, aggregation, activation set, betas, shifted banks).

Every ablation tunes its methods on the validation split carved from the bank
(:func:`~hubrepro.experiments.dbnorm.protocol.tune_method`) and evaluates them on
the test split, text -> gallery.

Book: :ref:`sec-dbnorm-ablations`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from hubrepro._validation import check_choice, check_int, check_probability

from .config import FALLBACK, DBNormConfig, method_label
from .matrices import Matrices, load_data, load_user, prepare
from .protocol import estimator, evaluate_method, format_hyper, tuned

__all__ = [
    "AblationsResult",
    "run",
    "headlines",
    "ablate_bank_size",
    "ablate_bank_choice",
    "ablate_aggregation",
    "ablate_k",
    "beta_grid",
    "ablate_shift",
    "shift_datasets",
    "shift_headlines",
]


def _subsample_rows(
    x: torch.Tensor | None, frac: float, gen: torch.Generator
) -> torch.Tensor | None:
    if x is None or frac >= 1.0:
        return x
    n = max(1, int(round(frac * x.shape[0])))
    idx = torch.randperm(x.shape[0], generator=gen)[:n].sort().values
    return x.index_select(0, idx.to(x.device))


def ablate_bank_size(mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, *,
                     fractions: Sequence[float] = (0.1, 0.25, 0.5, 1.0),
                     methods: Sequence[str] = ("is", "is-g", "dualis"),
                     direction: str = "query_to_gallery") -> pd.DataFrame:  # fmt: skip
    """R@1 / R@1+5+10 / skewness as one bank (or both) is subsampled to a fraction.

    Hyperparameters are tuned once on the full validation split, then kept fixed.
    Each fraction draws rows with ``cfg.seed``; ``varied`` says which bank shrank.
    """
    for f in fractions:
        check_probability(f, "fractions", "ablate_bank_size")
    test = mats[("test", direction)]
    rows = []
    for key in methods:
        hyper = tuned(key, mats, cfg, direction)
        for varied in ("query", "gallery", "both"):
            for frac in fractions:
                gen = torch.Generator().manual_seed(cfg.seed)
                bq = (
                    _subsample_rows(test.bank_query_sims, frac, gen)
                    if varied in ("query", "both")
                    else test.bank_query_sims
                )
                bg = (
                    _subsample_rows(test.bank_gallery_sims, frac, gen)
                    if varied in ("gallery", "both")
                    else test.bank_gallery_sims
                )
                m = dataclasses.replace(test, bank_query_sims=bq, bank_gallery_sims=bg)
                met = evaluate_method(key, m, cfg, hyper)
                rows.append({"method": key, "label": method_label(key), "varied": varied, "fraction": frac,
                             "n_bank_query": None if bq is None else bq.shape[0],
                             "n_bank_gallery": None if bg is None else bg.shape[0], **met})  # fmt: skip
    return pd.DataFrame(rows)


def _run_keys(keys: Iterable[str], mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, direction: str,
              **extra: Any) -> list[dict[str, Any]]:  # fmt: skip
    test = mats[("test", direction)]
    rows = []
    for key in keys:
        hyper = tuned(key, mats, cfg, direction)
        rows.append({"method": key, "label": method_label(key), **extra, **evaluate_method(key, test, cfg, hyper),
                     "hyper": format_hyper(hyper)})  # fmt: skip
    return rows


def ablate_bank_choice(mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, *,
                       direction: str = "query_to_gallery") -> pd.DataFrame:  # fmt: skip
    """Query bank only vs gallery bank only vs both, for the static (IS) and dynamic (DIS) forms."""
    groups = {
        "query bank": ("is", "dis"),
        "gallery bank": ("is-g", "dis-g"),
        "both banks": ("dualis", "dualdis"),
    }
    rows = [{"method": "none", "label": method_label("none"), "banks": "none", "form": "-",
             **evaluate_method("none", mats[("test", direction)], cfg), "hyper": ""}]  # fmt: skip
    for banks, (static, dynamic) in groups.items():
        rows += _run_keys(
            [static], mats, cfg, direction, banks=banks, form="static (IS)"
        )
        rows += _run_keys(
            [dynamic], mats, cfg, direction, banks=banks, form="dynamic (DIS)"
        )
    return pd.DataFrame(rows)


def ablate_aggregation(mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, *,
                       direction: str = "query_to_gallery") -> pd.DataFrame:  # fmt: skip
    """DualIS with the product (DBNorm) vs the sum of the two inverted softmaxes, each tuned."""
    return pd.DataFrame(_run_keys(["dualis", "dualis-sum"], mats, cfg, direction))


def ablate_k(mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, *, ks: Sequence[int] = (1, 2, 5, 10),
             methods: Sequence[str] = ("dis", "dualdis"), direction: str = "query_to_gallery") -> pd.DataFrame:  # fmt: skip
    """Activation-set size ``k`` of DIS / DualDIS (betas tuned at ``cfg.k``, then fixed).

    Also reports the share of test queries gated (``gated_pct``: top-1 inside the
    query-bank activation set), read from the fitted DIS estimator's gate.
    """
    test = mats[("test", direction)]
    rows = []
    for key in methods:
        hyper = tuned(key, mats, cfg, direction)
        for k in ks:
            check_int(k, "ks", "ablate_k", low=1, high=test.sims.shape[1])
            kcfg = dataclasses.replace(cfg, k=int(k))
            # the query-bank gate of DIS at this k (the gate does not depend on beta)
            beta = {"beta_query": hyper.get("beta_query", FALLBACK["beta_query"])}
            gate = estimator("dis", test, kcfg, beta).gate(test.sims)
            rows.append({"method": key, "label": method_label(key), "k": int(k),
                         "gated_pct": float(gate.float().mean()) * 100,
                         **evaluate_method(key, test, kcfg, hyper)})  # fmt: skip
    return pd.DataFrame(rows)


def beta_grid(
    m: Matrices, cfg: DBNormConfig, *, key: str = "dualis", metric: str = "R@1"
) -> pd.DataFrame:
    """``metric`` of a dual method over the grid ``beta_query_grid x beta_gallery_grid``.

    Returns a DataFrame indexed by :math:`\\beta_q` with one column per :math:`\\beta_g`
    (the heat map of notebook 42).
    """
    check_choice(
        key, "key", "beta_grid", ("dualis", "dualis-sum", "dualdis", "dualdis-faithful")
    )
    vals = np.zeros((len(cfg.beta_query_grid), len(cfg.beta_gallery_grid)))
    for i, bq in enumerate(cfg.beta_query_grid):
        for j, bg in enumerate(cfg.beta_gallery_grid):
            vals[i, j] = evaluate_method(
                key, m, cfg, {"beta_query": bq, "beta_gallery": bg}, hubness=False
            )[metric]
    return pd.DataFrame(vals, index=pd.Index(cfg.beta_query_grid, name="beta_query"),
                        columns=pd.Index(cfg.beta_gallery_grid, name="beta_gallery"))  # fmt: skip


def ablate_shift(datasets: Mapping[str, Any], cfg: DBNormConfig, *,
                 methods: Sequence[str] = ("none", "is", "dis", "csls", "dualis", "dualdis"),
                 direction: str = "query_to_gallery") -> pd.DataFrame:  # fmt: skip
    """Robustness to shifted banks: each dataset (label -> data) tuned on its own validation split.

    The intended pairs are ``stdlib-code`` ``random`` vs ``by-module`` (banks from other
    modules) and a synthetic dataset with and without ``shift``. The table has one row
    per (bank setting, method) with the change in R@1 over the baseline.
    """
    rows = []
    for label, data in datasets.items():
        mats = prepare(data, dataclasses.replace(cfg, directions=(direction,)))
        part = _run_keys(methods, mats, cfg, direction, bank=label)
        base = next((r["R@1"] for r in part if r["method"] == "none"), float("nan"))
        for r in part:
            r["delta_R@1"] = r["R@1"] - base
        rows += part
    return pd.DataFrame(rows)


def shift_datasets(cfg: DBNormConfig) -> dict[str, Any]:
    """The bank settings of the robustness ablation: label -> data.

    ``stdlib-code`` (or ``embedded``): ``"stdlib random"`` and ``"stdlib by-module"``
    (banks from other modules), then the first entry of ``cfg.synthetic_settings`` with
    each ``cfg.shift_values`` (``"synthetic shift <v>"``). ``synthetic``: only the
    latter. ``user``: the user's data alone (``"user"``).
    """
    from hubrepro.datasets import load_dataset

    out: dict[str, Any] = {}
    if cfg.dataset == "user" or cfg.data_dir:
        return {"user": load_user(cfg)}
    if cfg.dataset in ("embedded", "stdlib-code"):
        for protocol in ("random", "by-module"):
            out[f"stdlib {protocol}"] = load_dataset(
                "stdlib-code", seed=cfg.seed, protocol=protocol, **cfg.dataset_options
            )
    base = (
        dict(next(iter(cfg.synthetic_settings.values())))
        if cfg.synthetic_settings
        else {}
    )
    for v in cfg.shift_values:
        out[f"synthetic shift {v:g}"] = load_dataset(
            "synthetic", seed=cfg.seed, **{**base, "shift": float(v)}
        )
    return out


def shift_headlines(shift: pd.DataFrame) -> dict[str, float]:
    """Glue-ready changes in R@1 from :func:`ablate_shift` (keys ``val-delta-<method>-<bank>``).

    Banks: ``random`` and ``bymodule`` (stdlib), ``shift-max`` (the largest synthetic
    shift) and ``shift-none`` (synthetic shift 0); also ``val-shift-max``.
    """
    out: dict[str, float] = {}
    names = {"stdlib random": "random", "stdlib by-module": "bymodule"}
    syn = [
        b for b in dict.fromkeys(shift["bank"]) if str(b).startswith("synthetic shift ")
    ]
    if syn:
        values = {b: float(str(b).rsplit(" ", 1)[1]) for b in syn}
        top = max(values, key=values.get)
        names[top] = "shift-max"
        out["val-shift-max"] = values[top]
        zero = [b for b, v in values.items() if v == 0.0]
        if zero and zero[0] != top:
            names[zero[0]] = "shift-none"
    for _, r in shift.iterrows():
        if r["bank"] in names and r["method"] != "none":
            out[f"val-delta-{r['method']}-{names[r['bank']]}"] = float(r["delta_R@1"])
    return out


@dataclass(frozen=True, eq=False)
class AblationsResult:
    """Output of :func:`run` (notebook 42), text -> gallery on the first dataset of the config.

    Attributes
    ----------
    dataset : str
        Label of the dataset ablated.
    baseline : dict
        Metrics of the unnormalised test scores.
    bank_size, bank_choice, aggregation, k : DataFrame
        :func:`ablate_bank_size`, :func:`ablate_bank_choice`,
        :func:`ablate_aggregation`, :func:`ablate_k`.
    beta_val, beta_test : DataFrame or None
        :func:`beta_grid` of DualIS on the validation split (``None`` without one)
        and on the test split.
    shift : DataFrame
        :func:`ablate_shift` over :func:`shift_datasets`.
    """

    dataset: str
    baseline: dict[str, float]
    bank_size: pd.DataFrame
    bank_choice: pd.DataFrame
    aggregation: pd.DataFrame
    k: pd.DataFrame
    beta_val: pd.DataFrame | None
    beta_test: pd.DataFrame
    shift: pd.DataFrame


def run(cfg: DBNormConfig) -> AblationsResult:
    """Notebook 42: every ablation on the first dataset of ``cfg``, text -> gallery.

    ``cfg.directions`` should be ``("query_to_gallery",)`` (the notebook sets it): the
    ablations read the text -> gallery matrices only.
    """
    label, data = next(iter(load_data(cfg).items()))
    mats = prepare(data, cfg)
    direction = "query_to_gallery"
    test = mats[("test", direction)]
    val = mats.get(("val", direction))
    return AblationsResult(
        dataset=label,
        baseline=evaluate_method("none", test, cfg),
        bank_size=ablate_bank_size(
            mats, cfg, fractions=cfg.bank_fractions, methods=("is", "is-g", "dualis")
        ),  # fmt: skip
        bank_choice=ablate_bank_choice(mats, cfg),
        aggregation=ablate_aggregation(mats, cfg),
        k=ablate_k(mats, cfg, ks=cfg.k_values),
        beta_val=beta_grid(val, cfg) if val is not None else None,
        beta_test=beta_grid(test, cfg),
        shift=ablate_shift(shift_datasets(cfg), cfg),
    )


def headlines(result: AblationsResult) -> dict[str, Any]:
    """Numbers the chapter pastes from notebook 42 (glue-key suffixes).

    ``txt-dataset``, ``val-r1-base``; the bank-size curve of DualIS with both banks
    shrunk (``val-dualis-r1-smallest-bank``, ``val-smallest-fraction``,
    ``val-dualis-r1-full-bank``); ``val-r1-<method>`` of the bank-choice ablation and
    ``val-r1-dualis-sum``; ``val-gated-k1`` (DIS at the smallest ``k``);
    ``val-beta-spread`` (test R@1 range over the beta grid); and
    :func:`shift_headlines`.
    """
    size = result.bank_size
    small = size[(size.method == "dualis") & (size.varied == "both")].sort_values(
        "fraction"
    )
    out: dict[str, Any] = {
        "txt-dataset": result.dataset,
        "val-r1-base": result.baseline["R@1"],
        "val-dualis-r1-smallest-bank": float(small["R@1"].iloc[0]),
        "val-smallest-fraction": float(small["fraction"].iloc[0]),
        "val-dualis-r1-full-bank": float(small["R@1"].iloc[-1]),
    }
    choice = result.bank_choice
    for key in ("is", "is-g", "dualis", "dis", "dis-g", "dualdis"):
        out[f"val-r1-{key}"] = float(choice[choice.method == key]["R@1"].iloc[0])
    agg = result.aggregation.set_index("method")
    out["val-r1-dualis-sum"] = float(agg.loc["dualis-sum", "R@1"])
    ks = result.k
    first = ks[(ks.method == "dis") & (ks.k == ks.k.min())]
    out["val-gated-k1"] = float(first["gated_pct"].iloc[0])
    heat = result.beta_test.to_numpy()
    out["val-beta-spread"] = float(heat.max() - heat.min())
    out.update(shift_headlines(result.shift))
    return out
