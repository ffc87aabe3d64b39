r"""Monte Carlo checks of the hubness theory (book chapter :ref:`sec-theory`).

This module holds everything the theory chapter simulates:

- **samplers** for the single-set laws of the simulation programme (isotropic,
  uniform, heavy-tailed, anisotropic, shifted, mixture, low-rank and asymmetric
  laws), addressed by *law specs* such as ``"anisotropic:alpha=1"``
  (:func:`sample`, :func:`parse_law`, :data:`LAWS`);
- the **two-modality world** of the theory spec, section 3.2: queries and gallery
  items that share a latent, a cone direction :math:`u` of strength :math:`c` and a
  modality gap :math:`\gamma` along :math:`v` (:func:`sample_two_modality`);
- **chunked statistics**: exact kNN under Euclidean or cosine geometry without ever
  building an :math:`n\times n` matrix (:func:`knn`), k-occurrence, global
  centrality, local density :math:`r_K`, Spearman correlation with average ties
  (:func:`spearman`), Cohen's :math:`d` (:func:`cohens_d`);
- **drivers** returning tidy :class:`pandas.DataFrame` s over grids of laws,
  dimensions, metrics, :math:`k` and seeded replicates (:func:`simulate_single_set`,
  :func:`simulate_two_modality`), their per-item views for scatter plots
  (:func:`single_set_items`, :func:`two_modality_items`), confidence intervals over
  seeds (:func:`summarize`) and the acceptance-criterion verdicts of the chapter
  (:func:`verdict_r1`, :func:`verdict_r2`, :func:`verdict_d1`).

The claims checked are R1--R5 of Radovanović et al. [radovanovic2010hubs]_, the
DBNorm claim D1 [wang2023balance]_ and the project's reconstructed statements
T1, T1', T2 (see the chapter). Every random draw comes from an explicit
``torch.Generator`` created on the CPU, so a seed gives the same numbers on every
device; the arithmetic then runs on ``device`` (CUDA when asked for).

References
----------
.. [radovanovic2010hubs] M. Radovanović, A. Nanopoulos, M. Ivanović. Hubs in space:
   popular nearest neighbors in high-dimensional data. JMLR 11 (2010).
.. [wang2023balance] Y. Wang et al. Balance Act: Mitigating hubness in cross-modal
   retrieval with query and gallery banks. EMNLP 2023.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
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

__all__ = [
    "LAWS",
    "SYMMETRIC_LAWS",
    "METRICS",
    "parse_law",
    "sample",
    "sample_mixture",
    "TwoModalitySample",
    "two_modality_directions",
    "sample_two_modality",
    "knn",
    "k_occurrence_counts",
    "global_centrality",
    "spearman",
    "cohens_d",
    "derive_seed",
    "single_set_items",
    "simulate_single_set",
    "two_modality_items",
    "simulate_two_modality",
    "summarize",
    "verdict_r1",
    "verdict_r2",
    "verdict_d1",
    "BANK_METHODS",
    "simulate_bank_benefit",
    "verdict_t3",
    "summary_value",
    "paired_difference",
    "simulate_intrinsic_dimension",
    "DimensionSweepConfig",
    "HubsNearMeanConfig",
    "TwoModalityConfig",
    "plot_lines",
    "plot_histograms",
    "plot_scatter_grid",
    "plot_heatmap",
    "plot_hub_boxes",
]

# law name -> (default options, symmetric about its mean?)
_LAW_DEFAULTS: dict[str, dict[str, float]] = {
    "gaussian": {},
    "uniform": {},
    "uniform_centred": {},
    "laplace": {},
    "student_t": {"df": 3},
    "anisotropic": {"alpha": 1.0},
    "shifted": {"c": 0.5},
    "mixture": {"components": 5, "spread": 3.0},
    "low_rank": {"rank": 20},
    "exponential": {},
    "lognormal": {},
}
#: Names of the single-set laws accepted by :func:`sample` (theory spec, section 3.2).
LAWS: tuple[str, ...] = tuple(_LAW_DEFAULTS)
#: Laws symmetric about their mean (all but the asymmetric counter-checks).
SYMMETRIC_LAWS: tuple[str, ...] = tuple(
    name for name in LAWS if name not in ("exponential", "lognormal")
)
#: Geometries of :func:`knn`: Euclidean distance, cosine, cosine after centring.
METRICS: tuple[str, ...] = ("euclidean", "cosine", "cosine_centred")

_INT_OPTIONS = {"df", "components", "rank"}


def parse_law(spec: str) -> tuple[str, dict[str, float]]:
    """Split a law spec ``"name[:key=value,...]"`` into its name and full options.

    Law specs keep notebook parameters literal: ``"anisotropic:alpha=2"``,
    ``"low_rank:rank=5"``, ``"shifted:c=1"``, ``"student_t:df=5"``,
    ``"mixture:components=3,spread=4"``. Missing options take the defaults of the
    theory spec (section 3.2).

    Parameters
    ----------
    spec : str
        The law spec.

    Returns
    -------
    (str, dict)
        The law name and its options, defaults filled in.

    Raises
    ------
    ValueError
        For an unknown law, an unknown option or a value that is not a number.

    Examples
    --------
    >>> parse_law("anisotropic:alpha=2")
    ('anisotropic', {'alpha': 2.0})
    >>> parse_law("gaussian")
    ('gaussian', {})
    """
    func = "parse_law"
    if not isinstance(spec, str):
        fail(
            func,
            "spec",
            "a string such as 'gaussian' or 'anisotropic:alpha=1'",
            repr(spec),
            exc=TypeError,
        )
    name, _, rest = spec.partition(":")
    name = name.strip()
    check_choice(name, "spec", func, LAWS)
    options = dict(_LAW_DEFAULTS[name])
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or key not in options:
                fail(
                    func,
                    "spec",
                    f"'{name}' with options among {sorted(options) or 'none'} written key=value",
                    repr(spec),
                )
            try:
                options[key] = float(value)
            except ValueError:
                fail(func, "spec", f"a number for option `{key}`", repr(value))
    for key in _INT_OPTIONS & options.keys():
        if options[key] != int(options[key]) or options[key] < 1:
            fail(func, "spec", f"a positive integer for option `{key}`", options[key])
        options[key] = int(options[key])
    return name, options


def _generator(
    generator: torch.Generator | None, seed: int | None, func: str
) -> torch.Generator:
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            fail(func, "generator", "a torch.Generator", repr(generator), exc=TypeError)
        if generator.device.type != "cpu":
            fail(
                func,
                "generator",
                "a CPU generator",
                f"one on {generator.device}",
                "Draws are made on the CPU so a seed gives the same data on every device.",
            )
        return generator
    if seed is None:
        fail(
            func,
            "seed",
            "an integer when no `generator` is given",
            None,
            "Pass `seed=0` (or a torch.Generator) so the draw is reproducible.",
        )
    return torch.Generator().manual_seed(check_int(seed, "seed", func, low=0))


def _unit_vector(d: int, g: torch.Generator) -> torch.Tensor:
    u = torch.randn(d, generator=g, dtype=torch.float64)
    return u / u.norm()


def _check_dtype(dtype: Any, func: str) -> torch.dtype:
    if dtype not in (torch.float32, torch.float64):
        fail(
            func, "dtype", "torch.float32 or torch.float64", repr(dtype), exc=TypeError
        )
    return dtype


def _laplace(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    # inverse CDF: keeps the draw on the explicit generator
    u = torch.rand(shape, generator=g, dtype=torch.float64) - 0.5
    return -torch.sign(u) * torch.log1p(-2.0 * u.abs().clamp(max=0.5 - 1e-16))


def _draw(
    name: str, opts: Mapping[str, float], n: int, d: int, g: torch.Generator, func: str
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Draw ``n`` points of law ``name`` in float64 on the CPU, with side information."""
    extra: dict[str, torch.Tensor] = {}
    if name == "gaussian":
        x = torch.randn(n, d, generator=g, dtype=torch.float64)
    elif name == "uniform":
        x = torch.rand(n, d, generator=g, dtype=torch.float64)
    elif name == "uniform_centred":
        x = torch.rand(n, d, generator=g, dtype=torch.float64) - 0.5
    elif name == "laplace":
        x = _laplace((n, d), g)
    elif name == "student_t":
        df = int(opts["df"])
        chi2 = torch.zeros(n, d, dtype=torch.float64)
        for _ in range(df):
            chi2 += torch.randn(n, d, generator=g, dtype=torch.float64).square()
        x = torch.randn(n, d, generator=g, dtype=torch.float64) / torch.sqrt(chi2 / df)
    elif name == "anisotropic":
        var = torch.arange(1, d + 1, dtype=torch.float64).pow(-float(opts["alpha"]))
        var = var * (d / var.sum())  # trace d, as the isotropic law
        x = torch.randn(n, d, generator=g, dtype=torch.float64) * var.sqrt()
    elif name == "shifted":
        u = _unit_vector(d, g)
        extra["mean"] = float(opts["c"]) * math.sqrt(d) * u
        x = torch.randn(n, d, generator=g, dtype=torch.float64) + extra["mean"]
    elif name == "mixture":
        c = int(opts["components"])
        centres = float(opts["spread"]) * torch.randn(
            c, d, generator=g, dtype=torch.float64
        )
        labels = torch.randint(0, c, (n,), generator=g)
        x = centres[labels] + torch.randn(n, d, generator=g, dtype=torch.float64)
        extra["labels"], extra["centres"] = labels, centres
    elif name == "low_rank":
        m = int(opts["rank"])
        if m > d:
            fail(func, "law", f"a rank at most the dimension d={d}", f"rank={m}")
        q, _ = torch.linalg.qr(torch.randn(d, m, generator=g, dtype=torch.float64))
        x = torch.randn(n, m, generator=g, dtype=torch.float64) @ q.T
    elif name == "exponential":
        x = -torch.log1p(-torch.rand(n, d, generator=g, dtype=torch.float64))
    elif name == "lognormal":
        x = torch.exp(torch.randn(n, d, generator=g, dtype=torch.float64))
    else:  # pragma: no cover - parse_law guards the names
        raise AssertionError(name)
    return x, extra


