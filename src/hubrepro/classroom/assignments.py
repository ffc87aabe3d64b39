"""The graded assignments: each student's data variant and the checks run on a submission.

Every assignment of ``assignments/`` that the grader knows has an :class:`Assignment`
here: the functions and answer variables the student must provide, a seeded data
variant per student (:func:`student_data`), and its checks. A check compares the
student's function with the reference implementation in :mod:`hubrepro`, looked up by
name when the check runs (:func:`hubrepro.classroom.grading.reference`), on hidden
inputs, and the student's reported answers with the reference answers on the
student's own data. The grader never carries a second implementation of the solution.

Book: :ref:`sec-classroom`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable
from typing import Any

import torch

from hubrepro._validation import fail
from hubrepro.classroom.grading import CheckFailed, Context, reference

__all__ = [
    "Check",
    "Assignment",
    "ASSIGNMENTS",
    "get_assignment",
    "list_assignments",
    "student_seed",
    "student_data",
]


@dataclasses.dataclass(frozen=True)
class Check:
    """One graded check: ``func(ctx)`` returns on success and raises ``CheckFailed`` with feedback."""

    name: str
    points: float
    description: str
    func: Callable[[Context], None]


@dataclasses.dataclass(frozen=True)
class Assignment:
    """An assignment: the names the student provides, their data variant, the checks."""

    name: str
    title: str
    functions: tuple[str, ...]
    answers: tuple[str, ...]
    make_data: Callable[[int], dict[str, Any]]
    checks: tuple[Check, ...]
    references: tuple[str, ...]
    # modules the submission may not use: they hold the reference implementation
    forbidden: tuple[str, ...] = ()


# --------------------------------------------------------------------------- helpers


def student_seed(assignment: str, student_id: str) -> int:
    """Seed of a student's data variant: a hash of the assignment name and the student id.

    Stable across machines and Python versions (SHA-256, not ``hash``), so the teacher's
    grader and the student's notebook draw the same data.
    """
    if not isinstance(student_id, str) or not student_id.strip():
        fail(
            "student_seed",
            "student_id",
            "a non-empty str",
            repr(student_id),
            "Use the id from the class roster.",
            exc=TypeError if not isinstance(student_id, str) else ValueError,
        )
    digest = hashlib.sha256(f"{assignment}/{student_id.strip()}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _tensor(x: Any, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        import numpy as np

        return torch.as_tensor(np.asarray(x))
    except Exception:
        raise CheckFailed(
            f"{what} must be a tensor or array; got {type(x).__name__}"
        ) from None


def _number(x: Any, what: str) -> float:
    try:
        t = torch.as_tensor(
            x.detach() if isinstance(x, torch.Tensor) else x, dtype=torch.float64
        )
    except Exception:
        raise CheckFailed(f"{what} must be a number; got {type(x).__name__}") from None
    if t.numel() != 1:
        raise CheckFailed(f"{what} must be a single number; got shape {tuple(t.shape)}")
    return float(t.reshape(()))


def _close(
    got: float, want: float, what: str, *, rtol: float = 1e-4, atol: float = 1e-6
) -> None:
    if not (math.isfinite(got) and abs(got - want) <= atol + rtol * abs(want)):
        raise CheckFailed(f"{what}: expected {want:.6g}, got {got:.6g}")


def _answer(
    ctx: Context, name: str, want: float, what: str, *, rtol: float = 1e-4
) -> None:
    """Compare the student's answer variable ``name`` with the reference value ``want``."""
    _close(_number(ctx.value(name), name), want, what, rtol=rtol)


def _unit(
    n: int,
    d: int,
    g: torch.Generator,
    dtype=torch.float32,
    shift: torch.Tensor | None = None,
) -> torch.Tensor:
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    if shift is not None:
        x = x + shift
    return (x / x.norm(dim=1, keepdim=True)).to(dtype)


