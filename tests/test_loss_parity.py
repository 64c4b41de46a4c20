"""Each method's pure loss against a reference written here from its paper's own equations or pseudo-code,
loop by loop, in float64: the value and the gradients with respect to every input (as lightly's parity tests
do). Issue 21's parity suite: the pure losses; SimSiam's, BYOL's and DINO's method losses with the gradient of every
parameter they reach, at toy scale and at engine scale (Fashion-MNIST's ResNet-18 and recipe heads); DINO's head
and init; the joint BatchNorm of both views.

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

from lab.engine.model import build_model
from lab.engine.recipes import recipe
from lab.methods import build_method
from lab.methods.barlow import barlow_loss
from lab.methods.base import encode_views
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


# ------------------------------------------------------------------ methods: loss and gradients of every parameter

SCALES = ("toy", "engine")


def _setup(name, params, scale, seed=4):
    """(model, x1, x2, seeds): the toy's method on K = 2 stacked seeds, or the engine's (Fashion-MNIST's ResNet-18
    and recipe heads, K = 1) on 28-px images; float64."""
    torch.manual_seed(0)
    if scale == "toy":
        x1, x2 = leaves((K, B, 4), (K, B, 4), seed=seed)
        return build_method(name, params, [0, 1], 4, D, hidden=8), x1, x2, K
    x1, x2 = leaves((1, B, 1, 28, 28), (1, B, 1, 28, 28), seed=seed)
    return build_model(name, params, scale="fmnist").double(), x1, x2, 1


def _cos(a, b):
    return (a @ b) / (a.norm() * b.norm())


def check_method(model, ref_fn, x1, x2, seeds, offset=0.0):
    """model.loss(x1, x2) + offset against ref_fn(k) for each seed k: values and the gradient of every
    parameter the loss reaches."""
    params = [p for p in model.parameters() if p.requires_grad]
    lab = model.loss(x1, x2)[0] + offset
    ref = torch.stack([ref_fn(k) for k in range(seeds)])
    assert torch.allclose(lab, ref, rtol=1e-12, atol=1e-12), (lab, ref)
    g_lab = torch.autograd.grad(lab.sum(), params, allow_unused=True)
    g_ref = torch.autograd.grad(ref.sum(), params, allow_unused=True)
    reached = 0
    for a, b in zip(g_lab, g_ref):
        assert (a is None) == (b is None)
        if a is not None:
            reached += 1
            assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    assert reached > 0


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("stop_grad", [True, False])
def test_simsiam_loss_is_algorithm_1(stop_grad, scale):
    """SimSiam Algorithm 1: L = D(p1, z2)/2 + D(p2, z1)/2, D(p, z) = −cos(p, stopgrad(z)), the mean over the batch."""
    model, x1, x2, seeds = _setup("simsiam", {"stop_grad": stop_grad}, scale)

    def ref(k):
        z1, z2 = model.encoder(x1)[1], model.encoder(x2)[1]
        p1, p2 = model.predictor(z1), model.predictor(z2)
        sg = (lambda t: t.detach()) if stop_grad else (lambda t: t)
        return sum(-_cos(p1[k, b], sg(z2[k, b])) / 2 - _cos(p2[k, b], sg(z1[k, b])) / 2 for b in range(B)) / B

    check_method(model, ref, x1, x2, seeds)


@pytest.mark.parametrize("scale", SCALES)
def test_byol_loss_is_eq_2_at_the_recipe_scale(scale):
    """BYOL eq. 2 summed over both views (DeepMind's and solo-learn's code): Σ (2 − 2 cos(q_θ(z), z'_ξ)), the
    mean over the batch. The recipe's scale 4 makes the lab's loss that minus the constant 4: same gradients."""
    model, x1, x2, seeds = _setup("byol", {"scale": 4.0}, scale, seed=5)
    with torch.no_grad():  # a target away from the online weights, as after some EMA steps
        for p in model.target.parameters():
            p.add_(0.1 * torch.randn_like(p))

    def ref(k):
        p1, p2 = model.predictor(model.encoder(x1)[1]), model.predictor(model.encoder(x2)[1])
        t1, t2 = model.target(x1)[1].detach(), model.target(x2)[1].detach()
        return sum((2 - 2 * _cos(p1[k, b], t2[k, b])) + (2 - 2 * _cos(p2[k, b], t1[k, b])) for b in range(B)) / B

    check_method(model, ref, x1, x2, seeds, offset=4.0)


@pytest.mark.parametrize("scale", SCALES)
def test_dino_method_is_algorithm_1(scale):
    """DINO Algorithm 1 through the method: student s_a = head(f(x_a)), teacher t_b = head_t(f_t(x_b)), both
    pairs (s1, t2) and (s2, t1) halved, targets softmax((t − C)/τ_t) without gradient; the engine's recipe puts
    both views through BatchNorm together (MultiCropWrapper), so its reference does too."""
    model, x1, x2, seeds = _setup("dino", {"n_prototypes": P, "last_layer_freeze": 0.0}, scale, seed=8)
    with torch.no_grad():
        model.center.copy_(0.1 * torch.randn_like(model.center))
    center, tau_s, tau_t = model.center.clone(), model.cfg.temperature, model.teacher_temp
    joint = model.cfg.joint_bn

    def encode(encoder, head):
        if joint:
            y = encoder(torch.cat([x1, x2], dim=1))[1]
            return head(y[:, :B]), head(y[:, B:])
        return head(encoder(x1)[1]), head(encoder(x2)[1])

    def ref(k):
        s1, s2 = encode(model.encoder, model.head)
        t1, t2 = (t.detach() for t in encode(model.teacher["encoder"], model.teacher["head"]))
        total = 0.0
        for s, t in ((s1, t2), (s2, t1)):
            for b in range(B):
                target = softmax_row([t[k, b, j] - center[k, 0, j] for j in range(P)], tau_t)
                student = softmax_row([s[k, b, j] for j in range(P)], tau_s)
                total = total - 0.5 * sum(target[j] * torch.log(student[j]) for j in range(P)) / B
        return total

    assert joint == (scale == "engine")
    check_method(model, ref, x1, x2, seeds)


def test_dino_head_is_main_dinos_weight_normed_last_layer():
    """DINOHead of main_dino.py: logits = weight_norm(Linear)(normalize(y)) with g = 1 (norm_last_layer):
    each logit is cos(y, w_k). Values and gradients against that loop."""
    model = _setup("dino", {"n_prototypes": P}, "toy")[0]
    (y,) = leaves((K, B, D), seed=6)
    w = model.head.last.weight  # (K, D, P)
    lab = model.head(y)
    ref = torch.stack([torch.stack([torch.stack([_cos(y[k, b], w[k, :, j]) for j in range(P)])
                                    for b in range(B)]) for k in range(K)])
    assert torch.allclose(lab, ref, rtol=1e-12, atol=1e-12)
    g_lab = torch.autograd.grad(lab.square().sum(), [y, w])
    g_ref = torch.autograd.grad(ref.square().sum(), [y, w])
    for a, b in zip(g_lab, g_ref):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    frozen = model.head(y, frozen=True)
    assert torch.allclose(frozen, lab) and torch.autograd.grad(frozen.sum(), [w], allow_unused=True)[0] is None


class _BNEncoder(torch.nn.Module):
    """A stand-in encoder with a train-mode BatchNorm over each call's batch: x (K, N, d) -> (h, y)."""

    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(4)

    def forward(self, x):
        y = self.bn(x.reshape(-1, x.shape[-1])).view(x.shape)
        return x, y


def test_joint_views_take_batchnorm_statistics_over_both_views():
    """joint_bn: one batch of 2N through the encoder (DINO's MultiCropWrapper, SwAV); off: view by view."""
    x1, x2 = [x.detach() + shift for x, shift in zip(leaves((K, B, 4), (K, B, 4), seed=7), (0.0, 3.0))]
    enc = _BNEncoder().double()
    (_, j1), (_, j2) = encode_views(enc, x1, x2, joint=True)
    both = torch.cat([x1, x2], dim=1).reshape(-1, 4)
    expected = (both - both.mean(0)) / (both.var(0, unbiased=False) + enc.bn.eps).sqrt()
    assert torch.allclose(torch.cat([j1, j2], dim=1).reshape(-1, 4), expected, atol=1e-12)
    (_, s1), (_, s2) = encode_views(enc, x1, x2, joint=False)
    assert torch.allclose(s1.reshape(-1, 4).mean(0), torch.zeros(4), atol=1e-12)  # each view centred alone
    assert not torch.allclose(s1, j1, atol=1e-3)  # the views differ by a shift of 3: joint keeps it


@pytest.mark.parametrize("scale", ["imagenet", "fmnist"])
def test_recipes_declare_the_originals_loss_scale_and_batchnorm(scale):
    """BYOL's loss at the originals' scale; the views through BatchNorm together where the originals do."""
    assert recipe("byol", scale).method_params["scale"] == 4.0
    for method in ("dino", "swav", "simclr"):
        assert recipe(method, scale).method_params["joint_bn"] is True, method
    for method in ("simsiam", "byol", "barlow"):
        assert not recipe(method, scale).method_params.get("joint_bn", False), method


def test_dino_engine_head_starts_as_dinohead():
    """main_dino.py's DINOHead init: every Linear of the MLP trunc_normal(std 0.02), biases 0. The smallest
    layer has 512 × 64 weights: their std is within 2 % of 0.02 but for a chance below 1e-6."""
    model = build_model("dino", scale="fmnist")
    linears = [m for m in model.encoder.projector if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    for layer in linears:
        w = layer.weight.detach()
        # DINO's trunc_normal_ cuts at ±2 (absolute, as torch's): at std 0.02 a plain normal in effect
        assert 0.018 < float(w.std()) < 0.022 and abs(float(w.mean())) < 0.002
        assert layer.bias is not None and not layer.bias.detach().any()
