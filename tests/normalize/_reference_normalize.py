"""Plain, obviously-correct reference normalisers (float64, loops, explicit exp-ratios).

Written from the formulas of DBNorm (``wang2023balance``) as the book writes them out
(:ref:`sec-normalisation`) and of QB-Norm (``bogolin2022qbnorm``) without sharing code with
``hubrepro.normalize``. Use small inverse temperatures: the exponentials here are
taken directly, as in the papers.
"""

from __future__ import annotations

import math

import numpy as np


def activation_set(P: np.ndarray, k: int) -> set[int]:
    """Union over bank rows of the row's top-k columns, ties to the lowest index."""
    active: set[int] = set()
    for row in P:
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))
        active.update(order[:k])
    return active


def top1(row: np.ndarray) -> int:
    best = 0
    for j in range(1, len(row)):
        if row[j] > row[best]:
            best = j
    return best


def partition(P: np.ndarray, beta: float) -> np.ndarray:
    """sum_b exp(beta * P_bj) for each column j."""
    n_bank, n_gal = P.shape
    z = np.zeros(n_gal)
    for j in range(n_gal):
        for b in range(n_bank):
            z[j] += math.exp(beta * P[b, j])
    return z


def inverted_softmax(S, P, beta):
    z = partition(P, beta)
    return np.array(
        [
            [math.exp(beta * S[i, j]) / z[j] for j in range(S.shape[1])]
            for i in range(S.shape[0])
        ]
    )


def dis(S, P, beta, k):
    active = activation_set(P, k)
    z = partition(P, beta)
    out = np.empty_like(S)
    for i in range(S.shape[0]):
        gated = top1(S[i]) in active
        for j in range(S.shape[1]):
            # ungated rows keep exp(beta S), i.e. the raw ranking
            out[i, j] = math.exp(beta * S[i, j]) / (z[j] if gated else 1.0)
    return out


def dual_terms(S, Pq, Pg, bq, bg, k, gated: bool):
    zq, zg = partition(Pq, bq), partition(Pg, bg)
    aq, ag = activation_set(Pq, k), activation_set(Pg, k)
    tq, tg = np.empty_like(S), np.empty_like(S)
    gates = []
    for i in range(S.shape[0]):
        t = top1(S[i])
        gq = (t in aq) if gated else True
        gg = (t in ag) if gated else True
        gates.append((gq, gg))
        for j in range(S.shape[1]):
            tq[i, j] = math.exp(bq * S[i, j]) / (zq[j] if gq else 1.0)
            tg[i, j] = math.exp(bg * S[i, j]) / (zg[j] if gg else 1.0)
    return tq, tg, gates


def dualdis_faithful(S, Pq, Pg, bq, bg, k):
    """The authors' gating: an ungated term is the raw similarity; terms multiplied."""
    zq, zg = partition(Pq, bq), partition(Pg, bg)
    aq, ag = activation_set(Pq, k), activation_set(Pg, k)
    out = np.empty_like(S)
    for i in range(S.shape[0]):
        t = top1(S[i])
        for j in range(S.shape[1]):
            tq = math.exp(bq * S[i, j]) / zq[j] if t in aq else S[i, j]
            tg = math.exp(bg * S[i, j]) / zg[j] if t in ag else S[i, j]
            out[i, j] = tq * tg
    return out


def topk_mean_columns(P, k):
    return np.array(
        [np.mean(sorted(P[:, j], reverse=True)[:k]) for j in range(P.shape[1])]
    )


def csls(S, P, k):
    rj = topk_mean_columns(P, k)
    out = np.empty_like(S)
    for i in range(S.shape[0]):
        ri = np.mean(sorted(S[i], reverse=True)[:k])
        for j in range(S.shape[1]):
            out[i, j] = 2 * S[i, j] - ri - rj[j]
    return out


def nnn(S, P, alpha, k):
    return S - alpha * topk_mean_columns(P, k)[None, :]


def gc_order(S, P, i):
    """Gallery indices of query i in GC order: bank rank ascending, then S descending."""
    ranks = [
        sum(1 for b in range(P.shape[0]) if P[b, j] > S[i, j])
        for j in range(S.shape[1])
    ]
    return sorted(range(S.shape[1]), key=lambda j: (ranks[j], -S[i, j], j)), ranks


def sinkhorn_log_v(P, beta, n_iter):
    """Plain Sinkhorn with K = exp(beta P), uniform marginals, v initialised to 1/N."""
    K = np.exp(beta * P)
    m, n = K.shape
    v = np.full(n, 1.0 / n)
    for _ in range(n_iter):
        u = (1.0 / m) / (K @ v)
        v = (1.0 / n) / (K.T @ u)
    return np.log(v)