def _same_order(
    got: torch.Tensor, ref: torch.Tensor, what: str, *, rtol: float = 1e-9
) -> None:
    """Each row of ``got`` ranks the columns as ``ref`` does (ties within a tolerance)."""
    if got.shape != ref.shape:
        raise CheckFailed(
            f"{what}: expected shape {tuple(ref.shape)}, got {tuple(got.shape)}"
        )
    got = got.to(torch.float64)
    if not bool(torch.isfinite(got).all()):
        raise CheckFailed(
            f"{what}: the result holds NaN or infinity (does the code exponentiate before taking the log?)"
        )
    order = ref.to(torch.float64).argsort(dim=1, descending=True)
    s = got.gather(1, order)
    tol = rtol * float(got.abs().max()) + 1e-12
    bad = (s[:, 1:] > s[:, :-1] + tol).any(dim=1)
    if bool(bad.any()):
        row = int(bad.nonzero()[0])
        raise CheckFailed(
            f"{what}: row {row} ranks the gallery differently from the reference ({int(bad.sum())} of {got.shape[0]} rows differ)"
        )


def _unchanged(
    before: list[torch.Tensor], after: list[torch.Tensor], func: str
) -> None:
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        if not torch.equal(b, a):
            raise CheckFailed(
                f"`{func}` modified its input argument {i + 1}; work on a new tensor instead"
            )


def _randint(g: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=g))


def _choice(g: torch.Generator, options: list[Any]) -> Any:
    return options[_randint(g, 0, len(options) - 1)]


# --------------------------------------------------------- A1: k-occurrence and skewness


