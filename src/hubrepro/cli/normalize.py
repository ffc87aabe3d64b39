"""``hubrepro normalize``: post-hoc hubness reduction from the command line.

From similarity matrices::

    hubrepro normalize dualis --sims S.npy --query-bank-sims PQ.npy \\
        --gallery-bank-sims PG.npy --beta-query 20 --beta-gallery 20 --out OUT.npy

From embeddings (the bank x gallery matrices are streamed, never stored)::

    hubrepro normalize dualdis --queries Q.npy --gallery G.npy \\
        --query-bank BQ.npy --gallery-bank BG.npy --metric cosine --out OUT.npy

Fit once, apply many (the statistics file holds the per-gallery statistics,
the hyperparameters and a hash of the gallery; ``apply`` refuses another gallery)::

    hubrepro normalize fit dualis --gallery G.npy --query-bank BQ.npy \
        --gallery-bank BG.npy --beta-query 20 --beta-gallery 20 --save STATS.safetensors
    hubrepro normalize apply --stats STATS.safetensors --queries Q.npy --gallery G.npy --out OUT.npy
    hubrepro normalize apply --stats STATS.safetensors --sims S.npy --out OUT.npy
    hubrepro normalize info STATS.safetensors

Across processes (each rank streams its slice of the bank files, or its own
file when the path contains ``{rank}``; rank 0 writes the statistics)::

    torchrun --nproc-per-node 4 -m hubrepro normalize fit dualdis --gallery G.npy \
        --query-bank BQ.npy --gallery-bank BG.npy --save STATS.safetensors

The output (``.npy``, ``.pt`` or ``.safetensors``) has the shape of the test
similarity matrix (queries x gallery); each row's ranking is the method's
ranking. It never overwrites a file unless ``--overwrite`` is given, and is
written atomically. Bank embeddings in ``.npy`` files are memory-mapped and
read chunk by chunk (float16 storage halves the bytes); ``--unit-norm`` skips
re-normalising embeddings that already have unit norm. Pickled inputs
(QB-Norm's ``.pkl`` files) are read only with ``--allow-pickle``.

Book: :ref:`sec-normalisation`.
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path

import torch

from hubrepro._compat import resolve_device
from hubrepro.cli import device_arg
from hubrepro.io import MappedRows, check_out, load_array, open_rows, save_array
from hubrepro.normalize import (
    DIRECTIONS,
    METHODS,
    load_normalizer,
    make_normalizer,
    normalize,
    normalize_embeddings,
    read_record,
    transform_embeddings,
)

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
    """Register ``normalize`` (one sub-command per method, plus fit/apply/info)."""
    p = subparsers.add_parser(
        "normalize",
        help="post-hoc hubness reduction (IS, DIS, CSLS, GC, DualIS, DualDIS, SN, DBSN, NNN)",
        description=(
            "Normalise a test similarity matrix (queries x gallery) with a query bank "
            "and/or a gallery bank: `hubrepro normalize METHOD ...` in one go, or "
            "`normalize fit METHOD ... --save STATS` once and `normalize apply --stats "
            "STATS ...` for every new batch of queries."
        ),
        epilog=(
            "examples:\n"
            "  hubrepro normalize dualis --queries Q.npy --gallery G.npy --query-bank BQ.npy \\\n"
            "      --gallery-bank BG.npy --beta-query 20 --beta-gallery 20 --out S.npy\n"
            "  hubrepro normalize fit dualdis --gallery G.npy --query-bank BQ.npy \\\n"
            "      --gallery-bank BG.npy --beta-query 20 --beta-gallery 20 --save STATS.safetensors\n"
            "  hubrepro normalize apply --stats STATS.safetensors --queries Q.npy --gallery G.npy --out S.npy\n"
            "  torchrun --nproc-per-node 4 -m hubrepro normalize fit dualdis ... --save STATS.safetensors\n"
            "  hubrepro index build --stats STATS.safetensors --gallery G.npy --out IDX\n"
            "Book: chapter 4, sections 'Fit once, apply many' and 'Banks larger than one machine'."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="action", metavar="{METHOD,fit,apply,info}")
    sub.required = True
    for name in METHODS:
        _add_method_parser(sub, name)
    _add_fit_parser(sub)
    _add_apply_parser(sub)
    i = sub.add_parser(
        "info",
        help="print the record of a statistics file (method, sizes, gallery hash)",
    )
    i.add_argument("stats", type=Path, help="a .safetensors statistics file")
    return p


def _add_method_parser(sub, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=f"normalise with {name} in one go (fit on the banks, then apply)",
        description=(
            f"Normalise a test similarity matrix with {name}. Give either --sims "
            "(+ bank similarity matrices) or --queries/--gallery (+ bank embeddings)."
        ),
    )
    p.set_defaults(method=name)
    m = p.add_argument_group(
        "from similarity matrices (rows: queries or bank; columns: test gallery)"
    )
    m.add_argument("--sims", type=Path, help="test similarities, n_query x n_gallery")
    _add_bank_sims(m)
    e = p.add_argument_group("from embeddings (bank matrices are streamed)")
    e.add_argument("--queries", type=Path, help="test query embeddings, n_query x d")
    _add_gallery_and_banks(e)
    _add_metric(e, default="cosine")
    _add_hyper(p)
    o = p.add_argument_group("execution and output")
    o.add_argument("--direction", choices=list(DIRECTIONS), default="query_to_gallery")
    _add_device(o, dtype=True)
    o.add_argument(
        "--chunk-size", type=int, default=4096, help="bank / query rows per chunk"
    )
    o.add_argument(
        "--out", type=Path, required=True, help="output file (.npy, .pt, .safetensors)"
    )
    o.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    _add_allow_pickle(o)
    return p


def _add_bank_sims(g) -> None:
    g.add_argument(
        "--query-bank-sims", type=Path, help="query bank x test gallery (cross-modal)"
    )
    g.add_argument(
        "--gallery-bank-sims",
        type=Path,
        help="gallery bank x test gallery (intra-modal)",
    )
    g.add_argument(
        "--bank-cross-sims", type=Path, help="query bank x gallery bank (dbsn only)"
    )


def _add_gallery_and_banks(g) -> None:
    g.add_argument(
        "--gallery", type=Path, help="test gallery embeddings, n_gallery x d"
    )
    g.add_argument("--query-bank", type=Path, help="query-modality bank embeddings")
    g.add_argument("--gallery-bank", type=Path, help="gallery-modality bank embeddings")


def _add_metric(g, *, default: str | None = None, help: str | None = None) -> None:
    g.add_argument("--metric", choices=["cosine", "dot"], default=default, help=help)
    g.add_argument(
        "--unit-norm",
        action="store_true",
        help="the embeddings already have unit norm: cosine skips re-normalising them",
    )


def _add_device(g, *, dtype: bool) -> None:
    g.add_argument(
        "--device",
        default="cpu",
        type=device_arg,
        help="cpu, cuda or auto (default cpu)",
    )
    if dtype:
        g.add_argument(
            "--dtype",
            choices=list(_DTYPES),
            default="float32",
            help="dtype of the bank products",
        )


def _add_allow_pickle(g) -> None:
    g.add_argument(
        "--allow-pickle",
        action="store_true",
        help="read pickled inputs (only files you trust)",
    )


def _add_hyper(p: argparse.ArgumentParser) -> None:
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


def _add_fit_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "fit",
        help="fit a normaliser's bank statistics once and save them (--save STATS)",
        description=(
            "Fit METHOD's per-gallery statistics on the bank(s) and save them, with "
            "the hyperparameters and a hash of the gallery, to a .safetensors file. "
            "From embeddings (--gallery + --query-bank/--gallery-bank; .npy banks are "
            "memory-mapped and streamed) or from bank similarity matrices "
            "(--query-bank-sims/--gallery-bank-sims; add --gallery to record its hash). "
            "Under torchrun each rank streams its slice of every bank file (or its own "
            "file: a path containing {rank}); rank 0 writes STATS."
        ),
    )
    p.add_argument("method", choices=list(METHODS), help="the normaliser")
    e = p.add_argument_group("banks")
    _add_gallery_and_banks(e)
    _add_bank_sims(e)
    _add_metric(e, default="cosine")
    _add_hyper(p)
    o = p.add_argument_group("execution and output")
    _add_device(o, dtype=True)
    o.add_argument("--chunk-size", type=int, default=4096, help="bank rows per chunk")
    o.add_argument(
        "--save",
        type=Path,
        required=True,
        help="statistics file to write (.safetensors)",
    )
    o.add_argument(
        "--overwrite", action="store_true", help="replace an existing --save"
    )
    _add_allow_pickle(o)
    return p


def _add_apply_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "apply",
        help="apply saved statistics to new queries (--stats STATS)",
        description=(
            "Normalise new test scores with statistics saved by `normalize fit`: from "
            "--sims (n_query x n_gallery), or from --queries and --gallery (the gallery "
            "the statistics were fitted on: checked by hash). Costs the queries' dot "
            "products plus the method's per-query work; the bank is not read."
        ),
    )
    p.add_argument(
        "--stats", type=Path, required=True, help="statistics file from `normalize fit`"
    )
    p.add_argument("--sims", type=Path, help="test similarities, n_query x n_gallery")
    p.add_argument("--queries", type=Path, help="test query embeddings, n_query x d")
    p.add_argument(
        "--gallery", type=Path, help="test gallery embeddings, n_gallery x d"
    )
    _add_metric(
        p, help="default: the metric of the fit (statistics from matrices: cosine)"
    )
    _add_device(p, dtype=False)
    p.add_argument("--chunk-size", type=int, default=4096, help="query rows per chunk")
    p.add_argument(
        "--out", type=Path, required=True, help="output file (.npy, .pt, .safetensors)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    _add_allow_pickle(p)
    return p


def _load(
    path: Path | None, args: argparse.Namespace, device: torch.device
) -> torch.Tensor | None:
    if path is None:
        return None
    return load_array(path, allow_pickle=args.allow_pickle).to(device)


def _load_bank(
    path: Path | None,
    args: argparse.Namespace,
    rows: tuple[int, int] | None = None,
) -> torch.Tensor | MappedRows | None:
    """A bank: ``.npy`` is memory-mapped (read chunk by chunk), other formats loaded."""
    if path is None:
        return None
    if path.suffix.lower() == ".npy" and _is_npy(path):
        start, stop = rows if rows is not None else (0, None)
        if stop is None:
            return open_rows(path)
        return open_rows(path, start=start, stop=min(stop, open_rows(path).shape[0]))
    x = load_array(path, allow_pickle=args.allow_pickle)
    return x if rows is None else x[rows[0] : rows[1]]


def _is_npy(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(6) == b"\x93NUMPY"
    except OSError:
        return False


_ARRAY_SUFFIXES = (".npy", ".pt", ".pth", ".safetensors")


def _check_out(
    path: Path,
    overwrite: bool,
    flag: str = "--out",
    suffixes: tuple[str, ...] = _ARRAY_SUFFIXES,
) -> None:
    """Refuse an unusable output path before any work (the rule of :func:`hubrepro.io.check_out`)."""
    check_out(path, overwrite=overwrite, suffixes=suffixes, name=flag, func="normalize")


def _hyper(args: argparse.Namespace) -> dict:
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
    return hyper


def run(args: argparse.Namespace) -> int:
    """Execute ``hubrepro normalize``; return the exit status."""
    if args.action == "fit":
        return _run_fit(args)
    if args.action == "apply":
        return _run_apply(args)
    if args.action == "info":
        print(json.dumps(read_record(args.stats), indent=1, sort_keys=True))
        return 0
    _check_out(args.out, args.overwrite)
    hyper = _hyper(args)
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
            bank_query=_load_bank(args.query_bank, args),
            bank_gallery=_load_bank(args.gallery_bank, args),
            metric=args.metric,
            chunk_size=args.chunk_size,
            bank_dtype=_DTYPES[args.dtype] if args.dtype != "float32" else None,
            direction=args.direction,
            unit_norm=args.unit_norm,
            **hyper,
        )
    path = save_array(out.cpu(), args.out, overwrite=args.overwrite)
    print(
        f"hubrepro normalize: wrote {args.method} scores of shape {tuple(out.shape)} to {path}"
    )
    return 0


def _rank_path(path: Path | None, rank: int) -> tuple[Path | None, bool]:
    """``path`` with ``{rank}`` filled in, and whether the file is this rank's own."""
    if path is None or "{rank}" not in str(path):
        return path, False
    return Path(str(path).replace("{rank}", str(rank))), True


