"""The NeighborRetr driver on shapes-world: one tiny training run per condition, the
epoch hooks (curves, per-term gradients against a naive backward), the claims decided
by hand-checkable paired intervals, and the same code on CUDA with AMP (marked gpu)."""

from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest
import torch

from hubrepro.experiments import neighborretr as nr
from hubrepro.training import (
    RetrievalCurve,
    TermGradients,
    Trainer,
    make_world_train_data,
    term_gradient_norms,
    world_eval_data,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(
    n_seeds=2, n_train=48, n_val=12, n_test=16, captions_per_image=2, image_size=16,
    channels=(8,), text_width=8, text_heads=2, embed_dim=8, epochs=2, batch_size=8,
    mb_batch=2, num_neighbors=3, k=3, hist_k=3, n_boot=20,
)  # fmt: skip

ALL_CONDITIONS = [
    *nr.CONDITIONS,
    "kappa-1",
    "boost-uniform",
    "boost-neighbor",
    "boost-kl",
    "boost-all",
]


@pytest.fixture(scope="module")
def cfg():
    return nr.StudyConfig(**TINY)


@pytest.fixture(scope="module")
def world(cfg):
    return nr.make_world(cfg)


def _state_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("condition", ALL_CONDITIONS)
def test_one_tiny_training_run_per_condition(cfg, world, condition):
    c = dataclasses.replace(cfg, n_seeds=2, gradient_conditions=(condition,))
    runs = nr.train_conditions(c, world, [condition])
    assert list(runs.runs["condition"]) == [condition, condition]
    assert list(runs.runs["seed"]) == [0, 1]
    for col in ("q2g_R@1", "g2q_R@1", "gallery_skewness", "q2g_bad_hub_fraction"):
        assert runs.runs[col].notna().all(), col
    hist = runs.history
    assert len(hist) == 2 * cfg.epochs
    assert {f"curve_{k}" for k in nr.CURVE_KEYS} <= set(hist.columns)
    over = nr.condition_overrides(condition, cfg.boosts)
    if over["loss"] == "neighborretr":
        # a removed term pulls with exactly zero gradient; a present one does not
        for term, field in (
            ("uniform", "w_uniform"),
            ("neighbor", "w_neighbor"),
            ("kl", "w_kl"),
        ):
            zero = over.get(field, 1.0) == 0
            assert (hist[f"grad_rel_{term}"] == 0).all() == zero, term
        assert (hist["grad_rel_kappa"] == 0).all() == (over.get("kappa", 0.3) == 0)
    else:
        assert (
            (hist[["grad_rel_uniform", "grad_rel_neighbor", "grad_rel_kl"]] == 0)
            .all()
            .all()
        )
    # seeds pair the runs: different seeds, different models
    assert not _state_equal(runs.models[(condition, 0)], runs.models[(condition, 1)])


def test_conditions_configure_the_trainer(cfg):
    nce = cfg.train_config("infonce", 0)
    assert nce.loss == "infonce" and nce.learn_logit_scale
    assert nce.logit_scale_init == pytest.approx(1 / 0.07)
    fixed = cfg.train_config("infonce-fixed-scale", 0)
    assert fixed.loss == "infonce" and not fixed.learn_logit_scale
    assert (
        cfg.train_config("no-kl", 3).w_kl == 0
        and cfg.train_config("no-kl", 3).seed == 3
    )
    assert cfg.train_config("no-kl", 3).compat == "official"
    assert cfg.train_config("kappa-3", 0).kappa == 3.0
    assert cfg.train_config("boost-neighbor", 0).w_neighbor == cfg.boosts["w_neighbor"]
    with pytest.raises(ValueError, match="condition"):
        nr.StudyConfig(**{**TINY, "conditions": ("no-such-thing",)})
    with pytest.raises(ValueError, match="n_seeds"):
        nr.StudyConfig(**{**TINY, "n_seeds": 1})


def test_run_refuses_posthoc_conditions_that_are_not_trained(cfg):
    bad = dataclasses.replace(
        cfg, conditions=("infonce",), posthoc_conditions=("no-kl",)
    )
    with pytest.raises(ValueError, match="posthoc_conditions"):
        nr.run(bad)


def test_hooks_leave_the_run_unchanged(cfg, world):
    tc = cfg.train_config("neighborretr-official", 0)
    data = make_world_train_data(world)
    plain = Trainer(tc, data).fit()
    curve = RetrievalCurve(world_eval_data(world, "test", captions_per_image=1), k=3)
    hooked = Trainer(tc, data, epoch_hooks=[curve, TermGradients(seed=1)]).fit()
    assert _state_equal(plain.final_model, hooked.final_model)
    assert "curve_q2g_R@1" in hooked.history[-1] and "grad_rel_kl" in hooked.history[-1]
    assert "curve_q2g_R@1" not in plain.history[-1]


def test_curve_subset_keeps_the_first_captions_of_each_image(world):
    full = world_eval_data(world, "test")
    one = world_eval_data(world, "test", captions_per_image=1)
    assert one.query.shape[0] == world.test.n_images
    assert torch.equal(one.query_to_gallery, torch.arange(world.test.n_images))
    first = torch.searchsorted(full.query_to_gallery, torch.arange(world.test.n_images))
    assert torch.equal(one.query, full.query[first])
    assert torch.equal(one.relevant, full.relevant[first])


def _naive_norms(trainer, idx):
    # the same quantities with .backward() and .grad, one term at a time
    from hubrepro.losses import symmetric_infonce

    model, crit, cfg = trainer.model, trainer.criterion, trainer.cfg
    q, g = trainer._inputs(*trainer.pairs.rows(idx, trainer.epoch))

    def grad_of(which):
        model.zero_grad(set_to_none=True)
        out = {k: v.float() for k, v in model(q, g).items()}
        bq, bg = trainer._bank_view()
        scale = model.logit_scale()
        if which == "nce":
            s = (
                torch.nn.functional.normalize(out["query_local"], dim=-1)
                @ torch.nn.functional.normalize(out["gallery_local"], dim=-1).T
            )
            loss = symmetric_infonce(s, scale)
        else:
            terms = crit(out["query_local"], out["gallery_local"], out["query_global"],
                         out["gallery_global"], scale, bank_query_local=bq,
                         bank_gallery_local=bg, return_terms=True)  # fmt: skip
            w = {
                "wti": 1.0,
                "uniform": cfg.w_uniform,
                "neighbor": cfg.w_neighbor,
                "kl": cfg.w_kl,
            }
            loss = w[which] * terms[which]
        loss.backward()
        return {n: (None if p.grad is None else p.grad.detach().double().clone())
                for n, p in model.named_parameters()}  # fmt: skip

    ref = grad_of("nce")
    keep = [n for n, v in ref.items() if v is not None]

    def norm(gr):
        return math.sqrt(
            sum(float(gr[n].pow(2).sum()) for n in keep if gr[n] is not None)
        )

    out = {"grad_infonce": norm(ref)}
    wti = grad_of("wti")
    out["grad_rel_kappa"] = math.sqrt(
        sum(float((wti[n] - ref[n]).pow(2).sum()) for n in keep)
    ) / norm(ref)
    for term in ("uniform", "neighbor", "kl"):
        out[f"grad_rel_{term}"] = norm(grad_of(term)) / norm(ref)
    model.zero_grad(set_to_none=True)
    return out


def test_term_gradients_match_a_naive_backward(cfg, world):
    tc = dataclasses.replace(cfg.train_config("boost-all", 0), epochs=1)
    trainer = Trainer(tc, make_world_train_data(world))
    trainer.begin_epoch()
    trainer.step(trainer.batch(0))  # a trained step and a filled bank
    idx = torch.arange(8)
    got = term_gradient_norms(trainer, idx)
    want = _naive_norms(trainer, idx)
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-12), key
    assert all(v > 0 for v in got.values())


