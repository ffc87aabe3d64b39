"""Good/bad hub statistics: hand-computed toy, naive loop reference, bad inputs;
and the published NeighborRetr numbers file."""

from __future__ import annotations

import math

import pytest
import torch

from hubrepro.hub_quality import gt_occurrence, neighbor_label_stats


def test_hand_computed_toy():
    # 4 queries, 3 gallery items, k = 1: every query's top-1 is item 0 (a hub, N_1 = 4)
    sims = torch.tensor(
        [[0.9, 0.1, 0.0], [0.8, 0.7, 0.1], [0.5, 0.4, 0.3], [0.6, 0.0, 0.5]]
    )
    st = neighbor_label_stats(
        sims, torch.tensor([0, 1, 0, 2]), torch.tensor([0, 1, 2]), k=1
    )
    assert st["n_hubs"] == 1
    assert st["hub_occupancy"] == 1.0
    assert st["bad_hub_fraction"] == pytest.approx(0.5)  # queries 1 and 3 are wrong
    assert st["good_neighbor_rate"] == pytest.approx(0.5)


def test_matches_naive_loops(generator):
    nq, ng, k = 30, 20, 3
    sims = torch.randn(nq, ng, generator=generator, dtype=torch.float64)
    yq = torch.randint(0, 4, (nq,), generator=generator)
    yg = torch.randint(0, 4, (ng,), generator=generator)
    tops = [sorted(range(ng), key=lambda j: -float(sims[i, j]))[:k] for i in range(nq)]
    n_k = [sum(j in t for t in tops) for j in range(ng)]
    hubs = {j for j in range(ng) if n_k[j] >= 2 * k}
    slots = [(i, j) for i in range(nq) for j in tops[i]]
    good = sum(int(yq[i]) == int(yg[j]) for i, j in slots) / len(slots)
    on_hub = [(i, j) for i, j in slots if j in hubs]
    bad = (
        sum(int(yq[i]) != int(yg[j]) for i, j in on_hub) / len(on_hub)
        if on_hub
        else math.nan
    )
    st = neighbor_label_stats(sims, yq, yg, k=k, chunk_size=7)
    assert st["good_neighbor_rate"] == pytest.approx(good)
    assert st["n_hubs"] == len(hubs)
    if on_hub:
        assert st["bad_hub_fraction"] == pytest.approx(bad)
        assert st["good_hub_fraction"] == pytest.approx(1 - bad)
    else:
        assert math.isnan(st["bad_hub_fraction"])


def test_gt_occurrence_counts_and_oracle_k():
    yq = torch.tensor([0, 0, 0, 1])
    yg = torch.tensor([0, 0, 1, 2])
    assert gt_occurrence(yq, yg).tolist() == [3, 3, 1, 0]
    # k = 1: each label-0 query spreads one slot over two items -> 3 * 1/2 each
    assert gt_occurrence(yq, yg, k=1).tolist() == [1.5, 1.5, 1.0, 0.0]
    # the oracle uses every slot of a query whose label has at least k items
    assert float(gt_occurrence(yq, yg, k=2).sum()) == pytest.approx(3 * 2 + 1 * 1)


def test_bad_inputs():
    s = torch.randn(3, 4)
    with pytest.raises(ValueError, match="length 3"):
        neighbor_label_stats(s, torch.tensor([0, 1]), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(TypeError, match="integer"):
        neighbor_label_stats(
            s, torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0, 1, 2, 3])
        )
    with pytest.raises(ValueError, match="k"):
        neighbor_label_stats(
            s, torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2, 3]), k=5
        )


def test_published_numbers_file_is_valid():
    from hubrepro.experiments.neighborretr import published_numbers

    pub = published_numbers()
    assert pub.loc["MSR-VTT 1k-A ViT-B/32 T->V R@1", "value"] == 49.5
    assert pub.loc["MSR-VTT 1k-A ViT-B/32 T->V R@1", "confidence"] == "medium"
    assert set(pub["confidence"]) <= {"high", "medium", "medium-low", "low"}
    assert pub["source"].notna().all()