def _run_fit(args: argparse.Namespace) -> int:
    from hubrepro.normalize.distributed import (
        fit_distributed,
        fit_embeddings_distributed,
        init_from_env,
        shard_range,
    )

    _check_out(args.save, args.overwrite, "--save", (".safetensors",))
    est = make_normalizer(args.method, **_hyper(args))
    from_sims = any(
        getattr(args, f) is not None
        for f in ("query_bank_sims", "gallery_bank_sims", "bank_cross_sims")
    )
    from_emb = args.query_bank is not None or args.gallery_bank is not None
    if from_sims and from_emb:
        raise ValueError(
            "give bank embeddings (--query-bank/--gallery-bank) or bank similarity "
            "matrices (--query-bank-sims/--gallery-bank-sims), not both."
        )
    if from_emb and args.gallery is None:
        raise ValueError(
            "fitting from bank embeddings needs --gallery (the test gallery)."
        )
    device = resolve_device(args.device)
    distributed = init_from_env(device)
    import torch.distributed as dist

    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1

    def bank(path: Path | None, sims: bool = False):
        path, own = _rank_path(path, rank)
        if path is None:
            return None
        if own or not distributed:
            x = _load_bank(path, args)
        else:  # this rank's slice of a shared file
            n = (
                open_rows(path).shape[0]
                if _is_npy(path)
                else load_array(path, allow_pickle=args.allow_pickle).shape[0]
            )
            x = _load_bank(path, args, shard_range(n, rank, world))
        if sims:  # similarity matrices are used whole (they are this rank's rows)
            x = x.load() if isinstance(x, MappedRows) else x
            return x.to(device)
        return x

    gallery = None if args.gallery is None else _load(args.gallery, args, device)
    if from_emb:
        kw = dict(
            bank_query=bank(args.query_bank),
            bank_gallery=bank(args.gallery_bank),
            metric=args.metric,
            chunk_size=args.chunk_size,
            bank_dtype=_DTYPES[args.dtype] if args.dtype != "float32" else None,
            unit_norm=args.unit_norm,
        )
        if distributed:
            fit_embeddings_distributed(est, gallery, **kw)
        else:
            est.fit_embeddings(gallery, **kw)
    else:
        extra = {}
        if args.bank_cross_sims is not None:
            extra["bank_cross_sims"] = bank(args.bank_cross_sims, sims=True)
        mats = (
            bank(args.query_bank_sims, sims=True),
            bank(args.gallery_bank_sims, sims=True),
        )
        if distributed:
            fit_distributed(est, *mats, **extra)
        else:
            est.fit(*mats, **extra)
    if rank == 0:
        path = est.save(
            args.save, gallery=gallery if from_sims else None, overwrite=args.overwrite
        )
        sizes = ", ".join(f"{k} bank {v:,}" for k, v in est.n_bank_.items())
        print(
            f"hubrepro normalize fit: wrote {args.method} statistics for "
            f"{est.n_gallery_:,} gallery items ({sizes}"
            f"{f'; {world} processes' if distributed else ''}) to {path}"
        )
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return 0


def _run_apply(args: argparse.Namespace) -> int:
    _check_out(args.out, args.overwrite)
    from_sims = args.sims is not None
    from_emb = args.queries is not None or args.gallery is not None
    if from_sims == from_emb:
        raise ValueError(
            "give either --sims or --queries and --gallery (embeddings), not both or neither."
        )
    device = resolve_device(args.device)
    if from_sims:
        est = load_normalizer(args.stats, device=device)
        out = est.transform(_load(args.sims, args, device))
    else:
        if args.queries is None or args.gallery is None:
            raise ValueError("embeddings need both --queries and --gallery.")
        gallery = _load(args.gallery, args, device)
        est = load_normalizer(args.stats, gallery=gallery, device=device)
        out = transform_embeddings(
            est,
            _load(args.queries, args, device),
            gallery,
            metric=args.metric,
            chunk_size=args.chunk_size,
            unit_norm=args.unit_norm,
        )
    path = save_array(out.cpu(), args.out, overwrite=args.overwrite)
    print(
        f"hubrepro normalize apply: wrote scores of shape {tuple(out.shape)} to {path}"
    )
    return 0