def _fake_runs(values: dict[str, list[float]], column: str = "q2g_R@1") -> pd.DataFrame:
    rows = [
        {"condition": c, "seed": s, column: v}
        for c, vals in values.items()
        for s, v in enumerate(vals)
    ]
    return pd.DataFrame(rows)


def test_claims_are_decided_by_hand_checkable_paired_intervals(cfg):
    runs = _fake_runs({
        "infonce-fixed-scale": [10.0, 11.0, 12.0],
        # +2, +3, +4: mean 3, sd 1, t(0.975, 2) = 4.3027 -> 3 ± 2.484
        "neighborretr-official": [12.0, 14.0, 16.0],
        # NeighborRetr - no-kl = +0.2, -0.2, 0: 0 ± 0.50, inside the 1-point margin
        "no-kl": [11.8, 14.2, 16.0],
        # larger than NeighborRetr by 1, 0, 2: NeighborRetr - kappa-3 = -1 [-3.48, 1.48]
        "kappa-3": [13.0, 14.0, 18.0],
        "kappa-1": [12.0, 14.0, 16.0],
    })  # fmt: skip
    claims = {c.key: c for c in nr.decide_claims(runs, cfg)}
    assert set(claims) == {"nr-r1-t2i", "nr-term-kl", "nr-kappa-sens"}
    c = claims["nr-r1-t2i"]
    assert c.verdict == "supported" and c.paper == "NeighborRetr"
    assert c.interval.estimate == pytest.approx(3.0)
    assert c.interval.low == pytest.approx(3 - 4.302653 / math.sqrt(3), abs=1e-5)
    assert c.interval.high == pytest.approx(3 + 4.302653 / math.sqrt(3), abs=1e-5)
    assert c.evidence == "tbl-nr-deltas"
    kl = claims["nr-term-kl"]
    assert kl.verdict == "not supported" and kl.interval.estimate == pytest.approx(
        0.0, abs=1e-12
    )
    assert kl.interval.high == pytest.approx(4.302653 * 0.2 / math.sqrt(3), abs=1e-5)
    kappa = claims["nr-kappa-sens"]
    assert "κ = 3" in kappa.claim  # the largest κ trained is the comparison
    assert kappa.verdict == "inconclusive" and kappa.interval.estimate == pytest.approx(
        -1.0
    )
    table = nr.claims_table(list(claims.values()), cfg, runs)
    assert list(table["verdict"]) == ["supported", "not supported", "inconclusive"]
    assert table.loc[0, "difference [95 % interval]"] == "+3.0 [0.5, 5.5]"


