"""Notebook 45's driver: what each normaliser costs, and the race against the authors' pipeline.

Two sources, one result:

* a **sweep** run here: for each method and query-bank size, the wall time of a
  full run from embeddings (fit + normalise the test queries) in this process
  (median of ``repeat``, after one untimed warm-up run), next to its *floor* (the
  matmuls of the banks that method reads, alone), and the
  **peak resident set of a child process** that does the same run, next to a
  baseline child that only imports and builds the data (the difference is the
  method's own working set; see :func:`hubrepro.profiling.run_child`);
* the **benchmark file** ``benchmarks/results/bench_normalize.json`` written by
  ``benchmarks/bench_normalize.py`` at MSR-VTT scale (whole processes: hubrepro's
  CLI against a NumPy transcription of the authors' pipeline, fit once / apply
  many, a 10x bank memory-mapped in float16, a FAISS index at a million items),
  read, not re-measured.

``run(cfg)`` returns both; ``headlines(result)`` the numbers the chapter pastes;
``plot_cost(result)`` the figure.

Book: :ref:`sec-normalisation`, sections "Streaming design" and "What it costs".
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hubrepro._validation import check_choice, check_int, fail

__all__ = ["NormalizerCostConfig", "CostResult", "run", "headlines", "plot_cost"]

HYPER = {
    "is": {"beta_query": 20.0},
    "dis": {"beta_query": 20.0},
    "dualis": {"beta_query": 20.0, "beta_gallery": 20.0},
    "dualdis": {"beta_query": 20.0, "beta_gallery": 20.0},
    "csls": {"k": 10},
    "nnn": {"k": 16},
}


@dataclass(frozen=True)
class NormalizerCostConfig:
    """Parameters of notebook 45 (cost of each normaliser against the bank size)."""

    methods: tuple[str, ...] = (
        "is", "dis", "csls", "gc", "dualis", "dualdis", "sn", "dbsn", "nnn",
    )  # fmt: skip
    bank_sizes: tuple[int, ...] = (
        1000,
        4000,
        16000,
    )  # M_q (the gallery bank has M_q / 4)
    n_query: int = 1000  # test queries
    n_gallery: int = 1000  # test gallery
    dim: int = 128  # embedding dimension
    chunk_size: int = 4096  # bank rows per chunk
    repeat: int = 1  # in-process timings: median of `repeat`
    sn_iter: int = 3  # Sinkhorn iterations (SN, DBSN)
    # child-process peak RSS at "all" bank sizes, the "largest", or "none"
    child_memory: str = "largest"
    seed: int = 0
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/45_normalizer_cost"
    bench_results: str = "../benchmarks/results/bench_normalize.json"


@dataclass(frozen=True)
class CostResult:
    """Output of :func:`run`: the sweep (a DataFrame) and the benchmark record (a dict)."""

    cost: Any
    bench: dict


def _hyper(name: str, cfg: NormalizerCostConfig) -> dict:
    if name in ("sn", "dbsn"):
        return {"beta_query": 20.0, "n_iter": cfg.sn_iter, "tol": 1e-12}
    return dict(HYPER.get(name, {}))


def _problem(cfg: NormalizerCostConfig, m_q: int, device: torch.device):
    """Random unit embeddings (the cost does not depend on the data), seeded."""
    gen = torch.Generator().manual_seed(cfg.seed)

    def unit(n: int) -> torch.Tensor:
        x = torch.randn(n, cfg.dim, generator=gen)
        return (x / x.norm(dim=1, keepdim=True)).to(device)

    q, g = unit(cfg.n_query), unit(cfg.n_gallery)
    return q, g, unit(m_q), unit(max(m_q // 4, 1))


def _work(cfg: NormalizerCostConfig, name: str, q, g, bq, bg) -> torch.Tensor:
    from hubrepro.normalize import normalize_embeddings

    return normalize_embeddings(name, q, g, bank_query=bq, bank_gallery=bg,
                                chunk_size=cfg.chunk_size, **_hyper(name, cfg))  # fmt: skip


def _child(spec: str) -> None:
    """Entry point of a measured child: build the data, run one method (or none)."""
    s = json.loads(spec)
    cfg = NormalizerCostConfig(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in s["cfg"].items()})  # fmt: skip
    torch.set_num_threads(s["threads"])
    data = _problem(cfg, s["bank"], torch.device(cfg.device))
    t0 = time.perf_counter()
    if s["method"] is not None:
        _work(cfg, s["method"], *data)
    print(json.dumps({"work_s": time.perf_counter() - t0}))


def _child_peak(cfg: NormalizerCostConfig, method: str | None, bank: int) -> int:
    from dataclasses import asdict

    from hubrepro.profiling import run_child

    spec = json.dumps({"cfg": asdict(cfg), "method": method, "bank": bank,
                       "threads": torch.get_num_threads()})  # fmt: skip
    r = run_child([sys.executable, "-m", "hubrepro.experiments.normalizer_cost", spec])
    if r.returncode != 0:
        raise RuntimeError(f"normalizer_cost child failed: {r.stderr[-800:]}")
    return r.peak_rss_bytes


def _median_seconds(fn, repeat: int, device: torch.device) -> float:
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _banks(name: str) -> tuple[str, ...]:
    """The bank matrices ``name`` reads with its default options (its floor)."""
    from hubrepro.normalize.variants import VARIANTS

    v = VARIANTS.get(name)
    return v.banks if v is not None and v.banks else ("query", "gallery")


def sweep(cfg: NormalizerCostConfig):
    """Time (in process) and child-process peak memory of every method at every bank size.

    Returns
    -------
    pandas.DataFrame
        Columns ``method, bank_size, seconds, floor_seconds, ratio_to_floor,
        peak_mib`` (whole child process), ``extra_mib`` (above the baseline child,
        0 when the method's peak does not exceed the baseline's: its chunked work
        fits in memory the process already holds). ``floor_seconds`` is the time of
        the bank matmuls *that method* reads (the query bank for IS, both banks for
        DualIS; :data:`hubrepro.normalize.variants.VARIANTS`), each timed after a
        warm-up call, so a ratio below 1 is measurement noise, not a method faster
        than its own matmuls.
    """
    import pandas as pd

    from hubrepro._compat import resolve_device
    from hubrepro.normalize import METHODS

    func = "normalizer_cost.sweep"
    for m in cfg.methods:
        if m not in METHODS:
            fail(func, "methods", f"names from {sorted(METHODS)}", repr(m))
    for b in cfg.bank_sizes:
        check_int(b, "bank_sizes", func, low=4)
    check_int(cfg.repeat, "repeat", func, low=1)
    check_choice(cfg.child_memory, "child_memory", func, ("all", "largest", "none"))
    dev = resolve_device(cfg.device)
    rows = []
    for m_q in cfg.bank_sizes:
        q, g, bq, bg = _problem(cfg, m_q, dev)
        gt = g.T.contiguous()

        # the floor of a method is the matmuls of the banks it reads: the query bank
        # against the gallery, the gallery bank against the gallery, the query bank
        # against the gallery bank (DBSN's "cross" matrix); IS reads only the first
        products = {
            "query": (bq, gt),
            "gallery": (bg, gt),
            "cross": (bq, bg.T.contiguous()),
        }

        def matmuls(banks, products=products) -> None:
            for b in banks:
                left, right = products[b]
                for a in range(0, left.shape[0], cfg.chunk_size):
                    left[a : a + cfg.chunk_size] @ right

        t_bank = {}
        for b in products:
            matmuls((b,))  # warm-up: the first call pays allocation and thread start-up
            t_bank[b] = _median_seconds(lambda b=b: matmuls((b,)), cfg.repeat, dev)
        child = cfg.child_memory == "all" or (
            cfg.child_memory == "largest" and m_q == max(cfg.bank_sizes)
        )
        base = _child_peak(cfg, None, m_q) if child else None
        for name in cfg.methods:
            _work(cfg, name, q, g, bq, bg)  # warm-up, untimed
            secs = _median_seconds(lambda name=name: _work(cfg, name, q, g, bq, bg),  # noqa: B023
                                   cfg.repeat, dev)  # fmt: skip
            t_floor = sum(t_bank[b] for b in _banks(name))
            peak = _child_peak(cfg, name, m_q) if child else None
            rows.append({
                "method": name, "bank_size": m_q, "seconds": secs,
                "floor_seconds": t_floor, "ratio_to_floor": secs / t_floor,
                "peak_mib": float("nan") if peak is None else peak / 2**20,
                "extra_mib": float("nan") if peak is None else max(peak - base, 0) / 2**20,
            })  # fmt: skip
    return pd.DataFrame(rows)


def run(cfg: NormalizerCostConfig) -> CostResult:
    """The sweep, and the committed benchmark record (``cfg.bench_results``)."""
    path = Path(cfg.bench_results)
    if not path.is_file():
        raise FileNotFoundError(
            f"normalizer_cost.run: `bench_results` must be the benchmark file; got "
            f"{str(path)!r}. Run `python benchmarks/bench_normalize.py` to create it."
        )
    return CostResult(cost=sweep(cfg), bench=json.loads(path.read_text()))


def headlines(result: CostResult) -> dict[str, Any]:
    """Numbers the chapter pastes (glue-key suffixes after ``nb45-``).

    From the sweep: ``val-largest-bank``, ``val-dualis-ratio`` and, per method at
    the largest bank, ``val-<method>-extra-mib``. From the benchmark record:
    every ratio of its ``ratios`` block as ``val-bench-<name>``, and the measured
    quantities of its ``headline`` block (``val-bench-…``, or ``txt-bench-…`` for
    text), ``val-bench-inproc-<floor|dualis|dualdis>-s`` (the in-process timings),
    ``txt-bench-<ratio>-verdict`` ("met" or "missed") for every target,
    plus ``txt-bench-machine``.
    """
    cost, bench = result.cost, result.bench
    largest = cost[cost.bank_size == cost.bank_size.max()].set_index("method")
    out: dict[str, Any] = {"val-largest-bank": int(cost.bank_size.max())}
    for m in largest.index:
        out[f"val-{m}-ratio"] = float(largest.loc[m, "ratio_to_floor"])
        out[f"val-{m}-extra-mib"] = float(largest.loc[m, "extra_mib"])
    for name, value in bench["ratios"].items():
        out[f"val-bench-{name.replace('_', '-')}"] = float(value)
    for t in bench["targets"]:
        out[f"txt-bench-{t['name'].replace('_', '-')}-verdict"] = (
            "met" if t["met"] else "missed"
        )
    for name, value in bench["headline"].items():
        kind = "txt" if isinstance(value, str) else "val"
        out[f"{kind}-bench-{name.replace('_', '-')}"] = value
    for name, value in bench.get("in_process", {}).items():
        out[f"val-bench-inproc-{name}-s"] = float(value)
    m = bench["machine"]
    out["txt-bench-machine"] = (
        f"{m['cpu_count']} CPU cores, torch {m['torch']}, NumPy {m['numpy']}, "
        f"load average {m['load_before']:.1f} at the start, {bench['created']}"
    )
    return out


def table_race(bench: dict):
    """The race as a table: wall time and peak RSS of each whole program."""
    import pandas as pd

    rows = [
        {"program": r["label"], "wall (s)": r["wall_s"], "peak RSS (MiB)": r["peak_rss_bytes"] / 2**20}
        for r in bench["race"]
    ]  # fmt: skip
    return pd.DataFrame(rows).set_index("program")


def table_ratios(bench: dict):
    """Every target ratio of the benchmark, with its target and whether it was met."""
    import pandas as pd

    rows = [
        {"ratio": t["label"], "measured": t["value"], "target": t["target"], "met": t["met"]}
        for t in bench["targets"]
    ]  # fmt: skip
    return pd.DataFrame(rows).set_index("ratio")


def plot_cost(result: CostResult):
    """Time against the bank size (with the matmul floor) and child-process extra memory."""
    import matplotlib.pyplot as plt

    cost = result.cost
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(9, 4.4))
    from hubrepro.normalize.variants import variant_label

    for name, grp in cost.groupby("method", sort=False):
        ax_t.plot(grp.bank_size, grp.seconds, marker="o", label=variant_label(name))
        ax_m.plot(grp.bank_size, grp.extra_mib, marker="o", label=variant_label(name))
    floors = cost.assign(banks=cost.method.map(lambda m: " + ".join(_banks(m))))
    for (banks, grp), style in zip(
        floors.groupby("banks"), ("k--", "k:", "k-."), strict=False
    ):
        f = grp.groupby("bank_size").floor_seconds.first()
        ax_t.plot(f.index, f.values, style, label=f"floor: {banks} bank matmuls")
    ax_t.set(xscale="log", yscale="log", xlabel="query-bank size (rows)",
             ylabel="wall time (seconds)")  # fmt: skip
    ax_m.set(xscale="log", xlabel="query-bank size (rows)",
             ylabel="peak memory above baseline (MiB)")  # fmt: skip
    # one legend below both panels, where it covers no line
    handles, labels = ax_t.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    return fig


if __name__ == "__main__":  # a measured child of `sweep`
    _child(sys.argv[1])
