"""Per-point statistics of one draw: k-occurrence, centralities, local density, bank similarities.

Part of :mod:`hubrepro.simulate`; import from there. Book: :ref:`sec-theory`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from hubrepro import hubness
from hubrepro._validation import (
    check_choice,
    check_int,
    check_matrix,
    check_positive,
    fail,
)

from ._laws import METRICS, TwoModalitySample
from ._stats import _geometry, global_centrality


def single_set_items(
    x: torch.Tensor,
    *,
    k: int | Sequence[int] = 10,
    metric: str = "euclidean",
    local_k: int = 10,
    labels: torch.Tensor | None = None,
    chunk_size: int = 2048,
) -> pd.DataFrame:
    r"""Per-point statistics of one set: :math:`N_k`, centrality, local density.

    Columns: ``n_k`` (within-set k-occurrence, self excluded; with several ``k``, one
    column ``n_<k>`` per value), ``centrality`` (:func:`global_centrality` in the
    metric's geometry), ``local_density`` (:math:`r_K`: the mean score of the
    ``local_k`` nearest neighbours, as in CSLS; cosine for the cosine metrics, minus
    the Euclidean distance otherwise, so larger is denser in both) and, with
    ``labels``, ``component_centrality`` (the distance to the point's own component
    mean, claim R4). One chunked kNN pass (:func:`hubrepro.hubness.knn`, with the
    largest of ``k`` and ``local_k``) serves all.

    Parameters
    ----------
    x : Tensor of shape (n, d)
    k : int or sequence of int, default 10
        Neighbourhood size(s) of :math:`N_k`, each at most ``n - 1``.
    metric : {"euclidean", "cosine", "cosine_centred"}, default "euclidean"
    local_k : int, default 10
        :math:`K` of :math:`r_K`.
    labels : LongTensor of shape (n,), optional
        Mixture-component labels (e.g. from :func:`sample_mixture`).
    chunk_size : int, default 2048
        Query rows per kNN block.

    Returns
    -------
    pandas.DataFrame with one row per point

    Book
    ----
    Chapter :ref:`sec-theory`, "Claims R2 and R4: hubs sit near the mean".

    Examples
    --------
    >>> from hubrepro.simulate import sample
    >>> items = single_set_items(sample("gaussian", 50, 3, seed=0), k=(1, 5))
    >>> list(items.columns), int(items["n_5"].sum())
    (['n_1', 'n_5', 'centrality', 'local_density'], 250)
    """
    func = "single_set_items"
    x = check_matrix(x, "x", func)
    check_choice(metric, "metric", func, METRICS)
    several = not isinstance(k, int)
    ks = list(k) if several else [k]
    if not ks:
        fail(func, "k", "an integer or a non-empty list of integers", repr(k))
    ks = [check_int(kk, "k", func, low=1, high=x.shape[0] - 1) for kk in ks]
    local_k = check_int(local_k, "local_k", func, low=1, high=x.shape[0] - 1)
    chunk_size = check_int(chunk_size, "chunk_size", func, low=1)
    lab = None
    if labels is not None:
        lab = torch.as_tensor(labels, device=x.device)
        if lab.shape != (x.shape[0],) or lab.dtype.is_floating_point:
            fail(
                func,
                "labels",
                f"an integer vector of length {x.shape[0]}",
                f"shape {tuple(lab.shape)}, dtype {lab.dtype}",
            )
    n = x.shape[0]
    idx, score = hubness.knn(
        x, k=max(max(ks), local_k), metric=metric, chunk_size=chunk_size
    )
    dens = score[:, :local_k]
    if metric == "euclidean":
        dens = -dens.clamp_max(0).neg().sqrt()  # minus the distance: larger is denser
    out = {
        ("n_k" if not several else f"n_{kk}"): hubness.k_occurrence_from_indices(
            idx, n, kk
        )
        .cpu()
        .numpy()
        for kk in ks
    }
    shared = {"centrality": global_centrality(x, metric), "local_density": dens.mean(1)}
    if lab is not None:
        lab = lab.long()
        xp = _geometry(x, metric)
        cent = torch.zeros(
            int(lab.max()) + 1, x.shape[1], dtype=xp.dtype, device=x.device
        )
        cent.index_add_(0, lab, xp)
        count = torch.bincount(lab, minlength=cent.shape[0]).clamp_min(1)
        cent = cent / count.unsqueeze(1).to(xp.dtype)
        shared["component_centrality"] = (xp - cent[lab]).norm(dim=1)
    out.update({name: t.cpu().double().numpy() for name, t in shared.items()})
    return pd.DataFrame(out)


def two_modality_items(
    world: TwoModalitySample,
    *,
    k: int = 10,
    beta: float | None = 20.0,
    chunk_size: int = 2048,
) -> pd.DataFrame:
    r"""Per-gallery-item statistics of a two-modality draw.

    Columns: ``n_k`` (cross-modal k-occurrence: how many test queries have the item
    in their cosine top-``k``), ``m_bq`` / ``m_bg`` (the mean cosine of the item to
    the query bank :math:`B_q` / the gallery bank :math:`B_g`; the two centralities
    of proposition T2, computed as :math:`\langle g,\bar b\rangle` since the points
    are unit vectors) and, with ``beta``, ``is_q`` / ``is_g`` (the inverted-softmax
    biases :math:`\frac1\beta\operatorname{LSE}_b(\beta\langle b,g\rangle)` over each
    bank, from :class:`hubrepro.normalize.InvertedSoftmax` fitted on the bank).

    Returns
    -------
    pandas.DataFrame with one row per gallery item

    Notes
    -----
    The points lie on the unit sphere, where
    :math:`\lVert q-g\rVert^2=2-2\cos(q,g)`: Euclidean and cosine neighbours
    coincide, so one geometry covers both.

    Book
    ----
    Chapter :ref:`sec-theory`, "Claim D1: hubs are similar to both modalities".
    """
    func = "two_modality_items"
    if not isinstance(world, TwoModalitySample):
        fail(func, "world", "a TwoModalitySample", type(world).__name__, exc=TypeError)
    if not world.normalized:
        fail(
            func,
            "world",
            "a normalised draw (normalize=True)",
            "normalize=False",
            "The bank means equal mean cosines only on the unit sphere.",
        )
    k = check_int(k, "k", func, low=1, high=world.gallery.shape[0])
    if beta is not None:
        beta = check_positive(beta, "beta", func)
    chunk_size = check_int(chunk_size, "chunk_size", func, low=1)
    n_g = world.gallery.shape[0]
    idx, _ = hubness.knn(
        world.query, world.gallery, k=k, metric="cosine", chunk_size=chunk_size
    )
    cols = {
        "n_k": hubness.k_occurrence_from_indices(idx, n_g),
        "m_bq": (world.gallery @ world.bank_query.mean(0)).double(),
        "m_bg": (world.gallery @ world.bank_gallery.mean(0)).double(),
    }
    if beta is not None:
        from hubrepro.normalize import InvertedSoftmax

        for name, bank in (("is_q", "query"), ("is_g", "gallery")):
            est = InvertedSoftmax(beta_query=beta, beta_gallery=beta, bank=bank)
            est.fit_embeddings(
                world.gallery,
                bank_query=world.bank_query,
                bank_gallery=world.bank_gallery,
                chunk_size=chunk_size,
            )
            cols[name] = (est.lse_ / beta).double()
    return pd.DataFrame({name: t.cpu().numpy() for name, t in cols.items()})
