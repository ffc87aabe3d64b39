r"""One vocabulary of normaliser *variants*: an estimator plus fixed options.

Each variant names a method of :data:`hubrepro.normalize.METHODS` and its fixed options.

The experiments compare more settings than there are estimators: IS with the query
bank and IS with the gallery bank are the same class (:class:`InvertedSoftmax`) with
another ``bank``; DualIS has a ``product`` and a ``sum`` aggregation; DualDIS a
``principled`` and a ``faithful`` mode. A *variant key* names one such setting,
and this module is the only place where keys, estimators, options, display labels, the
banks each variant needs and the hyperparameters it may tune are written down. The
DBNorm driver (:mod:`hubrepro.experiments.dbnorm.config`) and the published-number
tables (:mod:`hubrepro.published`) read it; their labels are the variants'.

========================  =============  ============================  ==============
key                       method         fixed options                 banks
========================  =============  ============================  ==============
``none``                  ``none``                                     --
``is``                    ``is``         ``bank="query"``              query
``is-g``                  ``is``         ``bank="gallery"``            gallery
``dis``                   ``dis``        ``bank="query"``              query
``dis-g``                 ``dis``        ``bank="gallery"``            gallery
``csls``                  ``csls``                                     query
``gc``                    ``gc``                                       query
``dualis``                ``dualis``     ``aggregation="product"``     query, gallery
``dualis-sum``            ``dualis``     ``aggregation="sum"``         query, gallery
``dualdis``               ``dualdis``    ``mode="principled"``         query, gallery
``dualdis-faithful``      ``dualdis``    ``mode="faithful"``           query, gallery
``sn``                    ``sn``         ``bank="query"``              query
``dbsn``                  ``dbsn``                                     query, cross
``nnn``                   ``nnn``                                      query
========================  =============  ============================  ==============

Book: :ref:`sec-normalisation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hubrepro._validation import check_choice

__all__ = ["Variant", "VARIANTS", "variant", "variant_label"]


@dataclass(frozen=True)
class Variant:
    """A normaliser setting compared in the experiments.

    Attributes
    ----------
    key : str
        The variant's name, e.g. ``"is-g"``.
    method : str
        The estimator's name in :data:`hubrepro.normalize.METHODS`.
    options : Mapping
        Fixed keyword arguments of the estimator that define the variant.
    label : str
        Display name in tables and figures.
    banks : tuple of str
        Banks the variant needs: ``"query"`` (bank queries x gallery), ``"gallery"``
        (bank gallery x gallery), ``"cross"`` (bank queries x bank gallery, DBSN).
    tuned : tuple of str
        Hyperparameters a validation protocol may tune (``beta_query``,
        ``beta_gallery``, ``alpha``).
    """

    key: str
    method: str
    options: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    banks: tuple[str, ...] = ()
    tuned: tuple[str, ...] = ()


_BQ, _BG = "beta_query", "beta_gallery"

#: variant key -> :class:`Variant`
VARIANTS: dict[str, Variant] = {
    v.key: v
    for v in (
        Variant("none", "none", {}, "baseline"),
        Variant("is", "is", {"bank": "query"}, "IS (query bank)", ("query",), (_BQ,)),
        Variant(
            "is-g", "is", {"bank": "gallery"}, "IS (gallery bank)", ("gallery",), (_BG,)
        ),
        Variant(
            "dis",
            "dis",
            {"bank": "query"},
            "DIS / QB-Norm (query bank)",
            ("query",),
            (_BQ,),
        ),
        Variant(
            "dis-g",
            "dis",
            {"bank": "gallery"},
            "DIS (gallery bank)",
            ("gallery",),
            (_BG,),
        ),
        Variant("csls", "csls", {}, "CSLS", ("query",)),
        Variant("gc", "gc", {}, "GC", ("query",)),
        Variant(
            "dualis",
            "dualis",
            {"aggregation": "product"},
            "DualIS",
            ("query", "gallery"),
            (_BQ, _BG),
        ),
        Variant(
            "dualis-sum",
            "dualis",
            {"aggregation": "sum"},
            "DualIS (sum)",
            ("query", "gallery"),
            (_BQ, _BG),
        ),
        Variant(
            "dualdis",
            "dualdis",
            {"mode": "principled"},
            "DualDIS (principled)",
            ("query", "gallery"),
            (_BQ, _BG),
        ),
        Variant(
            "dualdis-faithful",
            "dualdis",
            {"mode": "faithful"},
            "DualDIS (faithful)",
            ("query", "gallery"),
            (_BQ, _BG),
        ),
        Variant("sn", "sn", {"bank": "query"}, "SN", ("query",), (_BQ,)),
        Variant("dbsn", "dbsn", {}, "DBSN", ("query", "cross"), (_BQ,)),
        Variant("nnn", "nnn", {}, "NNN", ("query",), ("alpha",)),
    )
}


def variant(key: str) -> Variant:
    """The :class:`Variant` of ``key``; a one-line error names the known keys.

    Examples
    --------
    >>> variant("is-g").options["bank"]
    'gallery'
    """
    check_choice(key, "key", "variant", tuple(VARIANTS))
    return VARIANTS[key]


def variant_label(key: str) -> str:
    """Display name of a variant key (the key itself when it is not a variant).

    Examples
    --------
    >>> variant_label("dualdis-faithful")
    'DualDIS (faithful)'
    """
    v = VARIANTS.get(key)
    return v.label if v is not None else key