def test_rates_are_compared_in_percentage_points(cfg):
    runs = _fake_runs(
        {
            "infonce-fixed-scale": [0.50, 0.52, 0.54],
            "neighborretr-official": [0.40, 0.41, 0.42],
        },
        column="q2g_bad_hub_fraction",
    )
    runs["gallery_skewness"] = 1.0
    runs["query_antihub_rate"] = 0.3
    for col in ("q2g_R@1", "g2q_R@1"):
        runs[col] = 5.0
    claims = {c.key: c for c in nr.decide_claims(runs, cfg)}
    assert claims["nr-bad-hubs"].verdict == "supported"
    assert claims["nr-bad-hubs"].interval.estimate == pytest.approx(-11.0)
    # identical skewness and anti-hub rates: zero difference, inside the margin
    assert claims["nr-hubness"].verdict == "not supported"
    assert claims["nr-antihubs"].verdict == "not supported"


def test_tiny_study_end_to_end(cfg):
    small = dataclasses.replace(
        cfg,
        conditions=("infonce", "infonce-fixed-scale", "neighborretr-official", "no-kl"),
        gradient_conditions=("neighborretr-official",),
        posthoc_methods=("is", "sn"),
    )
    res = nr.run(small)
    assert set(res.conditions) == set(small.conditions)
    assert nr.QBNORM in set(res.runs["condition"])
    keys = {c.key for c in res.claims}
    assert {
        "nr-r1-t2i",
        "nr-r1-clip",
        "nr-term-kl",
        "nr-good-vs-all",
        "db-d1-learned",
    } <= keys
    assert set(res.posthoc["method"]) == {"none", "is", "sn"}
    assert len(res.geometry) == len(small.conditions) * small.n_seeds
    assert list(res.hist.columns)[-1] == "ground truth"
    heads = nr.headlines(res)
    assert heads["val-seeds"] == 2 and "txt-nr-r1-t2i" in heads
    assert "val-grad-kl-neighborretr-official" in heads


