"""The race: hubrepro against the authors' pipeline, as whole processes, and serving costs.

Not a test: measures and prints every ratio of the targets below in one run and
writes them to ``benchmarks/results/bench_normalize.json`` (read by notebook 45
and chapter 4). Inputs are generated with a seed into a temporary folder outside
the repository (deleted at the end unless ``--keep``): MSR-VTT scale by default,
a 180,000 x 512 query bank, a 9,000 x 512 gallery bank, 1,000 test queries and
items (unit-norm float32 ``.npy``), plus the query bank at 10 x (1.8 M captions)
stored in float16.

Every program is timed as a **child process** from this parent
(:func:`hubrepro.profiling.run_child`: wall time and the kernel's peak RSS of
the child), median of ``--repeat`` runs, the competitors interleaved:

1. ``hubrepro normalize dualis`` from embeddings against
   ``benchmarks/authors_pipeline.py`` (the released pipeline in NumPy, D1 fixed);
   targets: >= 1.5 x faster, <= 1/8 of its peak RSS;
2. ``hubrepro normalize dualdis --mode faithful`` against the dynamic pipeline;
   targets: >= 2 x faster, <= 1/8;
3. fit once, apply many: ``hubrepro normalize fit`` once, then applying the saved
   statistics to 1,000 new queries, in a serving process (statistics loaded) and
   as a whole ``hubrepro normalize apply`` process; target: >= 50 x faster than
   the authors' pipeline, which recomputes everything;
4. the 10 x bank, memory-mapped float16: ``hubrepro normalize dualis``; target
   < 1 GiB peak RSS. The authors' pipeline is **not** run at this scale (it needs
   more than the machine may spend): its need is projected from the arrays it
   allocates, and it is run once under an address-space cap (``--cap-gib``) to
   record the ``MemoryError``;
5. in this process: DualIS and DualDIS from embeddings against the bank-matmul
   floor; target <= 1.2 x;
6. a FAISS index at ``--index-n`` gallery items (default one million,
   ``--index-dim`` 256 to bound memory): normalised (DualIS, bias folded into an
   extra coordinate, exact re-scoring) against raw search, flat (both exact) and
   IVF at the same ``nprobe`` with each one's recall@10 against its exact search,
   on clustered synthetic vectors, ``--index-queries`` queries, the two searches
   interleaved; target <= 1.05 x.

Usage::

    python benchmarks/bench_normalize.py [--repeat 3] [--n-bank-query 180000]
        [--index-n 1000000] [--skip-index] [--skip-10x] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hubrepro.io import atomic_write
from hubrepro.profiling import median_run, run_child

GIB, MIB = 2**30, 2**20
HERE = Path(__file__).resolve().parent
AUTHORS = HERE / "authors_pipeline.py"


def write_unit(
    path: Path, n: int, dim: int, rng, dtype=np.float32, chunk=50_000
) -> None:
    """Seeded unit-norm rows written chunk by chunk (never whole in memory)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n, dim))
    for a in range(0, n, chunk):
        x = rng.standard_normal((min(chunk, n - a), dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[a : a + len(x)] = x.astype(dtype)
    out.flush()
    del out


def make_inputs(work: Path, args) -> dict[str, Path]:
    rng = np.random.default_rng(args.seed)
    p = {k: work / f"{k}.npy" for k in ("q", "q_new", "g", "bq", "bg", "bq10")}
    write_unit(p["q"], args.n_test, args.dim, rng)
    write_unit(p["q_new"], args.n_test, args.dim, rng)
    write_unit(p["g"], args.n_test, args.dim, rng)
    write_unit(p["bg"], args.n_bank_gallery, args.dim, rng)
    write_unit(p["bq"], args.n_bank_query, args.dim, rng)
    if not args.skip_10x:
        write_unit(p["bq10"], 10 * args.n_bank_query, args.dim, rng, np.float16)
    return p


def hubrepro_cmd(*a) -> list[str]:
    return [sys.executable, "-m", "hubrepro", *map(str, a)]


def authors_cmd(p, bq, *, dynamic, beta, out) -> list[str]:
    return [sys.executable, str(AUTHORS), "--queries", p["q"], "--gallery", p["g"],
            "--query-bank", bq, "--gallery-bank", p["bg"], "--beta-query", str(beta),
            "--beta-gallery", str(beta), "--out", out] + (["--dynamic"] if dynamic else [])  # fmt: skip


def ours_cmd(p, bq, method, *, beta, out, extra=()) -> list[str]:
    return hubrepro_cmd("normalize", method, "--queries", p["q"], "--gallery", p["g"],
                        "--query-bank", bq, "--gallery-bank", p["bg"], "--beta-query", beta,
                        "--beta-gallery", beta, "--unit-norm", "--out", out, "--overwrite",
                        *extra)  # fmt: skip


def race(cmds: dict[str, list[str]], repeat: int, cwd: Path) -> dict[str, dict]:
    """Run the programs interleaved, ``repeat`` rounds; median wall and peak RSS of each."""
    runs: dict[str, list] = {k: [] for k in cmds}
    for _ in range(repeat):
        for k, cmd in cmds.items():
            r = run_child(cmd, cwd=cwd)
            if r.returncode != 0:
                raise SystemExit(f"{k} failed ({r.returncode}): {r.stderr[-2000:]}")
            runs[k].append(r)
    out = {}
    for k, rs in runs.items():
        out[k] = median_run(rs)
        internal = [json.loads(r.stdout.strip().splitlines()[-1]) for r in rs
                    if r.stdout.strip().startswith("{")]  # fmt: skip
        if internal:
            out[k]["compute_s"] = statistics.median(i["compute_s"] for i in internal)
    return out


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def projected_authors_bytes(n_bank, n_bank_gallery, n_test, dim, *, dynamic, float16):
    """Peak bytes of the authors' pipeline, from the arrays it holds at once (float32)."""
    f4, i8 = 4, 8
    bank = n_bank * dim * f4 + (
        n_bank * dim * 2 if float16 else 0
    )  # float32 copy (+ float16 load)
    big = n_bank * n_test  # the bank x gallery matrix P^q
    small = (n_bank_gallery + 2 * n_test) * n_test * f4 + (
        n_bank_gallery + 2 * n_test
    ) * dim * f4
    if dynamic:  # P, -P and argsort(-P) (int64) at once
        return bank + big * (f4 + f4 + i8) + small
    return bank + big * 3 * f4 + small  # P, beta * P and exp(beta * P) at once


def index_section(args, report) -> dict:
    """Raw against normalised search on the same gallery, interleaved, flat then IVF."""
    from hubrepro.index import build_index
    from hubrepro.normalize import DualIS

    gen = torch.Generator().manual_seed(args.seed + 1)
    n, d = args.index_n, args.index_dim
    # clustered unit vectors (IVF has structure to find; uniform data has none)
    centres = torch.randn(args.nlist, d, generator=gen)

    def sample(m):
        x = centres[torch.randint(0, args.nlist, (m,), generator=gen)]
        x = x + 0.5 * torch.randn(m, d, generator=gen)
        return x / x.norm(dim=1, keepdim=True)

    gallery = torch.empty(n, d)
    for a in range(0, n, 100_000):
        gallery[a : a + 100_000] = sample(min(100_000, n - a))
    queries = sample(args.index_queries)
    bank_q, bank_g = sample(args.index_bank), sample(args.index_bank // 4)
    t0 = time.perf_counter()
    est = DualIS(beta_query=args.beta, beta_gallery=args.beta).fit_embeddings(
        gallery, bank_query=bank_q, bank_gallery=bank_g, unit_norm=True
    )
    res = {"n_gallery": n, "dim": d, "n_query": args.index_queries, "k": 10,
           "fit_s": time.perf_counter() - t0}  # fmt: skip
    exact = {}
    for kind, kw in (
        ("flat", {}),
        ("ivf", {"nlist": args.nlist, "nprobe": args.nprobe}),
    ):
        idx, ids, times = {}, {}, {"raw": [], "normalised": []}
        for label, stats in (("raw", None), ("normalised", est)):
            t0 = time.perf_counter()
            idx[label] = build_index(gallery, stats, kind=kind, **kw)
            res[f"{kind}_{label}"] = {"build_s": time.perf_counter() - t0}
            idx[label].search(queries[:10], k=10)  # warm-up
        for _ in range(args.repeat):  # interleaved: the same load for both
            for label in ("raw", "normalised"):
                t0 = time.perf_counter()
                ids[label] = idx[label].search(queries, k=10)[1]
                times[label].append(time.perf_counter() - t0)
        for label in ("raw", "normalised"):
            key = f"{kind}_{label}"
            res[key]["search_s"] = statistics.median(times[label])
            if kind == "flat":
                exact[label] = ids[label]
            else:
                hit = [len(set(a.tolist()) & set(b.tolist())) / 10
                       for a, b in zip(ids[label], exact[label], strict=True)]  # fmt: skip
                res[key]["recall_at_10"] = float(np.mean(hit))
            report(f"index {key:16s} build {res[key]['build_s']:6.1f} s  search "
                   f"{res[key]['search_s']:6.3f} s"
                   + (f"  recall@10 {res[key]['recall_at_10']:.3f}" if kind == "ivf" else ""))  # fmt: skip
        del idx
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-bank-query", type=int, default=180_000)
    ap.add_argument("--n-bank-gallery", type=int, default=9_000)
    ap.add_argument("--n-test", type=int, default=1_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--beta", type=float, default=20.0)
    ap.add_argument("--chunk-size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3, help="runs per program (median)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-10x", action="store_true", help="no 10x bank")
    ap.add_argument("--cap-gib", type=float, default=4.0,
                    help="address-space cap of the authors' run at 10x (0: skip it)")  # fmt: skip
    ap.add_argument("--skip-index", action="store_true", help="no FAISS section")
    ap.add_argument("--index-n", type=int, default=1_000_000)
    ap.add_argument("--index-dim", type=int, default=256)
    ap.add_argument("--index-bank", type=int, default=2_000)
    ap.add_argument("--index-queries", type=int, default=200)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument(
        "--workdir", type=Path, help="where the inputs go (default: a temp folder)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the generated inputs")
    ap.add_argument(
        "--out", type=Path, default=HERE / "results" / "bench_normalize.json"
    )
    args = ap.parse_args(argv)
    lines: list[str] = []

    def report(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="hubrepro-race-"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "numpy": np.__version__,
            "threads": torch.get_num_threads(), "load_before": os.getloadavg()[0],
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    try:
        t0 = time.perf_counter()
        p = make_inputs(work, args)
        report(f"inputs written to {work} in {time.perf_counter() - t0:.0f} s")
        beta = args.beta

        # 0. what an interpreter costs before any work
        base = race({"python + torch": [sys.executable, "-c", "import torch"],
                     "python + numpy": [sys.executable, "-c", "import numpy"]}, args.repeat, work)  # fmt: skip

        # 1-2. the race at MSR-VTT scale
        cmds = {
            "hubrepro dualis": ours_cmd(p, p["bq"], "dualis", beta=beta, out=work / "o1.npy"),
            "authors dualis": authors_cmd(p, p["bq"], dynamic=False, beta=beta, out=work / "a1.npy"),
            "hubrepro dualdis": ours_cmd(p, p["bq"], "dualdis", beta=beta, out=work / "o2.npy",
                                         extra=("--mode", "faithful")),
            "authors dualdis": authors_cmd(p, p["bq"], dynamic=True, beta=beta, out=work / "a2.npy"),
        }  # fmt: skip
        r = race(cmds, args.repeat, work)
        for k, v in {**base, **r}.items():
            report(
                f"{k:18s} wall {v['wall_s']:7.2f} s   peak RSS {v['peak_rss_bytes'] / MIB:8.0f} MiB"
            )
        same = np.array_equal(
            np.load(work / "o1.npy").argmax(1), np.load(work / "a1.npy").argmax(1)
        )
        res["race"] = [{"label": k, **v} for k, v in {**base, **r}.items()]
        res["race_top1_agrees"] = bool(same)

        # 3. fit once, apply many
        stats = work / "stats.safetensors"
        fit = run_child(hubrepro_cmd("normalize", "fit", "dualis", "--gallery", p["g"],
                                     "--query-bank", p["bq"], "--gallery-bank", p["bg"],
                                     "--beta-query", beta, "--beta-gallery", beta,
                                     "--unit-norm", "--save", stats), cwd=work)  # fmt: skip
        assert fit.returncode == 0, fit.stderr
        apply_cmd = hubrepro_cmd("normalize", "apply", "--stats", stats, "--queries", p["q_new"],
                                 "--gallery", p["g"], "--unit-norm", "--out", work / "ap.npy",
                                 "--overwrite")  # fmt: skip
        app = race({"hubrepro apply": apply_cmd}, args.repeat, work)["hubrepro apply"]
        from hubrepro.io import load_array
        from hubrepro.normalize import load_normalizer, transform_embeddings

        g, q_new = load_array(p["g"]), load_array(p["q_new"])
        est = load_normalizer(stats, gallery=g)
        transform_embeddings(est, q_new, g, unit_norm=True)  # warm-up
        serve_s = median_seconds(lambda: transform_embeddings(est, q_new, g, unit_norm=True),
                                 max(args.repeat, 5))  # fmt: skip
        res["apply"] = {"fit_wall_s": fit.wall_s, "fit_peak_rss_bytes": fit.peak_rss_bytes,
                        "serve_s": serve_s, "cli": app}  # fmt: skip
        report(f"fit once (whole process) {fit.wall_s:.2f} s; apply to {args.n_test} new queries: "
               f"serving process {serve_s * 1e3:.1f} ms, whole `normalize apply` process "
               f"{app['wall_s']:.2f} s")  # fmt: skip

        # 4. ten times the bank, float16 on disk, memory-mapped
        if not args.skip_10x:
            big = race({"hubrepro dualis 10x": ours_cmd(p, p["bq10"], "dualis", beta=beta,
                                                         out=work / "o10.npy")}, args.repeat, work)  # fmt: skip
            big = big["hubrepro dualis 10x"]
            proj = {dyn: projected_authors_bytes(10 * args.n_bank_query, args.n_bank_gallery,
                                                 args.n_test, args.dim, dynamic=dyn, float16=True)
                    for dyn in (False, True)}  # fmt: skip
            res["ten_x"] = {"n_bank_query": 10 * args.n_bank_query, "storage": "float16",
                            "bank_bytes": 10 * args.n_bank_query * args.dim * 2, **big,
                            "authors_projected_bytes": proj[False],
                            "authors_dynamic_projected_bytes": proj[True]}  # fmt: skip
            report(f"10x bank ({10 * args.n_bank_query:,} captions, float16, memory-mapped): "
                   f"hubrepro dualis {big['wall_s']:.1f} s, peak RSS {big['peak_rss_bytes'] / MIB:.0f} MiB; "
                   f"authors' pipeline would need {proj[False] / GIB:.1f} GiB "
                   f"(dynamic {proj[True] / GIB:.1f} GiB)")  # fmt: skip
            if args.cap_gib > 0:
                capped = run_child(authors_cmd(p, p["bq10"], dynamic=False, beta=beta,
                                               out=work / "a10.npy"), cwd=work,
                                   address_space_limit=int(args.cap_gib * GIB))  # fmt: skip
                err = (
                    capped.stderr.strip().splitlines()[-1]
                    if capped.stderr.strip()
                    else ""
                )
                res["ten_x"]["authors_capped"] = {"cap_bytes": int(args.cap_gib * GIB),
                                                  "returncode": capped.returncode, "error": err,
                                                  "peak_rss_bytes": capped.peak_rss_bytes}  # fmt: skip
                report(
                    f"authors' pipeline at 10x under a {args.cap_gib:g} GiB address-space cap: "
                    f"exit {capped.returncode}: {err}"
                )

        # 5. in process: the streamed fit against the bank-matmul floor
        from hubrepro.normalize import normalize_embeddings

        q = load_array(p["q"])
        bq, bg = load_array(p["bq"]), load_array(p["bg"])
        gt = g.T.contiguous()
        chunk = args.chunk_size

        def floor():
            for bank in (bq, bg):
                for a in range(0, bank.shape[0], chunk):
                    bank[a : a + chunk] @ gt

        kw = {"bank_query": bq, "bank_gallery": bg, "unit_norm": True, "chunk_size": chunk,
              "beta_query": beta, "beta_gallery": beta}  # fmt: skip
        t = {"floor": [], "dualis": [], "dualdis": []}
        floor()
        for _ in range(args.repeat):  # interleaved
            t["floor"].append(median_seconds(floor, 1))
            t["dualis"].append(
                median_seconds(lambda: normalize_embeddings("dualis", q, g, **kw), 1)
            )
            t["dualdis"].append(
                median_seconds(lambda: normalize_embeddings("dualdis", q, g, **kw), 1)
            )
        inproc = {k: statistics.median(v) for k, v in t.items()}
        res["in_process"] = inproc
        report(f"in process: floor {inproc['floor']:.3f} s, DualIS {inproc['dualis']:.3f} s, "
               f"DualDIS {inproc['dualdis']:.3f} s")  # fmt: skip

        # 6. FAISS
        if not args.skip_index:
            res["index"] = index_section(args, report)

        # ratios and targets
        rr = {x["label"]: x for x in res["race"]}
        ratios = {
            "dualis_speedup": rr["authors dualis"]["wall_s"] / rr["hubrepro dualis"]["wall_s"],
            "dualis_memory": rr["hubrepro dualis"]["peak_rss_bytes"] / rr["authors dualis"]["peak_rss_bytes"],
            "dualdis_speedup": rr["authors dualdis"]["wall_s"] / rr["hubrepro dualdis"]["wall_s"],
            "dualdis_memory": rr["hubrepro dualdis"]["peak_rss_bytes"] / rr["authors dualdis"]["peak_rss_bytes"],
            "apply_speedup": rr["authors dualis"]["wall_s"] / serve_s,
            "apply_speedup_compute": rr["authors dualis"]["compute_s"] / serve_s,
            "apply_cli_speedup": rr["authors dualis"]["wall_s"] / app["wall_s"],
            "dualis_over_floor": inproc["dualis"] / inproc["floor"],
            "dualdis_over_floor": inproc["dualdis"] / inproc["floor"],
        }  # fmt: skip
        targets = [
            (f"apply saved statistics to {args.n_test:,} new queries: speed-up vs authors' pipeline",
             "apply_speedup", ">=", 50),
            ("DualIS from embeddings: speed-up vs authors' pipeline", "dualis_speedup", ">=", 1.5),
            ("DualIS: peak RSS / authors' peak RSS", "dualis_memory", "<=", 1 / 8),
            ("DualDIS from embeddings: speed-up vs authors' dynamic pipeline", "dualdis_speedup", ">=", 2),
            ("DualDIS: peak RSS / authors' peak RSS", "dualdis_memory", "<=", 1 / 8),
            ("in-process DualIS / bank-matmul floor", "dualis_over_floor", "<=", 1.2),
            ("in-process DualDIS / bank-matmul floor", "dualdis_over_floor", "<=", 1.2),
        ]  # fmt: skip
        if "ten_x" in res:
            ratios["ten_x_peak_gib"] = res["ten_x"]["peak_rss_bytes"] / GIB
            targets.append(
                (
                    "10x bank (float16, memory-mapped): peak RSS in GiB",
                    "ten_x_peak_gib",
                    "<",
                    1.0,
                )
            )
        if "index" in res:
            ix = res["index"]
            ratios["index_flat_overhead"] = (
                ix["flat_normalised"]["search_s"] / ix["flat_raw"]["search_s"]
            )
            ratios["index_ivf_overhead"] = (
                ix["ivf_normalised"]["search_s"] / ix["ivf_raw"]["search_s"]
            )
            targets += [
                (f"flat index, {args.index_n:,} items: normalised / raw search time (both exact)",
                 "index_flat_overhead", "<=", 1.05),
                (f"IVF index, {args.index_n:,} items, same nprobe: normalised / raw search time",
                 "index_ivf_overhead", "<=", 1.05),
            ]  # fmt: skip
        ops = {
            ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b,
            "<": lambda a, b: a < b,
        }
        res["ratios"] = ratios
        res["targets"] = [{"label": lab, "name": key, "value": ratios[key], "target": f"{op} {tv:.3g}",
                           "met": bool(ops[op](ratios[key], tv))} for lab, key, op, tv in targets]  # fmt: skip
        torch_base = rr["python + torch"]["peak_rss_bytes"]
        res["headline"] = {
            "torch-baseline-mib": torch_base / MIB,
            "numpy-baseline-mib": rr["python + numpy"]["peak_rss_bytes"] / MIB,
            "torch-import-s": rr["python + torch"]["wall_s"],
            "dualis-mib": rr["hubrepro dualis"]["peak_rss_bytes"] / MIB,
            "dualis-extra-mib": (rr["hubrepro dualis"]["peak_rss_bytes"] - torch_base) / MIB,
            "authors-dualis-mib": rr["authors dualis"]["peak_rss_bytes"] / MIB,
            "authors-dualdis-mib": rr["authors dualdis"]["peak_rss_bytes"] / MIB,
            "dualdis-mib": rr["hubrepro dualdis"]["peak_rss_bytes"] / MIB,
            "dualis-s": rr["hubrepro dualis"]["wall_s"], "authors-dualis-s": rr["authors dualis"]["wall_s"],
            "dualdis-s": rr["hubrepro dualdis"]["wall_s"], "authors-dualdis-s": rr["authors dualdis"]["wall_s"],
            "authors-compute-s": rr["authors dualis"]["compute_s"],
            "serve-ms": serve_s * 1e3, "apply-cli-s": app["wall_s"], "repeat": args.repeat,
            "memory-ratio-above-torch": (rr["hubrepro dualis"]["peak_rss_bytes"] - torch_base)
            / rr["authors dualis"]["peak_rss_bytes"],
        }  # fmt: skip
        if "ten_x" in res:
            tx = res["ten_x"]
            res["headline"].update({
                "ten-x-n": tx["n_bank_query"], "ten-x-s": tx["wall_s"], "ten-x-mib": tx["peak_rss_bytes"] / MIB,
                "ten-x-bank-gib": tx["bank_bytes"] / GIB, "ten-x-authors-gib": tx["authors_projected_bytes"] / GIB,
                "ten-x-authors-dynamic-gib": tx["authors_dynamic_projected_bytes"] / GIB,
                "ten-x-cap-gib": tx.get("authors_capped", {}).get("cap_bytes", 0) / GIB,
                "ten-x-cap-error": tx.get("authors_capped", {}).get("error", ""),
            })  # fmt: skip
        if "index" in res:
            ix = res["index"]
            res["headline"].update({
                "index-n": ix["n_gallery"], "index-dim": ix["dim"],
                "index-flat-raw-s": ix["flat_raw"]["search_s"], "index-flat-norm-s": ix["flat_normalised"]["search_s"],
                "index-ivf-raw-s": ix["ivf_raw"]["search_s"], "index-ivf-norm-s": ix["ivf_normalised"]["search_s"],
                "index-ivf-raw-recall": ix["ivf_raw"]["recall_at_10"],
                "index-ivf-norm-recall": ix["ivf_normalised"]["recall_at_10"],
                "index-nprobe": args.nprobe, "index-nlist": args.nlist,
                "index-queries": args.index_queries,
            })  # fmt: skip
        report("")
        report(f"{'target':72s} {'measured':>9s}  {'target':>8s}  met")
        for tg in res["targets"]:
            report(
                f"{tg['label']:72s} {tg['value']:9.3f}  {tg['target']:>8s}  {'yes' if tg['met'] else 'NO'}"
            )
        res["report"] = lines
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    atomic_write(args.out, lambda fh: fh.write((json.dumps(res, indent=1) + "\n").encode()),
                 overwrite=True)  # fmt: skip
    print(f"wrote {args.out}")
    return res


if __name__ == "__main__":
    main()
