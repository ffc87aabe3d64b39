r"""Notebook 43: hubness pictures, the k-occurrence before and after each method.

Book: :ref:`sec-dbnorm-pictures`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from hubrepro._validation import check_int, fail

from .config import DBNormConfig
from .matrices import Matrices, load_data, prepare
from .protocol import normalise, tuned

__all__ = [
    "PicturesResult",
    "run",
    "headlines",
    "occurrence_table",
    "hub_changes",
    "retrieval_examples",
]


def occurrence_table(mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, *,
                     methods: Sequence[str] = ("none", "is", "dis", "dualis", "dualdis"),
                     direction: str = "query_to_gallery") -> pd.DataFrame:  # fmt: skip
    """k-occurrence :math:`N_k` of every item of the test gallery under each method.

    Returns a DataFrame indexed by gallery item with one column per method key
    (hyperparameters tuned on validation).
    """
    from hubrepro.hubness import k_occurrence

    test = mats[("test", direction)]
    k = min(cfg.hubness_k, test.sims.shape[1])
    cols = {}
    for key in methods:
        scores = normalise(key, test, cfg, tuned(key, mats, cfg, direction))
        cols[key] = k_occurrence(scores, k=k).cpu().numpy()
    return pd.DataFrame(cols).rename_axis("item")


def hub_changes(
    occ: pd.DataFrame,
    *,
    top: int = 10,
    baseline: str = "none",
    texts: Sequence[str] | None = None,
    max_chars: int = 60,
) -> pd.DataFrame:
    """The ``top`` hubs of the baseline and their :math:`N_k` under every other method.

    Also adds, per method, the fraction of the baseline's top hubs that stop being
    hubs (:math:`N_k` at most twice the mean) as the attribute ``attrs["demoted"]``.
    ``texts`` (one per gallery item) adds an ``item`` column with the first line of
    each hub's text.
    """
    check_int(top, "top", "hub_changes", low=1)
    if baseline not in occ.columns:
        fail(
            "hub_changes",
            "baseline",
            f"a column of `occ` ({list(occ.columns)})",
            repr(baseline),
        )
    hubs = occ.sort_values(baseline, ascending=False, kind="stable").head(top)
    mean = float(occ[baseline].mean())
    out = hubs.copy()
    if texts is not None:
        first = [
            next((ln.strip() for ln in str(texts[i]).splitlines() if ln.strip()), "")
            for i in out.index
        ]
        out.insert(
            0,
            "text",
            [t if len(t) <= max_chars else t[: max_chars - 1] + "…" for t in first],
        )
    out.attrs["demoted"] = {
        c: float((hubs[c] <= 2 * mean).mean()) for c in occ.columns if c != baseline
    }
    out.attrs["hub_threshold"] = 2 * mean
    return out


def retrieval_examples(data: Any, mats: Mapping[tuple[str, str], Matrices], cfg: DBNormConfig, *,
                       method: str = "dualis", n_examples: int = 3, top: int = 3,
                       max_chars: int = 120) -> pd.DataFrame:  # fmt: skip
    """Queries whose top-1 changes under ``method``: query text, truth and top hits before/after.

    Picks the test queries (text->code, query->gallery) where the baseline's top-1 is
    wrong and ``method``'s is right, then those that it breaks, up to ``n_examples`` in
    total. Needs ``data.query_text`` / ``data.gallery_text``; the texts are those of the
    test split (the bank carve-out does not change it).
    """
    func = "retrieval_examples"
    if (
        getattr(data, "query_text", None) is None
        or getattr(data, "gallery_text", None) is None
    ):
        fail(
            func,
            "data",
            "a PairedData with `query_text` and `gallery_text`",
            type(data).__name__,
        )
    test = mats[("test", "query_to_gallery")]
    before = test.sims
    after = normalise(method, test, cfg, tuned(method, mats, cfg, "query_to_gallery"))
    gt = (
        test.query_to_gallery
        if test.query_to_gallery is not None
        else torch.arange(before.shape[0])
    )
    gt = gt.to(before.device)
    b1, a1 = before.argmax(dim=1), after.argmax(dim=1)
    fixed = ((b1 != gt) & (a1 == gt)).nonzero().squeeze(1).tolist()
    broken = ((b1 == gt) & (a1 != gt)).nonzero().squeeze(1).tolist()
    picks = [(i, "fixed") for i in fixed[: max(1, n_examples - 1)]] + [
        (i, "broken") for i in broken[:1]
    ]
    picks = picks[:n_examples]

    def short(s: str) -> str:
        s = " ".join(str(s).split())
        return s if len(s) <= max_chars else s[: max_chars - 1] + "…"

    rows = []
    for i, what in picks:
        for rank in range(top):
            jb = int(before[i].topk(top).indices[rank])
            ja = int(after[i].topk(top).indices[rank])
            rows.append({
                "query": short(data.query_text[i]) if rank == 0 else "",
                "change": what if rank == 0 else "",
                "rank": rank + 1,
                "before": ("✓ " if jb == int(gt[i]) else "") + short(data.gallery_text[jb]),
                "after": ("✓ " if ja == int(gt[i]) else "") + short(data.gallery_text[ja]),
            })  # fmt: skip
    return pd.DataFrame(rows)


@dataclass(frozen=True, eq=False)
class PicturesResult:
    """Output of :func:`run` (notebook 43), text -> gallery on the first dataset of the config.

    Attributes
    ----------
    dataset : str
    k : int
        :math:`k` of the k-occurrence.
    occurrences : DataFrame
        :func:`occurrence_table` of ``cfg.methods``.
    hubs : DataFrame
        :func:`hub_changes` of the ten largest baseline hubs (with their text when the
        data have texts).
    examples : DataFrame
        :func:`retrieval_examples` of DualIS, or a one-row note when the data have no
        texts.
    """

    dataset: str
    k: int
    occurrences: pd.DataFrame
    hubs: pd.DataFrame
    examples: pd.DataFrame


def run(cfg: DBNormConfig) -> PicturesResult:
    """Notebook 43: k-occurrences, the baseline's hubs and retrieval examples.

    ``cfg.directions`` should be ``("query_to_gallery",)`` (the notebook sets it).
    """
    label, data = next(iter(load_data(cfg).items()))
    mats = prepare(data, cfg)
    occ = occurrence_table(mats, cfg, methods=cfg.methods)
    texts = getattr(data, "gallery_text", None)
    hubs = hub_changes(occ, top=10, texts=texts)
    if texts is not None and getattr(data, "query_text", None) is not None:
        examples = retrieval_examples(
            data, mats, cfg, method="dualis", n_examples=cfg.n_examples
        )
    else:
        examples = pd.DataFrame({"note": ["this dataset has no texts"]})
    return PicturesResult(label, cfg.hubness_k, occ, hubs, examples)


def headlines(result: PicturesResult) -> dict[str, Any]:
    """Numbers the chapter pastes from notebook 43 (glue-key suffixes).

    ``txt-dataset``, ``val-k``; per method ``val-max-nk-<method>`` (largest
    :math:`N_k`), ``val-antihubs-<method>`` (% of items never retrieved) and, for every
    method but the baseline, ``val-demoted-<method>`` (% of the baseline's ten largest
    hubs that stop being hubs).
    """
    occ = result.occurrences
    out: dict[str, Any] = {"txt-dataset": result.dataset, "val-k": result.k}
    for key in occ.columns:
        out[f"val-max-nk-{key}"] = int(occ[key].max())
        out[f"val-antihubs-{key}"] = 100 * float((occ[key] == 0).mean())
    for key, share in result.hubs.attrs["demoted"].items():
        out[f"val-demoted-{key}"] = 100 * share
    return out
