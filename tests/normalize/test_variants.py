"""The variant vocabulary agrees with the estimators and with the DBNorm driver."""

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
def test_variants_match_the_dbnorm_driver(key):
    cfg = dbnorm.DBNormConfig()
    method, fixed, tuned = dbnorm.method_spec(key, cfg)
    v = VARIANTS[key]
    assert v.method == method
    assert {k: fixed[k] for k in v.options} == dict(v.options)
    assert v.tuned == tuned
    assert v.label == dbnorm.method_label(key)


def test_variant_refuses_an_unknown_key_and_labels_fall_back_to_the_key():
    with pytest.raises(ValueError, match="is-g"):
        variant("is_g")
    assert variant_label("dualis_or_dualdis") == "dualis_or_dualdis"
