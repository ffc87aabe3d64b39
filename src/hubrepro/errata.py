r"""The released DBNorm code's behaviour, re-implemented to demonstrate its defects.

The official DBNorm code (``yimuwangcs/Better_Cross_Modal_Retrieval``,
``DBNorm/dbnorm.py``, commit 898bd23) ships three functions: an inverted softmax
``IS``, a dual normaliser ``db_norm`` that calls ``IS`` or QB-Norm's dynamic inverted
softmax (``qb_norm``, credited to ``ioanacroi/qb-norm``,
``dynamic_inverted_softmax.py``) on a query bank and a gallery bank, and a hubness
statistic ``get_skewness``. This module re-implements their *behaviour*, as read in
that file (no code was copied), so that the book can show each defect on a small
matrix next to the behaviour of :mod:`hubrepro.normalize`:

D1
    both normaliser calls receive the intra-modal bank matrix ``bank_gallery_sims``
    as the matrix to normalise, so the output has the bank-gallery shape
    ``(n_bank_gallery, n_gallery)`` and the test matrix is never read;
D2
    the skewness function uses a counter class that is never imported (``NameError``);
D3
    the dynamic path (QB-Norm's routine) writes normalised rows into the caller's
    array and returns it; in the dual dynamic mode the second call gates on the
    already-normalised array, normalises it again, and the two "terms" are one array
    multiplied by itself;
D4
    on the dynamic path an ungated row keeps the raw similarity and the two terms are
    multiplied, so scales mix and ``S * S`` reverses the order where ``S < 0``;
D5
    exponentials are taken directly (no log-sum-exp): logit-scaled float32 inputs with
    ``beta = 20`` overflow to ``inf``/``nan``;
D8
    the skewness is the biased sample skewness of the k-occurrences of *retrieved*
    items only (``N_k >= 1``), which drops anti-hubs.

Every ``released_*`` function is deliberately defective and takes NumPy arrays, like
the original; the ``fix_*`` switches of :func:`released_db_norm` remove one defect at a
time so that each can be isolated. Nothing here is used by the rest of the library.

Book: :ref:`sec-dbnorm-errata` (notebook 44).

References
----------
.. [1] Wang, Jian, Xue. Balance Act: Mitigating Hubness in Cross-Modal Retrieval
   with Query and Gallery Banks. EMNLP 2023 (``wang2023balance``).
.. [2] Bogolin et al. Cross Modal Retrieval with Querybank Normalisation. CVPR 2022
   (``bogolin2022qbnorm``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from hubrepro._validation import check_int, check_positive, fail
from hubrepro.normalize._base import DEFAULT_BETA_GALLERY, DEFAULT_BETA_QUERY

__all__ = [
    "released_is",
    "released_dis",
    "released_db_norm",
    "released_get_skewness",
    "demo_d1_wrong_matrix",
    "demo_d2_skewness_crash",
    "demo_d3_aliasing",
    "demo_d4_mixed_scales",
    "demo_d5_overflow",
    "demo_d8_skewness",
    "defect_table",
    "overflow_curve",
]


def _check_array(x: Any, name: str, func: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        fail(func, name, "a numpy.ndarray (the released code is NumPy)", "a torch.Tensor",
             "Pass `x.cpu().numpy()`.", exc=TypeError)  # fmt: skip
    if not isinstance(x, np.ndarray):
        fail(func, name, "a numpy.ndarray", type(x).__name__, exc=TypeError)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating) or x.size == 0:
        fail(
            func,
            name,
            "a non-empty 2-D floating array",
            f"shape {x.shape}, dtype {x.dtype}",
        )
    return x


def _check_three(
    func: str, sims: Any, bank_query_sims: Any, bank_gallery_sims: Any
) -> tuple[np.ndarray, ...]:
    names = ("sims", "bank_query_sims", "bank_gallery_sims")
    return tuple(
        _check_array(x, n, func)
        for x, n in zip((sims, bank_query_sims, bank_gallery_sims), names, strict=True)
    )


# --------------------------------------------------------------------------------------
# The released behaviour (defective on purpose)
# --------------------------------------------------------------------------------------


def released_is(
    test_sims: np.ndarray, bank_sims: np.ndarray, beta: float, k: int = 1
) -> np.ndarray:
    r"""Inverted softmax as released: direct exponentials, a new array.

    .. math:: \mathrm{IS}_{ij} = e^{\beta S_{ij}} \big/ \textstyle\sum_b e^{\beta P_{bj}}

    Implements QB-Norm's inverted softmax as used by DBNorm (Wang et al. 2023).
    ``k`` is accepted and ignored, as in the release (D6). Exponentials are taken
    directly, so large ``beta * S`` overflows (D5).

    Parameters
    ----------
    test_sims : ndarray of shape (n_rows, n_gallery)
        The matrix to normalise.
    bank_sims : ndarray of shape (n_bank, n_gallery)
        Bank-by-gallery similarities giving the column normaliser.
    beta : float
        Inverse temperature.
    k : int
        Unused (D6).

    Returns
    -------
    ndarray of shape (n_rows, n_gallery)
        A new array, in the inputs' dtype; may hold ``inf``/``nan``.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        normalising_sum = np.sum(np.exp(bank_sims * beta), axis=0)
        return np.exp(test_sims * beta) / normalising_sum


