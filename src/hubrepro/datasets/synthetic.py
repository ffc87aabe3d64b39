r"""A synthetic CLIP-like paired generator: concepts -> two modalities -> the unit sphere.

The generator is the default data for theory checks and scale benchmarks: it is
seeded, fast on any device, and reproduces the statistics that matter for hubness in
cross-modal retrieval (see :func:`describe`):

- **hubness**: a right-skewed k-occurrence distribution, from the high intrinsic
  dimension and the popularity skew of concepts;
- **the modality gap** :cite:`liang2022mind`: query and gallery embeddings live in two
  separate cones; the distance between the two modality means is set exactly;
- **the cone effect / anisotropy**: all embeddings share a common direction and an
  uneven spectrum, so the mean pairwise cosine is well above zero.

Model (book notation, one draw per call):

.. math::

    c_j \sim \mathcal N(0, I_L/L), \quad j = 1..C, \qquad
    \pi_j \propto j^{-a} \ (\text{Zipf}),

    y_i \sim \pi, \quad z_i = c_{y_i} + \sigma_{\mathrm{item}}\,\varepsilon_i, \quad
    \varepsilon_i \sim \mathcal N(0, I_L/L),

    g_i = \mathrm{norm}\big(D (A_g z_i + \sigma\,\xi_i) + \rho w - \tfrac{t}{2} v\big), \qquad
    q_{i,r} = \mathrm{norm}\big(D (A_q (z_i + \sigma_{\mathrm{cap}}\,\varepsilon_{i,r}) + \sigma\,\xi_{i,r}) + \rho w + \tfrac{t}{2} v\big),

with :math:`A_m = (A + \mu E_m)/\sqrt{1+\mu^2}` two modality-specific maps
(:math:`A, E_m \sim \mathcal N(0, 1/L)` of shape :math:`d \times L`), a spectrum
:math:`D = \mathrm{diag}(k^{-\alpha/2})` (anisotropy :math:`\alpha`), a shared cone
direction :math:`w` of strength :math:`\rho`, and a gap direction :math:`v \perp w`;
:math:`t` is found by bisection so that :math:`\lVert \bar q - \bar g \rVert` on the
test split equals the requested ``gap``. Every gallery item has ``captions_per_item``
queries (multi-caption, like MSR-VTT or COCO: ``query_to_gallery`` is many-to-one).

Book: :ref:`sec-data`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from hubrepro._compat import resolve_device
from hubrepro._validation import check_int, check_positive, check_probability, fail

from ._base import PairedData

__all__ = ["SyntheticConfig", "make_synthetic", "describe", "gap_norm", "mean_cosine"]


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of :func:`make_synthetic` (field names equal the notebook parameters)."""

    n_gallery: int = 1000  # test gallery items (MSR-VTT 1k-A size)
    captions_per_item: int = 1  # queries per gallery item (MSR-VTT 20, COCO 5)
    n_bank_gallery: int = 4000  # bank gallery items
    bank_captions_per_item: int | None = None  # default: captions_per_item
    dim: int = 256  # embedding dimension d
    latent_dim: int | None = None  # latent dimension L (default: dim)
    n_concepts: int = 200  # number of latent concepts C
    zipf: float = 1.0  # Zipf exponent a of the concept popularity
    item_noise: float = 0.6  # sigma_item: spread of items around their concept
    caption_noise: float = 0.3  # sigma_cap: spread of captions around their item
    noise: float = 1.3  # sigma: modality-specific noise (sets R@1, about 50 % here)
    map_noise: float = 0.3  # mu: how much the two modality maps differ
    gap: float = 0.8  # target modality-gap norm ||mean(query) - mean(gallery)||
    cone: float = 0.5  # rho: strength of the shared cone direction
    anisotropy: float = 0.5  # alpha: spectrum decay D = diag(k^(-alpha/2))
    shift: float = 0.0  # bank distribution shift in [0, 1] (prior and offset)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gap_norm(query: torch.Tensor, gallery: torch.Tensor) -> float:
    r"""Modality-gap norm :math:`\lVert \bar q - \bar g \rVert` of two embedding sets :cite:`liang2022mind`."""
    return float((query.mean(0) - gallery.mean(0)).norm())


