r"""Notebook 44: the released DBNorm code's defects, and faithful vs principled DualDIS.

The defects are demonstrated by :mod:`hubrepro.errata` (the released code's
behaviour, re-implemented) on small matrices of the first dataset; the two DualDIS
modes of :class:`hubrepro.normalize.DualDIS` are compared on the test split of every
dataset, at the betas tuned for the principled mode.

Book: :ref:`sec-dbnorm-errata`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .config import DBNormConfig
from .matrices import Matrices, full_test_sims, load_data, prepare, small_matrices
from .protocol import estimator, metrics, normalise, tuned

__all__ = [
    "OVERFLOW_BETAS",
    "ReleasedResult",
    "run",
    "headlines",
    "faithful_vs_principled",
]

#: betas of the overflow curve (D5), on matrices scaled by 100 (CLIP's logit scale)
OVERFLOW_BETAS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0)


def faithful_vs_principled(mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, *,
                           direction: str = "query_to_gallery") -> dict[str, float]:  # fmt: skip
    """Compare the two DualDIS modes at the betas tuned for the principled one.

    Returns the share (percent) of test queries gated by both banks, by one, by
    neither (the gates of the fitted :class:`~hubrepro.normalize.DualDIS`: their
    top-1 on ``sims`` inside the activation sets), the share whose top-1 differs
    between the modes, and R@1 / MnR of each mode.

    Book: :ref:`sec-dbnorm-errata`.
    """
    test = mats[("test", direction)]
    hyper = tuned("dualdis", mats, cfg, direction)
    gq, gg = estimator("dualdis", test, cfg, hyper).gates(test.sims)
    p = normalise("dualdis", test, cfg, hyper)
    f = normalise("dualdis-faithful", test, cfg, hyper)
    mp, mf = metrics(p, test, cfg), metrics(f, test, cfg)
    pct = lambda x: 100 * float(x.float().mean())  # noqa: E731
    return {
        "gated_both_pct": pct(gq & gg),
        "gated_one_pct": pct(gq ^ gg),
        "gated_neither_pct": pct(~gq & ~gg),
        "top1_differs_pct": pct(p.argmax(dim=1) != f.argmax(dim=1)),
        "r1_principled": mp["R@1"],
        "r1_faithful": mf["R@1"],
        "mnr_principled": mp["MnR"],
        "mnr_faithful": mf["MnR"],
        **{f"param_{k}": v for k, v in hyper.items()},
    }


@dataclass(frozen=True, eq=False)
class ReleasedResult:
    """Output of :func:`run` (notebook 44).

    Attributes
    ----------
    dataset : str
        Label of the first dataset (the defect demonstrations).
    n_small : int
        Test queries of the small demonstration matrices.
    defects : DataFrame
        :func:`hubrepro.errata.defect_table`.
    demos : dict
        The outputs of the ``hubrepro.errata.demo_*`` functions: ``"d1"``, ``"d2"``,
        ``"d3"``, ``"d4"`` (small matrices) and ``"d8"`` (the full test matrix).
    overflow : DataFrame
        :func:`hubrepro.errata.overflow_curve` at :data:`OVERFLOW_BETAS`.
    modes : DataFrame
        :func:`faithful_vs_principled`, one row per dataset.
    """

    dataset: str
    n_small: int
    defects: pd.DataFrame
    demos: dict[str, dict[str, Any]]
    overflow: pd.DataFrame
    modes: pd.DataFrame


def run(cfg: DBNormConfig) -> ReleasedResult:
    """Notebook 44: the defect demonstrations and the two DualDIS modes.

    The demonstrations use ``cfg.demo_beta_query``, ``cfg.demo_beta_gallery``, ``cfg.k``
    and ``cfg.hubness_k`` on :func:`~hubrepro.experiments.dbnorm.matrices.small_matrices`
    of ``cfg.n_examples`` items; the mode comparison tunes its betas on validation.
    ``cfg.directions`` should be ``("query_to_gallery",)`` (the notebook sets it).
    """
    from hubrepro import errata

    datasets = load_data(cfg)
    label, data = next(iter(datasets.items()))
    small = small_matrices(data, n=cfg.n_examples, seed=cfg.seed)
    mats3 = (small["sims"], small["bank_query_sims"], small["bank_gallery_sims"])
    gt = small["query_to_gallery"]
    betas = {"beta_query": cfg.demo_beta_query, "beta_gallery": cfg.demo_beta_gallery}
    kw = {**betas, "k": cfg.k, "query_to_gallery": gt}
    demos = {
        "d1": errata.demo_d1_wrong_matrix(*mats3, **betas, query_to_gallery=gt),
        "d2": errata.demo_d2_skewness_crash(small["sims"]),
        "d3": errata.demo_d3_aliasing(*mats3, **kw),
        "d4": errata.demo_d4_mixed_scales(*mats3, **kw),
        "d8": errata.demo_d8_skewness(full_test_sims(data), cfg.hubness_k),
    }
    modes = {
        name: faithful_vs_principled(prepare(d, cfg), cfg)
        for name, d in datasets.items()
    }
    return ReleasedResult(
        dataset=label,
        n_small=small["sims"].shape[0],
        defects=errata.defect_table(*mats3, skew_k=cfg.hubness_k, **kw),
        demos=demos,
        overflow=errata.overflow_curve(*mats3, betas=OVERFLOW_BETAS, scale=100.0),
        modes=pd.DataFrame(modes).T,
    )


def headlines(result: ReleasedResult) -> dict[str, Any]:
    """Numbers the chapter pastes from notebook 44 (glue-key suffixes).

    ``txt-dataset``, ``val-n-small``; per defect ``val-d1-r1-released`` /
    ``-ours`` / ``-base``, ``val-d3-r1-released`` / ``-fixed``, ``val-d4-ungated``,
    ``val-d4-reordered``, ``val-d8-released`` / ``-standard`` / ``-antihubs`` (%),
    ``txt-d2-error``, ``val-d5-released-beta20`` (% non-finite at beta 20); for the
    first dataset's modes ``val-gated-neither-pct``, ``val-top1-differs-pct``,
    ``val-r1-principled``, ``val-r1-faithful``; and ``val-max-r1-gap`` over datasets.
    """
    d = result.demos
    out: dict[str, Any] = {
        "txt-dataset": result.dataset,
        "val-n-small": result.n_small,
        "val-d1-r1-released": d["d1"]["released_R@1"],
        "val-d1-r1-ours": d["d1"]["ours_R@1"],
        "val-d1-r1-base": d["d1"]["base_R@1"],
        "val-d3-r1-released": d["d3"]["released_R@1"],
        "val-d3-r1-fixed": d["d3"]["fixed_R@1"],
        "val-d4-ungated": d["d4"]["rows_gated_by_neither"],
        "val-d4-reordered": d["d4"]["rows_with_reversed_order"],
        "val-d8-released": d["d8"]["released_skewness"],
        "val-d8-standard": d["d8"]["standard_skewness"],
        "val-d8-antihubs": 100 * d["d8"]["antihub_rate"],
        "txt-d2-error": d["d2"]["error"],
        "val-d5-released-beta20": float(
            result.overflow.set_index("beta").loc[20.0, "released"]
        ),
    }
    first = result.modes.iloc[0]
    for key in (
        "gated_neither_pct",
        "top1_differs_pct",
        "r1_principled",
        "r1_faithful",
    ):
        out[f"val-{key.replace('_', '-')}"] = float(first[key])
    gap = result.modes["r1_principled"] - result.modes["r1_faithful"]
    out["val-max-r1-gap"] = float(gap.max())
    return out
