"""Hand-written forward and backward of the toy encoder, both views in one pass, for methods that declare one.

On toy data a step's tensors are tiny, so autograd's graph, module dispatch and the two separate view
passes cost more than the arithmetic. Here one step is a fixed list of batched matrix products and
elementwise ops over the K stacked seeds, both views concatenated (BN statistics stay per view),
gradients written straight into the flat gradient buffer the optimizer reads (`_FlatSGD`).

A method opts in inside its own module: `fused_knobs`, the Config fields its `fused_head` honours, and
`fused_head(yt, b) -> (loss, dL/dyt)`, the head and loss on the projector output. `fused_step(model)`
gives the step only when every field of the method's Config is among `fused_knobs` (a knob added
later, and not declared, sends training back to autograd instead of being silently ignored) and the
encoder is the toy MLP. The maths is autograd's, term by term; `tests/test_fused.py` checks loss and
every gradient against the methods' own `loss()` + `backward()` for each supported setting.
"""
from __future__ import annotations

import dataclasses

import torch

from lab.methods.base import Encoder, Method


def supports(model: Method) -> bool:
    """Whether `FusedStep` can train this model: the method declares a fused head covering all its knobs,
    on the toy encoder."""
    knobs = type(model).fused_knobs
    if knobs is None or type(model.encoder) is not Encoder:
        return False
    return {f.name for f in dataclasses.fields(model.Config)} <= set(knobs)


def fused_step(model: Method) -> "FusedStep | None":
    return FusedStep(model) if supports(model) else None


