"""``hubrepro normalize``: post-hoc hubness reduction from the command line.

From similarity matrices::

    hubrepro normalize dualis --sims S.npy --query-bank-sims PQ.npy \\
        --gallery-bank-sims PG.npy --beta-query 20 --beta-gallery 20 --out OUT.npy

From embeddings (the bank x gallery matrices are streamed, never stored)::

    hubrepro normalize dualdis --queries Q.npy --gallery G.npy \\
        --query-bank BQ.npy --gallery-bank BG.npy --metric cosine --out OUT.npy

The output (``.npy``, ``.pt`` or ``.safetensors``) has the shape of the test
similarity matrix (queries x gallery); each row's ranking is the method's
ranking. It never overwrites a file unless ``--overwrite`` is given. Pickled
inputs (QB-Norm's ``.pkl`` files) are read only with ``--allow-pickle``.

Book: :ref:`sec-normalisation`.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import torch

from hubrepro._compat import resolve_device
from hubrepro.io import load_array, save_array
from hubrepro.normalize import DIRECTIONS, METHODS, normalize, normalize_embeddings

# command-line option -> hyperparameter name
_HYPER = {
    "beta_query": "beta_query",
    "beta_gallery": "beta_gallery",
    "k": "k",
    "mode": "mode",
    "aggregation": "aggregation",
    "alpha": "alpha",
    "n_iter": "n_iter",
    "tol": "tol",
    "bank": "bank",
    "scale": "scale",
}
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``normalize`` on the top-level sub-command parser."""
    p = subparsers.add_parser(
        "normalize",
        help="post-hoc hubness reduction (IS, DIS, CSLS, GC, DualIS, DualDIS, SN, DBSN, NNN)",
        description=(
            "Normalise a test similarity matrix (queries x gallery) with a query bank "
            "and/or a gallery bank. Give either --sims (+ bank similarity matrices) or "
            "--queries/--gallery (+ bank embeddings)."
        ),
    )
    p.add_argument("method", choices=[m for m in METHODS], help="the normaliser")
    m = p.add_argument_group(
        "from similarity matrices (rows: queries or bank; columns: test gallery)"
    )
    m.add_argument("--sims", type=Path, help="test similarities, n_query x n_gallery")
    m.add_argument(
        "--query-bank-sims", type=Path, help="query bank x test gallery (cross-modal)"
    )
    m.add_argument(
        "--gallery-bank-sims",
        type=Path,
        help="gallery bank x test gallery (intra-modal)",
    )
    m.add_argument(
        "--bank-cross-sims", type=Path, help="query bank x gallery bank (dbsn only)"
    )
    e = p.add_argument_group("from embeddings (bank matrices are streamed)")
    e.add_argument("--queries", type=Path, help="test query embeddings, n_query x d")
    e.add_argument(
        "--gallery", type=Path, help="test gallery embeddings, n_gallery x d"
    )
    e.add_argument("--query-bank", type=Path, help="query-modality bank embeddings")
    e.add_argument("--gallery-bank", type=Path, help="gallery-modality bank embeddings")
    e.add_argument("--metric", choices=["cosine", "dot"], default="cosine")
    h = p.add_argument_group("hyperparameters (only those of METHOD are accepted)")
    h.add_argument(
        "--beta-query", type=float, help="inverse temperature of the query bank"
    )
    h.add_argument(
        "--beta-gallery", type=float, help="inverse temperature of the gallery bank"
    )
    h.add_argument(
        "--k",
        type=int,
        help="activation-set size (dis, dualdis) or neighbours (csls; nnn default 256, "
        "the NNN release's)",
    )
    h.add_argument("--mode", choices=["principled", "faithful"], help="dualdis mode")
    h.add_argument(
        "--aggregation", choices=["product", "sum"], help="dualis/dualdis aggregation"
    )
    h.add_argument(
        "--alpha",
        type=float,
        help="nnn bias weight (nnn default 0.5, the NNN release's)",
    )
    h.add_argument(
        "--n-iter", type=int, help="sn/dbsn maximum Sinkhorn iterations (default 10)"
    )
    h.add_argument(
        "--tol",
        type=float,
        help="sn/dbsn: stop before --n-iter once no gallery potential moves by TOL "
        "(default 1e-4); 0 runs exactly --n-iter iterations, as the DBSN release",
    )
    h.add_argument(
        "--bank", choices=["query", "gallery"], help="which bank a one-bank method uses"
    )
    h.add_argument(
        "--scale", choices=["similarity", "log"], help="output scale of softmax methods"
    )
    o = p.add_argument_group("execution and output")
    o.add_argument("--direction", choices=list(DIRECTIONS), default="query_to_gallery")
    o.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    o.add_argument(
        "--dtype",
        choices=list(_DTYPES),
        default="float32",
        help="dtype of the bank products",
    )
    o.add_argument(
        "--chunk-size", type=int, default=4096, help="bank / query rows per chunk"
    )
    o.add_argument(
        "--out", type=Path, required=True, help="output file (.npy, .pt, .safetensors)"
    )
    o.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    o.add_argument(
        "--allow-pickle",
        action="store_true",
        help="read pickled inputs (only files you trust)",
    )
    return p