def released_dis(
    bank_sims: np.ndarray, test_sims: np.ndarray, beta: float, k: int = 1
) -> np.ndarray:
    r"""QB-Norm's dynamic inverted softmax as released: writes into ``test_sims`` (D3).

    The activation set is the union over bank rows of each row's top-``k`` gallery
    columns (found with a full sort, as released). A row of ``test_sims`` whose
    arg-max column is in the activation set is replaced, **in place**, by its inverted
    softmax; other rows keep the raw similarity (D4). The same object is returned.

    Parameters
    ----------
    bank_sims : ndarray of shape (n_bank, n_gallery)
    test_sims : ndarray of shape (n_rows, n_gallery)
        Modified in place and returned (the defect D3).
    beta : float
    k : int

    Returns
    -------
    ndarray
        ``test_sims`` itself.
    """
    activation = set(np.argsort(bank_sims, axis=1)[:, -k:].ravel().tolist())
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        normalising_sum = np.sum(np.exp(bank_sims * beta), axis=0)
        for i in range(test_sims.shape[0]):
            if int(np.argmax(test_sims[i])) in activation:
                test_sims[i] = np.exp(test_sims[i] * beta) / normalising_sum
    return test_sims


def released_db_norm(
    bank_query_sims: np.ndarray,
    sims: np.ndarray,
    bank_gallery_sims: np.ndarray,
    beta_query: float = DEFAULT_BETA_QUERY,
    beta_gallery: float = DEFAULT_BETA_GALLERY,
    k: int = 1,
    dynamic: bool = False,
    *,
    fix_d1: bool = False,
    fix_d3: bool = False,
) -> np.ndarray:
    r"""``db_norm`` as released (DBNorm, Wang et al. 2023), with switches to fix D1/D3.

    As released (``fix_d1=False``), the matrix normalised by both terms is
    ``bank_gallery_sims`` and ``sims`` is never read (D1). With ``dynamic=True`` the
    QB-Norm routine mutates its input (D3). The result is the product of the two
    terms (:math:`\mathrm{IS}_q \cdot \mathrm{IS}_g`).

    Parameters
    ----------
    bank_query_sims : ndarray of shape (n_bank_query, n_gallery)
        Query bank x test gallery (``train_cap_test_vis`` upstream).
    sims : ndarray of shape (n_query, n_gallery)
        Test queries x test gallery (``test_cap_test_vis``).
    bank_gallery_sims : ndarray of shape (n_bank_gallery, n_gallery)
        Gallery bank x test gallery, intra-modal (``train_vis_test_vis``).
    beta_query, beta_gallery : float
        Inverse temperatures of the query-bank and gallery-bank terms (``beta1``,
        ``beta2`` upstream; defaults are the release's).
    k : int
        Activation-set size of the dynamic path.
    dynamic : bool
        ``False``: DualIS; ``True``: DualDIS.
    fix_d1 : bool
        Normalise ``sims`` in both terms (the fix of ``ppanzx/DBSN``).
    fix_d3 : bool
        Give each dynamic call its own copy, so nothing is mutated and the second
        term gates on the original matrix. With both fixes and ``dynamic=True`` this
        is the "faithful" DualDIS of :mod:`hubrepro.normalize`, with D4 and D5 left.

    Returns
    -------
    ndarray
        Shape ``(n_bank_gallery, n_gallery)`` unless ``fix_d1``; may alias an input
        when ``dynamic`` and not ``fix_d3``.
    """
    func = "released_db_norm"
    for name, x in (
        ("bank_query_sims", bank_query_sims),
        ("sims", sims),
        ("bank_gallery_sims", bank_gallery_sims),
    ):
        _check_array(x, name, func)
    target = sims if fix_d1 else bank_gallery_sims
    # the product of overflowed terms warns; the release computes it silently
    with np.errstate(over="ignore", invalid="ignore"):
        if not dynamic:
            first = released_is(target, bank_query_sims, beta_query, k)
            return first * released_is(target, bank_gallery_sims, beta_gallery, k)
        if fix_d3:
            first = released_dis(bank_query_sims, target.copy(), beta_query, k)
            second = released_dis(bank_gallery_sims, target.copy(), beta_gallery, k)
            return first * second
        first = released_dis(bank_query_sims, target, beta_query, k)
        second = released_dis(bank_gallery_sims, target, beta_gallery, k)
        return first * second


