"""Each method's pure loss against a reference written here from its paper's own equations or pseudo-code,
loop by loop, in float64: the value and the gradients with respect to every input (as lightly's parity tests
do). A first part of issue 21's parity suite: the losses (not yet the heads nor whole training steps).

- DINO, Algorithm 1: H(t, s) = −Σ_k softmax((t − C)/τ_t)_k · log softmax(s/τ_s)_k, averaged over the batch.
- Barlow Twins, eq. 1: C_ij = Σ_b a_bi b_bj / B over standardised embeddings;
  L = Σ_i (1 − C_ii)² + λ Σ_i Σ_{j≠i} C_ij².
- SimCLR, NT-Xent: ℓ(i, j) = −log exp(sim(z_i, z_j)/τ) / Σ_{k≠i} exp(sim(z_i, z_k)/τ) over the 2B views, the
  mean over all 2B anchors; sim the cosine.
- SwAV, Algorithm 1's sinkhorn: Q = exp(scores/ε)ᵀ normalised to sum 1, then alternately each prototype's
  row to 1/P and each sample's column to 1/B, n times; the codes are B·Qᵀ.
"""
from __future__ import annotations

import pytest
import torch

from lab.methods.barlow import barlow_loss
from lab.methods.dino import dino_loss
from lab.methods.simclr import info_nce
from lab.methods.swav import sinkhorn

K, B, D, P = 2, 6, 5, 7


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def leaves(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_() for s in shapes]


def check(lab_fn, ref_fn, inputs):
    """lab_fn(*inputs) -> (K,) against ref_fn(k, *inputs) -> scalar for seed k: values and gradients."""
    lab = lab_fn(*inputs)
    ref = torch.stack([ref_fn(k, *inputs) for k in range(K)])
    assert torch.allclose(lab, ref, rtol=1e-12, atol=1e-12), (lab, ref)
    g_lab = torch.autograd.grad(lab.sum(), inputs, allow_unused=True)
    g_ref = torch.autograd.grad(ref.sum(), inputs, allow_unused=True)
    for a, b in zip(g_lab, g_ref):
        assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, rtol=1e-10, atol=1e-12))


def softmax_row(v, tau):
    e = [torch.exp(x / tau) for x in v]
    total = sum(e)
    return [x / total for x in e]


@pytest.mark.parametrize("tau_s, tau_t", [(0.1, 0.04), (0.1, 0.07)])
def test_dino_loss_is_algorithm_1(tau_s, tau_t):
    s, t, c = leaves((K, B, P), (K, B, P), (K, 1, P))

    def ref(k, s, t, c):
        total = 0.0
        for b in range(B):
            target = softmax_row([(t[k, b, j] - c[k, 0, j]).detach() for j in range(P)], tau_t)
            student = softmax_row([s[k, b, j] for j in range(P)], tau_s)
            total = total - sum(target[j] * torch.log(student[j]) for j in range(P))
        return total / B

    check(lambda s, t, c: dino_loss(s, t.detach(), c.detach(), tau_s, tau_t), ref, [s, t, c])


@pytest.mark.parametrize("lam", [0.0, 0.0051, 0.5])
def test_barlow_loss_is_eq_1(lam):
    a, b = leaves((K, B, D), (K, B, D), seed=1)

    def ref(k, a, b):
        c = [[sum(a[k, n, i] * b[k, n, j] for n in range(B)) / B for j in range(D)] for i in range(D)]
        on = sum((1 - c[i][i]) ** 2 for i in range(D))
        off = sum(c[i][j] ** 2 for i in range(D) for j in range(D) if i != j)
        return on + lam * off

    check(lambda a, b: barlow_loss(a, b, lam), ref, [a, b])


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_simclr_loss_is_nt_xent(temperature):
    z1, z2 = leaves((K, B, D), (K, B, D), seed=2)

    def ref(k, z1, z2):
        views = [z1[k, i] for i in range(B)] + [z2[k, i] for i in range(B)]
        views = [v / v.norm() for v in views]
        total = 0.0
        for i in range(2 * B):
            j = (i + B) % (2 * B)
            denom = sum(torch.exp(views[i] @ views[m] / temperature) for m in range(2 * B) if m != i)
            total = total - torch.log(torch.exp(views[i] @ views[j] / temperature) / denom)
        return total / (2 * B)

    check(lambda z1, z2: info_nce(z1, z2, temperature), ref, [z1, z2])


@pytest.mark.parametrize("iters", [1, 3])
def test_swav_sinkhorn_is_algorithm_1(iters):
    (scores,) = leaves((K, B, P), seed=3)
    eps = 0.05
    for k in range(K):
        q = torch.exp(scores[k].detach() / eps).T  # (P, B), as SwAV's Algorithm 1
        q = q / q.sum()
        for _ in range(iters):
            q = q / q.sum(dim=1, keepdim=True) / P
            q = q / q.sum(dim=0, keepdim=True) / B
        expected = (q * B).T
        assert torch.allclose(sinkhorn(scores.detach(), eps, iters)[k], expected, rtol=1e-10, atol=1e-12)
    codes = sinkhorn(scores.detach(), eps, iters)
    assert torch.allclose(codes.sum(-1), torch.ones(K, B))  # each sample's code sums to 1
