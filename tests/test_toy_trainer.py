"""The stacked toy trainer takes the same steps as a plain per-seed loop, stacking runs changes none of
them, its seed-batched layers match ordinary PyTorch layers, and a diverging run stops cleanly."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lab.methods import METHOD_NAMES
from lab.core.nn import SeedBatchNorm, SeedLinear, seed_generators
from lab.train.toy import ToyConfig, _Batches, train_toys
from lab.train.toy_reference import train_toy_plain

TOL = 1e-4
# Accuracies count held-out points (300): features that agree to ~1e-6 can still flip one point whose
# kNN vote or linear score is a near tie, so they may differ by one point.
ACC_TOL = 1.01 / 300


def _close(a: torch.Tensor, b: torch.Tensor, name: str = "") -> bool:
    tol = ACC_TOL if name.endswith("_acc") else TOL
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=tol, rtol=0))


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_stacked_seeds_match_plain_per_seed_runs(method):
    # simsiam/byol: BatchNorm in the predictor; byol/dino: EMA teachers; swav: prototypes renormalised
    # after each step; barlow: batch-standardised views. K = 3 seeds in one program vs one seed at a time.
    # Autograd for every method here: the hand-written step of simsiam/simplified/invariance is the same
    # maths (tests/test_fused.py, in float64), but its float32 rounding differs from autograd's, and the
    # predictor's BatchNorm grows that to ~2e-4 in 30 steps.
    config = ToyConfig(method=method, dataset="moons", seeds=3, seed=4, epochs=5)
    run = train_toys([config], use_fused=False)[0]
    plain = train_toy_plain(config)
    assert run.diverged is None and plain["diverged"] == [None] * 3
    assert run.epochs == plain["epochs"] == list(range(6))
    assert _close(run.z, plain["z"]), (run.z - plain["z"]).abs().max()
    assert run.metrics.keys() == plain["metrics"].keys()
    for name, values in run.metrics.items():
        assert _close(values, plain["metrics"][name], name), name


@pytest.mark.parametrize("method", ["simsiam", "byol"])
def test_stacking_two_datasets_changes_neither_run(method):
    blobs = ToyConfig(method=method, dataset="blobs", seeds=2, epochs=5)
    moons = ToyConfig(method=method, dataset="moons", seeds=3, seed=7, epochs=5)
    together = train_toys([blobs, moons])
    alone = [train_toys([blobs])[0], train_toys([moons])[0]]
    for a, b in zip(together, alone):
        assert a.config == b.config and a.epochs == b.epochs
        assert _close(a.z, b.z)
        for name in a.metrics:
            assert _close(a.metrics[name], b.metrics[name], name), name


def test_a_diverging_run_names_the_epoch_and_keeps_what_it_had():
    # Barlow Twins without BatchNorm at a large learning rate: the loss is NaN within the first epoch.
    config = ToyConfig(method="barlow", params=(("batchnorm", False),), lr=10.0, seeds=2, epochs=20)
    run = train_toys([config])[0]
    assert run.diverged is not None and "diverged at epoch 1" in run.diverged
    assert run.epochs == [0]
    assert run.z.shape == (1, 2, 600, config.dim) and torch.isfinite(run.z).all()
    for name, values in run.metrics.items():
        assert values.shape == (1, 2) and torch.isfinite(values).all(), name
    assert train_toy_plain(config)["diverged"] == [1, 1]


def test_batches_are_epoch_permutations_with_same_class_partners_per_seed():
    x = torch.randn(600, 2)
    y = torch.arange(3).repeat_interleave(200)[torch.randperm(600)]
    stacked = _Batches(x.expand(3, -1, -1), y.expand(3, -1), [5, 6, 7], steps=6, batch=100)
    alone = _Batches(x[None], y[None], [6], steps=6, batch=100)
    for _ in range(2):
        views, own = stacked.epoch(), alone.epoch()
        assert views.shape == (2, 6, 3, 100, 2)
        assert torch.equal(views[:, :, 1], own[:, :, 0])  # a seed's batches do not depend on its neighbours
        # Every training point is an anchor once per epoch; partners are points of the anchor's class.
        index = {tuple(p): i for i, p in enumerate(x.tolist())}
        for k in range(3):
            anchors = [index[tuple(p)] for p in views[0, :, k].reshape(-1, 2).tolist()]
            partners = [index[tuple(p)] for p in views[1, :, k].reshape(-1, 2).tolist()]
            assert sorted(anchors) == list(range(600))
            assert torch.equal(y[anchors], y[partners])


@pytest.mark.parametrize("d_in,d_out", [(2, 64), (64, 64), (64, 2), (64, 3), (16, 2)])
def test_seed_linear_is_one_nn_linear_per_seed(d_in, d_out):
    # (64, 2) and (64, 3) take the transposed path for thin outputs.
    layer = SeedLinear(seed_generators([0, 1, 2], 1), d_in, d_out)
    x = torch.randn(3, 50, d_in, requires_grad=True)
    out = layer(x)
    out.backward(torch.ones_like(out))
    for k in range(3):
        plain = nn.Linear(d_in, d_out)
        with torch.no_grad():
            plain.weight.copy_(layer.weight[k].T), plain.bias.copy_(layer.bias[k, 0])
        xk = x[k].detach().requires_grad_()
        ref = plain(xk)
        ref.backward(torch.ones_like(ref))
        assert torch.allclose(out[k], ref, atol=1e-5)
        assert torch.allclose(x.grad[k], xk.grad, atol=1e-5)
        assert torch.allclose(layer.weight.grad[k], plain.weight.grad.T, atol=1e-4)
        assert torch.allclose(layer.bias.grad[k, 0], plain.bias.grad, atol=1e-4)


def test_seed_batchnorm_is_one_nn_batchnorm1d_per_seed():
    bn = SeedBatchNorm(3, 16)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.normal_()
    plain = [nn.BatchNorm1d(16) for _ in range(3)]
    for k, p in enumerate(plain):
        with torch.no_grad():
            p.weight.copy_(bn.weight[k, 0]), p.bias.copy_(bn.bias[k, 0])
    for _ in range(3):  # three training steps: outputs, gradients and running statistics
        x = (torch.randn(3, 40, 16) * 2 + 1).requires_grad_()
        g = torch.randn(3, 40, 16)
        bn.weight.grad = bn.bias.grad = None
        out = bn(x)
        out.backward(g)
        for k, p in enumerate(plain):
            p.weight.grad = p.bias.grad = None
            xk = x[k].detach().requires_grad_()
            ref = p(xk)
            ref.backward(g[k])
            assert torch.allclose(out[k], ref, atol=1e-5)
            assert torch.allclose(x.grad[k], xk.grad, atol=1e-5)
            assert torch.allclose(bn.weight.grad[k, 0], p.weight.grad, atol=1e-4)
            assert torch.allclose(bn.bias.grad[k, 0], p.bias.grad, atol=1e-4)
            assert torch.allclose(bn.running_mean[k, 0], p.running_mean, atol=1e-6)
            assert torch.allclose(bn.running_var[k, 0], p.running_var, atol=1e-6)
    bn.eval()
    x = torch.randn(3, 10, 16)
    for k, p in enumerate(plain):
        assert torch.allclose(bn(x)[k], p.eval()(x[k]), atol=1e-5)