def _load(
    path: Path | None, args: argparse.Namespace, device: torch.device
) -> torch.Tensor | None:
    if path is None:
        return None
    return load_array(path, allow_pickle=args.allow_pickle).to(device)


def run(args: argparse.Namespace) -> int:
    """Execute ``hubrepro normalize``; return the exit status."""
    if args.out.exists() and not args.overwrite:
        raise FileExistsError(
            f"--out {str(args.out)!r} already exists; pass --overwrite to replace it."
        )
    accepted = set(inspect.signature(METHODS[args.method]).parameters)
    hyper = {}
    for opt, name in _HYPER.items():
        value = getattr(args, opt)
        if value is None:
            continue
        if name not in accepted:
            flag = "--" + opt.replace("_", "-")
            raise ValueError(
                f"{flag} is not a hyperparameter of {args.method!r} (it takes: {', '.join(sorted(accepted)) or 'none'})."
            )
        hyper[name] = value
    device = resolve_device(args.device)
    from_sims = args.sims is not None
    from_emb = args.queries is not None or args.gallery is not None
    if from_sims == from_emb:
        raise ValueError(
            "give either --sims (similarity matrices) or --queries and --gallery (embeddings), not both or neither."
        )
    if from_sims:
        for flag in ("query_bank", "gallery_bank"):
            if getattr(args, flag) is not None:
                raise ValueError(
                    f"--{flag.replace('_', '-')} is for embeddings; with --sims give --{flag.replace('_', '-')}-sims."
                )
        out = normalize(
            args.method,
            _load(args.sims, args, device),
            bank_query_sims=_load(args.query_bank_sims, args, device),
            bank_gallery_sims=_load(args.gallery_bank_sims, args, device),
            bank_cross_sims=_load(args.bank_cross_sims, args, device),
            direction=args.direction,
            **hyper,
        )
    else:
        if args.queries is None or args.gallery is None:
            raise ValueError("embeddings need both --queries and --gallery.")
        for flag in ("query_bank_sims", "gallery_bank_sims", "bank_cross_sims"):
            if getattr(args, flag) is not None:
                raise ValueError(
                    f"--{flag.replace('_', '-')} is for --sims; with embeddings give --query-bank/--gallery-bank."
                )
        out = normalize_embeddings(
            args.method,
            _load(args.queries, args, device),
            _load(args.gallery, args, device),
            bank_query=_load(args.query_bank, args, device),
            bank_gallery=_load(args.gallery_bank, args, device),
            metric=args.metric,
            chunk_size=args.chunk_size,
            bank_dtype=_DTYPES[args.dtype] if args.dtype != "float32" else None,
            direction=args.direction,
            **hyper,
        )
    path = save_array(out.cpu(), args.out, overwrite=args.overwrite)
    print(
        f"hubrepro normalize: wrote {args.method} scores of shape {tuple(out.shape)} to {path}"
    )
    return 0