def _a1_data(seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    n_query, n_gallery = _randint(g, 150, 250), _randint(g, 100, 200)
    d, k = _choice(g, [16, 32, 64, 128]), _choice(g, [5, 10])
    query, gallery = _unit(n_query, d, g), _unit(n_gallery, d, g)
    return {"seed": seed, "k": k, "dim": d, "sims": query @ gallery.T}


def _a1_kocc(ctx: Context) -> None:
    k_occurrence = reference("hubrepro.hubness.k_occurrence")
    g = torch.Generator().manual_seed(101)
    for n_q, n_g, k in [(30, 40, 5), (50, 20, 1), (12, 10, 10), (200, 64, 7)]:
        sims = torch.randn(n_q, n_g, generator=g, dtype=torch.float64)
        got = _tensor(
            ctx.call("k_occurrence", sims.clone(), k), "k_occurrence's result"
        )
        want = k_occurrence(sims, k=k)
        if tuple(got.shape) != (n_g,):
            raise CheckFailed(
                f"k_occurrence on a {n_q}x{n_g} matrix must return one count per gallery column ({n_g},); got shape {tuple(got.shape)}"
            )
        if not torch.equal(got.long().cpu(), want.long().cpu()):
            diff = int((got.long().cpu() != want.long().cpu()).sum())
            raise CheckFailed(
                f"k_occurrence({n_q}x{n_g} matrix, k={k}) differs from the reference in {diff} of {n_g} counts (the counts must sum to n_query * k = {n_q * k}; got {int(got.sum())})"
            )


def _a1_skew(ctx: Context) -> None:
    skewness = reference("hubrepro.hubness.skewness")
    g = torch.Generator().manual_seed(102)
    cases = [
        torch.tensor([0, 0, 1, 5, 14]),
        torch.tensor([3, 3, 3, 4, 2, 9, 0, 0, 1]),
        torch.poisson(torch.full((300,), 4.0), generator=g).long(),
        torch.randint(0, 30, (57,), generator=g),
    ]
    for n_k in cases:
        got = _number(ctx.call("skewness", n_k.clone()), "skewness's result")
        _close(
            got,
            _number(skewness(n_k), "reference"),
            f"skewness of {n_k.tolist()[:6]}... (length {n_k.numel()})",
        )


def _a1_pure(ctx: Context) -> None:
    sims = torch.randn(20, 15, generator=torch.Generator().manual_seed(103))
    n_k = torch.tensor([0, 2, 2, 7, 1])
    before = [sims.clone(), n_k.clone()]
    ctx.call("k_occurrence", sims, 3)
    ctx.call("skewness", n_k)
    _unchanged(before, [sims, n_k], "k_occurrence or skewness")


def _a1_answer_skew(ctx: Context) -> None:
    k_occurrence, skewness = (
        reference("hubrepro.hubness.k_occurrence"),
        reference("hubrepro.hubness.skewness"),
    )
    want = _number(
        skewness(k_occurrence(ctx.data["sims"], k=ctx.data["k"])), "reference"
    )
    _answer(ctx, "answer_skewness", want, "answer_skewness on your data")


def _a1_answer_hub(ctx: Context) -> None:
    n_k = reference("hubrepro.hubness.k_occurrence")(ctx.data["sims"], k=ctx.data["k"])
    got = ctx.value("answer_top_hub")
    try:
        idx = int(got)
    except (TypeError, ValueError):
        raise CheckFailed(
            f"answer_top_hub must be a gallery index (int); got {got!r}"
        ) from None
    if not 0 <= idx < n_k.numel():
        raise CheckFailed(f"answer_top_hub must be in [0, {n_k.numel()}); got {idx}")
    if int(n_k[idx]) != int(n_k.max()):
        raise CheckFailed(
            f"gallery item {idx} occurs {int(n_k[idx])} times, but the largest k-occurrence on your data is {int(n_k.max())}"
        )


A1 = Assignment(
    name="a1_k_occurrence_skewness",
    forbidden=("hubrepro.hubness",),
    title="k-occurrence and its skewness",
    functions=("k_occurrence", "skewness"),
    answers=("answer_skewness", "answer_top_hub"),
    make_data=_a1_data,
    references=("hubrepro.hubness.k_occurrence", "hubrepro.hubness.skewness"),
    checks=(
        Check(
            "k_occurrence matches the library",
            3,
            "hidden matrices, several shapes and k, against hubrepro.hubness.k_occurrence",
            _a1_kocc,
        ),
        Check(
            "skewness matches the library",
            2,
            "hand-made and random count vectors, against hubrepro.hubness.skewness",
            _a1_skew,
        ),
        Check(
            "inputs are not modified",
            1,
            "both functions leave their arguments unchanged",
            _a1_pure,
        ),
        Check(
            "answer_skewness on your data",
            2,
            "skewness of N_k on the student's matrix",
            _a1_answer_skew,
        ),
        Check(
            "answer_top_hub on your data",
            1,
            "an index of the largest N_k",
            _a1_answer_hub,
        ),
    ),
)

# ------------------------------------------------------ A2: inverted softmax, log domain


def _hubby_pair(
    n_query: int,
    n_gallery: int,
    n_bank: int,
    d: int,
    g: torch.Generator,
    dtype=torch.float32,
) -> dict[str, torch.Tensor]:
    # a shared latent plus noise, the gallery pushed along one direction: a cone with hubs
    shift = torch.zeros(d, dtype=torch.float64)
    shift[0] = 1.5
    z = torch.randn(max(n_query, n_gallery), d, generator=g, dtype=torch.float64)
    gallery = (
        z[:n_gallery]
        + 0.9 * torch.randn(n_gallery, d, generator=g, dtype=torch.float64)
        + shift
    )
    query = z[:n_query] + 0.9 * torch.randn(
        n_query, d, generator=g, dtype=torch.float64
    )
    bank = torch.randn(n_bank, d, generator=g, dtype=torch.float64) * math.sqrt(
        1 + 0.81
    )
    unit = [(x / x.norm(dim=1, keepdim=True)).to(dtype) for x in (query, gallery, bank)]
    q, gal, b = unit
    return {"sims": q @ gal.T, "bank_query_sims": b @ gal.T}


def _a2_data(seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    n = _randint(g, 200, 300)
    d, beta = _choice(g, [16, 24, 32]), _choice(g, [10.0, 20.0, 30.0])
    return {"seed": seed, "beta": beta, "dim": d, **_hubby_pair(n, n, 2 * n, d, g)}


def _is_reference(sims: torch.Tensor, bank: torch.Tensor, beta: float) -> torch.Tensor:
    return reference("hubrepro.normalize.normalize")(
        "is", sims, bank_query_sims=bank, beta_query=beta
    )


def _a2_shape(ctx: Context) -> None:
    d = _hubby_pair(20, 30, 40, 8, torch.Generator().manual_seed(201))
    got = ctx.call("inverted_softmax", d["sims"], d["bank_query_sims"], 20.0)
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(
            f"inverted_softmax must return a torch.Tensor; got {type(got).__name__}"
        )
    if got.shape != d["sims"].shape or got.dtype != d["sims"].dtype:
        raise CheckFailed(
            f"inverted_softmax must keep the shape {tuple(d['sims'].shape)} and dtype {d['sims'].dtype} of `sims`; got {tuple(got.shape)}, {got.dtype}"
        )


def _a2_ranking(ctx: Context) -> None:
    g = torch.Generator().manual_seed(202)
    for n_q, n_g, n_b, beta in [
        (40, 30, 80, 1.0),
        (60, 50, 120, 20.0),
        (25, 70, 33, 5.0),
    ]:
        d = _hubby_pair(n_q, n_g, n_b, 12, g, dtype=torch.float64)
        got = _tensor(
            ctx.call("inverted_softmax", d["sims"], d["bank_query_sims"], beta),
            "inverted_softmax's result",
        )
        _same_order(
            got,
            _is_reference(d["sims"], d["bank_query_sims"], beta),
            f"IS with beta={beta} on a {n_q}x{n_g} matrix and a bank of {n_b}",
        )


def _a2_logdomain(ctx: Context) -> None:
    d = _hubby_pair(50, 40, 400, 16, torch.Generator().manual_seed(203))
    beta = 1000.0  # exp(1000 * 0.9) overflows float32 and float64
    got = _tensor(
        ctx.call("inverted_softmax", d["sims"], d["bank_query_sims"], beta),
        "inverted_softmax's result",
    )
    ref = _is_reference(d["sims"].double(), d["bank_query_sims"].double(), beta)
    _same_order(
        got,
        ref,
        f"IS with beta={beta:g} in float32 (the log domain keeps it finite)",
        rtol=1e-5,
    )


def _a2_pure(ctx: Context) -> None:
    d = _hubby_pair(10, 12, 15, 6, torch.Generator().manual_seed(204))
    before = [d["sims"].clone(), d["bank_query_sims"].clone()]
    ctx.call("inverted_softmax", d["sims"], d["bank_query_sims"], 20.0)
    _unchanged(before, [d["sims"], d["bank_query_sims"]], "inverted_softmax")


def _r1(sims: torch.Tensor) -> float:
    res = reference("hubrepro.retrieval.evaluate_retrieval")(sims)
    return float(res["query_to_gallery"]["R@1"])


def _a2_answer_plain(ctx: Context) -> None:
    _answer(
        ctx,
        "answer_r1_plain",
        _r1(ctx.data["sims"]),
        "answer_r1_plain (R@1 in percent, no normalisation) on your data",
        rtol=1e-3,
    )


def _a2_answer_is(ctx: Context) -> None:
    want = _r1(
        _is_reference(ctx.data["sims"], ctx.data["bank_query_sims"], ctx.data["beta"])
    )
    _answer(
        ctx,
        "answer_r1_is",
        want,
        "answer_r1_is (R@1 in percent after IS) on your data",
        rtol=1e-3,
    )


A2 = Assignment(
    name="a2_inverted_softmax",
    forbidden=("hubrepro.normalize",),
    title="Inverted softmax in the log domain",
    functions=("inverted_softmax",),
    answers=("answer_r1_plain", "answer_r1_is"),
    make_data=_a2_data,
    references=(
        "hubrepro.normalize.normalize",
        "hubrepro.retrieval.evaluate_retrieval",
    ),
    checks=(
        Check(
            "shape and dtype are kept", 1, "same shape and dtype as `sims`", _a2_shape
        ),
        Check(
            "rankings match the library's IS",
            3,
            "per-row rankings against hubrepro.normalize.normalize('is', ...)",
            _a2_ranking,
        ),
        Check(
            "log domain: finite for a large beta",
            2,
            "beta = 1000 in float32 must neither overflow nor change the ranking",
            _a2_logdomain,
        ),
        Check(
            "inputs are not modified",
            1,
            "`sims` and `bank_query_sims` unchanged",
            _a2_pure,
        ),
        Check(
            "answer_r1_plain on your data",
            1,
            "R@1 of the raw similarities",
            _a2_answer_plain,
        ),
        Check(
            "answer_r1_is on your data", 2, "R@1 after IS with your beta", _a2_answer_is
        ),
    ),
)

# ------------------------------------------------- A3: hubness versus dimension (R1)


def _a3_data(seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    n, k = _randint(g, 200, 400), _choice(g, [5, 10])
    dims = [2, 8, 32, 128, _choice(g, [256, 512])]
    return {
        "seed": seed,
        "k": k,
        "n": n,
        "dims": dims,
        "samples": [torch.randn(n, d, generator=g) for d in dims],
    }


def _curve_reference(samples: list[torch.Tensor], k: int) -> list[float]:
    kocc = reference("hubrepro.hubness.k_occurrence_from_embeddings")
    skewness = reference("hubrepro.hubness.skewness")
    return [_number(skewness(kocc(x, k=k)), "reference") for x in samples]


def _student_curve(got: Any, n: int) -> list[float]:
    try:
        values = [_number(v, "each value of the curve") for v in got]
    except TypeError:
        raise CheckFailed(
            f"hubness_curve must return a list of numbers; got {type(got).__name__}"
        ) from None
    if len(values) != n:
        raise CheckFailed(
            f"hubness_curve must return one skewness per sample ({n}); got {len(values)}"
        )
    return values


def _a3_curve(ctx: Context) -> None:
    g = torch.Generator().manual_seed(301)
    samples = [
        torch.randn(80, d, generator=g, dtype=torch.float64) for d in (3, 50)
    ] + [torch.rand(60, 20, generator=g)]
    for k in (1, 5):
        got = _student_curve(
            ctx.call("hubness_curve", [s.clone() for s in samples], k), len(samples)
        )
        for i, (a, b) in enumerate(zip(got, _curve_reference(samples, k), strict=True)):
            _close(
                a,
                b,
                f"hubness_curve, sample {i} ({samples[i].shape[0]} points in dimension {samples[i].shape[1]}, k={k}); remember to leave each point out of its own neighbours",
            )


def _a3_student_reference(ctx: Context) -> list[float]:
    # computed once per grading: two checks compare with it
    if "_reference_curve" not in ctx.data:
        ctx.data["_reference_curve"] = _curve_reference(
            ctx.data["samples"], ctx.data["k"]
        )
    return ctx.data["_reference_curve"]


def _a3_answer_curve(ctx: Context) -> None:
    got = _student_curve(ctx.value("answer_curve"), len(ctx.data["dims"]))
    for d, a, b in zip(ctx.data["dims"], got, _a3_student_reference(ctx), strict=True):
        _close(a, b, f"answer_curve at dimension {d} on your data")


def _a3_answer_grows(ctx: Context) -> None:
    ref = _a3_student_reference(ctx)
    got = ctx.value("answer_grows")
    if not isinstance(got, bool):
        raise CheckFailed(f"answer_grows must be True or False; got {got!r}")
    if got != (ref[-1] > ref[0]):
        raise CheckFailed(
            "answer_grows does not describe your curve: compare its first and last values"
        )


A3 = Assignment(
    name="a3_hubness_vs_dimension",
    forbidden=("hubrepro.hubness", "hubrepro.simulate"),
    title="Hubness grows with dimension",
    functions=("hubness_curve",),
    answers=("answer_curve", "answer_grows"),
    make_data=_a3_data,
    references=(
        "hubrepro.hubness.k_occurrence_from_embeddings",
        "hubrepro.hubness.skewness",
    ),
    checks=(
        Check(
            "hubness_curve matches the library",
            3,
            "hidden samples, k in {1, 5}, against hubrepro.hubness",
            _a3_curve,
        ),
        Check(
            "answer_curve on your data",
            2,
            "the skewness at each of your dimensions",
            _a3_answer_curve,
        ),
        Check(
            "answer_grows on your data",
            1,
            "does the skewness grow from the smallest to the largest dimension?",
            _a3_answer_grows,
        ),
    ),
)

# ------------------------------------------------ A4: the neighbour adjusting loss


def _a4_inputs(
    b: int, g: torch.Generator, dtype=torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    x = _unit(b, 16, g, dtype)
    y = x + 0.6 * torch.randn(b, 16, generator=g, dtype=dtype)
    y = y / y.norm(dim=1, keepdim=True)
    bank = _unit(3 * b, 16, g, dtype)
    sims = x @ y.T
    centrality = (bank @ y.T).mean(dim=0)
    return sims, centrality


def _nal_reference(
    sims: torch.Tensor, centrality: torch.Tensor, k: int, tau: float
) -> torch.Tensor:
    nal = reference("hubrepro.losses.neighbor_adjusting_loss")
    return nal(sims, centrality, k=k, tau=tau, stats="neighbours", detach_targets=True)


def _a4_data(seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    b, k, tau = _randint(g, 40, 64), _choice(g, [5, 8, 10]), _choice(g, [1.0, 3.0, 5.0])
    sims, centrality = _a4_inputs(b, g, torch.float32)
    return {
        "seed": seed,
        "k": k,
        "tau": tau,
        "sims": sims,
        "candidate_centrality": centrality,
    }


def _a4_value(ctx: Context) -> None:
    g = torch.Generator().manual_seed(401)
    for b, k, tau in [(12, 3, 3.0), (30, 10, 1.0), (25, 24, 5.0)]:
        sims, cen = _a4_inputs(b, g)
        got = _number(
            ctx.call("neighbor_adjusting_loss", sims.clone(), cen.clone(), k, tau),
            "the loss",
        )
        _close(
            got,
            _number(_nal_reference(sims, cen, k, tau), "reference"),
            f"the loss on a batch of {b} with k={k}, tau={tau}",
            rtol=1e-6,
        )


def _a4_grad(ctx: Context) -> None:
    sims, cen = _a4_inputs(20, torch.Generator().manual_seed(402))
    a, b = sims.clone().requires_grad_(True), sims.clone().requires_grad_(True)
    got = ctx.call("neighbor_adjusting_loss", a, cen, 5, 3.0)
    if not isinstance(got, torch.Tensor) or not got.requires_grad:
        raise CheckFailed(
            "the loss must be a scalar tensor that carries gradients back to `sims`"
        )
    try:
        got.backward()
    except RuntimeError as err:
        raise CheckFailed(f"backward through the loss failed: {err}") from None
    _nal_reference(b, cen, 5, 3.0).backward()
    if a.grad is None or not torch.allclose(a.grad, b.grad, rtol=1e-6, atol=1e-9):
        raise CheckFailed(
            "the gradient with respect to `sims` differs from the reference (are the soft targets detached, and restricted to the ground truth and the k neighbours?)"
        )


def _a4_answer(ctx: Context) -> None:
    d = ctx.data
    want = _number(
        _nal_reference(d["sims"], d["candidate_centrality"], d["k"], d["tau"]),
        "reference",
    )
    _answer(ctx, "answer_loss", want, "answer_loss on your batch", rtol=1e-4)


A4 = Assignment(
    name="a4_neighbor_adjusting_loss",
    forbidden=("hubrepro.losses",),
    title="The neighbour adjusting loss of NeighborRetr",
    functions=("neighbor_adjusting_loss",),
    answers=("answer_loss",),
    make_data=_a4_data,
    references=("hubrepro.losses.neighbor_adjusting_loss",),
    checks=(
        Check(
            "the loss matches the library",
            3,
            "hidden batches, several k and tau, against hubrepro.losses.neighbor_adjusting_loss",
            _a4_value,
        ),
        Check(
            "the gradient matches the library",
            2,
            "autograd through the student's loss equals the reference gradient",
            _a4_grad,
        ),
        Check(
            "answer_loss on your data", 1, "the loss on the student's batch", _a4_answer
        ),
    ),
)

ASSIGNMENTS: dict[str, Assignment] = {a.name: a for a in (A1, A2, A3, A4)}


def list_assignments() -> list[str]:
    """Names of the assignments the grader knows."""
    return list(ASSIGNMENTS)


def get_assignment(name: str, *, func: str = "get_assignment") -> Assignment:
    """The :class:`Assignment` called ``name`` (``ValueError`` listing the known ones)."""
    if not isinstance(name, str):
        fail(func, "assignment", "a str", repr(name), exc=TypeError)
    if name not in ASSIGNMENTS:
        fail(func, "assignment", "one of " + ", ".join(ASSIGNMENTS), repr(name))
    return ASSIGNMENTS[name]


def student_data(assignment: str, student_id: str) -> dict[str, Any]:
    """Return the data variant of ``assignment`` for ``student_id``.

    Sizes, dimensions and hyperparameters vary with the student, drawn from a seed that
    hashes the assignment name and the id (:func:`student_seed`), so neighbours in a class
    get different answers while the teacher's grader regenerates each student's data.

    Parameters
    ----------
    assignment : str
        An assignment name (:func:`list_assignments`).
    student_id : str
        The id from the class roster.

    Returns
    -------
    dict
        Tensors and settings named in the assignment notebook (e.g. ``sims``, ``k``),
        plus the ``seed`` used.


    Book
    ----
    :ref:`sec-classroom-hand-out`.
    Examples
    --------
    >>> a = student_data("a1_k_occurrence_skewness", "ada")
    >>> b = student_data("a1_k_occurrence_skewness", "ada")
    >>> bool((a["sims"] == b["sims"]).all()), a["k"] in (5, 10)
    (True, True)
    """
    spec = get_assignment(assignment, func="student_data")
    return spec.make_data(student_seed(spec.name, student_id))
