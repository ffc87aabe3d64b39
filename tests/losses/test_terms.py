"""One module per NeighborRetr term: each nn.Module form equals its functional form, and
the composed loss is built from the term modules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hubrepro.losses import (
    CentralityWeightedInfoNCE,
    KLConsistency,
    NeighborAdjustingLoss,
    NeighborRetrLoss,
    UniformRegularisation,
    WTISimilarity,
    bank_centrality,
    centrality_weighted_infonce,
    centrality_weights,
    kl_consistency,
    neighbor_adjusting_loss,
    symmetric_infonce,
    uniform_regularisation,
    wti_similarity,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _feats(gen, b=7, d=5, dtype=torch.float64):
    return [torch.randn(b, d, generator=gen, dtype=dtype) for _ in range(4)]


def test_wti_module_uniform_weights_and_learnt_weights(generator):
    q = torch.randn(4, 3, 6, generator=generator, dtype=torch.float64)
    g = torch.randn(5, 2, 6, generator=generator, dtype=torch.float64)
    qm = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 1]], dtype=torch.bool)
    assert torch.equal(WTISimilarity()(q, qm, g, None), wti_similarity(q, qm, g, None))
    wti = WTISimilarity(6).double()
    assert sum(p.numel() for p in wti.parameters()) == 2 * (6 * 12 + 12 + 12 + 1)
    ref = wti_similarity(q, qm, g, None, wti.query_weights, wti.gallery_weights)
    assert torch.equal(wti(q, qm, g, None), ref)
    # learnt token weights change S (else the networks would be dead)
    assert not torch.allclose(ref, wti_similarity(q, qm, g, None))
    wti(q, qm, g, None).sum().backward()
    assert wti.query_weights[0].weight.grad is not None


@pytest.mark.parametrize("detach", [True, False])
def test_centrality_module_equals_functions(generator, detach):
    ql, gl, qg, gg = _feats(generator)
    s = F.normalize(ql, dim=1) @ F.normalize(gl, dim=1).T
    term = CentralityWeightedInfoNCE(kappa=0.7, exclude_self=False, detach=detach)
    wq = centrality_weights(qg, ql, kappa=0.7, exclude_self=False, detach=detach)
    wg = centrality_weights(gg, gl, kappa=0.7, exclude_self=False, detach=detach)
    torch.testing.assert_close(
        term(s, 10.0, qg, ql, gg, gl),
        centrality_weighted_infonce(s, 10.0, wq, wg),
        rtol=1e-13,
        atol=0,
    )
    # token locals with masks take the same path as the functions
    tok = torch.randn(7, 3, 5, generator=generator, dtype=torch.float64)
    mask = torch.rand(7, 3, generator=generator) > 0.3
    mask[:, 0] = True
    wt = centrality_weights(qg, tok, mask, kappa=0.7, exclude_self=False)
    torch.testing.assert_close(
        term(s, 10.0, qg, tok, gg, gl, query_mask=mask),
        centrality_weighted_infonce(s, 10.0, wt, wg),
        rtol=1e-13,
        atol=0,
    )
    # kappa = 0 is symmetric InfoNCE, bit for bit (one InfoNCE implementation)
    zero = CentralityWeightedInfoNCE(kappa=0.0)
    assert torch.equal(zero(s, 10.0, qg, ql, gg, gl), symmetric_infonce(s, 10.0))
    with pytest.raises(ValueError, match="rows"):
        term(s, 10.0, qg[:3], ql[:3], gg, gl)


@pytest.mark.parametrize("stats", ["neighbours", "complement"])
def test_neighbor_module_is_both_directions_with_the_bank(generator, stats):
    ql, gl, _, _ = _feats(generator)
    bq = torch.randn(11, 5, generator=generator, dtype=torch.float64)
    bg = torch.randn(11, 5, generator=generator, dtype=torch.float64)
    s = F.normalize(ql, dim=1) @ F.normalize(gl, dim=1).T
    term = NeighborAdjustingLoss(num_neighbors=3, tau=2.0, stats=stats)
    ref = 0.5 * (
        neighbor_adjusting_loss(s, bank_centrality(bq, gl), k=3, tau=2.0, stats=stats)
        + neighbor_adjusting_loss(
            s.T, bank_centrality(bg, ql), k=3, tau=2.0, stats=stats
        )
    )
    # both directions run as one batched computation: equal up to float64 rounding
    torch.testing.assert_close(term(s, ql, gl, bq, bg), ref, rtol=1e-13, atol=0)
    # k larger than the batch allows is clipped, as in the composed loss
    big = NeighborAdjustingLoss(num_neighbors=100, stats=stats)
    k = 5 if stats == "complement" else 6
    ref_big = 0.5 * (
        neighbor_adjusting_loss(s, bank_centrality(bq, gl), k=k, stats=stats)
        + neighbor_adjusting_loss(s.T, bank_centrality(bg, ql), k=k, stats=stats)
    )
    torch.testing.assert_close(big(s, ql, gl, bq, bg), ref_big, rtol=1e-13, atol=0)
    with pytest.raises(ValueError, match="non-empty memory bank"):
        term(s, ql, gl, None, bg)


def test_uniform_and_kl_modules_equal_functions(generator):
    s, g = (torch.randn(6, 6, generator=generator, dtype=torch.float64) for _ in "ab")
    for sep in (False, True):
        term = UniformRegularisation(beta=0.4, tau=2.0, iters=30, separate_plans=sep)
        assert torch.equal(
            term(5 * g),
            uniform_regularisation(
                5 * g, beta=0.4, tau=2.0, iters=30, separate_plans=sep
            ),
        )
    for red in ("mean", "batchmean", "sum"):
        assert torch.equal(
            KLConsistency(reduction=red)(s, g), kl_consistency(s, g, reduction=red)
        )
    with pytest.raises(ValueError, match="reduction"):
        KLConsistency(reduction="none")


def test_composed_loss_holds_the_term_modules():
    crit = NeighborRetrLoss(compat="official", tau_nal=2.0, tau_uniform=9.0)
    assert isinstance(crit.wti, CentralityWeightedInfoNCE) and not crit.wti.detach
    assert crit.neighbor.stats == "complement" and not crit.neighbor.detach_targets
    assert crit.uniform.separate_plans and crit.uniform.tau == 2.0  # tied temperatures
    assert NeighborRetrLoss(tau_uniform=9.0).uniform.tau == 9.0
    assert crit.kl.reduction == "mean"
    assert not list(crit.parameters())  # no parameters: checkpoints are unchanged


@pytest.mark.parametrize("normalize_global", [True, False])
def test_cosine_global_scores_spare_the_sinkhorn_span_check(
    generator, monkeypatch, normalize_global
):
    # with normalised global features G is a cosine matrix: the loss hands the solver
    # the bound 2 / eps (no device-to-host look at the scores); raw scores are checked
    import hubrepro.losses.uniform as uniform_module

    seen = []
    real = uniform_module._sinkhorn

    def spy(g, iters, eps, tol=0.0, span=None):
        seen.append(span)
        return real(g, iters, eps, tol, span)

    monkeypatch.setattr(uniform_module, "_sinkhorn", spy)
    ql, gl, qg, gg = _feats(generator)
    loss = NeighborRetrLoss(normalize_global=normalize_global, w_neighbor=0.0)
    got = loss(ql, gl, qg, gg, 20.0)
    assert seen == ([2.0 + 1e-3] if normalize_global else [None])
    monkeypatch.setattr(uniform_module, "_sinkhorn", real)
    assert torch.equal(got, loss(ql, gl, qg, gg, 20.0))


def test_neighbour_index_partition_is_the_top_k(generator):
    # the CPU's NumPy partition and torch.topk (other devices, half precision) pick
    # the same k columns of each row, the row's own column never among them
    from hubrepro.losses.neighbor import _neighbour_index

    s = torch.randn(2, 9, 9, generator=generator)
    idx = _neighbour_index(s, 4)
    diag = s.clone()
    diag.diagonal(dim1=-2, dim2=-1).fill_(float("-inf"))
    want = diag.topk(4, dim=-1).indices
    assert torch.equal(idx.sort(dim=-1).values, want.sort(dim=-1).values)
    assert not (idx == torch.arange(9)[None, :, None]).any()
    half = _neighbour_index(s.double().bfloat16().float(), 4)  # still the CPU path
    assert half.shape == (2, 9, 4)
    bf = _neighbour_index(s.to(torch.bfloat16), 4)  # the topk path
    assert bf.shape == (2, 9, 4) and not (bf == torch.arange(9)[None, :, None]).any()


@pytest.mark.gpu
@pytest.mark.parametrize("compat", ["fixed", "official"])
@pytest.mark.parametrize("normalize_global", [True, False])
def test_loss_on_cuda_is_the_cpu_loss(compat, normalize_global):
    # the device paths (the torch Sinkhorn loops, no host synchronisation, top-k
    # instead of the NumPy partition) give the CPU's values and gradients
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    gen = torch.Generator().manual_seed(3)
    feats = [torch.randn(32, 16, generator=gen) for _ in range(4)]
    bank = [torch.randn(64, 16, generator=gen) for _ in range(2)]
    loss = NeighborRetrLoss(compat=compat, normalize_global=normalize_global)
    out = {}
    for dev in ("cpu", "cuda"):
        x = [f.to(dev).requires_grad_(True) for f in feats]
        bq, bg = (b.to(dev) for b in bank)
        value = loss(*x, 20.0, bank_query_local=bq, bank_gallery_local=bg)
        value.backward()
        out[dev] = (value.detach().cpu(), [t.grad.cpu() for t in x])
    torch.testing.assert_close(out["cuda"][0], out["cpu"][0], rtol=1e-4, atol=1e-5)
    for got, want in zip(out["cuda"][1], out["cpu"][1], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)
