"""Assignment 5: NeighborRetr's centrality weight on the shapes world, and its effect on anti-hubs.

The notebook is ``assignments/a5_centrality_weight.md``; this module is the grader's half:
the student's data variant (two seeds of a small dual encoder trained on a shapes world
of the student's own, with and without the centrality weight) and the checks. Book:
:ref:`sec-classroom-assignments-list`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch

from hubrepro.classroom.assignments._checks import (
    answer_close,
    ask,
    choice,
    close,
    kind,
    number_of,
    randint,
    tensor_of,
)
from hubrepro.classroom.core import (
    Assignment,
    Call,
    Case,
    Check,
    CheckFailed,
    Outcome,
    reference,
)

__all__ = ["ASSIGNMENT"]

#: the student's shapes world (train size drawn per student) and the tiny dual encoder:
#: four trainings of about half a second each on one CPU core
_WORLD = {"n_bank": 0, "n_test": 32, "captions_per_image": 2, "image_size": 16}
_N_VAL = 8
_ENCODER = {"channels": [8, 16], "text_width": 16, "text_heads": 2, "text_layers": 1}
_BATCH_SHOWN = 24


@functools.lru_cache(maxsize=4)
def _trained(
    world_seed: int, n_train: int, kappa: float, seeds: tuple[int, ...]
) -> dict[str, Any]:
    # Train the dual encoder of hubrepro.training on a small shapes world, once per seed
    # and condition: centrality-weighted InfoNCE with the student's kappa, and the same
    # objective with kappa = 0 (plain symmetric InfoNCE); every other NeighborRetr term
    # off, so that the weight is the only difference. Returns the test similarities
    # (captions x images, cosine) of every model and one training batch of image
    # features (global and local) of the first InfoNCE model. One thread: the same
    # numbers on every machine that grades.
    from hubrepro.datasets import make_shapes_world
    from hubrepro.training import (
        TrainConfig,
        encode,
        make_world_train_data,
        train,
        world_eval_data,
    )

    options = {**_WORLD, "n_train": n_train}
    world = make_shapes_world(seed=world_seed, n_val=_N_VAL, **options)
    data, test = make_world_train_data(world), world_eval_data(world)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sims: dict[str, list[torch.Tensor]] = {"infonce": [], "weighted": []}
        batch: dict[str, torch.Tensor] = {}
        for seed in seeds:
            for cond, k in (("infonce", 0.0), ("weighted", kappa)):
                cfg = TrainConfig(
                    dataset="shapes-world", dataset_options=options, data_seed=world_seed,
                    n_val=_N_VAL, model="dual-encoder", encoder=_ENCODER, embed_dim=16,
                    batch_size=16, mb_batch=1, epochs=2, lr=3e-3, device="cpu",
                    progress=False, seed=seed, loss="neighborretr", kappa=k,
                    w_uniform=0.0, w_neighbor=0.0, w_kl=0.0,
                )  # fmt: skip
                model = train(cfg, data).model
                q, g = encode(model, test.query, test.gallery)
                q = torch.nn.functional.normalize(q.double(), dim=1)
                g = torch.nn.functional.normalize(g.double(), dim=1)
                sims[cond].append((q @ g.T).float())
                if not batch:
                    model.eval()
                    with torch.no_grad():
                        rows = slice(0, _BATCH_SHOWN)
                        img = data.train_gallery[rows]
                        local, glob = model.encode_gallery(img)[:2]
                    batch = {"global": glob.float(), "local": local.float()}
    finally:
        torch.set_num_threads(threads)
    return {"sims": sims, "batch": batch}


def _a5_data(seed: int) -> dict[str, Any]:
    from scipy import stats

    g = torch.Generator().manual_seed(seed)
    n_train = choice(g, [64, 80, 96])
    kappa, k = choice(g, [0.5, 1.0, 2.0]), choice(g, [3, 5])
    world_seed = randint(g, 0, 99_999)
    seeds = (randint(g, 0, 9_999), randint(g, 10_000, 19_999))
    run = _trained(world_seed, n_train, kappa, seeds)
    return {
        "seed": seed,
        "world_seed": world_seed,
        "training_seeds": list(seeds),
        "kappa": kappa,
        "k": k,
        "sims_infonce": [s.clone() for s in run["sims"]["infonce"]],
        "sims_weighted": [s.clone() for s in run["sims"]["weighted"]],
        "batch_global": run["batch"]["global"].clone(),
        "batch_local": run["batch"]["local"].clone(),
        "t_quantile": float(stats.t.ppf(0.975, len(seeds) - 1)),
    }


# ------------------------------------------------------------------ the functions


def _a5_weight_inputs(case: Case) -> list[Call]:
    g = case.generator()
    calls = []
    for b, d, kappa, scale in [
        (randint(g, 4, 7), randint(g, 3, 6), 1.0, 1.0),
        (randint(g, 20, 40), 16, 0.3, 5.0),  # globals of any norm: cosines are taken
        (randint(g, 10, 16), 8, 0.0, 1.0),  # kappa 0: unit weights
        (2, 4, 2.0, 0.2),  # the smallest batch with an other sample
    ]:
        glob = scale * torch.randn(b, d, generator=g, dtype=torch.float64)
        local = glob + torch.randn(b, d, generator=g, dtype=torch.float64)
        calls.append(Call("centrality_weights", (glob, local, kappa)))
    return calls


def _a5_weight(
    case: Case, requests: Sequence[Call], outcomes: Sequence[Outcome]
) -> None:
    weights = reference("hubrepro.losses.centrality_weights")
    for call, out in zip(requests, outcomes, strict=True):
        glob, local, kappa = call.args
        b = glob.shape[0]
        got = tensor_of(out.value, "centrality_weights's result")
        want = weights(glob, local, kappa=kappa)
        if tuple(got.shape) != (b,):
            raise CheckFailed(
                f"centrality_weights on a batch of {b} must return one weight per sample ({b},); got shape {tuple(got.shape)}"
            )
        if not torch.allclose(got.to(torch.float64), want, rtol=1e-6, atol=1e-9):
            i = int((got.to(torch.float64) - want).abs().argmax())
            raise CheckFailed(
                f"centrality_weights (batch {b}, dim {glob.shape[1]}, kappa={kappa}): "
                f"weight {i} is {float(got[i]):.6g}, expected {float(want[i]):.6g} "
                "(cosines, not dot products? the sample's own local feature left out?)"
            )


def _a5_antihub_inputs(case: Case) -> list[Call]:
    g = case.generator()
    shapes = [
        (randint(g, 20, 40), randint(g, 10, 20), 3),
        (randint(g, 60, 90), randint(g, 30, 50), 1),
        (randint(g, 5, 8), 6, 6),  # k = n_gallery: every column retrieved, rate 0
        (randint(g, 100, 150), 64, 5),
    ]
    return [
        Call("antihub_rate", (torch.randn(n, m, generator=g, dtype=torch.float64), k))
        for n, m, k in shapes
    ]


def _antihub(sims: torch.Tensor, k: int) -> float:
    n_k = reference("hubrepro.hubness.k_occurrence")(sims, k=k)
    return reference("hubrepro.hubness.antihub_rate")(n_k)


def _a5_antihub(
    case: Case, requests: Sequence[Call], outcomes: Sequence[Outcome]
) -> None:
    for call, out in zip(requests, outcomes, strict=True):
        sims, k = call.args
        close(
            number_of(out.value, "antihub_rate's result"),
            _antihub(sims, k),
            f"antihub_rate of a {sims.shape[0]}x{sims.shape[1]} matrix with k={k}",
            rtol=0.0,
            atol=1e-9,
        )


# ------------------------------------------------------------------ the answers


def _rates(case: Case) -> dict[str, list[float]]:
    if "rates" not in case.cache:
        d = case.data
        case.cache["rates"] = {
            cond: [_antihub(s, d["k"]) for s in d[f"sims_{cond}"]]
            for cond in ("infonce", "weighted")
        }
    return case.cache["rates"]


def _numbers(x: Any, name: str, n: int) -> list[float]:
    if isinstance(x, torch.Tensor):
        x = x.detach().reshape(-1).tolist()
    if not isinstance(x, list | tuple) or len(x) != n:
        shown = x if isinstance(x, int | float | str) else kind(x)
        raise CheckFailed(f"{name} must be a list of {n} numbers; got {shown!r}")
    return [number_of(v, f"each entry of {name}") for v in x]


def _a5_rates(case: Case, requests, outcomes: Sequence[Outcome]) -> None:
    want = _rates(case)
    for (cond, want_c), out in zip(want.items(), outcomes, strict=True):
        name = f"answer_{cond}_rates"
        got = _numbers(out.value, name, len(want_c))
        for i, (x, w) in enumerate(zip(got, want_c, strict=True)):
            close(x, w, f"{name}[{i}] (training seed {i + 1})", rtol=0.0, atol=1e-6)


def _a5_ratio(case: Case, requests, outcomes: Sequence[Outcome]) -> None:
    d = case.data
    w = reference("hubrepro.losses.centrality_weights")(
        d["batch_global"], d["batch_local"], kappa=d["kappa"]
    )
    answer_close(
        outcomes[0].value,
        "answer_weight_ratio",
        float(w.max() / w.min()),
        "answer_weight_ratio on your batch",
        rtol=1e-4,
    )


def _a5_interval(case: Case, requests, outcomes: Sequence[Outcome]) -> None:
    r = _rates(case)
    iv = reference("hubrepro.inference.paired_t_interval")(r["infonce"], r["weighted"])
    delta, interval = outcomes
    answer_close(
        delta.value, "answer_delta", iv.estimate, "answer_delta (weighted - InfoNCE)"
    )
    low, high = _numbers(interval.value, "answer_interval", 2)
    for got, want, what in ((low, iv.low, "lower"), (high, iv.high, "upper")):
        if math.isfinite(want):
            close(got, want, f"the {what} end of answer_interval", atol=1e-6)


ASSIGNMENT = Assignment(
    name="a5_centrality_weight",
    title="The centrality weight of NeighborRetr, and anti-hubs over two seeds",
    functions=("centrality_weights", "antihub_rate"),
    answers=(
        "answer_weight_ratio",
        "answer_infonce_rates",
        "answer_weighted_rates",
        "answer_delta",
        "answer_interval",
    ),
    make_data=_a5_data,
    references=(
        "hubrepro.losses.centrality_weights",
        "hubrepro.hubness.k_occurrence",
        "hubrepro.hubness.antihub_rate",
        "hubrepro.inference.paired_t_interval",
    ),
    checks=(
        Check(
            "centrality_weights matches the library",
            3,
            "hidden batches, several dimensions and kappa, against hubrepro.losses.centrality_weights",
            _a5_weight_inputs,
            _a5_weight,
        ),
        Check(
            "antihub_rate matches the library",
            2,
            "hidden matrices, several shapes and k, against hubrepro.hubness.antihub_rate of k_occurrence",
            _a5_antihub_inputs,
            _a5_antihub,
        ),
        Check(
            "answer_weight_ratio on your data",
            1,
            "largest over smallest centrality weight of the student's batch",
            ask("answer_weight_ratio"),
            _a5_ratio,
        ),
        Check(
            "answer_infonce_rates and answer_weighted_rates on your data",
            1,
            "the anti-hub rate of each of the student's four trained models",
            lambda case: [
                *ask("answer_infonce_rates")(case),
                *ask("answer_weighted_rates")(case),
            ],
            _a5_rates,
        ),
        Check(
            "answer_delta and answer_interval on your data",
            2,
            "the mean paired change of the anti-hub rate and its 95% paired-t interval, against hubrepro.inference.paired_t_interval",
            lambda case: [*ask("answer_delta")(case), *ask("answer_interval")(case)],
            _a5_interval,
        ),
    ),
)
