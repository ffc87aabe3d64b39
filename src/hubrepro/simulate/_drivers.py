"""Monte Carlo drivers: tidy DataFrames over grids of laws, dimensions, worlds and seeds.

Part of :mod:`hubrepro.simulate`; import from there. Book: :ref:`sec-theory`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import torch

from hubrepro import hubness
from hubrepro._compat import resolve_device
from hubrepro._validation import (
    check_choice,
    check_int,
    check_matrix,
    check_positive,
    fail,
)

from ._laws import (
    METRICS,
    TwoModalitySample,
    _check_dtype,
    _draw,
    parse_law,
    sample_two_modality,
)
from ._stats import (
    _prepare,
    cohens_d,
    derive_seed,
    global_centrality,
    k_occurrence_counts,
    knn,
    spearman,
)

# leading columns of the two-modality tidy frames (E5, E6)
_WORLD_COLUMNS = ("experiment", "latent", "gap_along", "cone", "gap", "d", "k")


def single_set_items(
    x: torch.Tensor,
    *,
    k: int = 10,
    metric: str = "euclidean",
    local_k: int = 10,
    labels: torch.Tensor | None = None,
    chunk_size: int = 2048,
) -> pd.DataFrame:
    r"""Per-point statistics of one set: :math:`N_k`, centrality, local density.

    Columns: ``n_k`` (within-set k-occurrence, self excluded), ``centrality``
    (:func:`global_centrality` in the metric's geometry), ``local_density``
    (:math:`r_K`: the mean score of the ``local_k`` nearest neighbours, as in CSLS;
    cosine for the cosine metrics, minus the Euclidean distance otherwise, so larger
    is denser in both) and, with ``labels``, ``component_centrality`` (the distance
    to the point's own component mean, claim R4). One chunked kNN pass serves all.

    Returns
    -------
    pandas.DataFrame with one row per point
    """
    func = "single_set_items"
    x = check_matrix(x, "x", func)
    check_choice(metric, "metric", func, METRICS)
    k = check_int(k, "k", func, low=1, high=x.shape[0] - 1)
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
    per_k, shared = _single_set_tensors(x, (k,), metric, local_k, lab, chunk_size)
    out = {"n_k": per_k[k].cpu().numpy()}
    out.update({name: t.cpu().double().numpy() for name, t in shared.items()})
    return pd.DataFrame(out)


def _single_set_tensors(
    x: torch.Tensor,
    ks: Sequence[int],
    metric: str,
    local_k: int,
    labels: torch.Tensor | None,
    chunk_size: int,
) -> tuple[dict[int, torch.Tensor], dict[str, torch.Tensor]]:
    """One kNN pass: N_k for each k, and the per-point centralities (validated inputs)."""
    n = x.shape[0]
    idx, val = knn(x, k=max(max(ks), local_k), metric=metric, chunk_size=chunk_size)
    dens = val[:, :local_k]
    if metric == "euclidean":
        dens = -dens.clamp_max(0).neg().sqrt()  # minus the distance: larger is denser
    shared = {"centrality": global_centrality(x, metric), "local_density": dens.mean(1)}
    if labels is not None:
        lab = labels.long()
        xp = (
            x if metric == "euclidean" else _prepare(x, metric, x.mean(0, keepdim=True))
        )
        cent = torch.zeros(
            int(lab.max()) + 1, x.shape[1], dtype=xp.dtype, device=x.device
        )
        cent.index_add_(0, lab, xp)
        count = torch.bincount(lab, minlength=cent.shape[0]).clamp_min(1)
        cent = cent / count.unsqueeze(1).to(xp.dtype)
        shared["component_centrality"] = (xp - cent[lab]).norm(dim=1)
    return {k: k_occurrence_counts(idx, n, k) for k in ks}, shared


def _as_list(x: Any, name: str, func: str) -> list:
    if isinstance(x, str | int | float):
        return [x]
    if not isinstance(x, Sequence) or not len(x):
        fail(func, name, "a non-empty list", repr(x), exc=TypeError)
    return list(x)


def simulate_single_set(
    laws: Iterable[str] = ("gaussian", "uniform", "laplace"),
    dims: Iterable[int] = (3, 20, 100),
    *,
    n: int = 2000,
    ks: Iterable[int] = (10,),
    metrics: Iterable[str] = ("euclidean", "cosine"),
    replicates: int = 3,
    seed: int = 0,
    local_k: int = 10,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    chunk_size: int = 2048,
    experiment: str = "single_set",
) -> pd.DataFrame:
    r"""Monte Carlo grid of hubness statistics for single sets (experiments E1--E4, E7).

    For every law spec, dimension :math:`d`, replicate and metric, draws ``n`` points
    (:func:`sample`, seed :func:`derive_seed` ``(seed, law, d, replicate)``, shared by
    the metrics), runs one chunked kNN pass and records, for each :math:`k`:

    - ``skewness`` :math:`S_{N_k}` and ``skewness_nonzero`` (claim R1), from
      :func:`hubrepro.hubness.skewness` / :func:`~hubrepro.hubness.skewness_nonzero`;
    - ``antihub_rate`` :math:`\Pr[N_k=0]` and ``max_occurrence``;
    - ``rho_centrality`` :math:`\rho(N_k,\lVert x-\bar x\rVert)` in the metric's
      geometry (claims R2/T1; negative = hubs central);
    - ``rho_local_density`` :math:`\rho(N_k,r_K)` (claim T1');
    - ``rho_component_centrality`` for ``mixture`` laws (claim R4).

    Parameters
    ----------
    laws : list of str
        Law specs (:func:`parse_law`); for ``low_rank`` the rank is the intrinsic and
        ``d`` the embedding dimension (claim R5).
    dims : list of int
    n : int, default 2000
    ks : list of int, default (10,)
    metrics : list of str, default ("euclidean", "cosine")
    replicates : int, default 3
        Seeded replicates per cell; :func:`summarize` turns them into intervals.
    seed : int, default 0
    local_k : int, default 10
        :math:`K` of :math:`r_K`.
    device, dtype, chunk_size
        Where and how the kNN runs.
    experiment : str
        A label copied into the ``experiment`` column.

    Returns
    -------
    pandas.DataFrame
        Tidy: columns ``experiment, law, metric, d, k, seed, statistic, value``
        (``seed`` is the replicate number).

    Book
    ----
    Chapter :ref:`sec-theory`; notebooks ``20_hubness_vs_dimension`` and
    ``21_hubs_near_mean``.
    """
    func = "simulate_single_set"
    laws = [str(law) for law in _as_list(laws, "laws", func)]
    parsed = [parse_law(law) for law in laws]
    dims = [check_int(d, "dims", func, low=1) for d in _as_list(dims, "dims", func)]
    ks = [check_int(k, "ks", func, low=1) for k in _as_list(ks, "ks", func)]
    metrics = [
        check_choice(m, "metrics", func, METRICS)
        for m in _as_list(metrics, "metrics", func)
    ]
    n = check_int(n, "n", func, low=2)
    replicates = check_int(replicates, "replicates", func, low=1)
    seed = check_int(seed, "seed", func, low=0)
    local_k = check_int(local_k, "local_k", func, low=1, high=n - 1)
    if max(ks) > n - 1:
        fail(func, "ks", f"at most n - 1 = {n - 1}", max(ks))
    dtype = _check_dtype(dtype, func)
    dev = resolve_device(device)
    rows: list[tuple] = []
    for law, (name, opts) in zip(laws, parsed, strict=True):
        if name == "low_rank" and opts["rank"] > min(dims):
            fail(
                func, "dims", f"at least the rank {opts['rank']} of {law!r}", min(dims)
            )
        for d in dims:
            for rep in range(replicates):
                g = torch.Generator().manual_seed(derive_seed(seed, law, d, rep))
                x64, extra = _draw(name, opts, n, d, g, func)
                x = x64.to(device=dev, dtype=dtype)
                lab = extra["labels"].to(dev) if "labels" in extra else None
                for metric in metrics:
                    per_k, shared = _single_set_tensors(
                        x, ks, metric, local_k, lab, chunk_size
                    )
                    cent, dens = shared["centrality"], shared["local_density"]
                    comp = shared.get("component_centrality")
                    for k in ks:
                        n_k = per_k[k]
                        stats = {
                            "skewness": hubness.skewness(n_k),
                            "skewness_nonzero": hubness.skewness_nonzero(n_k),
                            "antihub_rate": hubness.antihub_rate(n_k),
                            "max_occurrence": float(n_k.max()),
                            "rho_centrality": spearman(n_k, cent),
                            "rho_local_density": spearman(n_k, dens),
                        }
                        if comp is not None:
                            stats["rho_component_centrality"] = spearman(n_k, comp)
                        rows.extend(
                            (experiment, law, metric, d, k, rep, s, v)
                            for s, v in stats.items()
                        )
    return pd.DataFrame(
        rows,
        columns=["experiment", "law", "metric", "d", "k", "seed", "statistic", "value"],
    )


def _mean_lse(
    bank: torch.Tensor, gallery: torch.Tensor, beta: float, chunk_size: int
) -> torch.Tensor:
    """(1/beta) * logsumexp over bank rows of beta * <b, g>, streamed over the bank."""
    acc = torch.full(
        (gallery.shape[0],), -math.inf, dtype=gallery.dtype, device=gallery.device
    )
    for start in range(0, bank.shape[0], chunk_size):
        blk = beta * (bank[start : start + chunk_size] @ gallery.T)
        acc = torch.logaddexp(acc, torch.logsumexp(blk, dim=0))
    return acc / beta


def two_modality_items(
    world: TwoModalitySample,
    *,
    k: int = 10,
    beta: float | None = 20.0,
    chunk_size: int = 2048,
) -> pd.DataFrame:
    r"""Per-gallery-item statistics of a two-modality draw (experiment E5).

    Columns: ``n_k`` (cross-modal k-occurrence: how many test queries have the item
    in their cosine top-``k``), ``m_bq`` / ``m_bg`` (the mean cosine of the item to
    the query bank :math:`B_q` / the gallery bank :math:`B_g`; T2's two
    centralities, computed as :math:`\langle g,\bar b\rangle` since the points are
    unit vectors) and, with ``beta``, ``is_q`` / ``is_g`` (the inverted-softmax
    biases :math:`\frac1\beta\operatorname{LSE}_b(\beta\langle b,g\rangle)` over each
    bank, streamed).

    Returns
    -------
    pandas.DataFrame with one row per gallery item

    Notes
    -----
    The points lie on the unit sphere, where
    :math:`\lVert q-g\rVert^2=2-2\cos(q,g)`: Euclidean and cosine neighbours
    coincide, so one geometry covers both.
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
    cols = _two_modality_tensors(world, k, beta, chunk_size)
    return pd.DataFrame({name: t.cpu().numpy() for name, t in cols.items()})


def _two_modality_tensors(
    world: TwoModalitySample, k: int, beta: float | None, chunk_size: int
) -> dict[str, torch.Tensor]:
    n_g = world.gallery.shape[0]
    idx, _ = knn(
        world.query, world.gallery, k=k, metric="cosine", chunk_size=chunk_size
    )
    out = {
        "n_k": k_occurrence_counts(idx, n_g),
        "m_bq": (world.gallery @ world.bank_query.mean(0)).double(),
        "m_bg": (world.gallery @ world.bank_gallery.mean(0)).double(),
    }
    if beta is not None:
        out["is_q"] = _mean_lse(
            world.bank_query, world.gallery, beta, chunk_size
        ).double()
        out["is_g"] = _mean_lse(
            world.bank_gallery, world.gallery, beta, chunk_size
        ).double()
    return out


def _world_grid(
    cones: Any, gaps: Any, latents: Any, gap_alongs: Any, func: str
) -> list[tuple[str, str, float, float]]:
    """Validate the (latent, gap direction, cone, gap) grid of the two-modality drivers."""
    cones = [
        check_positive(c, "cones", func, allow_zero=True)
        for c in _as_list(cones, "cones", func)
    ]
    gaps = [
        check_positive(g, "gaps", func, allow_zero=True)
        for g in _as_list(gaps, "gaps", func)
    ]
    latents = [
        check_choice(s, "latents", func, ("isotropic", "anisotropic"))
        for s in _as_list(latents, "latents", func)
    ]
    alongs = [
        check_choice(s, "gap_alongs", func, ("orthogonal", "cone"))
        for s in _as_list(gap_alongs, "gap_alongs", func)
    ]
    return [
        (lat, al, c, g) for lat in latents for al in alongs for c in cones for g in gaps
    ]


def _iter_worlds(
    grid: list[tuple[str, str, float, float]],
    replicates: int,
    seed: int,
    n: int,
    d: int,
    sigma: float,
    bank_size: int | None,
    device: Any,
    dtype: torch.dtype,
) -> Iterable[tuple[tuple[str, str, float, float, int], TwoModalitySample]]:
    """Draw every world of the grid; one seed per cell, shared by E5 and E6."""
    for latent, along, c, gap in grid:
        for rep in range(replicates):
            g = torch.Generator().manual_seed(
                derive_seed(seed, latent, along, c, gap, d, rep)
            )
            world = sample_two_modality(
                n,
                d,
                cone=c,
                gap=gap,
                sigma=sigma,
                latent=latent,
                gap_along=along,
                bank_size=bank_size,
                generator=g,
                device=device,
                dtype=dtype,
            )
            yield (latent, along, c, gap, rep), world


def simulate_two_modality(
    cones: Iterable[float] = (0.0, 0.25, 0.5, 1.0),
    gaps: Iterable[float] = (0.0, 0.25, 0.5, 1.0),
    *,
    n: int = 2000,
    d: int = 256,
    sigma: float = 2.0,
    latents: Iterable[str] = ("isotropic",),
    gap_alongs: Iterable[str] = ("orthogonal",),
    k: int = 10,
    bank_size: int | None = None,
    beta: float | None = 20.0,
    hub_fraction: float = 0.01,
    replicates: int = 3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    chunk_size: int = 2048,
) -> pd.DataFrame:
    r"""Monte Carlo grid over cone strength and modality gap (experiment E5, claims D1/T2).

    For every :math:`(c,\gamma)`, latent law, gap direction and replicate, draws a
    world (:func:`sample_two_modality`), computes :func:`two_modality_items` and
    records: ``skewness`` of the gallery's :math:`N_k`; ``rho_q`` =
    :math:`\rho(N_k,m_{B_q})`, ``rho_g`` = :math:`\rho(N_k,m_{B_g})` and, with
    ``beta``, ``rho_is_q``, ``rho_is_g`` (the same with the IS biases); for the top
    ``hub_fraction`` of items by :math:`N_k` against the rest, ``hub_m_bq``,
    ``rest_m_bq``, ``cohen_q`` and ``hub_m_bg``, ``rest_m_bg``, ``cohen_g``.

    Returns
    -------
    pandas.DataFrame
        Tidy: columns ``experiment, latent, gap_along, cone, gap, d, k, seed,
        statistic, value``.

    Book
    ----
    Chapter :ref:`sec-theory`, "Two modalities"; notebook ``22_hubs_both_modalities``.
    """
    func = "simulate_two_modality"
    grid = _world_grid(cones, gaps, latents, gap_alongs, func)
    n = check_int(n, "n", func, low=2)
    k = check_int(k, "k", func, low=1, high=n)
    if beta is not None:
        beta = check_positive(beta, "beta", func)
    chunk_size = check_int(chunk_size, "chunk_size", func, low=1)
    replicates = check_int(replicates, "replicates", func, low=1)
    seed = check_int(seed, "seed", func, low=0)
    hub_fraction = check_positive(hub_fraction, "hub_fraction", func)
    if hub_fraction >= 1:
        fail(func, "hub_fraction", "in (0, 1)", hub_fraction)
    n_hub = max(1, int(round(hub_fraction * n)))
    if n_hub >= n - 1:
        fail(
            func,
            "hub_fraction",
            f"small enough to leave at least two non-hubs of n={n}",
            hub_fraction,
        )
    rows: list[tuple] = []
    worlds = _iter_worlds(grid, replicates, seed, n, d, sigma, bank_size, device, dtype)
    for (latent, along, c, gap, rep), world in worlds:
        col = {
            name: t.cpu()
            for name, t in _two_modality_tensors(world, k, beta, chunk_size).items()
        }
        n_k = col["n_k"]
        order = torch.argsort(n_k, descending=True, stable=True)
        hub = torch.zeros(n, dtype=torch.bool)
        hub[order[:n_hub]] = True
        stats = {
            "skewness": hubness.skewness(n_k),
            "rho_q": spearman(n_k, col["m_bq"]),
            "rho_g": spearman(n_k, col["m_bg"]),
            "hub_m_bq": float(col["m_bq"][hub].mean()),
            "rest_m_bq": float(col["m_bq"][~hub].mean()),
            "cohen_q": cohens_d(col["m_bq"][hub], col["m_bq"][~hub]),
            "hub_m_bg": float(col["m_bg"][hub].mean()),
            "rest_m_bg": float(col["m_bg"][~hub].mean()),
            "cohen_g": cohens_d(col["m_bg"][hub], col["m_bg"][~hub]),
        }
        if beta is not None:
            stats["rho_is_q"] = spearman(n_k, col["is_q"])
            stats["rho_is_g"] = spearman(n_k, col["is_g"])
        rows.extend(
            ("two_modality", latent, along, c, gap, d, k, rep, s, v)
            for s, v in stats.items()
        )
    return pd.DataFrame(
        rows,
        columns=[*_WORLD_COLUMNS, "seed", "statistic", "value"],
    )


#: E6 methods: name -> (normalize method, extra hyperparameters)
BANK_METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "none": ("none", {}),
    "is_q": ("is", {"bank": "query"}),
    "is_g": ("is", {"bank": "gallery"}),
    "dualis": ("dualis", {}),
}


def simulate_bank_benefit(
    cones: Iterable[float] = (0.0, 0.5),
    gaps: Iterable[float] = (0.0, 0.25, 0.5, 1.0),
    *,
    n: int = 1000,
    d: int = 256,
    sigma: float = 2.0,
    latents: Iterable[str] = ("isotropic",),
    gap_alongs: Iterable[str] = ("orthogonal",),
    methods: Iterable[str] = ("none", "is_q", "is_g", "dualis"),
    beta: float = 20.0,
    k: int = 10,
    bank_size: int | None = None,
    replicates: int = 2,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    chunk_size: int = 2048,
) -> pd.DataFrame:
    r"""When does the gallery bank help retrieval? (experiment E6, claim T3 [REC]).

    For every world of the :math:`(c,\gamma)` grid (drawn exactly as in
    :func:`simulate_two_modality`, same seeds), normalises the test scores with
    each method of ``BANK_METHODS`` through
    :func:`hubrepro.normalize.normalize_embeddings` (banks streamed): ``none``;
    ``is_q`` / ``is_g``, the inverted softmax over the query / gallery bank; and
    ``dualis``, DBNorm's DualIS over both banks; all with inverse temperature
    ``beta`` on both banks. Records ``R@1``, ``R@10`` (percent, from
    :func:`hubrepro.retrieval.evaluate_retrieval`) and ``skewness`` of the
    normalised :math:`N_k`.

    Returns
    -------
    pandas.DataFrame
        Tidy: ``experiment, latent, gap_along, cone, gap, d, k, method, seed,
        statistic, value``.

    Book
    ----
    Chapter :ref:`sec-theory`, "When does the gallery bank help?"; notebook
    ``22_hubs_both_modalities``.
    """
    from hubrepro import normalize as _norm
    from hubrepro import retrieval as _ret

    func = "simulate_bank_benefit"
    grid = _world_grid(cones, gaps, latents, gap_alongs, func)
    methods = [
        check_choice(m, "methods", func, tuple(BANK_METHODS))
        for m in _as_list(methods, "methods", func)
    ]
    n = check_int(n, "n", func, low=2)
    k = check_int(k, "k", func, low=1, high=n)
    beta = check_positive(beta, "beta", func)
    replicates = check_int(replicates, "replicates", func, low=1)
    seed = check_int(seed, "seed", func, low=0)
    rows: list[tuple] = []
    worlds = _iter_worlds(grid, replicates, seed, n, d, sigma, bank_size, device, dtype)
    for (latent, along, c, gap, rep), w in worlds:
        for name in methods:
            method, extra = BANK_METHODS[name]
            sims = _norm.normalize_embeddings(
                method,
                w.query,
                w.gallery,
                bank_query=w.bank_query,
                bank_gallery=w.bank_gallery,
                chunk_size=chunk_size,
                **(
                    {}
                    if method == "none"
                    else {"beta_query": beta, "beta_gallery": beta}
                ),
                **extra,
            )
            res = _ret.evaluate_retrieval(sims)["query_to_gallery"]
            n_k = hubness.k_occurrence(sims, k)
            stats = {
                "R@1": float(res["R@1"]),
                "R@10": float(res["R@10"]),
                "skewness": hubness.skewness(n_k),
            }
            rows.extend(
                (
                    "bank_benefit",
                    latent,
                    along,
                    c,
                    gap,
                    d,
                    k,
                    name,
                    rep,
                    s,
                    v,
                )
                for s, v in stats.items()
            )
    return pd.DataFrame(
        rows,
        columns=[*_WORLD_COLUMNS, "method", "seed", "statistic", "value"],
    )


def simulate_intrinsic_dimension(
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
    r"""Hubness of rank-:math:`m` data embedded in :math:`\R^D` against plain :math:`d=m` data (E3, claim R5).

    Runs :func:`simulate_single_set` for ``low_rank:rank=m`` at ``d = embedding_dim``
    (label ``"embedded in D"``) and for ``gaussian`` at ``d = m`` (label
    ``"plain, d = m"``). Claim R5 predicts the two curves coincide: the orthonormal
    embedding preserves all distances, so hubness depends on :math:`m` only.

    Returns
    -------
    pandas.DataFrame
        The tidy frame of :func:`simulate_single_set` with ``law`` replaced by the
        label and an extra column ``m``.
    """
    func = "simulate_intrinsic_dimension"
    ranks = [check_int(m, "ranks", func, low=1) for m in _as_list(ranks, "ranks", func)]
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
    emb = simulate_single_set(
        [f"low_rank:rank={m}" for m in ranks],
        [embedding_dim],
        experiment="E3",
        **common,
    )
    emb["m"] = emb["law"].str.split("=").str[1].astype(int)
    emb["law"] = f"embedded in D = {embedding_dim}"
    plain = simulate_single_set(["gaussian"], ranks, experiment="E3", **common)
    plain["m"] = plain["d"]
    plain["law"] = "plain, d = m"
    return pd.concat([emb, plain], ignore_index=True)
