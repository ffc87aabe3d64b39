"""The variant vocabulary agrees with the estimators, and its readers add only what they own."""

import inspect

import pytest

from hubrepro import normalize
from hubrepro.experiments import dbnorm
from hubrepro.normalize.variants import VARIANTS, variant, variant_label


@pytest.mark.parametrize("key", sorted(VARIANTS))
def test_every_variant_builds_its_estimator_with_its_options(key):
    v = VARIANTS[key]
    est = normalize.make_normalizer(v.method, **dict(v.options))
    assert type(est) is normalize.METHODS[v.method]
    for name in v.tuned:
        assert name in est.get_params()


@pytest.mark.parametrize("key", sorted(VARIANTS))
def test_banks_are_those_the_estimator_requires(key):
    v = VARIANTS[key]
    est = normalize.make_normalizer(v.method, **dict(v.options))
    assert tuple(b for b in v.banks if b != "cross") == est._required()
    # "cross" (bank queries x bank gallery) iff the estimator's fit takes that matrix
    assert ("cross" in v.banks) == (
        "bank_cross_sims" in getattr(est, "_fit_extras", ())
    )


@pytest.mark.parametrize("key", sorted(VARIANTS))
def test_the_dbnorm_driver_adds_only_the_neighbourhood_sizes(key):
    """The driver's method settings are the variant's plus the config's neighbourhood sizes.

    Every estimator parameter named ``k`` takes a value from the config (an estimator
    gaining ``k`` in a new variant without the driver passing it fails here), and
    every option the driver passes is a parameter of the estimator.
    """
    cfg = dbnorm.DBNormConfig(k=3, csls_k=7, nnn_k=11)
    method, fixed, tuned = dbnorm.method_spec(key, cfg)
    v = VARIANTS[key]
    assert (method, tuned) == (v.method, v.tuned)
    extra = {k: x for k, x in fixed.items() if k not in v.options}
    assert {k: fixed[k] for k in v.options} == dict(v.options)
    params = inspect.signature(normalize.METHODS[method]).parameters
    assert set(fixed) <= set(params)
    assert set(extra) == ({"k"} & set(params))
    if extra:
        expected = {"dis": 3, "dualdis": 3, "csls": 7, "nnn": 11}[method]
        assert extra["k"] == expected
    assert dbnorm.method_label(key) == v.label


def test_labels_are_unique_and_keys_are_the_drivers():
    labels = [v.label for v in VARIANTS.values()]
    assert len(set(labels)) == len(labels)
    assert dbnorm.METHOD_KEYS == tuple(VARIANTS)


def test_variant_refuses_an_unknown_key_and_labels_fall_back_to_the_key():
    with pytest.raises(ValueError, match="is-g"):
        variant("is_g")
    assert variant_label("dualis_or_dualdis") == "dualis_or_dualdis"
