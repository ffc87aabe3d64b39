"""Data paths: MiniLM encoding on 1 vs 2 threads, the per-item cache, the generator.

Not a test: prints wall times and ratios.

- ``encode``: ``n`` stdlib-code texts (half docstrings, half code) embedded into a
  fresh cache with ``threads=1`` and again, into another fresh cache, with
  ``threads=2``; then read back from the cache. Ratios: 2-thread / 1-thread time
  (above 1 means one thread is faster) and encode / cached-read time.
- ``synthetic``: :func:`make_synthetic` at the default size (1,000 test pairs, a
  4,000-item bank, d = 256) and at ten times the size, on the CPU and, when
  available, on CUDA.

Usage::

    python benchmarks/bench_datasets.py [--n 200] [--skip-encode]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from hubrepro.datasets import make_synthetic
from hubrepro.datasets.embed import encode_texts, load_text_encoder
from hubrepro.datasets.stdlib_code import load_pairs


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_encode(n: int) -> None:
    pairs = load_pairs()[:: max(1, len(load_pairs()) // n)][: n // 2]
    texts = [p["query"] for p in pairs] + [p["code"] for p in pairs]
    load_text_encoder()  # load once, outside the timings
    times = {}
    for threads in (1, 2):
        with tempfile.TemporaryDirectory() as cache:
            _, times[threads] = _timed(
                lambda c=cache, t=threads: encode_texts(
                    texts, cache=c, threads=t, progress=False
                )
            )
            if threads == 1:
                _, times["cached"] = _timed(
                    lambda c=cache: encode_texts(texts, cache=c, progress=False)
                )
    print(f"encode {len(texts)} texts: 1 thread {times[1]:.1f} s ({len(texts) / times[1]:.0f} texts/s), "
          f"2 threads {times[2]:.1f} s, cached read {times['cached']:.2f} s")  # fmt: skip
    print(f"  ratio 2-thread/1-thread time: {times[2] / times[1]:.2f}")
    print(f"  ratio encode/cached read:     {times[1] / times['cached']:.0f}")


def bench_synthetic() -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for scale in (1, 10):
            kw = {"n_gallery": 1000 * scale, "n_bank_gallery": 4000 * scale}
            make_synthetic(
                seed=0, device=device, n_gallery=50, n_bank_gallery=50
            )  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            _, dt = _timed(
                lambda kw=kw, d=device: make_synthetic(seed=0, device=d, **kw)
            )
            print(
                f"synthetic on {device}: {kw['n_gallery']} test + {kw['n_bank_gallery']} bank items, d=256: {dt:.2f} s"
            )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--n",
        type=int,
        default=200,
        help="texts to encode (half docstrings, half code)",
    )
    ap.add_argument("--skip-encode", action="store_true", help="only the generator")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available")
    if not args.skip_encode:
        bench_encode(args.n)
    bench_synthetic()


if __name__ == "__main__":
    main()
