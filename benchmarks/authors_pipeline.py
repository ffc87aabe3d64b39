"""The authors' DBNorm pipeline as a NumPy program, for the race in bench_normalize.py.

A transcription of what the released pipeline does (DBNorm's ``db_norm``, which
calls QB-Norm's inverted softmax or dynamic inverted softmax on a query bank and a
gallery bank; ``yimuwangcs/Better_Cross_Modal_Retrieval``, ``DBNorm/dbnorm.py``,
commit 898bd23), written from the formulas of the book's chapter 4 and the
behaviour documented in :mod:`hubrepro.errata` (chapter 5, "Errata"), not copied.
Only the argument defect D1 is fixed (both terms normalise the test matrix);
everything else is kept because it is what users of the released code run:

1. the embeddings are loaded whole (``numpy.load``; float16 storage is cast to
   float32 for the matrix products, as NumPy has no fast float16 matmul);
2. the three similarity matrices are materialised: the test matrix
   :math:`S` (queries x gallery), :math:`P^q` (query bank x gallery) and
   :math:`P^g` (gallery bank x gallery), as dot products of the (unit-norm)
   embeddings;
3. each inverted softmax exponentiates its **whole** bank matrix
   (``exp(beta * P)``: two temporaries of the bank matrix's size) and divides
   ``exp(beta * S)`` by the column sums (defect D5: no log-sum-exp);
4. the dynamic variant (``--dynamic``) finds the activation set with a **full
   descending sort** of every bank row (``argsort(-P, axis=1)[:, :k]``, an int64
   matrix of the bank's size), gates each test row by the top-1 of the
   exponentiated test row, and writes the normalised rows **into** the test matrix
   it was given (defect D3): the second term gates and normalises the output of
   the first, and the product multiplies that one array by itself.

The program imports NumPy only (not torch, not hubrepro), so that its process
pays no import it would not pay in the released code. It prints one JSON line
with the wall time of its phases; ``tests/test_authors_pipeline.py`` checks it
against :func:`hubrepro.errata.released_db_norm` with ``fix_d1=True``.

Usage::

    python benchmarks/authors_pipeline.py --queries Q.npy --gallery G.npy \\
        --query-bank BQ.npy --gallery-bank BG.npy [--dynamic] [--k 1] \\
        [--beta-query 20] [--beta-gallery 20] --out OUT.npy
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def inverted_softmax(bank_sims, test_sims, beta):
    """QB-Norm's inverted softmax: ``exp(beta S) / sum_b exp(beta P_b)``, a new array."""
    normalising_sum = np.sum(np.exp(bank_sims * beta), axis=0)
    return np.exp(test_sims * beta) / normalising_sum


def dynamic_inverted_softmax(bank_sims, test_sims, beta, k):
    """QB-Norm's dynamic inverted softmax, writing into ``test_sims`` and returning it."""
    active = np.unique(np.argsort(-bank_sims, axis=1)[:, :k].reshape(-1))
    normalising_sum = np.sum(np.exp(bank_sims * beta), axis=0)
    test_exp = np.exp(test_sims * beta)
    top1 = np.argsort(-test_exp, axis=1)[:, 0]
    rows = np.nonzero(np.array([t in active for t in top1]))
    test_sims[rows, :] = test_exp[rows, :] / normalising_sum
    return test_sims


def db_norm(
    bank_query_sims, bank_gallery_sims, sims, *, beta_query, beta_gallery, k, dynamic
):
    """``db_norm`` with D1 fixed: the product of the two terms, both on ``sims``."""
    if dynamic:
        first = dynamic_inverted_softmax(bank_query_sims, sims, beta_query, k)
        second = dynamic_inverted_softmax(bank_gallery_sims, sims, beta_gallery, k)
    else:
        first = inverted_softmax(bank_query_sims, sims, beta_query)
        second = inverted_softmax(bank_gallery_sims, sims, beta_gallery)
    return first * second


def _load(path):
    x = np.load(path)
    return x.astype(np.float32) if x.dtype == np.float16 else x


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("queries", "gallery", "query-bank", "gallery-bank", "out"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--beta-query", type=float, default=20.0)
    ap.add_argument("--beta-gallery", type=float, default=20.0)
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--dynamic", action="store_true", help="DualDIS instead of DualIS")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    q, g = _load(args.queries), _load(args.gallery)
    bq, bg = _load(args.query_bank), _load(args.gallery_bank)
    t1 = time.perf_counter()
    sims, pq, pg = q @ g.T, bq @ g.T, bg @ g.T
    t2 = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):
        out = db_norm(pq, pg, sims, beta_query=args.beta_query,
                      beta_gallery=args.beta_gallery, k=args.k, dynamic=args.dynamic)  # fmt: skip
    t3 = time.perf_counter()
    np.save(args.out, out)
    res = {"load_s": t1 - t0, "matrices_s": t2 - t1, "normalise_s": t3 - t2,
           "compute_s": t3 - t1, "save_s": time.perf_counter() - t3}  # fmt: skip
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
