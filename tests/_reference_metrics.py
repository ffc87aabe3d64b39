"""Naive reference implementations of the retrieval and hubness metrics.

Written plainly with Python loops over floats, straight from the definitions in
``book/01_hubness.md``, so that the optimised, streamed library code can be
checked against something obviously correct.
"""

from __future__ import annotations

import math


def naive_rank(row, target_index, ties):
    """0-based rank of ``row[target_index]`` among ``row`` (a list of floats)."""
    t = row[target_index]
    greater = 0
    equal_others = 0
    for j, v in enumerate(row):
        if v > t:
            greater += 1
        elif v == t and j != target_index:
            equal_others += 1
    if ties == "optimistic":
        return float(greater)
    if ties == "pessimistic":
        return float(greater + equal_others)
    return (greater + (greater + equal_others)) / 2.0


def naive_query_ranks(sims, gt, ties="average"):
    """Query->gallery ranks; ``sims`` a list of lists, ``gt`` a list of ints."""
    return [naive_rank(list(sims[i]), gt[i], ties) for i in range(len(sims))]


def naive_gallery_ranks(sims, gt, ties="average"):
    """Gallery->query ranks: min over the item's matching queries; NaN if none."""
    n_q = len(sims)
    n_g = len(sims[0])
    out = []
    for g in range(n_g):
        column = [sims[i][g] for i in range(n_q)]
        best = math.nan
        for i in range(n_q):
            if gt[i] == g:
                r = naive_rank(column, i, ties)
                if math.isnan(best) or r < best:
                    best = r
        out.append(best)
    return out


def naive_metrics(ranks, ks=(1, 5, 10)):
    """R@K (percent), MdR, MnR (1-based) of a list of 0-based ranks, NaN dropped.

    R@1 counts ranks equal to 0 and R@K (K >= 2) ranks below K, the rule of QB-Norm's
    evaluator (see :func:`qbnorm_cols2metrics`).
    """
    r = sorted(x for x in ranks if not math.isnan(x))
    n = len(r)
    out = {}
    for k in ks:
        hits = 0
        for x in r:
            if (x == 0) if k == 1 else (x < k):
                hits += 1
        out[f"R@{k}"] = 100.0 * hits / n
    if n % 2:
        med = r[n // 2]
    else:
        med = (r[n // 2 - 1] + r[n // 2]) / 2.0
    out["MdR"] = med + 1.0
    out["MnR"] = sum(r) / n + 1.0
    return out


def naive_topk(row, k, skip=None):
    """Indices of the k largest entries; ties go to the lowest index."""
    order = sorted(
        (j for j in range(len(row)) if j != skip), key=lambda j: (-row[j], j)
    )
    return order[:k]


def naive_k_occurrence(sims, k, exclude_self=False):
    n_g = len(sims[0])
    counts = [0] * n_g
    for i, row in enumerate(sims):
        for j in naive_topk(list(row), k, skip=i if exclude_self else None):
            counts[j] += 1
    return counts


def naive_skewness(values):
    n = len(values)
    mu = sum(values) / n
    m2 = sum((v - mu) ** 2 for v in values) / n
    m3 = sum((v - mu) ** 3 for v in values) / n
    if m2 == 0:
        return 0.0
    return m3 / m2**1.5


def naive_robin_hood(values):
    mu = sum(values) / len(values)
    return sum(abs(v - mu) for v in values) / (2 * sum(values))


def naive_gini(values):
    n = len(values)
    total = 0.0
    for a in values:
        for b in values:
            total += abs(a - b)
    return total / (2 * n * sum(values))


def naive_hub_occupancy(values):
    mu = sum(values) / len(values)
    return sum(v for v in values if v >= 2 * mu) / sum(values)


# -- QB-Norm's evaluator, transcribed -------------------------------------------------
# ioanacroi/qb-norm, metric.py (commit 08119aa), from collaborative-experts: a query's
# rank is the mean 0-based position, in its row sorted by distance -S, of every entry
# equal to the ground truth's distance ("averaging" ties); gallery->query takes, per
# gallery item, the minimum of that rank over its matching queries (read by columns);
# cols2metrics then counts
#     R1 = 100 * #{rank == 0} / n,   R5 = 100 * #{rank < 5} / n,   R10 = 100 * #{rank < 10} / n,
#     MedR = median(rank) + 1,       MeanR = mean(rank) + 1
# (and rounds to one decimal, which the library does not).


def qbnorm_tied_position(values, target):
    """Mean 0-based position of ``target`` among ``values`` sorted in decreasing order."""
    desc = sorted(values, reverse=True)
    pos = [p for p, v in enumerate(desc) if v == target]
    return sum(pos) / len(pos)


def qbnorm_t2v_ranks(sims, gt):
    return [
        qbnorm_tied_position(list(sims[i]), sims[i][gt[i]]) for i in range(len(sims))
    ]


def qbnorm_v2t_ranks(sims, gt):
    n_q, n_g = len(sims), len(sims[0])
    out = []
    for g in range(n_g):
        column = [sims[i][g] for i in range(n_q)]
        mine = [
            qbnorm_tied_position(column, sims[i][g]) for i in range(n_q) if gt[i] == g
        ]
        out.append(min(mine) if mine else math.nan)
    return out


def qbnorm_cols2metrics(cols):
    """R1, R5, R10, MedR, MeanR of QB-Norm's ``cols2metrics`` (unrounded), NaN dropped."""
    c = sorted(x for x in cols if not math.isnan(x))
    n = len(c)
    med = c[n // 2] if n % 2 else (c[n // 2 - 1] + c[n // 2]) / 2.0
    return {
        "R@1": 100.0 * sum(1 for x in c if x == 0) / n,
        "R@5": 100.0 * sum(1 for x in c if x < 5) / n,
        "R@10": 100.0 * sum(1 for x in c if x < 10) / n,
        "MdR": med + 1.0,
        "MnR": sum(c) / n + 1.0,
    }
