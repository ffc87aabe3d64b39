"""Encoding with a trained model, validation during training and the final test evaluation."""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def encode(
    model: torch.nn.Module,
    query: torch.Tensor,
    gallery: torch.Tensor,
    *,
    batch_size: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the local (retrieval) features of ``query`` and ``gallery``, in eval mode.

    ``query`` and ``gallery`` are what the model encodes (embeddings, or token ids and
    images); they are moved to the model's device ``batch_size`` rows at a time.
    """
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    ql = torch.cat(
        [
            model.encode_query(query[i : i + batch_size].to(dev))[0]
            for i in range(0, query.shape[0], batch_size)
        ]
    )
    gl = torch.cat(
        [
            model.encode_gallery(gallery[i : i + batch_size].to(dev))[0]
            for i in range(0, gallery.shape[0], batch_size)
        ]
    )
    model.train(was)
    return ql, gl


def validation_metrics(
    model: torch.nn.Module,
    query: torch.Tensor,
    gallery: torch.Tensor,
    query_to_gallery: torch.Tensor | None,
    *,
    k: int,
    batch_size: int = 4096,
) -> dict[str, float]:
    """Retrieval in both directions and gallery hubness of a validation split.

    The keys are ``hubrepro.training.VALIDATION_KEYS``.
    """
    from hubrepro.hubness import hubness_report
    from hubrepro.retrieval import evaluate_retrieval

    ql, gl = encode(model, query, gallery, batch_size=batch_size)
    sims = ql @ gl.T
    res = evaluate_retrieval(sims, query_to_gallery)
    out = {"Rsum": float(res["Rsum"])}
    for d, short in (("query_to_gallery", "q2g"), ("gallery_to_query", "g2q")):
        for key, v in res[d].items():
            out[f"{short}_{key}"] = float(v)
    hub = hubness_report(sims, k=min(k, sims.shape[1]))
    out["gallery_skewness"] = float(hub["skewness"])
    out["gallery_antihub_rate"] = float(hub["antihub_rate"])
    return out


def evaluate(
    model: torch.nn.Module,
    data: Any,
    *,
    k: int = 10,
    hub_factor: float = 2.0,
    batch_size: int = 4096,
) -> dict[str, float]:
    """Evaluate a trained model on a test split.

    ``data`` is a :class:`~hubrepro.datasets.PairedData` of embeddings, or an
    :class:`~hubrepro.training.EvalData` of raw inputs for a model trained end to end
    (any object with ``query``, ``gallery``, ``query_to_gallery``, ``query_labels`` and
    ``gallery_labels``).

    Returns one flat dict: R@1/5/10, MdR, MnR per direction (``q2g_*``, ``g2q_*``)
    and ``Rsum`` (:func:`hubrepro.retrieval.evaluate_retrieval`); hubness of the
    gallery under the queries (``gallery_*``) and of the queries under the gallery
    (``query_*``) from :func:`hubrepro.hubness.hubness_report`; and the good/bad-hub
    statistics in both directions: from the exact relevance when the data carry it
    (``data.relevant``, :func:`hubrepro.datasets.shapes_world.relevance_hub_stats`),
    else from concept labels when they exist
    (:func:`hubrepro.hub_quality.neighbor_label_stats`).

    Book: :ref:`sec-neighborretr`.
    """
    ql, gl = encode(model, data.query, data.gallery, batch_size=batch_size)
    return evaluate_features(ql, gl, data, k=k, hub_factor=hub_factor)


def evaluate_features(
    query: torch.Tensor,
    gallery: torch.Tensor,
    data: Any,
    *,
    k: int = 10,
    hub_factor: float = 2.0,
) -> dict[str, float]:
    """:func:`evaluate` on features already encoded (rows of ``data.query``, ``data.gallery``)."""
    from hubrepro.datasets.shapes_world import relevance_hub_stats
    from hubrepro.hub_quality import neighbor_label_stats
    from hubrepro.hubness import hubness_report
    from hubrepro.retrieval import evaluate_retrieval

    sims = (query @ gallery.T).float().cpu()
    res = evaluate_retrieval(sims, data.query_to_gallery)
    out: dict[str, float] = {"Rsum": float(res["Rsum"])}
    for d, short in (("query_to_gallery", "q2g"), ("gallery_to_query", "g2q")):
        out.update({f"{short}_{m}": float(v) for m, v in res[d].items()})
    for side, mat in (("gallery", sims), ("query", sims.T)):
        rep = hubness_report(mat, k=min(k, mat.shape[1]))
        out.update({f"{side}_{m}": float(v) for m, v in rep.items() if m != "k"})
    relevant = getattr(data, "relevant", None)
    if relevant is not None:
        for short, mat, rel in (("q2g", sims, relevant), ("g2q", sims.T, relevant.T)):
            st = relevance_hub_stats(
                mat, rel.cpu(), k=min(k, mat.shape[1]), hub_factor=hub_factor
            )
            out.update({f"{short}_{m}": float(v) for m, v in st.items() if m != "k"})
    elif data.query_labels is not None and data.gallery_labels is not None:
        for short, mat, a, b in (
            ("q2g", sims, data.query_labels, data.gallery_labels),
            ("g2q", sims.T, data.gallery_labels, data.query_labels),
        ):
            st = neighbor_label_stats(
                mat, a, b, k=min(k, mat.shape[1]), hub_factor=hub_factor
            )
            out.update({f"{short}_{m}": float(v) for m, v in st.items() if m != "k"})
    return out