def mean_cosine(x: torch.Tensor) -> float:
    r"""Mean pairwise cosine within one set, self-pairs excluded (the cone effect).

    Uses :math:`\sum_{i \ne j} \hat x_i^\top \hat x_j = \lVert \sum_i \hat x_i \rVert^2 - n`,
    so it costs :math:`O(nd)`.
    """
    n = x.shape[0]
    if n < 2:
        return float("nan")
    xu = _unit(x.double())
    return float((xu.sum(0).norm() ** 2 - n) / (n * (n - 1)))


def _draw_side(
    labels: torch.Tensor,
    per_item: int,
    concepts: torch.Tensor,
    maps: tuple[torch.Tensor, torch.Tensor],
    spectrum: torch.Tensor,
    cfg: SyntheticConfig,
    offset: torch.Tensor | None,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Un-normalised (query, gallery, query_to_gallery) of one split."""
    n, latent = labels.shape[0], concepts.shape[1]
    dev, dt = concepts.device, concepts.dtype
    s = 1.0 / math.sqrt(latent)
    z = concepts[labels] + cfg.item_noise * s * torch.randn(
        n, latent, generator=gen, device=dev, dtype=dt
    )
    if offset is not None:
        z = z + offset
    a_q, a_g = maps
    d = a_q.shape[0]
    sd = 1.0 / math.sqrt(d)
    gal = (
        z @ a_g.T
        + cfg.noise * sd * torch.randn(n, d, generator=gen, device=dev, dtype=dt)
    ) * spectrum
    zq = z.repeat_interleave(per_item, dim=0)
    zq = zq + cfg.caption_noise * s * torch.randn(
        zq.shape, generator=gen, device=dev, dtype=dt
    )
    qry = (
        zq @ a_q.T
        + cfg.noise
        * sd
        * torch.randn(zq.shape[0], d, generator=gen, device=dev, dtype=dt)
    ) * spectrum
    q2g = torch.arange(n, device=dev).repeat_interleave(per_item)
    return qry, gal, q2g


def _calibrate_gap(
    qry: torch.Tensor, gal: torch.Tensor, v: torch.Tensor, target: float
) -> float:
    """Offset ``t`` whose normalised sets have gap norm ``target`` (or the closest).

    The gap norm grows monotonically with ``t`` beyond its minimiser ``t0`` (found by
    ternary search on ``[-4, 4]``; near 0 since both clouds are centred); bisection
    on ``[t0, hi]`` then hits the target. Targets below the smallest reachable gap
    return ``t0``.
    """

    # ||x + s v||^2 = ||x||^2 + 2 s <x, v> + s^2 for unit v: each evaluation needs
    # one matrix-vector product per side instead of renormalising both clouds
    x2 = (qry.double().pow(2).sum(1), gal.double().pow(2).sum(1))
    xv = (qry.double() @ v.double(), gal.double() @ v.double())
    xs = (qry.double().T.contiguous(), gal.double().T.contiguous())
    vd = v.double()

    def mean_unit(side: int, shift: float) -> torch.Tensor:
        w = (x2[side] + 2 * shift * xv[side] + shift * shift).clamp_min(1e-24).rsqrt()
        return (torch.mv(xs[side], w) + shift * w.sum() * vd) / w.numel()

    def gap_at(t: float) -> float:
        return float((mean_unit(0, 0.5 * t) - mean_unit(1, -0.5 * t)).norm())

    lo, hi = -4.0, 4.0
    for _ in range(40):  # (2/3)^40 * 8 < 1e-6
        m1, m2 = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        if gap_at(m1) < gap_at(m2):
            hi = m2
        else:
            lo = m1
    t0 = 0.5 * (lo + hi)
    if gap_at(t0) >= target:
        return t0
    lo, hi = t0, max(t0, 0.0) + 1.0
    while gap_at(hi) < target and hi < 1e6:
        hi *= 2.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if gap_at(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def make_synthetic(
    config: SyntheticConfig | None = None,
    *,
    seed: int = 0,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    **options: Any,
) -> PairedData:
    """Draw a CLIP-like paired benchmark with a test split and a bank.

    Parameters
    ----------
    config : SyntheticConfig, optional
        The knobs; keyword ``options`` override its fields (e.g. ``gap=0.5``).
    seed : int, default 0
        Seed of a fresh ``torch.Generator`` on ``device`` (ignored when ``generator``
        is given). Equal seeds give equal data on the same device.
    generator : torch.Generator, optional
        Source of randomness; its device is where the data is drawn.
    device : str or torch.device, default "cpu"
        ``"auto"`` uses CUDA when available.
    dtype : torch.dtype, default torch.float32
        Floating dtype of the embeddings.
    **options
        Fields of :class:`SyntheticConfig`.

    Returns
    -------
    PairedData
        ``query`` ``(n_gallery * captions_per_item, dim)``, ``gallery``
        ``(n_gallery, dim)``, L2-normalised; ``query_to_gallery`` many-to-one; a
        paired bank (``bank_query_to_gallery``); concept labels on all four sides;
        ``meta`` holds the config, the calibrated offset ``t`` and the seed.

    Raises
    ------
    ValueError, TypeError
        For unknown options or out-of-range values.

    Notes
    -----
    The gap is calibrated on the test split; the bank, drawn from the same maps and
    offset, has a gap within sampling error of it (or a different one under
    ``shift``). With ``shift`` = s, the bank's concept prior is
    :math:`(1-s)\\pi + s\\,\\pi_{\\mathrm{perm}}` (a permuted popularity) and its items
    are offset in latent space by ``s`` times a random unit vector: a shifted bank for
    the DIS-robustness experiments.

    Book
    ----
    :ref:`sec-data`.
    """
    func = "make_synthetic"
    cfg = config if config is not None else SyntheticConfig()
    if not isinstance(cfg, SyntheticConfig):
        fail(func, "config", "a SyntheticConfig", type(cfg).__name__, exc=TypeError)
    if options:
        from hubrepro.config import from_params, to_params

        cfg = from_params(SyntheticConfig, {**to_params(cfg), **options})
    _check_config(cfg, func)
    if dtype not in (torch.float32, torch.float64):
        fail(func, "dtype", "torch.float32 or torch.float64", dtype, exc=TypeError)
    if generator is None:
        dev = resolve_device(device)
        gen = torch.Generator(device=dev).manual_seed(check_int(seed, "seed", func))
    else:
        if not isinstance(generator, torch.Generator):
            fail(
                func,
                "generator",
                "a torch.Generator",
                type(generator).__name__,
                exc=TypeError,
            )
        gen = generator
        dev = torch.device(generator.device)
    latent = cfg.latent_dim or cfg.dim
    d = cfg.dim
    bank_per = cfg.bank_captions_per_item or cfg.captions_per_item

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, device=dev, dtype=dtype)

    concepts = randn(cfg.n_concepts, latent) / math.sqrt(latent)
    a = randn(d, latent) / math.sqrt(latent)
    scale = 1.0 / math.sqrt(1.0 + cfg.map_noise**2)
    maps = (
        (a + cfg.map_noise * randn(d, latent) / math.sqrt(latent)) * scale,
        (a + cfg.map_noise * randn(d, latent) / math.sqrt(latent)) * scale,
    )
    ranks = torch.arange(1, d + 1, device=dev, dtype=dtype)
    spectrum = ranks ** (-cfg.anisotropy / 2)
    spectrum = spectrum / spectrum.pow(2).mean().sqrt()
    w = _unit(randn(d))
    v = randn(d)
    v = _unit(v - (v @ w) * w)
    prior = torch.arange(1, cfg.n_concepts + 1, device=dev, dtype=torch.float64) ** (
        -cfg.zipf
    )
    prior = prior / prior.sum()
    labels = torch.multinomial(prior, cfg.n_gallery, replacement=True, generator=gen)
    qry, gal, q2g = _draw_side(
        labels, cfg.captions_per_item, concepts, maps, spectrum, cfg, None, gen
    )
    bank_prior = prior
    bank_offset = None
    if cfg.shift > 0:
        perm = torch.randperm(cfg.n_concepts, generator=gen, device=dev)
        bank_prior = (1 - cfg.shift) * prior + cfg.shift * prior[perm]
        bank_offset = cfg.shift * _unit(randn(latent))
    bank_labels = torch.multinomial(
        bank_prior, cfg.n_bank_gallery, replacement=True, generator=gen
    )
    bq, bg, bq2g = _draw_side(
        bank_labels, bank_per, concepts, maps, spectrum, cfg, bank_offset, gen
    )
    # centre each modality on its test cloud (the same shift for the bank), so the
    # cone and the gap come only from `cone` and `gap`
    q_mean, g_mean = qry.mean(0), gal.mean(0)
    qry, bq = qry - q_mean + cfg.cone * w, bq - q_mean + cfg.cone * w
    gal, bg = gal - g_mean + cfg.cone * w, bg - g_mean + cfg.cone * w
    t = _calibrate_gap(qry, gal, v, cfg.gap)
    half = 0.5 * t * v
    from hubrepro.config import to_params

    return PairedData(
        name="synthetic",
        query=_unit(qry + half),
        gallery=_unit(gal - half),
        query_to_gallery=q2g,
        bank_query=_unit(bq + half),
        bank_gallery=_unit(bg - half),
        bank_query_to_gallery=bq2g,
        query_labels=labels.repeat_interleave(cfg.captions_per_item),
        gallery_labels=labels,
        bank_query_labels=bank_labels.repeat_interleave(bank_per),
        bank_gallery_labels=bank_labels,
        meta={
            "source": "synthetic",
            "config": to_params(cfg),
            "gap_offset": t,
            "seed": None if generator is not None else seed,
            "query_modality": "synthetic text",
            "gallery_modality": "synthetic image",
        },
    )


def _check_config(cfg: SyntheticConfig, func: str) -> None:
    for name in (
        "n_gallery",
        "captions_per_item",
        "n_bank_gallery",
        "dim",
        "n_concepts",
    ):
        check_int(getattr(cfg, name), name, func, low=1)
    check_int(cfg.dim, "dim", func, low=3)
    if cfg.bank_captions_per_item is not None:
        check_int(cfg.bank_captions_per_item, "bank_captions_per_item", func, low=1)
    if cfg.latent_dim is not None:
        check_int(cfg.latent_dim, "latent_dim", func, low=1)
    for name in (
        "zipf",
        "item_noise",
        "caption_noise",
        "noise",
        "map_noise",
        "cone",
        "anisotropy",
    ):
        check_positive(getattr(cfg, name), name, func, allow_zero=True)
    g = check_positive(cfg.gap, "gap", func, allow_zero=True)
    if g >= 1.9:
        fail(
            func,
            "gap",
            "in [0, 1.9)",
            g,
            "Two unit-norm clouds cannot be 2 apart unless they collapse to points.",
        )
    check_probability(cfg.shift, "shift", func)


def describe(data: PairedData, *, k: int = 10) -> dict[str, float]:
    """Summary statistics of a paired benchmark: retrieval, hubness, geometry.

    Parameters
    ----------
    data : PairedData
        Any paired data (synthetic, stdlib-code, users').
    k : int, default 10
        Neighbourhood size of the k-occurrence :math:`N_k`.

    Returns
    -------
    dict
        ``R@1`` (query->gallery, percent), ``skewness`` (of the gallery's
        :math:`N_k` over the test queries; larger = more hubness), ``gap_norm``
        (``gap_norm``), ``mean_cos_query``, ``mean_cos_gallery``
        (``mean_cosine``: the cone effect), ``mean_cos_pairs`` (mean cosine of
        matching pairs), ``n_query``, ``n_gallery``.

    Book
    ----
    :ref:`sec-data`.
    """
    from hubrepro.hubness import k_occurrence, skewness
    from hubrepro.retrieval import evaluate_retrieval

    if not isinstance(data, PairedData):
        fail("describe", "data", "a PairedData", type(data).__name__, exc=TypeError)
    sims = data.sims()
    res = evaluate_retrieval(sims, data.query_to_gallery, ks=(1,))
    n_k = k_occurrence(sims, k=min(k, data.n_gallery))
    pairs = (_unit(data.query) * _unit(data.gallery)[data.gt]).sum(1)
    return {
        "R@1": float(res["query_to_gallery"]["R@1"]),
        "skewness": float(skewness(n_k)),
        "gap_norm": gap_norm(data.query, data.gallery),
        "mean_cos_query": mean_cosine(data.query),
        "mean_cos_gallery": mean_cosine(data.gallery),
        "mean_cos_pairs": float(pairs.mean()),
        "n_query": data.n_query,
        "n_gallery": data.n_gallery,
    }