@pytest.mark.gpu
def test_conditions_train_on_cuda_with_amp(cfg, world):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    c = dataclasses.replace(
        cfg, device="cuda", gradient_conditions=("neighborretr-official",)
    )
    runs = nr.train_conditions(c, world, ["infonce", "neighborretr-official"])
    assert runs.runs[["q2g_R@1", "gallery_skewness"]].notna().all().all()
    model = runs.models[("neighborretr-official", 0)]
    assert next(model.parameters()).device.type == "cuda"
    assert runs.history["grad_rel_uniform"].gt(0).all()


def test_resume_with_encoders_and_hooks_is_bit_identical(tmp_path, cfg, world):
    from hubrepro.training import resume, train

    tc = dataclasses.replace(
        cfg.train_config("neighborretr-official", 0), checkpoint_every=2
    )
    data = make_world_train_data(world)
    curve = RetrievalCurve(world_eval_data(world, "test", captions_per_image=1), k=3)

    def hooks():
        return [curve, TermGradients(seed=0)]

    straight = train(tc, data, run_dir=tmp_path / "a", epoch_hooks=hooks())
    part = train(
        tc, data, run_dir=tmp_path / "b", stop_after_steps=3, epoch_hooks=hooks()
    )
    assert part.steps == 3  # killed mid-way through the first epoch
    resumed = resume(tmp_path / "b", data, epoch_hooks=hooks())
    assert _state_equal(straight.final_model, resumed.final_model)
    assert _state_equal(straight.model, resumed.model)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in straight.history]
    assert strip == [
        {k: v for k, v in r.items() if k != "seconds"} for r in resumed.history
    ]
    assert "grad_rel_uniform" in resumed.history[-1]


# ---- the step-cost benchmark record (chapter 6, sec-nr-cost) ------------------------


def _bench_record(tmp_path):
    rec = {
        "targets": {"step_ratio": 1.15, "loss_ratio": 1.5},
        "results": [
            {
                "batch": 8,
                "objectives": {
                    "InfoNCE": {"step_ratio": 1.0, "loss_ratio": 1.0},
                    "NeighborRetr (fixed)": {"step_ratio": 1.1, "loss_ratio": 3.0},
                    "NeighborRetr (fixed) without L_KL": {"loss_ratio": 2.5},
                },
            },
            {
                "batch": 16,
                "objectives": {
                    "InfoNCE": {"step_ratio": 1.0, "loss_ratio": 1.0},
                    "NeighborRetr (fixed)": {"step_ratio": 1.05, "loss_ratio": 4.0},
                    "NeighborRetr (fixed) without L_KL": {"loss_ratio": 2.0},
                },
            },
        ],
    }
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(rec))
    return path


def test_step_cost_reads_the_ratios_and_their_ranges(tmp_path):
    path = _bench_record(tmp_path)
    frame = nr.step_cost(path)
    assert list(frame["batch"]) == [8, 8, 16, 16]
    assert "InfoNCE" not in set(
        frame["objective"]
    )  # the reference row is 1 by definition
    assert frame["step_ratio"].isna().sum() == 2  # loss-only rows
    heads = nr.step_cost_headlines(path)
    assert heads["val-step-ratio-min"] == pytest.approx(1.05)
    assert heads["val-step-ratio-max"] == pytest.approx(1.1)
    assert heads["val-loss-ratio-min"] == pytest.approx(3.0)
    assert heads["val-loss-ratio-max"] == pytest.approx(4.0)
    assert heads["val-loss-ratio-one-term-min"] == pytest.approx(2.0)
    assert heads["val-loss-ratio-one-term-max"] == pytest.approx(2.5)
    assert heads["val-loss-target"] == pytest.approx(1.5)


def test_step_cost_refuses_a_file_that_is_not_the_benchmark(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": []}')
    with pytest.raises(ValueError, match="benchmarks/bench_encoders.py"):
        nr.step_cost(bad)
    with pytest.raises(ValueError, match="missing.json"):
        nr.step_cost(tmp_path / "missing.json")


def test_the_committed_benchmark_record_is_readable():
    heads = nr.step_cost_headlines()
    assert {"val-step-ratio-max", "val-loss-ratio-min"} <= set(heads)
    assert all(v > 0 for v in heads.values())
