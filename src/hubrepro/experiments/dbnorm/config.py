r"""The DBNorm notebooks' configuration and the driver's view of the method vocabulary.

The methods are the variants of :mod:`hubrepro.normalize.variants` (the one place
where keys, estimators, fixed options, labels, banks and tunable hyperparameters are
written down). What this module adds is what depends on a :class:`DBNormConfig`: the
neighbourhood sizes ``k``, ``csls_k`` and ``nnn_k`` the config passes to the
estimators, and the fallback values of hyperparameters that cannot be tuned.

Book: :ref:`sec-dbnorm-protocol`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hubrepro._validation import check_choice, check_int, check_positive, fail
from hubrepro.normalize import DIRECTIONS
from hubrepro.normalize.variants import VARIANTS, variant, variant_label

__all__ = [
    "DIRECTIONS",
    "METHOD_KEYS",
    "TUNED",
    "FALLBACK",
    "RECALL_SUM",
    "DBNormConfig",
    "method_spec",
    "method_label",
]

#: Method keys of the driver: the variant keys of :data:`hubrepro.normalize.variants.VARIANTS`.
METHOD_KEYS = tuple(VARIANTS)

#: Hyperparameters a method may tune on validation (a method's own subset: ``Variant.tuned``).
TUNED = ("beta_query", "beta_gallery", "alpha")

#: Values of unset (``None``) hyperparameters when there is no validation split.
#: NNN's alpha is the default of the released NNN code (see hubrepro.normalize.NNN).
FALLBACK = {"beta_query": 20.0, "beta_gallery": 20.0, "alpha": 0.5}

#: Column of the driver's tables holding R@1 + R@5 + R@10 of **one** direction (the row's).
#: :func:`hubrepro.retrieval.evaluate_retrieval`'s ``Rsum`` adds both directions; this
#: sum is not that, so it has its own name.
RECALL_SUM = "R@1+5+10"

# estimator -> {estimator parameter: DBNormConfig field} (options that come from the config)
_CONFIG_OPTIONS = {
    "dis": {"k": "k"},
    "dualdis": {"k": "k"},
    "csls": {"k": "csls_k"},
    "nnn": {"k": "nnn_k"},
}


@dataclass(frozen=True)
class DBNormConfig:
    """Parameters of the DBNorm notebooks (40-44); field names equal the notebook parameters.

    Attributes
    ----------
    dataset : str
        ``"embedded"`` (every shipped dataset: ``stdlib-code`` and the synthetic
        settings), ``"stdlib-code"``, ``"synthetic"`` or ``"user"`` (read ``data_dir``).
    data_dir : str or None
        A user's folder (layout in the data chapter); needed for ``"user"``.
    protocol : str
        Split protocol of ``stdlib-code``: ``"random"`` or ``"by-module"``.
    dataset_options : dict
        Extra keyword arguments of :func:`hubrepro.datasets.load_dataset` for
        ``stdlib-code`` / ``user`` (e.g. subset sizes).
    synthetic_settings : dict of str to dict
        Label -> keyword arguments of ``load_dataset("synthetic", ...)``: the synthetic
        datasets of the main table (e.g. several hubness levels).
    methods : tuple of str
        Method keys (:data:`METHOD_KEYS`).
    directions : tuple of str
        Retrieval directions (``DIRECTIONS``).
    beta_query_grid, beta_gallery_grid : tuple of float
        Grids of :math:`\\beta_q`, :math:`\\beta_g` (cosine scale) searched on
        validation for an unset beta.
    alpha_grid : tuple of float
        Grid of NNN's :math:`\\alpha` (searched when ``alpha`` is unset).
    beta_query, beta_gallery, alpha : float or None
        ``None`` (default): tuned on the validation split, or :data:`FALLBACK` (20, 20,
        0.5) when there is none (a user's similarity matrices). A number is used as
        given by every method that takes it and is never tuned.
    k : int
        Activation-set size of DIS / DualDIS.
    csls_k : int
        Neighbourhood size of CSLS.
    nnn_k : int or None
        Neighbourhood size of NNN; ``None`` (default): NNN's own default (256, the
        released code's), capped at the query-bank size. A number must fit the bank.
    n_val : int
        Bank gallery items carved out as the validation split; the gallery bank must be
        larger (the rest stays the bank). Not used when the data have no gallery bank
        or are similarity matrices (no split is possible).
    tune_metric : str
        Validation criterion: ``"R@1"``, ``"R@5"``, ``"R@10"`` or ``"R@1+5+10"``
        (:data:`RECALL_SUM`, of the direction evaluated).
    hubness_k : int
        :math:`k` of the k-occurrence statistics.
    ties : str
        Tie policy of the ranks (``average``, ``optimistic``, ``pessimistic``).
    logit_scale : float
        Divides the :math:`\\beta` grids on logit-scaled user matrices.
    setting : str or None
        Notebook 41: the published setting (``setting`` column of
        ``data/published/dbnorm.csv``, e.g. ``"MSR-VTT CLIP4Clip"``) that ``data_dir``
        holds; its row of the comparison is filled from your data.
    bank_fractions : tuple of float
        Notebook 42: bank-size fractions.
    k_values : tuple of int
        Notebook 42: activation-set sizes.
    shift_values : tuple of float
        Notebook 42: ``shift`` of the synthetic generator's banks (robustness).
    n_examples : int
        Notebook 43: retrieval examples shown; notebook 44: test items (and bank
        items) of the small demonstration matrices.
    demo_beta_query, demo_beta_gallery : float
        Notebook 44: the betas (cosine scale) of the released code's defect
        demonstrations.
    n_boot : int
        Bootstrap resamples of every 95 % interval (paired over the ranked test items).
    equivalence : float
        Notebook 41: the margin, in points of R@1, within which a claim that two
        methods "match" counts as supported (their difference's interval must lie
        inside it).
    seed : int
        The notebook's one seed (splits, subsamples, bootstrap resamples).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    artifact_dir : str
        Where CSV / PNG artifacts and ``provenance.json`` go.
    """

    dataset: str = "embedded"
    data_dir: str | None = None
    protocol: str = "random"
    dataset_options: dict = field(default_factory=dict)
    synthetic_settings: dict = field(default_factory=dict)
    methods: tuple[str, ...] = (
        "none",
        "is",
        "dis",
        "csls",
        "dualis",
        "dualdis",
        "dualdis-faithful",
        "nnn",
    )
    directions: tuple[str, ...] = DIRECTIONS
    beta_query_grid: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0)
    beta_gallery_grid: tuple[float, ...] = (1.0, 2.5, 5.0, 10.0, 20.0, 40.0)
    alpha_grid: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    beta_query: float | None = None
    beta_gallery: float | None = None
    alpha: float | None = None
    k: int = 1
    csls_k: int = 10
    nnn_k: int | None = None
    n_val: int = 300
    tune_metric: str = "R@1"
    hubness_k: int = 10
    ties: str = "average"
    logit_scale: float = 100.0
    setting: str | None = None
    bank_fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    k_values: tuple[int, ...] = (1, 2, 5, 10)
    shift_values: tuple[float, ...] = (0.0, 0.5, 1.0)
    n_examples: int = 3
    demo_beta_query: float = 20.0
    demo_beta_gallery: float = 5.0
    n_boot: int = 2000
    equivalence: float = 1.0
    seed: int = 0
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/dbnorm"

    def __post_init__(self) -> None:
        func = "DBNormConfig"
        check_choice(
            self.dataset,
            "dataset",
            func,
            ("embedded", "stdlib-code", "synthetic", "user"),
        )
        if self.dataset == "user" and not self.data_dir:
            fail(func, "data_dir", "a folder when `dataset` is 'user'", repr(self.data_dir),
                 "Pass `-p data_dir /path/to/your/data`.")  # fmt: skip
        for m in self.methods:
            check_choice(m, "methods", func, METHOD_KEYS)
        for d in self.directions:
            check_choice(d, "directions", func, DIRECTIONS)
        for name in ("beta_query_grid", "beta_gallery_grid", "alpha_grid"):
            grid = getattr(self, name)
            if not grid or any(
                (not isinstance(v, int | float)) or not math.isfinite(v) or v < 0
                for v in grid
            ):
                fail(
                    func,
                    name,
                    "a non-empty sequence of non-negative numbers",
                    repr(grid),
                )
        check_choice(
            self.tune_metric, "tune_metric", func, ("R@1", "R@5", "R@10", RECALL_SUM)
        )
        for name in TUNED:
            if getattr(self, name) is not None:
                check_positive(getattr(self, name), name, func, allow_zero=True)
        for name in ("demo_beta_query", "demo_beta_gallery"):
            check_positive(getattr(self, name), name, func)
        check_int(self.k, "k", func, low=1)
        if self.nnn_k is not None:
            check_int(self.nnn_k, "nnn_k", func, low=1)
        check_int(self.n_val, "n_val", func, low=1)
        check_int(self.hubness_k, "hubness_k", func, low=1)
        check_int(self.seed, "seed", func, low=0, high=2**63 - 1)
        check_int(self.n_boot, "n_boot", func, low=10)
        check_positive(self.equivalence, "equivalence", func)


def method_spec(
    key: str, cfg: DBNormConfig
) -> tuple[str, dict[str, Any], tuple[str, ...]]:
    """Return ``(estimator name, fixed hyperparameters, tuned hyperparameter names)`` of a key.

    The estimator, its fixed options and the tunable names are the variant's
    (:func:`hubrepro.normalize.variants.variant`); the neighbourhood sizes come from
    ``cfg`` (``k`` for DIS / DualDIS, ``csls_k`` for CSLS, ``nnn_k`` for NNN).

    Book: :ref:`sec-normalisation` (the methods), :ref:`sec-dbnorm` (the protocol).

    Examples
    --------
    >>> method_spec("dis-g", DBNormConfig(k=5))
    ('dis', {'bank': 'gallery', 'k': 5}, ('beta_gallery',))
    """
    v = variant(key)
    fixed = dict(v.options)
    for param, name in _CONFIG_OPTIONS.get(v.method, {}).items():
        fixed[param] = getattr(cfg, name)
    return v.method, fixed, v.tuned


def method_label(key: str) -> str:
    """Display name of a method key (:func:`hubrepro.normalize.variants.variant_label`)."""
    return variant_label(key)


def banks_needed(key: str) -> tuple[str, ...]:
    """The banks method ``key`` needs: ``"query"``, ``"gallery"``, ``"cross"`` (the variant's)."""
    return variant(key).banks