def sample(
    law: str,
    n: int,
    d: int,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""Draw ``n`` i.i.d. points in :math:`\R^d` from a law of the simulation programme.

    Implements the distributions of the theory spec, section 3.2 (chapter
    :ref:`sec-theory`, "Laws"): ``gaussian`` :math:`\mathcal N(0,I_d)`; ``uniform``
    :math:`U[0,1]^d` (Radovanović et al.'s main case, symmetric about its mean but
    not about the origin); ``uniform_centred`` :math:`U[-\frac12,\frac12]^d`;
    ``laplace`` i.i.d. Laplace(0, 1); ``student_t`` i.i.d. :math:`t_\nu` (option
    ``df``, an integer); ``anisotropic`` :math:`\mathcal N(0,\operatorname{diag}(i^{-\alpha}))`
    rescaled to trace :math:`d` (option ``alpha``); ``shifted``
    :math:`\mathcal N(c\sqrt d\,u, I_d)` with a random unit :math:`u` (option ``c``);
    ``mixture`` of ``components`` unit Gaussians with centres
    :math:`\mathcal N(0,\text{spread}^2 I)` and uniform weights; ``low_rank``
    :math:`\mathcal N(0,I_m)` embedded in :math:`\R^d` by a random orthonormal map
    (option ``rank`` :math:`=m\le d`); the asymmetric counter-checks
    ``exponential`` (rate 1) and ``lognormal`` (:math:`\mu=0,\sigma=1`).

    Parameters
    ----------
    law : str
        A law spec, ``"name[:key=value,...]"`` (see :func:`parse_law`).
    n, d : int
        Number of points and dimension (both at least 1).
    generator : torch.Generator, optional
        A CPU generator; draws are made on the CPU in float64 and then moved, so a
        seed gives the same points on every device.
    seed : int, optional
        Used when ``generator`` is None.
    device : str or torch.device, default "cpu"
        Where the result lives (``"auto"``: CUDA when available).
    dtype : torch.dtype, default torch.float32
        float32 or float64.

    Returns
    -------
    Tensor of shape (n, d)
        A new tensor on ``device`` with ``dtype``.

    Raises
    ------
    ValueError, TypeError
        For an unknown law or option, non-positive sizes, a missing seed.

    See Also
    --------
    sample_mixture : the mixture law with its labels and centres.

    Book
    ----
    Chapter :ref:`sec-theory`, section "Laws".

    Examples
    --------
    >>> x = sample("gaussian", 4, 3, seed=0)
    >>> tuple(x.shape), x.dtype
    ((4, 3), torch.float32)
    """
    func = "sample"
    name, opts = parse_law(law)
    n = check_int(n, "n", func, low=1)
    d = check_int(d, "d", func, low=1)
    dtype = _check_dtype(dtype, func)
    dev = resolve_device(device)
    g = _generator(generator, seed, func)
    x, _ = _draw(name, opts, n, d, g, func)
    return x.to(device=dev, dtype=dtype)


def sample_mixture(
    n: int,
    d: int,
    *,
    components: int = 5,
    spread: float = 3.0,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Draw the ``mixture`` law and return the points, their labels and the centres.

    Points are :math:`x_i = \mu_{\ell_i} + \varepsilon_i` with centres
    :math:`\mu_c\sim\mathcal N(0,\text{spread}^2 I_d)`, labels :math:`\ell_i` uniform
    over ``components`` and :math:`\varepsilon_i\sim\mathcal N(0,I_d)`: the setting of
    claim R4 (hubs sit near *component* means), chapter :ref:`sec-theory`.

    Returns
    -------
    x : Tensor of shape (n, d)
    labels : LongTensor of shape (n,)
    centres : Tensor of shape (components, d)
        All on ``device``; ``x`` and ``centres`` in ``dtype``.

    Examples
    --------
    >>> x, labels, centres = sample_mixture(10, 2, components=3, seed=0)
    >>> tuple(centres.shape), int(labels.max()) < 3
    ((3, 2), True)
    """
    func = "sample_mixture"
    n = check_int(n, "n", func, low=1)
    d = check_int(d, "d", func, low=1)
    components = check_int(components, "components", func, low=1)
    spread = check_positive(spread, "spread", func, allow_zero=True)
    dtype = _check_dtype(dtype, func)
    dev = resolve_device(device)
    g = _generator(generator, seed, func)
    x, extra = _draw(
        "mixture", {"components": components, "spread": spread}, n, d, g, func
    )
    return (
        x.to(device=dev, dtype=dtype),
        extra["labels"].to(dev),
        extra["centres"].to(device=dev, dtype=dtype),
    )


# --------------------------------------------------------------------------- two modalities


@dataclass(frozen=True)
class TwoModalitySample:
    r"""One draw of the two-modality world (theory spec, section 3.2).

    Attributes
    ----------
    query, gallery : Tensor of shape (n, d)
        Test queries and gallery items; query ``i`` matches gallery ``i``.
    bank_query, bank_gallery : Tensor of shape (m, d)
        Independent draws from the query and gallery laws (the banks
        :math:`B_q`, :math:`B_g`).
    cone_direction, gap_direction : Tensor of shape (d,)
        The unit vectors :math:`u` and :math:`v`.
    cone, gap, sigma : float
        :math:`c`, :math:`\gamma`, :math:`\sigma`.
    normalized : bool
        Whether the points were projected on the unit sphere.
    """

    query: torch.Tensor
    gallery: torch.Tensor
    bank_query: torch.Tensor
    bank_gallery: torch.Tensor
    cone_direction: torch.Tensor
    gap_direction: torch.Tensor
    cone: float
    gap: float
    sigma: float
    normalized: bool


def two_modality_directions(
    d: int,
    *,
    gap_along: str = "orthogonal",
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Draw the cone direction :math:`u` and the gap direction :math:`v` (float64, CPU).

    ``gap_along="orthogonal"`` gives :math:`u\perp v` (Gram--Schmidt on two Gaussian
    vectors); ``"cone"`` puts :math:`v=u`, the variant of the spec where the gap
    lies along the shared mean direction.

    Examples
    --------
    >>> u, v = two_modality_directions(5, seed=0)
    >>> abs(float(u @ v)) < 1e-12, round(float(u.norm()), 6)
    (True, 1.0)
    """
    func = "two_modality_directions"
    d = check_int(d, "d", func, low=2)
    check_choice(gap_along, "gap_along", func, ("orthogonal", "cone"))
    g = _generator(generator, seed, func)
    u = _unit_vector(d, g)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    w = w - (w @ u) * u
    v = u.clone() if gap_along == "cone" else w / w.norm()
    return u, v


def sample_two_modality(
    n: int,
    d: int = 256,
    *,
    cone: float = 0.5,
    gap: float = 0.0,
    sigma: float = 2.0,
    latent: str = "isotropic",
    gap_along: str = "orthogonal",
    bank_size: int | None = None,
    normalize: bool = True,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> TwoModalitySample:
    r"""Draw paired queries and gallery items sharing a latent, with a cone and a modality gap.

    Implements the two-modality world of the theory spec, section 3.2 (our
    reconstruction [REC], chapter :ref:`sec-theory`, "Two modalities"): for each
    pair :math:`i`,

    .. math::

        g_i = \operatorname{norm}\big(z_i + \sigma\varepsilon_i + c\sqrt d\,u
              + \tfrac\gamma2\sqrt d\,v\big),\qquad
        q_i = \operatorname{norm}\big(z_i + \sigma\varepsilon_i' + c\sqrt d\,u
              - \tfrac\gamma2\sqrt d\,v\big),

    with a shared latent :math:`z_i\sim\mathcal N(0,\Lambda)` (:math:`\Lambda=I`, or
    :math:`\Lambda_{jj}\propto j^{-1}` rescaled to trace :math:`d` for
    ``latent="anisotropic"``), noise :math:`\varepsilon,\varepsilon'\sim\mathcal N(0,I)`,
    unit vectors :math:`u` (cone) and :math:`v` (gap; :math:`u\perp v` or
    :math:`v=u`). Before normalisation the gallery mean minus the query mean is
    :math:`\gamma\sqrt d\,v`, of norm :math:`\gamma\sqrt d`. The banks are independent
    draws (new latents) of the same laws.

    Parameters
    ----------
    n : int
        Number of test pairs.
    d : int, default 256
    cone : float, default 0.5
        Cone strength :math:`c\ge0`.
    gap : float, default 0.0
        Modality gap :math:`\gamma\ge0`.
    sigma : float, default 2.0
        Per-modality noise :math:`\sigma\ge0`.
    latent : {"isotropic", "anisotropic"}
    gap_along : {"orthogonal", "cone"}
    bank_size : int, optional
        Size of each bank; default :math:`4n` (the spec's ``paper`` setting).
    normalize : bool, default True
        Project on the unit sphere (set False to inspect the raw geometry).
    generator, seed, device, dtype
        As in :func:`sample`.

    Returns
    -------
    TwoModalitySample

    Examples
    --------
    >>> s = sample_two_modality(8, 4, gap=1.0, bank_size=16, seed=0)
    >>> tuple(s.query.shape), tuple(s.bank_gallery.shape)
    ((8, 4), (16, 4))
    """
    func = "sample_two_modality"
    n = check_int(n, "n", func, low=1)
    d = check_int(d, "d", func, low=2)
    cone = check_positive(cone, "cone", func, allow_zero=True)
    gap = check_positive(gap, "gap", func, allow_zero=True)
    sigma = check_positive(sigma, "sigma", func, allow_zero=True)
    check_choice(latent, "latent", func, ("isotropic", "anisotropic"))
    m = 4 * n if bank_size is None else check_int(bank_size, "bank_size", func, low=1)
    if not isinstance(normalize, bool):
        fail(func, "normalize", "a bool", repr(normalize), exc=TypeError)
    dtype = _check_dtype(dtype, func)
    dev = resolve_device(device)
    g = _generator(generator, seed, func)
    u, v = two_modality_directions(d, gap_along=gap_along, generator=g)
    scale = torch.ones(d, dtype=torch.float64)
    if latent == "anisotropic":
        var = 1.0 / torch.arange(1, d + 1, dtype=torch.float64)
        scale = (var * (d / var.sum())).sqrt()
    shift_g = math.sqrt(d) * (cone * u + 0.5 * gap * v)
    shift_q = math.sqrt(d) * (cone * u - 0.5 * gap * v)

    def pairs(count: int, paired: bool) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(count, d, generator=g, dtype=torch.float64) * scale
        zq = (
            z
            if paired
            else torch.randn(count, d, generator=g, dtype=torch.float64) * scale
        )
        gal = (
            z
            + sigma * torch.randn(count, d, generator=g, dtype=torch.float64)
            + shift_g
        )
        qry = (
            zq
            + sigma * torch.randn(count, d, generator=g, dtype=torch.float64)
            + shift_q
        )
        if normalize:
            gal = gal / gal.norm(dim=1, keepdim=True)
            qry = qry / qry.norm(dim=1, keepdim=True)
        return qry.to(device=dev, dtype=dtype), gal.to(device=dev, dtype=dtype)

    query, gallery = pairs(n, True)
    bank_query, bank_gallery = pairs(m, False)
    return TwoModalitySample(
        query=query,
        gallery=gallery,
        bank_query=bank_query,
        bank_gallery=bank_gallery,
        cone_direction=u.to(device=dev, dtype=dtype),
        gap_direction=v.to(device=dev, dtype=dtype),
        cone=cone,
        gap=gap,
        sigma=sigma,
        normalized=normalize,
    )


# --------------------------------------------------------------------------- chunked kNN


def _prepare(x: torch.Tensor, metric: str, centre: torch.Tensor | None) -> torch.Tensor:
    if metric == "euclidean":
        return x
    if metric == "cosine_centred":
        x = x - centre
    return x / x.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def knn(
    query: torch.Tensor,
    gallery: torch.Tensor | None = None,
    *,
    k: int = 10,
    metric: str = "euclidean",
    chunk_size: int = 2048,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact k nearest neighbours, streamed over blocks of query rows.

    Never builds the full :math:`n_q\times n_g` matrix: each block of
    ``chunk_size`` query rows is scored against the gallery and reduced by
    ``torch.topk``, so memory is :math:`O(\text{chunk\_size}\cdot n_g)`. With
    ``gallery=None`` the neighbours are searched within ``query`` itself and each
    point's own entry is excluded (the within-set k-occurrence of
    Radovanović et al., chapter :ref:`sec-theory`).

    Scores (higher is nearer): ``"euclidean"``
    :math:`-\lVert x-y\rVert^2`, computed as
    :math:`2\langle x,y\rangle-\lVert y\rVert^2-\lVert x\rVert^2`;
    ``"cosine"`` :math:`\cos(x,y)`; ``"cosine_centred"`` the cosine after subtracting
    the mean of ``gallery`` (of ``query`` when ``gallery`` is None) from both sides
    (the centring of Suzuki et al. 2013).

    Parameters
    ----------
    query : Tensor of shape (n_query, d)
    gallery : Tensor of shape (n_gallery, d), optional
    k : int, default 10
        At most ``n_gallery`` (``n_query - 1`` within one set).
    metric : {"euclidean", "cosine", "cosine_centred"}
    chunk_size : int, default 2048

    Returns
    -------
    indices : LongTensor of shape (n_query, k)
        Neighbour indices, nearest first.
    scores : Tensor of shape (n_query, k)
        Their scores (negative squared distances for ``"euclidean"``).

    Notes
    -----
    Exact ties (probability zero for continuous laws) are broken by ``torch.topk``,
    not necessarily towards the lowest index.

    Examples
    --------
    >>> x = torch.tensor([[0.0], [1.0], [3.0]])
    >>> knn(x, k=1)[0].flatten().tolist()
    [1, 0, 1]
    """
    func = "knn"
    q = check_matrix(query, "query", func)
    within = gallery is None
    gal = q if within else check_matrix(gallery, "gallery", func)
    if not within and gal.shape[1] != q.shape[1]:
        fail(
            func,
            "gallery",
            f"of width {q.shape[1]} (the width of `query`)",
            f"shape {tuple(gal.shape)}",
        )
    if not within and gal.device != q.device:
        fail(func, "gallery", f"on the device of `query` ({q.device})", str(gal.device))
    check_choice(metric, "metric", func, METRICS)
    n_g = gal.shape[0]
    k = check_int(k, "k", func, low=1, high=n_g - 1 if within else n_g)
    chunk_size = check_int(chunk_size, "chunk_size", func, low=1)
    centre = gal.mean(0, keepdim=True) if metric == "cosine_centred" else None
    qp, gp = _prepare(q, metric, centre), _prepare(gal, metric, centre)
    g_sq = gp.square().sum(1) if metric == "euclidean" else None
    idx_out = torch.empty(q.shape[0], k, dtype=torch.long, device=q.device)
    val_out = torch.empty(q.shape[0], k, dtype=q.dtype, device=q.device)
    for start in range(0, q.shape[0], chunk_size):
        block = qp[start : start + chunk_size]
        s = block @ gp.T
        if g_sq is not None:
            s = 2.0 * s - g_sq - block.square().sum(1, keepdim=True)
        if within:
            rows = torch.arange(block.shape[0], device=q.device)
            s[rows, rows + start] = -math.inf
        val, idx = torch.topk(s, k, dim=1)
        idx_out[start : start + chunk_size] = idx
        val_out[start : start + chunk_size] = val
    return idx_out, val_out


def k_occurrence_counts(
    indices: torch.Tensor, n_gallery: int, k: int | None = None
) -> torch.Tensor:
    r"""Count :math:`N_k` from a neighbour-index matrix: how often each item is in a top-k list.

    :math:`N_k(x)=\#\{y: x\in\mathrm{kNN}(y)\}` (Radovanović et al. 2010, Sec. 3),
    read from the first ``k`` columns of ``indices`` (all columns by default), so one
    :func:`knn` call with the largest ``k`` serves every smaller ``k``.

    Returns
    -------
    LongTensor of shape (n_gallery,)

    Examples
    --------
    >>> k_occurrence_counts(torch.tensor([[1, 2], [0, 2], [0, 1]]), 3, k=1).tolist()
    [2, 1, 0]
    """
    func = "k_occurrence_counts"
    idx = check_matrix(indices, "indices", func, floating=False)
    if idx.dtype.is_floating_point:
        fail(func, "indices", "an integer matrix", str(idx.dtype), exc=TypeError)
    n_gallery = check_int(n_gallery, "n_gallery", func, low=1)
    k = idx.shape[1] if k is None else check_int(k, "k", func, low=1, high=idx.shape[1])
    return torch.bincount(idx[:, :k].reshape(-1).long(), minlength=n_gallery)


def global_centrality(
    x: torch.Tensor, metric: str = "euclidean", *, centre: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Distance of each point to the data mean, in the metric's geometry.

    Theory spec, section 1: Euclidean :math:`\lVert x-\bar x\rVert`; cosine
    :math:`\lVert\tilde x-\bar{\tilde x}\rVert` with :math:`\tilde x=x/\lVert x\rVert`
    (for ``"cosine_centred"`` after subtracting :math:`\bar x`). Small values mean
    *central* points; claims R2/T1 predict they are hubs. ``centre`` overrides the
    mean (for instance a point's own mixture-component mean, claim R4).

    Returns
    -------
    Tensor of shape (n,)
    """
    func = "global_centrality"
    x = check_matrix(x, "x", func)
    check_choice(metric, "metric", func, METRICS)
    if metric != "euclidean":
        x = _prepare(x, metric, x.mean(0, keepdim=True))
    ref = x.mean(0, keepdim=True) if centre is None else centre
    return (x - ref).norm(dim=1)


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n with ties given their average rank (as scipy's ``rankdata``)."""
    srt, order = torch.sort(v)
    _, inverse, counts = torch.unique_consecutive(
        srt, return_inverse=True, return_counts=True
    )
    ends = torch.cumsum(counts, 0).double()
    avg = ends - (counts.double() - 1.0) / 2.0
    ranks = torch.empty_like(avg[inverse])
    ranks[order] = avg[inverse]
    return ranks


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    r"""Spearman's rank correlation with average ranks for ties.

    :math:`\rho=\operatorname{corr}(\operatorname{rank}a,\operatorname{rank}b)`; ties
    (frequent in :math:`N_k`) get their average rank, as in
    ``scipy.stats.spearmanr``. Returns NaN when either input is constant.

    Examples
    --------
    >>> spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 5.0, 4.0]))
    0.5
    """
    func = "spearman"
    a = check_matrix(a, "a", func, floating=False, ndim=1)
    b = check_matrix(b, "b", func, floating=False, ndim=1)
    if a.shape != b.shape:
        fail(func, "b", f"of the length of `a` ({a.shape[0]})", f"length {b.shape[0]}")
    if a.numel() < 2:
        fail(func, "a", "at least two values", a.numel())
    ra, rb = _ranks(a), _ranks(b.to(a.device))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = ra.norm() * rb.norm()
    if float(den) == 0.0:
        return math.nan
    return round(float((ra @ rb) / den), 15)


def cohens_d(a: torch.Tensor, b: torch.Tensor) -> float:
    r"""Cohen's :math:`d=(\bar a-\bar b)/s_p` with the pooled standard deviation.

    :math:`s_p^2=\frac{(n_a-1)s_a^2+(n_b-1)s_b^2}{n_a+n_b-2}` (unbiased variances).
    Used for the hub-vs-rest comparison of experiment E5.

    Examples
    --------
    >>> cohens_d(torch.tensor([2.0, 4.0]), torch.tensor([0.0, 2.0]))
    1.4142135623730951
    """
    func = "cohens_d"
    a = check_matrix(a, "a", func, ndim=1).double()
    b = check_matrix(b, "b", func, ndim=1).double()
    if a.numel() + b.numel() < 3 or a.numel() < 1 or b.numel() < 1:
        fail(
            func,
            "a",
            "non-empty groups with at least three values in all",
            f"{a.numel()} and {b.numel()}",
        )
    va = a.var() if a.numel() > 1 else a.new_zeros(())
    vb = b.var() if b.numel() > 1 else b.new_zeros(())
    sp = torch.sqrt(
        ((a.numel() - 1) * va + (b.numel() - 1) * vb) / (a.numel() + b.numel() - 2)
    )
    if float(sp) == 0.0:
        return math.nan
    return float((a.mean() - b.mean()) / sp)


def derive_seed(seed: int, *keys: Any) -> int:
    """A 63-bit seed for one grid cell, from the notebook's ``seed`` and the cell's keys.

    Hashing the keys (law, dimension, replicate, ...) makes every cell's draw
    independent of the grid it sits in: adding a dimension to a sweep does not
    change the numbers of the others.
    """
    h = hashlib.sha256(repr((int(seed), *keys)).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


# --------------------------------------------------------------------------- drivers


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
    gap_alongs = [
        check_choice(s, "gap_alongs", func, ("orthogonal", "cone"))
        for s in _as_list(gap_alongs, "gap_alongs", func)
    ]
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
    for latent in latents:
        for along in gap_alongs:
            for c in cones:
                for gap in gaps:
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
                        col = {
                            name: t.cpu()
                            for name, t in _two_modality_tensors(
                                world, k, beta, chunk_size
                            ).items()
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
        columns=[
            "experiment",
            "latent",
            "gap_along",
            "cone",
            "gap",
            "d",
            "k",
            "seed",
            "statistic",
            "value",
        ],
    )


# --------------------------------------------------------------------------- summaries


def summarize(
    frame: pd.DataFrame, by: Sequence[str] | None = None, *, confidence: float = 0.95
) -> pd.DataFrame:
    r"""Mean, standard deviation and a Student-t interval over seeded replicates.

    Groups the tidy ``frame`` by every column except ``seed`` and ``value`` (or by
    ``by``) and returns ``mean``, ``sd`` (ddof 1), ``n`` and
    ``ci_low``/``ci_high`` = :math:`\bar v\pm t_{n-1,(1+\text{conf})/2}\,s/\sqrt n`
    (NaN when :math:`n=1`). NaN values (e.g. an undefined correlation) are dropped
    within each group.

    Returns
    -------
    pandas.DataFrame
        One row per group, the group keys as columns.
    """
    from scipy import stats as _st

    func = "summarize"
    if not isinstance(frame, pd.DataFrame):
        fail(func, "frame", "a pandas DataFrame", type(frame).__name__, exc=TypeError)
    for col in ("value",):
        if col not in frame.columns:
            fail(
                func, "frame", "a tidy frame with a `value` column", list(frame.columns)
            )
    confidence = check_positive(confidence, "confidence", func)
    if confidence >= 1:
        fail(func, "confidence", "in (0, 1)", confidence)
    keys = (
        list(by)
        if by is not None
        else [c for c in frame.columns if c not in ("seed", "value")]
    )
    missing = [c for c in keys if c not in frame.columns]
    if missing:
        fail(func, "by", f"columns of `frame` ({list(frame.columns)})", missing)
    grp = frame.dropna(subset=["value"]).groupby(keys, sort=False)["value"]
    out = grp.agg(mean="mean", sd="std", n="count").reset_index()
    tq = np.array(
        [_st.t.ppf(0.5 + confidence / 2, n - 1) if n > 1 else np.nan for n in out["n"]]
    )
    half = tq * out["sd"].to_numpy() / np.sqrt(out["n"].to_numpy())
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    return out


def _word(ok: bool) -> str:
    return "supported" if ok else "not supported"


def verdict_r1(
    frame: pd.DataFrame,
    *,
    metric: str = "euclidean",
    d_low: int | None = None,
    d_high: int | None = None,
    min_fraction: float = 0.8,
) -> tuple[str, pd.DataFrame]:
    r"""Acceptance criterion R1: does :math:`S_{N_k}` grow from low to high :math:`d`?

    Theory spec, section 3.3: *supported* when, for every law (and every :math:`k`)
    under ``metric``, the skewness at ``d_high`` exceeds that at ``d_low`` in at
    least ``min_fraction`` of the replicates (4 of 5 in the spec). Defaults: the
    smallest and largest :math:`d` in ``frame``.

    Returns
    -------
    verdict : str
        ``"supported"`` or ``"not supported"``.
    detail : pandas.DataFrame
        Per law and :math:`k`: ``fraction`` of replicates with an increase, ``ok``.
    """
    func = "verdict_r1"
    sub = frame[(frame["statistic"] == "skewness") & (frame["metric"] == metric)]
    if sub.empty:
        fail(func, "frame", f"skewness rows for metric {metric!r}", "none")
    d_low = int(sub["d"].min()) if d_low is None else d_low
    d_high = int(sub["d"].max()) if d_high is None else d_high
    wide = sub[sub["d"].isin([d_low, d_high])].pivot_table(
        index=["law", "k", "seed"], columns="d", values="value"
    )
    if d_low not in wide.columns or d_high not in wide.columns or d_low == d_high:
        fail(
            func,
            "frame",
            "two distinct dimensions to compare",
            f"d_low={d_low}, d_high={d_high}",
        )
    inc = (
        (wide[d_high] > wide[d_low])
        .groupby(level=["law", "k"])
        .mean()
        .rename("fraction")
        .reset_index()
    )
    inc["ok"] = inc["fraction"] >= min_fraction
    return _word(bool(inc["ok"].all())), inc


def verdict_r2(
    frame: pd.DataFrame,
    *,
    metric: str = "euclidean",
    d_min: int = 20,
    threshold: float = -0.5,
    statistic: str = "rho_centrality",
) -> tuple[str, pd.DataFrame]:
    r"""Acceptance criterion R2: :math:`\rho(N_k,\text{centrality})<-0.5` at :math:`d\ge20`.

    Theory spec, section 3.3: *supported* when the mean over replicates of
    ``statistic`` is below ``threshold`` for every law, :math:`k` and
    :math:`d\ge` ``d_min`` under ``metric``.

    Returns
    -------
    verdict : str
    detail : pandas.DataFrame
        Per law, :math:`d`, :math:`k`: ``mean`` and ``ok``.
    """
    func = "verdict_r2"
    sub = frame[
        (frame["statistic"] == statistic)
        & (frame["metric"] == metric)
        & (frame["d"] >= d_min)
    ]
    if sub.empty:
        fail(
            func,
            "frame",
            f"{statistic} rows for metric {metric!r} at d >= {d_min}",
            "none",
        )
    det = sub.groupby(["law", "d", "k"])["value"].mean().rename("mean").reset_index()
    det["ok"] = det["mean"] < threshold
    return _word(bool(det["ok"].all())), det


def verdict_d1(
    frame: pd.DataFrame, *, threshold: float = 0.5
) -> tuple[str, pd.DataFrame]:
    r"""Acceptance criterion D1/T2: where are hubs similar to *both* banks?

    Theory spec, section 3.3: a grid cell :math:`(c,\gamma)` is inside the region
    when the replicate means of :math:`\rho(N_k,m_{B_q})` and of
    :math:`\rho(N_k,m_{B_g})` both exceed ``threshold``. The verdict is
    ``"supported"`` when every cell is inside and ``"not supported"`` otherwise (then
    ``detail`` says where it holds).

    Returns
    -------
    verdict : str
    detail : pandas.DataFrame
        One row per cell: ``rho_q``, ``rho_g``, ``inside``.
    """
    keys = [c for c in ("latent", "gap_along", "cone", "gap") if c in frame.columns]
    sub = frame[frame["statistic"].isin(["rho_q", "rho_g"])]
    if sub.empty:
        fail(
            "verdict_d1",
            "frame",
            "rho_q and rho_g rows (from simulate_two_modality)",
            "none",
        )
    det = sub.pivot_table(
        index=keys, columns="statistic", values="value", aggfunc="mean"
    ).reset_index()
    det.columns.name = None
    det["inside"] = (det["rho_q"] > threshold) & (det["rho_g"] > threshold)
    return _word(bool(det["inside"].all())), det


# --------------------------------------------------------------------------- E6: bank benefit

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
    each method of :data:`BANK_METHODS` through
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
    gap_alongs = [
        check_choice(s, "gap_alongs", func, ("orthogonal", "cone"))
        for s in _as_list(gap_alongs, "gap_alongs", func)
    ]
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
    for latent in latents:
        for along in gap_alongs:
            for c in cones:
                for gap in gaps:
                    for rep in range(replicates):
                        g = torch.Generator().manual_seed(
                            derive_seed(seed, latent, along, c, gap, d, rep)
                        )
                        w = sample_two_modality(
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
        columns=[
            "experiment",
            "latent",
            "gap_along",
            "cone",
            "gap",
            "d",
            "k",
            "method",
            "seed",
            "statistic",
            "value",
        ],
    )


def verdict_t3(
    region: pd.DataFrame, benefit: pd.DataFrame, *, margin: float = 0.0
) -> tuple[str, pd.DataFrame]:
    r"""Acceptance criterion T3: DualIS beats IS-q in R@1 only inside the D1 region.

    ``region`` is the ``detail`` of :func:`verdict_d1`; ``benefit`` the frame of
    :func:`simulate_bank_benefit` (with methods ``dualis`` and ``is_q``). A cell
    *agrees* when "DualIS mean R@1 > IS-q mean R@1 + ``margin``" equals "the cell is
    inside the region". *Supported* when every cell that appears in both agrees.

    Returns
    -------
    verdict : str
    detail : pandas.DataFrame
        Per cell: ``dualis``, ``is_q``, ``dualis_wins``, ``inside``, ``agrees``.
    """
    func = "verdict_t3"
    keys = [
        c
        for c in ("latent", "gap_along", "cone", "gap")
        if c in benefit.columns and c in region.columns
    ]
    sub = benefit[
        (benefit["statistic"] == "R@1") & benefit["method"].isin(["dualis", "is_q"])
    ]
    if sub.empty or set(sub["method"]) != {"dualis", "is_q"}:
        fail(
            func,
            "benefit",
            "R@1 rows for methods 'dualis' and 'is_q'",
            sorted(set(benefit.get("method", []))),
        )
    det = sub.pivot_table(
        index=keys, columns="method", values="value", aggfunc="mean"
    ).reset_index()
    det.columns.name = None
    det = det.merge(region[[*keys, "inside"]], on=keys, how="inner")
    if det.empty:
        fail(func, "region", "cells shared with `benefit`", "none in common")
    det["dualis_wins"] = det["dualis"] > det["is_q"] + margin
    det["agrees"] = det["dualis_wins"] == det["inside"]
    return _word(bool(det["agrees"].all())), det


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class DimensionSweepConfig:
    """Parameters of notebook ``20_hubness_vs_dimension`` (claims R1, R5; E1, E3, E7)."""

    laws: tuple[str, ...] = (
        "gaussian",
        "uniform",
        "laplace",
        "student_t",
        "exponential",
        "lognormal",
    )
    dims: tuple[int, ...] = (3, 5, 10, 20, 50, 100, 200)
    metrics: tuple[str, ...] = ("euclidean", "cosine")
    n: int = 2000
    ks: tuple[int, ...] = (5, 10)
    replicates: int = 3
    hist_law: str = "gaussian"
    hist_dims: tuple[int, ...] = (3, 20, 100)
    embedding_dim: int = 512
    intrinsic_ranks: tuple[int, ...] = (5, 20, 100, 512)
    seed: int = 0
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/20_hubness_vs_dimension"


@dataclass(frozen=True)
class HubsNearMeanConfig:
    """Parameters of notebook ``21_hubs_near_mean`` (claims R2, R4, T1'; E2, E4)."""

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


@dataclass(frozen=True)
class TwoModalityConfig:
    """Parameters of notebook ``22_hubs_both_modalities`` (claims D1, T2, T3; E5, E6)."""

    cones: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    gaps: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    n: int = 1000
    d: int = 256
    sigma: float = 2.0
    latents: tuple[str, ...] = ("isotropic", "anisotropic")
    gap_alongs: tuple[str, ...] = ("orthogonal",)
    k: int = 10
    bank_size: int | None = None
    beta: float = 20.0
    hub_fraction: float = 0.01
    replicates: int = 2
    scatter_worlds: tuple[tuple[float, float], ...] = (
        (0.5, 0.0),
        (0.5, 0.5),
        (0.0, 0.5),
    )
    bank_cones: tuple[float, ...] = (0.5,)
    bank_methods: tuple[str, ...] = ("none", "is_q", "is_g", "dualis")
    seed: int = 0
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/22_hubs_both_modalities"


# --------------------------------------------------------------------------- figures


def _bands(ax: Any, frame: pd.DataFrame, x: str, label: str) -> None:
    frame = frame.sort_values(x)
    (line,) = ax.plot(frame[x], frame["mean"], marker="o", ms=3, label=label)
    if frame["ci_low"].notna().any():
        ax.fill_between(
            frame[x],
            frame["ci_low"],
            frame["ci_high"],
            color=line.get_color(),
            alpha=0.2,
            lw=0,
        )


def plot_lines(
    summary: pd.DataFrame,
    *,
    x: str = "d",
    hue: str = "law",
    panel: str | None = "metric",
    ylabel: str = "",
    logx: bool = True,
    reference: float | None = None,
) -> Any:
    """Lines of replicate means with confidence bands, one panel per ``panel`` value.

    ``summary`` is a :func:`summarize` output restricted to one statistic. Used for
    figures F1 (skewness vs :math:`d`) and F2b (:math:`\\rho` vs :math:`d`) of the
    theory chapter. Returns a matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    panels = [None] if panel is None else list(dict.fromkeys(summary[panel]))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 3.4), sharey=True, squeeze=False
    )
    for ax, pv in zip(axes[0], panels, strict=True):
        sub = summary if pv is None else summary[summary[panel] == pv]
        for hv, grp in sub.groupby(hue, sort=False):
            _bands(ax, grp, x, str(hv))
        if reference is not None:
            ax.axhline(reference, color="0.5", lw=0.8, ls="--")
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(x)
        if pv is not None:
            ax.set_title(f"{panel} = {pv}")
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_histograms(n_k_by_label: Mapping[str, Any], *, k: int) -> Any:
    r"""Histograms of :math:`N_k` with a log y-axis, one panel per label (figure F1b).

    In the style of Radovanović et al. 2010, Fig. 1. Returns a matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    labels = list(n_k_by_label)
    fig, axes = plt.subplots(
        1, len(labels), figsize=(3.4 * len(labels), 3.0), sharey=True, squeeze=False
    )
    for ax, lab in zip(axes[0], labels, strict=True):
        v = np.asarray(n_k_by_label[lab])
        counts = np.bincount(v)
        nz = counts > 0
        ax.plot(np.arange(counts.size)[nz], counts[nz] / v.size, marker="o", ms=3, lw=1)
        ax.set_yscale("log")
        ax.set_xlabel(f"$N_{{{k}}}$")
        ax.set_title(lab)
    axes[0][0].set_ylabel("fraction of points")
    fig.tight_layout()
    return fig


def plot_scatter_grid(
    items: Mapping[tuple[str, str], pd.DataFrame],
    *,
    x: str = "centrality",
    y: str = "n_k",
    xlabel: str = "",
) -> Any:
    r"""Scatter of ``y`` against ``x`` per (row, column) label, Spearman :math:`\rho` in titles (F2, F5).

    Returns a matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    rows = list(dict.fromkeys(r for r, _ in items))
    cols = list(dict.fromkeys(c for _, c in items))
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(3.0 * len(cols), 2.6 * len(rows)), squeeze=False
    )
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            f = items.get((r, c))
            if f is None:
                ax.set_visible(False)
                continue
            rho = spearman(
                torch.as_tensor(f[y].to_numpy().copy()),
                torch.as_tensor(f[x].to_numpy().copy()),
            )
            ax.scatter(f[x], f[y], s=2, alpha=0.3, rasterized=True)
            ax.set_title(f"{r}, {c}: ρ = {rho:.2f}", fontsize=9)
            if i == len(rows) - 1:
                ax.set_xlabel(xlabel or x)
            if j == 0:
                ax.set_ylabel(y)
    fig.tight_layout()
    return fig


def plot_heatmap(
    table: pd.DataFrame,
    *,
    title: str = "",
    zero_contour: bool = False,
    ax: Any = None,
    vmax: float = 1.0,
) -> Any:
    r"""Annotated heat map of a table of correlations in :math:`[-1, 1]` (F4, F5b).

    With ``zero_contour`` a contour is drawn where the value crosses 0 (the edge of
    the region where claim D1 holds, theory chapter). Returns the Figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(
            figsize=(1.0 + 0.9 * table.shape[1], 0.8 + 0.55 * table.shape[0])
        )
    else:
        fig = ax.figure
    vals = table.to_numpy(dtype=float)
    im = ax.imshow(
        vals,
        cmap="RdBu_r",
        vmin=-vmax,
        vmax=vmax,
        aspect="auto",
        origin="lower" if zero_contour else "upper",
    )
    ax.set_xticks(
        range(table.shape[1]), [str(c) for c in table.columns], rotation=30, ha="right"
    )
    ax.set_yticks(range(table.shape[0]), [str(r) for r in table.index])
    ax.set_xlabel(str(table.columns.name or ""))
    ax.set_ylabel(str(table.index.name or ""))
    ax.grid(False)
    for (i, j), v in np.ndenumerate(vals):
        if np.isfinite(v):
            ax.text(
                j,
                i,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if abs(v) > 0.6 * vmax else "black",
            )
    if zero_contour and min(vals.shape) > 1 and np.nanmin(vals) < 0 < np.nanmax(vals):
        ax.contour(vals, levels=[0.0], colors="k", linewidths=1.5)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def plot_hub_boxes(
    items: Mapping[str, pd.DataFrame], *, hub_fraction: float = 0.01
) -> Any:
    r"""Box plots of :math:`m_{B_q}` and :math:`m_{B_g}` for hubs vs the rest (F5c).

    Hubs are the top ``hub_fraction`` of gallery items by :math:`N_k`. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    names = list(items)
    fig, axes = plt.subplots(
        1, len(names), figsize=(3.2 * len(names), 3.0), sharey=True, squeeze=False
    )
    for ax, name in zip(axes[0], names, strict=True):
        f = items[name]
        n_hub = max(1, int(round(hub_fraction * len(f))))
        hub = np.zeros(len(f), dtype=bool)
        hub[np.argsort(-f["n_k"].to_numpy(), kind="stable")[:n_hub]] = True
        data = [f["m_bq"][hub], f["m_bq"][~hub], f["m_bg"][hub], f["m_bg"][~hub]]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(
            [1, 2, 3, 4], ["hubs\n$B_q$", "rest\n$B_q$", "hubs\n$B_g$", "rest\n$B_g$"]
        )
        ax.set_title(name, fontsize=9)
    axes[0][0].set_ylabel("mean cosine to the bank")
    fig.tight_layout()
    return fig


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


def summary_value(summary: pd.DataFrame, column: str = "mean", **where: Any) -> float:
    """The ``column`` of the one row of ``summary`` matching ``where``; NaN when none.

    A notebook helper for glued headline numbers, e.g.
    ``summary_value(s, law="gaussian", metric="cosine", d=100, k=10, statistic="skewness")``.
    A parameter set without that cell gives NaN instead of failing, so every glue key
    of a notebook exists for every parameter set.

    Raises
    ------
    ValueError
        When several rows match (a filter is missing) or a filter names no column.
    """
    func = "summary_value"
    mask = pd.Series(True, index=summary.index)
    for key, value in where.items():
        if key not in summary.columns:
            fail(
                func, key, f"a column of `summary` ({list(summary.columns)})", "absent"
            )
        mask &= summary[key] == value
    rows = summary.loc[mask, column]
    if len(rows) > 1:
        fail(
            func,
            "where",
            "filters that select at most one row",
            f"{len(rows)} rows for {where}",
        )
    return float(rows.iloc[0]) if len(rows) else math.nan


def paired_difference(
    frame: pd.DataFrame, *, reference: str = "none", column: str = "method"
) -> pd.DataFrame:
    """Subtract, within each cell and seed, the value of the ``reference`` method.

    For the tidy frame of :func:`simulate_bank_benefit`: every method is applied to
    the same draws, so the per-seed difference to ``reference`` removes the
    world-to-world variation that dominates the raw R@1 (a paired comparison). The
    reference rows are dropped.

    Returns
    -------
    pandas.DataFrame
        The same columns, ``value`` replaced by the paired difference.
    """
    func = "paired_difference"
    if not isinstance(frame, pd.DataFrame) or column not in frame.columns:
        fail(
            func,
            "frame",
            f"a tidy DataFrame with a `{column}` column",
            type(frame).__name__,
            exc=TypeError,
        )
    if reference not in set(frame[column]):
        fail(
            func,
            "reference",
            f"one of the values of `{column}` ({sorted(set(frame[column]))})",
            repr(reference),
        )
    keys = [c for c in frame.columns if c not in (column, "value")]
    ref = (
        frame[frame[column] == reference]
        .drop(columns=column)
        .rename(columns={"value": "_ref"})
    )
    out = frame[frame[column] != reference].merge(ref, on=keys, how="left")
    out["value"] = out["value"] - out.pop("_ref")
    return out
