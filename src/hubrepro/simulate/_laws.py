"""Samplers: the single-set laws and the two-modality world of the theory chapter.

Part of :mod:`hubrepro.simulate`; import from there. Book: :ref:`sec-theory`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from hubrepro._compat import resolve_device
from hubrepro._validation import (
    check_choice,
    check_int,
    check_positive,
    fail,
)

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


#: Names of the single-set laws accepted by :func:`sample` (chapter :ref:`sec-theory`).
LAWS: tuple[str, ...] = tuple(_LAW_DEFAULTS)


#: Laws symmetric about their mean (all but the asymmetric counter-checks).
SYMMETRIC_LAWS: tuple[str, ...] = tuple(
    name for name in LAWS if name not in ("exponential", "lognormal")
)


#: Geometries of the simulations: Euclidean distance, cosine, cosine after centring
#: (the metrics of :func:`hubrepro.hubness.knn` that have a centrality).
METRICS: tuple[str, ...] = ("euclidean", "cosine", "cosine_centred")


_INT_OPTIONS = {"df", "components", "rank"}


def parse_law(spec: str) -> tuple[str, dict[str, float]]:
    """Split a law spec ``"name[:key=value,...]"`` into its name and full options.

    Law specs keep notebook parameters literal: ``"anisotropic:alpha=2"``,
    ``"low_rank:rank=5"``, ``"shifted:c=1"``, ``"student_t:df=5"``,
    ``"mixture:components=3,spread=4"``. Missing options take the defaults listed in
    :func:`sample`.

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

    The laws of the simulations of chapter :ref:`sec-theory` (claims R1, R2, R4, R5):
    ``gaussian`` :math:`\mathcal N(0,I_d)`; ``uniform``
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
    Chapter :ref:`sec-theory`, "Claim R1: hubness grows with dimension".

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


@dataclass(frozen=True)
class TwoModalitySample:
    r"""One draw of the two-modality world (chapter :ref:`sec-theory`, "Claim D1").

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
    vectors); ``"cone"`` puts :math:`v=u`, the variant where the gap lies along the
    shared mean direction.

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

    Implements the two-modality world of chapter :ref:`sec-theory`, "Claim D1: hubs
    are similar to both modalities" (our reconstruction, labelled [REC] there): for
    each pair :math:`i`,

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
        Size of each bank; default :math:`4n` (as in notebook 22's ``paper``
        parameter set).
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