class _MissingCounter:
    """Stands for the counter class the release uses without importing it (D2)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NameError("name 'Counter' is not defined")


def released_get_skewness(
    sims: np.ndarray, k: int = 10, *, fix_d2: bool = False
) -> float:
    """``get_skewness`` as released: crashes (D2); once fixed, skews retrieved items only (D8).

    Parameters
    ----------
    sims : ndarray of shape (n_query, n_gallery)
    k : int, default 10
    fix_d2 : bool, default False
        ``False`` raises ``NameError`` like the release; ``True`` imports the counter
        and returns the statistic.

    Returns
    -------
    float
        Biased sample skewness of the k-occurrence counts of the items retrieved at
        least once: anti-hubs (``N_k = 0``) are dropped (D8).
    """
    _check_array(sims, "sims", "released_get_skewness")
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k].ravel()
    if fix_d2:
        from collections import Counter
    else:
        Counter = _MissingCounter()  # noqa: N806
    counts = np.asarray(list(Counter(top.tolist()).values()), dtype=np.float64)
    # the biased sample skewness (scipy.stats.skew's default), written out so that equal
    # counts give nan without scipy's precision-loss warning
    dev = counts - counts.mean()
    m2, m3 = float(np.mean(dev**2)), float(np.mean(dev**3))
    return m3 / m2**1.5 if m2 > 0 else float("nan")


# --------------------------------------------------------------------------------------
# Demonstrations: released behaviour next to ours
# --------------------------------------------------------------------------------------


def _ours(
    method: str, sims, bank_query_sims, bank_gallery_sims, **hyper
) -> torch.Tensor:
    from hubrepro.normalize import normalize

    return normalize(
        method,
        torch.as_tensor(sims),
        bank_query_sims=torch.as_tensor(bank_query_sims),
        bank_gallery_sims=torch.as_tensor(bank_gallery_sims),
        **hyper,
    )


def _r1(scores, query_to_gallery=None) -> float:
    from hubrepro.retrieval import evaluate_retrieval

    m = evaluate_retrieval(torch.as_tensor(scores), query_to_gallery)
    return float(m["query_to_gallery"]["R@1"])


def demo_d1_wrong_matrix(sims, bank_query_sims, bank_gallery_sims, *, beta_query: float, beta_gallery: float,
                         query_to_gallery=None) -> dict[str, Any]:  # fmt: skip
    """D1: the released DualIS output has the bank-gallery shape and ignores ``sims``.

    When ``n_bank_gallery == n_query`` the wrong output even *evaluates* without an
    error (like QB-Norm's evaluator when ``n_bank_gallery`` is a multiple of
    ``n_gallery``): the R@1 it gives is meaningless.

    Returns
    -------
    dict
        ``released_shape``, ``expected_shape``, ``reads_sims`` (whether changing
        ``sims`` changes the released output), ``released_R@1`` (``nan`` when the
        shape cannot be evaluated), ``fixed_R@1`` (D1 fixed), ``ours_R@1``, ``base_R@1``.
    """
    func = "demo_d1_wrong_matrix"
    sims, bq, bg = _check_three(func, sims, bank_query_sims, bank_gallery_sims)
    out = released_db_norm(bq, sims, bg, beta_query, beta_gallery)
    out2 = released_db_norm(bq, -sims, bg, beta_query, beta_gallery)
    fixed = released_db_norm(bq, sims, bg, beta_query, beta_gallery, fix_d1=True)
    ours = _ours(
        "dualis", sims, bq, bg, beta_query=beta_query, beta_gallery=beta_gallery
    )
    released_r1 = (
        _r1(out, query_to_gallery) if out.shape == sims.shape else float("nan")
    )
    return {
        "released_shape": tuple(out.shape),
        "expected_shape": tuple(sims.shape),
        "reads_sims": not np.array_equal(out, out2, equal_nan=True),
        "released_R@1": released_r1,
        "fixed_R@1": _r1(fixed, query_to_gallery)
        if np.isfinite(fixed).all()
        else float("nan"),
        "ours_R@1": _r1(ours, query_to_gallery),
        "base_R@1": _r1(sims, query_to_gallery),
    }


def demo_d2_skewness_crash(sims) -> dict[str, Any]:
    """D2: the released ``get_skewness`` raises ``NameError``.

    Returns
    -------
    dict
        ``error`` (the message, or ``""`` if it did not crash).
    """
    try:
        released_get_skewness(_check_array(sims, "sims", "demo_d2_skewness_crash"))
    except NameError as err:
        return {"error": f"NameError: {err}"}
    return {"error": ""}


def demo_d3_aliasing(sims, bank_query_sims, bank_gallery_sims, *, beta_query: float, beta_gallery: float, k: int = 1,
                     query_to_gallery=None) -> dict[str, Any]:  # fmt: skip
    """D3: the released DualDIS mutates the caller's array and squares one array.

    Run with D1 fixed, so only the aliasing is shown: the output shares memory with
    the caller's ``sims`` (which is modified), and equals ``X * X`` for one doubly
    processed ``X``. Ours returns a new tensor and leaves every input untouched.

    Returns
    -------
    dict
        ``mutates_input``, ``terms_are_one_array`` (the two "terms" are the same
        object, so the product squares it), ``released_R@1`` (with D1 fixed,
        D3 left), ``fixed_R@1`` (D1 and D3 fixed: the faithful mode), ``ours_R@1``
        (faithful mode), ``ours_mutates_input``.
    """
    func = "demo_d3_aliasing"
    sims, bq, bg = _check_three(func, sims, bank_query_sims, bank_gallery_sims)
    victim = sims.copy()
    out = released_db_norm(
        bq, victim, bg, beta_query, beta_gallery, k, dynamic=True, fix_d1=True
    )
    probe = sims.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        first = released_dis(bq, probe, beta_query, k)
        terms_identical = released_dis(bg, probe, beta_gallery, k) is first
    fixed = released_db_norm(
        bq,
        sims,
        bg,
        beta_query,
        beta_gallery,
        k,
        dynamic=True,
        fix_d1=True,
        fix_d3=True,
    )
    keep = torch.as_tensor(sims).clone()
    ours = _ours(
        "dualdis",
        sims,
        bq,
        bg,
        beta_query=beta_query,
        beta_gallery=beta_gallery,
        k=k,
        mode="faithful",
    )
    finite = np.isfinite(out).all()
    return {
        "mutates_input": not np.array_equal(victim, sims),
        "terms_are_one_array": bool(terms_identical),
        "released_R@1": _r1(out, query_to_gallery) if finite else float("nan"),
        "fixed_R@1": _r1(fixed, query_to_gallery)
        if np.isfinite(fixed).all()
        else float("nan"),
        "ours_R@1": _r1(ours, query_to_gallery),
        "ours_mutates_input": not torch.equal(torch.as_tensor(sims), keep),
    }


def demo_d4_mixed_scales(sims, bank_query_sims, bank_gallery_sims, *, beta_query: float, beta_gallery: float, k: int = 1,
                         query_to_gallery=None) -> dict[str, Any]:  # fmt: skip
    """D4: ungated rows of the faithful DualDIS rank by ``S * S`` or ``IS * S``.

    Returns
    -------
    dict
        ``rows_gated_by_neither``, ``rows_with_reversed_order`` (ungated rows whose
        faithful ranking differs from the ranking by ``S``), ``faithful_R@1``,
        ``principled_R@1``, ``base_R@1``.
    """
    func = "demo_d4_mixed_scales"
    sims, bq, bg = _check_three(func, sims, bank_query_sims, bank_gallery_sims)
    faithful = released_db_norm(
        bq,
        sims,
        bg,
        beta_query,
        beta_gallery,
        k,
        dynamic=True,
        fix_d1=True,
        fix_d3=True,
    )
    act_q = set(np.argsort(bq, axis=1)[:, -k:].ravel().tolist())
    act_g = set(np.argsort(bg, axis=1)[:, -k:].ravel().tolist())
    top1 = sims.argmax(axis=1)
    neither = np.array([(int(t) not in act_q) and (int(t) not in act_g) for t in top1])
    reversed_rows = 0
    for i in np.flatnonzero(neither):
        if not np.array_equal(
            np.argsort(-faithful[i], kind="stable"), np.argsort(-sims[i], kind="stable")
        ):
            reversed_rows += 1
    principled = _ours(
        "dualdis",
        sims,
        bq,
        bg,
        beta_query=beta_query,
        beta_gallery=beta_gallery,
        k=k,
        mode="principled",
    )
    return {
        "rows_gated_by_neither": int(neither.sum()),
        "rows_with_reversed_order": reversed_rows,
        "faithful_R@1": _r1(faithful, query_to_gallery)
        if np.isfinite(faithful).all()
        else float("nan"),
        "principled_R@1": _r1(principled, query_to_gallery),
        "base_R@1": _r1(sims, query_to_gallery),
    }


def demo_d5_overflow(
    sims,
    bank_query_sims,
    bank_gallery_sims,
    *,
    beta: float = 20.0,
    scale: float = 100.0,
) -> dict[str, Any]:
    """D5: direct exponentials overflow on logit-scaled float32 matrices.

    The three matrices are multiplied by ``scale`` (CLIP's logit scale) and cast to
    float32, then normalised with ``beta_query = beta_gallery = beta``.

    Returns
    -------
    dict
        ``released_nonfinite_fraction`` (D1 fixed), ``ours_nonfinite_fraction``.
    """
    func = "demo_d5_overflow"
    beta = check_positive(beta, "beta", func)
    scale = check_positive(scale, "scale", func)
    mats = [
        (x * scale).astype(np.float32)
        for x in _check_three(func, sims, bank_query_sims, bank_gallery_sims)
    ]
    out = released_db_norm(mats[1], mats[0], mats[2], beta, beta, fix_d1=True)
    ours = _ours(
        "dualis", mats[0], mats[1], mats[2], beta_query=beta, beta_gallery=beta
    )
    return {
        "released_nonfinite_fraction": float((~np.isfinite(out)).mean()),
        "ours_nonfinite_fraction": float((~torch.isfinite(ours)).float().mean()),
    }


def demo_d8_skewness(sims, k: int = 10) -> dict[str, Any]:
    """D8: the released skewness (retrieved items only) vs the standard one.

    Returns
    -------
    dict
        ``released_skewness`` (D2 fixed), ``standard_skewness`` (over all gallery
        items, zeros included: :func:`hubrepro.hubness.skewness`), ``antihub_rate``.
    """
    from hubrepro import hubness

    k = check_int(k, "k", "demo_d8_skewness", low=1)
    sims = _check_array(sims, "sims", "demo_d8_skewness")
    n_k = hubness.k_occurrence(torch.as_tensor(sims), k=k)
    return {
        "released_skewness": released_get_skewness(sims, k, fix_d2=True),
        "standard_skewness": float(hubness.skewness(n_k)),
        "antihub_rate": float(hubness.antihub_rate(n_k)),
    }


def _r(v: float) -> str:
    return "not computable (non-finite scores)" if np.isnan(v) else f"{v:.2f}"


def defect_table(sims, bank_query_sims, bank_gallery_sims, *, beta_query: float, beta_gallery: float, k: int = 1,
                 query_to_gallery=None, overflow_beta: float = 20.0, overflow_scale: float = 100.0,
                 skew_k: int = 10) -> pd.DataFrame:  # fmt: skip
    """Run every demonstration and return one tidy row per defect.

    Parameters
    ----------
    sims, bank_query_sims, bank_gallery_sims : ndarray
        Cosine-scale matrices (rows = queries or bank items, columns = test gallery).
    beta_query, beta_gallery, k
        Hyperparameters of DualIS / DualDIS (cosine scale).
    query_to_gallery : array of int, optional
        Ground truth; ``None`` means the diagonal.
    overflow_beta, overflow_scale : float
        Setting of the D5 demonstration (logit scale, float32).
    skew_k : int
        ``k`` of the skewness demonstration.

    Returns
    -------
    pandas.DataFrame
        Columns ``defect``, ``what``, ``released``, ``ours``; the values are strings
        ready for the page.

    Book
    ----
    :ref:`sec-dbnorm-errata`.
    """
    d1 = demo_d1_wrong_matrix(
        sims,
        bank_query_sims,
        bank_gallery_sims,
        beta_query=beta_query,
        beta_gallery=beta_gallery,
        query_to_gallery=query_to_gallery,
    )
    d2 = demo_d2_skewness_crash(sims)
    d3 = demo_d3_aliasing(
        sims,
        bank_query_sims,
        bank_gallery_sims,
        beta_query=beta_query,
        beta_gallery=beta_gallery,
        k=k,
        query_to_gallery=query_to_gallery,
    )
    d4 = demo_d4_mixed_scales(
        sims,
        bank_query_sims,
        bank_gallery_sims,
        beta_query=beta_query,
        beta_gallery=beta_gallery,
        k=k,
        query_to_gallery=query_to_gallery,
    )
    d5 = demo_d5_overflow(
        sims,
        bank_query_sims,
        bank_gallery_sims,
        beta=overflow_beta,
        scale=overflow_scale,
    )
    d8 = demo_d8_skewness(sims, skew_k)
    rows = [
        ("D1", "wrong matrix normalised (DualIS)",
         f"shape {d1['released_shape']}, reads `sims`: {d1['reads_sims']}, R@1 {_r(d1['released_R@1'])}",
         f"shape {d1['expected_shape']}, R@1 {d1['ours_R@1']:.2f} (baseline {d1['base_R@1']:.2f})"),
        ("D2", "skewness function", d2["error"] or "no error", "hubness.skewness works"),
        ("D3", "in-place aliasing (DualDIS)",
         f"mutates input: {d3['mutates_input']}, one array squared: {d3['terms_are_one_array']}, R@1 {_r(d3['released_R@1'])}",
         f"mutates input: {d3['ours_mutates_input']}, R@1 {d3['ours_R@1']:.2f}"),
        ("D4", "mixed scales on ungated rows",
         f"{d4['rows_with_reversed_order']} of {d4['rows_gated_by_neither']} ungated rows re-ordered, R@1 {_r(d4['faithful_R@1'])}",
         f"principled R@1 {d4['principled_R@1']:.2f}"),
        ("D5", f"overflow (beta={overflow_beta:g}, logit scale {overflow_scale:g}, float32)",
         f"{100 * d5['released_nonfinite_fraction']:.1f}% non-finite",
         f"{100 * d5['ours_nonfinite_fraction']:.1f}% non-finite"),
        ("D8", f"skewness definition (k={skew_k})",
         f"{d8['released_skewness']:.2f} (retrieved items only)",
         f"{d8['standard_skewness']:.2f} (all items; anti-hub rate {100 * d8['antihub_rate']:.1f}%)"),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["defect", "what", "released", "ours"])


def overflow_curve(sims, bank_query_sims, bank_gallery_sims, *, betas=(1.0, 5.0, 10.0, 20.0, 40.0),
                   scale: float = 100.0) -> pd.DataFrame:  # fmt: skip
    """D5 as a curve: share of non-finite DualIS outputs against beta, released vs ours.

    Returns
    -------
    DataFrame
        Columns ``beta``, ``released`` and ``ours`` (percent non-finite).
    """
    rows = []
    for b in betas:
        d = demo_d5_overflow(
            sims, bank_query_sims, bank_gallery_sims, beta=b, scale=scale
        )
        rows.append({"beta": float(b), "released": 100 * d["released_nonfinite_fraction"],
                     "ours": 100 * d["ours_nonfinite_fraction"]})  # fmt: skip
    return pd.DataFrame(rows)
