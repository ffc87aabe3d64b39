"""The error template and the boundary checks."""

import numpy as np
import pytest
import torch

from hubrepro import _validation as V
from hubrepro.config import from_params, to_params


def test_check_matrix_accepts_numpy_without_copy():
    a = np.zeros((2, 3), dtype=np.float32)
    t = V.check_matrix(a, "sims", "f")
    t[0, 0] = 1.0  # shares memory with the array
    assert a[0, 0] == 1.0


@pytest.mark.parametrize(
    "x, exc, pattern",
    [
        (
            np.zeros(3, dtype=np.float32),
            ValueError,
            "must be a 2-D matrix; got an array of shape \\(3,\\)",
        ),
        (np.zeros((2, 2), dtype=np.int64), TypeError, "floating-point"),
        (np.zeros((0, 2), dtype=np.float32), ValueError, "non-empty"),
        ([[1.0]], TypeError, "torch.Tensor or numpy.ndarray"),
    ],
)
def test_check_matrix_errors_follow_the_template(x, exc, pattern):
    with pytest.raises(exc, match="^myfunc: `sims` must .*") as info:
        V.check_matrix(x, "sims", "myfunc")
    assert info.match(pattern)


def test_non_finite_location_is_reported():
    x = torch.zeros(3, 4)
    x[2, 1] = float("nan")
    with pytest.raises(
        ValueError, match=r"1 non-finite value\(s\), the first at index \(2, 1\)"
    ):
        V.check_matrix(x, "sims", "f")


def test_index_vector_range_and_length():
    with pytest.raises(
        ValueError, match="in the range \\[0, 3\\); got 3 at position 1"
    ):
        V.check_index_vector(np.array([0, 3]), "gt", "f", length=2, upper=3)
    with pytest.raises(ValueError, match="of length 3"):
        V.check_index_vector(np.array([0, 1]), "gt", "f", length=3, upper=3)
    with pytest.raises(TypeError, match="integer vector"):
        V.check_index_vector(np.array([0.0, 1.0]), "gt", "f", length=2, upper=3)
    assert (
        V.check_index_vector(
            np.array([2, 0], dtype=np.int32), "gt", "f", length=2, upper=3
        ).dtype
        == torch.long
    )


def test_scalars():
    assert V.check_positive(2, "beta", "f") == 2.0
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive and finite"):
            V.check_positive(bad, "beta", "f")
    with pytest.raises(TypeError):
        V.check_positive(True, "beta", "f")
    with pytest.raises(ValueError, match=r"an integer in \[1, 5\]"):
        V.check_int(6, "k", "f", low=1, high=5)
    with pytest.raises(ValueError, match="one of 'a', 'b'"):
        V.check_choice("c", "mode", "f", ["a", "b"])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        V.check_probability(1.5, "p", "f")


def test_same_columns():
    a, b = torch.zeros(2, 3), torch.zeros(5, 4)
    with pytest.raises(
        ValueError,
        match="`bank` must be of width 3 \\(the number of gallery items in `sims`\\)",
    ):
        V.check_same_columns("f", ("sims", a), ("bank", b))


def test_from_params_rejects_unknown_keys_and_bad_types():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Cfg:
        seed: int = 0
        beta: float = 1.0
        ks: tuple[int, ...] = (1, 5)
        name: str | None = None

    cfg = from_params(Cfg, {"seed": 3, "beta": 2, "ks": [1, 10]})
    assert cfg == Cfg(seed=3, beta=2, ks=(1, 10))
    assert to_params(cfg) == {"seed": 3, "beta": 2, "ks": [1, 10], "name": None}
    with pytest.raises(ValueError, match="unknown key\\(s\\) \\['sed'\\]"):
        from_params(Cfg, {"sed": 1})
    with pytest.raises(TypeError, match="`seed` of Cfg must be of type"):
        from_params(Cfg, {"seed": 1.5})
    with pytest.raises(TypeError, match="`ks`"):
        from_params(Cfg, {"ks": [1.5]})
    assert from_params(Cfg, {"artifact_dir": "x"}, ignore=("artifact_dir",)) == Cfg()


@pytest.mark.parametrize(
    ("x", "hint", "not_in"),
    [
        (np.zeros((2, 2), dtype=np.int64), "if the integers really are scores", None),
        (np.zeros((2, 2), dtype=bool), "a mask, not scores", "integers"),
        (np.zeros((2, 2), dtype=np.complex64), "`x.real`", "integers"),
    ],
)
def test_the_dtype_hint_names_what_was_passed(x, hint, not_in):
    # a boolean or complex matrix used to be described as "integers"
    with pytest.raises(TypeError) as info:
        V.check_matrix(x, "sims", "f")
    assert hint in str(info.value) and str(x.dtype) in str(info.value)
    assert not_in is None or not_in not in str(info.value)


def test_zero_rows_are_located():
    x = torch.ones(5, 3)
    x[3] = 0
    with pytest.raises(
        ValueError,
        match=r"^f: `emb` must be free of all-zero rows.*1 zero row\(s\), the first is row 13\.",
    ):
        V.check_nonzero_rows(x, "emb", "f", offset=10)
    V.check_nonzero_rows(torch.ones(2, 2), "emb", "f")  # nothing to say