def norm_forward(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature-major v: (K, D, N) -> (v / ‖v‖, ‖v‖ (K, 1, N)), the clamp of `geometry.normalize`."""
    # Not v.norm(dim=1): torch's norm over a middle dimension is ~30x slower than this.
    n = v.square().sum(1, keepdim=True).sqrt_().clamp_min_(1e-12)
    return v / n, n


def norm_backward(u: torch.Tensor, n: torch.Tensor, gu: torch.Tensor) -> torch.Tensor:
    """Gradient through u = v / ‖v‖ (feature-major): (gu − u (u·gu)) / ‖v‖."""
    return (gu - u * (u * gu).sum(1, keepdim=True)) / n


def relu_backward(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Gradient through out = relu(a), in place: grad where out > 0, else 0 (autograd's own kernel, one pass)."""
    return torch.ops.aten.threshold_backward.grad_input(grad, out, 0, grad_input=grad)


def swap_views(t: torch.Tensor) -> torch.Tensor:
    """(K, F, 2B): the columns of view 1 and view 2 swapped, so column i holds i's partner."""
    k, f, n2 = t.shape
    return t.view(k, f, 2, n2 // 2).flip(2).reshape(k, f, n2)


class FusedStep:
    """One training step of `model` on joined views x: (K, 2B, d) ([:, :B] view 1, [:, B:] view 2).

    Parameters must already be views into flat buffers with `.grad` set (as `_FlatSGD` leaves them):
    gradients are written, not accumulated. Returns the loss per seed (K,).
    """

    def __init__(self, model: Method):
        if not supports(model):
            raise ValueError(f"no fused step for {model.name!r} with these knobs and this encoder")
        self.layers = model.encoder.linear_layers()
        self.head = model.fused_head

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (l1, l2, l3), b = self.layers, x.shape[1] // 2
        h1 = torch.baddbmm(l1.bias, x, l1.weight).relu_()
        h2 = torch.baddbmm(l2.bias, h1, l2.weight).relu_()
        # From the projector on, everything is feature-major, (K, D, 2B): with D = 2 or 3 features,
        # products with D output columns and norms over D-long rows are several times slower on a CPU
        # than the same work with D rows (as in `lab.core.nn._ThinLinear` and the B.1 trainer).
        w3t = l3.weight.transpose(1, 2).contiguous()  # (K, D, H): BLAS is slow on a transposed thin operand
        yt = torch.baddbmm(l3.bias.transpose(1, 2), w3t, h2.transpose(1, 2))  # (K, D, 2B)
        loss, gyt = self.head(yt, b)
        # Encoder backward, gradients straight into the optimizer's buffers.
        l3.weight.grad.copy_(torch.bmm(gyt, h2).transpose(1, 2))
        torch.sum(gyt, 2, keepdim=True, out=l3.bias.grad.view(-1, l3.bias.shape[2], 1))
        gh2 = relu_backward(torch.bmm(gyt.transpose(1, 2), w3t), h2)
        torch.bmm(h1.transpose(1, 2), gh2, out=l2.weight.grad)
        torch.sum(gh2, 1, keepdim=True, out=l2.bias.grad)
        gh1 = relu_backward(torch.bmm(gh2, l2.weight.transpose(1, 2)), h1)
        torch.bmm(x.transpose(1, 2), gh1, out=l1.weight.grad)
        torch.sum(gh1, 1, keepdim=True, out=l1.bias.grad)
        return loss


def squared_distance_forward(yt: torch.Tensor, b: int):
    """`squared_distance` of the two views on feature-major yt: (K, D, 2B) -> (zn, ‖y‖, loss (K,), dL/dzn)."""
    zn, nz = norm_forward(yt)
    diff = zn[:, :, :b] - zn[:, :, b:]
    loss = diff.square().sum((1, 2)) / b
    return zn, nz, loss, torch.cat([diff, -diff], 2).mul_(2.0 / b)


def predictor_forward(predictor, yt: torch.Tensor, b: int):
    """The SimSiam/BYOL predictor (Linear, BN, ReLU, Linear) on feature-major yt: (K, D, 2B) -> (pt, cache)."""
    lin1, bn, _, lin2 = predictor
    k = yt.shape[0]
    w1t = lin1.weight.transpose(1, 2).contiguous()  # (K, P, D)
    q = torch.baddbmm(lin1.bias.transpose(1, 2), w1t, yt)  # (K, P, 2B)
    # BN statistics per seed, feature and view: channel (k, p, view) holds B values. The forward
    # is two-pass by hand (torch's batch-norm kernel: 63 µs on 320 channels of 100, ~40 µs here;
    # var_mean over the last dimension ~200 µs); the backward is torch's own kernel on the same channels.
    qv = q.view(k, -1, 2, b)
    mean = qv.mean(3, keepdim=True)
    centered = qv - mean
    var = centered.square().mean(3, keepdim=True)  # biased, as BN normalises with
    invstd = (var + bn.eps).rsqrt_()
    gamma = bn.weight.view(k, -1, 1, 1)
    r = torch.addcmul(bn.bias.view(k, -1, 1, 1), centered, invstd * gamma).relu_().view_as(q)
    _update_running(bn, mean, var, b)
    mean, invstd = mean.view(-1), invstd.view(-1)  # (K·P·2,): one entry per channel
    w2t = lin2.weight.transpose(1, 2).contiguous()  # (K, D, P)
    pt = torch.baddbmm(lin2.bias.transpose(1, 2), w2t, r)
    return pt, (yt, q.view(1, -1, b), gamma.expand(-1, -1, 2, -1).reshape(-1), mean, invstd, r, w1t, w2t)


def _update_running(bn, mean: torch.Tensor, var: torch.Tensor, b: int) -> None:
    """Running statistics as two F.batch_norm calls (view 1, then view 2) leave them, in one update:
    r <- (1 - m)^2 r + (1 - m) m v1 + m v2, with the unbiased variance. mean, var: (K, P, 2, 1)."""
    m, k = bn.momentum, bn.running_mean.shape[0]
    for run, stat, scale in ((bn.running_mean, mean, 1.0), (bn.running_var, var, b / (b - 1))):
        weights = torch.tensor([(1 - m) * m * scale, m * scale], dtype=stat.dtype)  # view 1, view 2
        run.mul_((1 - m) ** 2).add_((stat.view(k, -1, 2) @ weights).view_as(run))


def predictor_backward(predictor, gp: torch.Tensor, cache) -> torch.Tensor:
    """gp: (K, D, 2B) -> dL/dyt (K, D, 2B); the predictor's gradients into its buffers."""
    lin1, bn, _, lin2 = predictor
    yt, channels, gamma, mean, invstd, r, w1t, w2t = cache
    k = yt.shape[0]
    lin2.weight.grad.copy_(torch.bmm(gp, r.transpose(1, 2)).transpose(1, 2))
    torch.sum(gp, 2, keepdim=True, out=lin2.bias.grad.view(k, -1, 1))
    gr = relu_backward(torch.bmm(w2t.transpose(1, 2), gp), r)
    gq, ggamma, gbeta = torch.ops.aten.native_batch_norm_backward(
        gr.view_as(channels), channels, gamma, None, None, mean, invstd, True, bn.eps, [True, True, True])
    torch.sum(ggamma.view(k, -1, 2), 2, out=bn.weight.grad.view(k, -1))  # both views' channels
    torch.sum(gbeta.view(k, -1, 2), 2, out=bn.bias.grad.view(k, -1))
    gq = gq.view_as(r)
    torch.bmm(yt, gq.transpose(1, 2), out=lin1.weight.grad)
    torch.sum(gq, 2, keepdim=True, out=lin1.bias.grad.view(k, -1, 1))
    return torch.bmm(w1t.transpose(1, 2), gq)
