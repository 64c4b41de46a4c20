"""The hand-written step (lab.methods.fused) computes autograd's loss and gradients exactly.

In float64 the fused step and the methods' own `loss()` + `backward()` agree to rounding (1e-10), for
every setting it covers; so any difference in float32 training is rounding, not maths. Over a short
run the two trainers stay together in float64 too.
"""
from __future__ import annotations

import pytest
import torch

from lab.methods import METHOD_NAMES, build_method
from lab.methods import fused
from lab.train.toy import ToyConfig, _FlatSGD, train_toys

SETTINGS = [
    ("simsiam", {}),
    ("simsiam", {"predictor": False}),
    ("simsiam", {"stop_grad": False}),
    ("simsiam", {"predictor": False, "stop_grad": False}),
    ("simsiam", {"predictor_lr_scale": 0.1, "predictor_hidden": 8}),
    ("simplified", {}),
    ("simplified", {"lam": 0.0}),
    ("simplified", {"lam": 2.5}),
    ("invariance", {}),
]


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.mark.parametrize("name,params", SETTINGS)
def test_fused_step_is_autograd_to_rounding(name, params, float64):
    k, b, dim = 3, 40, 3
    seeds = [5, 6, 7]
    ref, fast = (build_method(name, params, seeds, 2, dim, 16) for _ in range(2))
    fast.load_state_dict(ref.state_dict())
    gen = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(k, b, 2, generator=gen), torch.randn(k, b, 2, generator=gen)
    loss, _ = ref.loss(x1, x2)
    loss.backward(torch.ones(k))
    _FlatSGD(fast.param_groups(0.1), 0.9, 0.0)  # parameters become views with gradient buffers
    with torch.no_grad():
        fast_loss = fused.FusedStep(fast)(torch.cat([x1, x2], 1))
    assert torch.allclose(fast_loss, loss.detach(), atol=1e-12, rtol=0)
    for (pname, p), q in zip(ref.named_parameters(), fast.parameters()):
        assert p.grad.abs().max() > 0 or pname.endswith("bias"), pname  # the check can fail
        assert torch.allclose(q.grad, p.grad, atol=1e-10, rtol=0), (pname, (q.grad - p.grad).abs().max())
    for (bname, a), c in zip(ref.named_buffers(), fast.buffers()):
        assert torch.allclose(a, c, atol=1e-12, rtol=0), bname


def test_fused_step_covers_exactly_its_methods():
    covered = {name for name, _ in SETTINGS}
    for name in METHOD_NAMES:
        model = build_method(name, {}, [0], 2, 3, 16)
        assert fused.supports(model) == (name in covered), name
        if name not in covered:
            with pytest.raises(ValueError, match="no fused step"):
                fused.FusedStep(model)


@pytest.mark.parametrize("params", [(), (("stop_grad", False),)])
def test_fused_and_autograd_trainers_agree_in_float64(params, float64):
    config = ToyConfig(method="simsiam", dataset="moons", params=params, seeds=2, epochs=6, max_evals=4)
    fast = train_toys([config])[0]
    slow = train_toys([config], use_fused=False)[0]
    assert fast.epochs == slow.epochs
    assert fast.z.dtype == torch.float64
    assert torch.allclose(fast.z, slow.z, atol=1e-9, rtol=0), (fast.z - slow.z).abs().max()
    assert torch.allclose(fast.metrics["loss"], slow.metrics["loss"], atol=1e-9, rtol=0)


def test_a_knob_the_fused_head_does_not_declare_falls_back_to_autograd(monkeypatch):
    """A knob added to a method but not to its `fused_knobs` must not be silently ignored on the fused path."""
    from lab.methods.simsiam import SimSiam

    model = build_method("simsiam", {}, [0], 2, 3, 16)
    assert fused.supports(model)
    monkeypatch.setattr(SimSiam, "fused_knobs", tuple(k for k in SimSiam.fused_knobs if k != "stop_grad"))
    assert not fused.supports(model) and fused.fused_step(model) is None
