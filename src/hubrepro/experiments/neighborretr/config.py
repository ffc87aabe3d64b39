r"""The NeighborRetr notebooks' configuration: the world, the encoders, the conditions.

A *condition* is a named set of overrides of :class:`~hubrepro.training.TrainConfig`
(:data:`CONDITIONS`), plus two families of names resolved by
:func:`condition_overrides`:

- ``kappa-<value>`` -- NeighborRetr (``compat="official"``) with the centrality scale
  :math:`\kappa` set to the value (the :math:`\kappa` sweep);
- ``boost-uniform``, ``boost-neighbor``, ``boost-kl``, ``boost-all`` -- NeighborRetr
  (official) with the weight of :math:`L_{\rm Opt}`, :math:`L_{\rm Nbi}`,
  :math:`L_{\rm KL}` (or all three) raised to the value in
  :attr:`StudyConfig.boosts` (the weight sweep).

The ablations remove one term of the *official* objective, since the verdicts on the
paper's claims are decided on the authors' released behaviour (the reporting rule of
:ref:`sec-neighborretr`); ``neighborretr`` is the project's fixed setting beside it.

Book: :ref:`sec-neighborretr`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from hubrepro._validation import check_choice, check_int, check_positive, fail

__all__ = [
    "OFFICIAL",
    "CONDITIONS",
    "CONDITION_LABELS",
    "BOOST_FIELDS",
    "StudyConfig",
    "condition_overrides",
    "condition_label",
]

#: The authors' objective: every flag of the released code (``compat="official"``).
OFFICIAL: dict[str, Any] = {"loss": "neighborretr", "compat": "official"}

#: Named experimental conditions: overrides of :class:`~hubrepro.training.TrainConfig`.
CONDITIONS: dict[str, dict[str, Any]] = {
    # the CLIP recipe: a learnt temperature, starting at 1/0.07
    "infonce": {
        "loss": "infonce",
        "logit_scale_init": 1 / 0.07,
        "learn_logit_scale": True,
    },
    # InfoNCE at NeighborRetr's fixed logit scale 100: isolates the extra terms
    "infonce-fixed-scale": {"loss": "infonce"},
    # the project's setting of the loss flags (the table of sec-neighborretr)
    "neighborretr": {"loss": "neighborretr"},
    "neighborretr-official": dict(OFFICIAL),
    "no-uniform": {**OFFICIAL, "w_uniform": 0.0},
    "no-neighbor": {**OFFICIAL, "w_neighbor": 0.0},
    "no-kl": {**OFFICIAL, "w_kl": 0.0},
    "kappa-0": {**OFFICIAL, "kappa": 0.0},
}

#: Display names of :data:`CONDITIONS`.
CONDITION_LABELS: dict[str, str] = {
    "infonce": "InfoNCE (learnt temperature)",
    "infonce-fixed-scale": "InfoNCE (scale 100)",
    "neighborretr": "NeighborRetr (fixed)",
    "neighborretr-official": "NeighborRetr (official)",
    "no-uniform": "NeighborRetr − L_Opt",
    "no-neighbor": "NeighborRetr − L_Nbi",
    "no-kl": "NeighborRetr − L_KL",
    "kappa-0": "NeighborRetr, κ = 0",
}

#: Weight fields of the terms a ``boost-<term>`` condition raises.
BOOST_FIELDS: dict[str, str] = {
    "uniform": "w_uniform",
    "neighbor": "w_neighbor",
    "kl": "w_kl",
}
_TERM_NAMES = {"uniform": "L_Opt", "neighbor": "L_Nbi", "kl": "L_KL"}

_KAPPA = re.compile(r"^kappa-(\d+(?:\.\d+)?)$")


def condition_overrides(
    name: str, boosts: dict[str, float] | None = None
) -> dict[str, Any]:
    """The :class:`~hubrepro.training.TrainConfig` overrides of condition ``name``.

    Examples
    --------
    >>> condition_overrides("kappa-3")["kappa"]
    3.0
    >>> condition_overrides("boost-kl", {"w_kl": 100.0})["w_kl"]
    100.0
    """
    if name in CONDITIONS:
        return dict(CONDITIONS[name])
    m = _KAPPA.match(str(name))
    if m:
        return {**OFFICIAL, "kappa": float(m.group(1))}
    if str(name).startswith("boost-"):
        term = str(name)[len("boost-") :]
        boosts = dict(boosts or {})
        fields = (
            list(BOOST_FIELDS.values()) if term == "all" else [BOOST_FIELDS.get(term)]
        )
        if None not in fields and all(f in boosts for f in fields):
            return {**OFFICIAL, **{f: float(boosts[f]) for f in fields}}
    fail(
        "condition_overrides",
        "name",
        f"one of {sorted(CONDITIONS)}, 'kappa-<value>' or 'boost-<uniform|neighbor|kl|all>' "
        "(with its weight in `boosts`)",
        repr(name),
    )
    raise AssertionError  # pragma: no cover - fail raises


def condition_label(name: str, boosts: dict[str, float] | None = None) -> str:
    """Display name of condition ``name``.

    Examples
    --------
    >>> condition_label("kappa-1")
    'NeighborRetr, κ = 1'
    >>> condition_label("boost-all", {"w_uniform": 5, "w_neighbor": 50, "w_kl": 5000})
    'NeighborRetr, L_Opt ×5, L_Nbi ×50, L_KL ×5000'
    """
    if name in CONDITION_LABELS:
        return CONDITION_LABELS[name]
    over = condition_overrides(name, boosts)
    if "kappa" in over and name.startswith("kappa-"):
        return f"NeighborRetr, κ = {over['kappa']:g}"
    parts = [
        f"{_TERM_NAMES[t]} ×{over[f]:g}" for t, f in BOOST_FIELDS.items() if f in over
    ]
    return "NeighborRetr, " + ", ".join(parts)


# fields passed to make_shapes_world (the others keep the generator's defaults)
_WORLD_FIELDS = (
    "n_train",
    "n_val",
    "n_test",
    "captions_per_image",
    "image_size",
    "zipf",
    "ambiguity",
    "test_shift",
)


@dataclass(frozen=True)
class StudyConfig:
    r"""Parameters of notebook 50 (field names equal the notebook parameters).

    Attributes
    ----------
    seed : int
        The world's seed and the first training seed; seeds ``seed .. seed+n_seeds-1``.
    n_seeds : int
        Training seeds per condition (at least 2: every comparison is paired by seed).
    n_train, n_val, n_test, captions_per_image, image_size, zipf, ambiguity, test_shift
        The ``shapes-world`` (:class:`~hubrepro.datasets.ShapesWorldConfig`); the bank
        of the post-hoc normalisers is the training split (no bank split is drawn).
    channels, blocks, text_width, text_layers, text_heads, embed_dim
        The dual encoder (:class:`~hubrepro.encoders.EncoderConfig`).
    epochs, batch_size, lr, mb_batch, num_neighbors
        Training (:class:`~hubrepro.training.TrainConfig`); ``mb_batch`` x
        ``batch_size`` is the bank size :math:`M`.
    conditions : tuple of str
        Conditions to train (see the module docstring).
    boosts : dict
        Weights of the ``boost-*`` conditions: ``w_uniform``, ``w_neighbor``, ``w_kl``.
    k : int
        :math:`k` of the hubness and hub-quality statistics.
    hist_k : int
        :math:`k` of the :math:`N_k` histogram (the paper's Fig. 2 uses 15).
    curves : bool
        Record retrieval and hubness on the test split at every epoch.
    curve_captions : int
        Captions per test image in those curves (the final evaluation uses all).
    gradient_conditions : tuple of str
        Conditions whose runs record the gradient of each term (:class:`~hubrepro.training.TermGradients`).
    margin_r1, margin_skew, margin_rate : float
        Margins of no practical difference of the verdicts (R@1 in points, skewness,
        rates in percentage points): an interval inside the margin means *not supported*.
    d1_threshold : float
        Spearman correlation both banks must exceed for DBNorm's claim D1 (chapter
        :ref:`sec-theory`).
    posthoc_conditions : tuple of str
        Conditions whose models get the post-hoc normalisers (each must be trained).
    posthoc_methods : tuple of str
        Variant keys of :mod:`hubrepro.normalize.variants`.
    posthoc_directions : tuple of str
        ``"query_to_gallery"`` (text→image) and/or ``"gallery_to_query"``.
    n_boot : int
        Resamples of the paired bootstrap over queries.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"`` (mixed precision on CUDA).
    artifact_dir : str
        Where CSV / PNG artifacts, ``claims.csv`` and ``provenance.json`` go.
    """

    seed: int = 0
    n_seeds: int = 3
    n_train: int = 2500
    n_val: int = 200
    n_test: int = 600
    captions_per_image: int = 5
    image_size: int = 24
    zipf: float = 1.0
    ambiguity: float = 0.0
    test_shift: float = 0.5
    channels: tuple[int, ...] = (16, 32, 64)
    blocks: int = 0
    text_width: int = 32
    text_layers: int = 0
    text_heads: int = 4
    embed_dim: int = 64
    epochs: int = 8
    batch_size: int = 128
    lr: float = 5e-3
    mb_batch: int = 15
    num_neighbors: int = 20
    conditions: tuple[str, ...] = (
        "infonce",
        "infonce-fixed-scale",
        "neighborretr",
        "neighborretr-official",
        "no-uniform",
        "no-neighbor",
        "no-kl",
        "kappa-0",
        "kappa-1",
        "kappa-3",
        "boost-neighbor",
        "boost-all",
    )
    boosts: dict[str, float] = field(
        default_factory=lambda: {"w_uniform": 5.0, "w_neighbor": 50.0, "w_kl": 5000.0}
    )
    k: int = 10
    hist_k: int = 15
    curves: bool = True
    curve_captions: int = 1
    gradient_conditions: tuple[str, ...] = (
        "neighborretr",
        "neighborretr-official",
        "boost-uniform",
        "boost-neighbor",
        "boost-kl",
        "boost-all",
    )
    margin_r1: float = 1.0
    margin_skew: float = 0.1
    margin_rate: float = 1.0
    d1_threshold: float = 0.5
    posthoc_conditions: tuple[str, ...] = (
        "infonce-fixed-scale",
        "neighborretr-official",
    )
    posthoc_methods: tuple[str, ...] = ("is", "dis", "dualis", "dualdis", "sn", "nnn")
    posthoc_directions: tuple[str, ...] = ("query_to_gallery", "gallery_to_query")
    n_boot: int = 2000
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/neighborretr"

    def __post_init__(self) -> None:
        f = "StudyConfig"
        from hubrepro.datasets.shapes_world import ShapesWorldConfig
        from hubrepro.normalize import DIRECTIONS
        from hubrepro.normalize.variants import VARIANTS

        check_int(self.seed, "seed", f, low=0)
        check_int(self.n_seeds, "n_seeds", f, low=2)
        for name in (
            "epochs",
            "batch_size",
            "mb_batch",
            "num_neighbors",
            "k",
            "hist_k",
        ):
            check_int(getattr(self, name), name, f, low=1)
        check_int(self.curve_captions, "curve_captions", f, low=1)
        check_int(self.n_boot, "n_boot", f, low=10)
        check_positive(self.lr, "lr", f)
        for name in ("margin_r1", "margin_skew", "margin_rate", "d1_threshold"):
            check_positive(getattr(self, name), name, f)
        if not isinstance(self.boosts, dict) or set(self.boosts) - set(
            BOOST_FIELDS.values()
        ):
            fail(
                f,
                "boosts",
                f"a mapping with keys among {sorted(BOOST_FIELDS.values())}",
                repr(self.boosts),
            )
        for v in self.boosts.values():
            check_positive(v, "boosts", f)
        if not self.conditions:
            fail(f, "conditions", "at least one condition", "none")
        for name in (
            *self.conditions,
            *self.posthoc_conditions,
            *self.gradient_conditions,
        ):
            condition_overrides(name, self.boosts)  # unknown names fail here
        for m in self.posthoc_methods:
            check_choice(
                m, "posthoc_methods", f, tuple(k for k in VARIANTS if k != "none")
            )
        for d in self.posthoc_directions:
            check_choice(d, "posthoc_directions", f, DIRECTIONS)
        ShapesWorldConfig(n_bank=0, **self.world_options())  # the world's knobs
        self.train_config(self.conditions[0], self.seed)  # the training values

    def world_options(self) -> dict[str, Any]:
        """The knobs passed to :func:`~hubrepro.datasets.make_shapes_world`."""
        return {name: getattr(self, name) for name in _WORLD_FIELDS}

    @property
    def seeds(self) -> list[int]:
        """The training seeds."""
        return list(range(self.seed, self.seed + self.n_seeds))

    def train_config(self, condition: str, seed: int) -> Any:
        """The :class:`~hubrepro.training.TrainConfig` of one condition and seed."""
        from hubrepro.training import TrainConfig

        world = {k: v for k, v in self.world_options().items() if k != "n_val"}
        base = TrainConfig(
            dataset="shapes-world",
            dataset_options={**world, "n_bank": 0},
            data_seed=self.seed,
            n_val=self.n_val,
            model="dual-encoder",
            encoder={
                "channels": list(self.channels),
                "blocks": self.blocks,
                "text_width": self.text_width,
                "text_layers": self.text_layers,
                "text_heads": self.text_heads,
            },
            embed_dim=self.embed_dim,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            mb_batch=self.mb_batch,
            num_neighbors=self.num_neighbors,
            eval_k=self.k,
            seed=seed,
            device=self.device,
            progress=False,
        )
        return dataclasses.replace(base, **condition_overrides(condition, self.boosts))

    def label(self, condition: str) -> str:
        """Display name of ``condition`` (:func:`condition_label`)."""
        return condition_label(condition, self.boosts)
