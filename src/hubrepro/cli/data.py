"""``hubrepro data``: list, build and verify the embedded data; embed images with open_clip.

::

    hubrepro data list
    hubrepro data build [--overwrite] [--no-embed] [--cache-dir DIR]
    hubrepro data verify
    hubrepro data embed-clip --model ViT-B-32 --weights W.pt --images DIR \\
        --captions captions.csv --out DIR [--role test|bank] [--device auto]

``build`` extracts the stdlib pairs into the package (refusing to replace the shipped
file unless ``--overwrite``: the book's numbers come from it) and fills the
embeddings cache for both protocols. ``verify`` checks the shipped file's SHA-256
against its sidecar and ``data/manifest.yml`` and exits 1 on a mismatch.

Book: :ref:`sec-data`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hubrepro.cli import device_arg


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``data`` on the top-level sub-command parser."""
    p = subparsers.add_parser(
        "data",
        help="list, build and verify datasets; embed your images with open_clip",
        description="Datasets of the compendium: the embedded stdlib-code benchmark, "
        "the synthetic generator and your own data.",
    )
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="list the datasets")
    b = sub.add_parser(
        "build", help="extract the stdlib pairs and fill the embeddings cache"
    )
    b.add_argument(
        "--overwrite", action="store_true", help="replace the shipped pairs file"
    )
    b.add_argument("--no-embed", action="store_true", help="only extract; do not embed")
    b.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="embeddings cache (default $HUBREPRO_CACHE or ~/.cache/hubrepro)",
    )
    b.add_argument(
        "--device",
        default="cpu",
        type=device_arg,
        help="where the text encoder runs (cpu, cuda, auto)",
    )
    sub.add_parser("verify", help="check the shipped data against its checksums")
    c = sub.add_parser(
        "embed-clip", help="embed images + captions with a local open_clip checkpoint"
    )
    c.add_argument("--model", required=True, help="open_clip model name, e.g. ViT-B-32")
    c.add_argument(
        "--weights",
        type=Path,
        required=True,
        help="local checkpoint file (never downloaded)",
    )
    c.add_argument("--images", type=Path, required=True, help="folder of images")
    c.add_argument(
        "--captions", type=Path, required=True, help="CSV (image,caption) or JSONL file"
    )
    c.add_argument(
        "--out", type=Path, required=True, help="output folder (user layout)"
    )
    c.add_argument(
        "--role",
        choices=("test", "bank"),
        default="test",
        help="write the test split or the bank",
    )
    c.add_argument("--batch-size", type=int, default=32)
    c.add_argument(
        "--device", default="auto", type=device_arg, help="cpu, cuda or auto"
    )
    c.add_argument(
        "--overwrite", action="store_true", help="replace existing output files"
    )
    return p


def run(args: argparse.Namespace) -> int:
    """Execute ``hubrepro data ACTION``."""
    action = args.data_command
    if action == "list":
        from hubrepro.datasets import list_datasets

        for name, text in list_datasets().items():
            print(f"{name:12s} {text}")
        return 0
    if action == "build":
        return _build(args)
    if action == "verify":
        from hubrepro.datasets.manifest import verify_data
        from hubrepro.datasets.stdlib_code import data_file

        problems = verify_data()
        for msg in problems:
            print(f"hubrepro data verify: {msg}", file=sys.stderr)
        if not problems:
            print(f"ok: {data_file().name} matches its checksums")
        return 1 if problems else 0
    from hubrepro.datasets.clip import embed_clip

    paths = embed_clip(
        args.model,
        args.weights,
        args.images,
        args.captions,
        args.out,
        role=args.role,
        batch_size=args.batch_size,
        device=args.device,
        overwrite=args.overwrite,
    )
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from hubrepro.datasets.manifest import build_stdlib_data
    from hubrepro.datasets.stdlib_code import data_file, load_stdlib_code

    if data_file().exists() and not args.overwrite:
        print(f"{data_file().name} exists (kept; --overwrite regenerates it)")
    else:
        entry = build_stdlib_data(overwrite=args.overwrite)
        print(
            f"wrote {data_file()} ({entry['n_pairs']} pairs, Python {entry['python']}, sha256 {entry['sha256'][:12]})"
        )
    if args.no_embed:
        return 0
    t0 = time.perf_counter()
    for protocol in ("random", "by-module"):
        data = load_stdlib_code(
            protocol=protocol, cache_dir=args.cache_dir, device=args.device
        )
        print(
            f"{protocol}: {data.n_query} test pairs, {data.bank_query.shape[0]} bank pairs embedded"
        )
    print(f"embeddings ready in {time.perf_counter() - t0:.0f} s")
    return 0
