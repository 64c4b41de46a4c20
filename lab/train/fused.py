"""Hand-written forward and backward for the methods of Figs. 3 and 4, both views in one pass.

SimSiam (with or without predictor and stop-gradient), the simplified method and invariance only are
an MLP encoder, at most a small BN predictor, and a cosine or squared-distance loss. On toy data a
step's tensors are tiny, so autograd's graph, module dispatch and the two separate view passes cost
more than the arithmetic. Here one step is a fixed list of batched matrix products and elementwise
ops over the K stacked seeds, both views concatenated (the BN statistics stay per view), gradients
written straight into the flat gradient buffer the optimizer reads (`_FlatSGD`).

The maths is autograd's, term by term; `tests/test_fused.py` checks loss and every gradient against
the methods' own `loss()` + `backward()` for each supported setting, and the trainer falls back to
autograd for everything else.
"""
from __future__ import annotations

import torch

from lab.methods.base import Method

_SUPPORTED = ("simsiam", "simplified", "invariance")


def supports(model: Method) -> bool:
    """Whether `fused_step` can train this model (the toy encoder and one of the methods above)."""
    from lab.methods.base import Encoder

    return model.name in _SUPPORTED and type(model.encoder) is Encoder


def _norm_forward(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """v: (..., D) -> (v / ‖v‖, ‖v‖ (..., 1)), the same clamp as `geometry.normalize`."""
    n = v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return v / n, n


def _norm_backward(u: torch.Tensor, n: torch.Tensor, gu: torch.Tensor) -> torch.Tensor:
    """Gradient through u = v / ‖v‖: (gu − u (u·gu)) / ‖v‖."""
    return (gu - u * (u * gu).sum(-1, keepdim=True)) / n


def _relu_backward(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Gradient through out = relu(a): grad where out > 0, else 0 (autograd's own kernel, one pass)."""
    return torch.ops.aten.threshold_backward(grad, out, 0)


def _mm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    return torch.bmm(a, b, out=out) if out is not None else torch.bmm(a, b)


class FusedStep:
    """One training step of `model` on joined views x: (K, 2B, d) ([:, :B] view 1, [:, B:] view 2).

    Parameters must already be views into flat buffers with `.grad` set (as `_FlatSGD` leaves them):
    gradients are written, not accumulated. Returns the loss per seed (K,).
    """

    def __init__(self, model: Method):
        if not supports(model):
            raise ValueError(f"no fused step for {model.name!r}; supported: {', '.join(_SUPPORTED)}")
        enc = model.encoder
        first, second = enc.backbone[0][0], enc.backbone[0][2]
        self.layers = [first, second, enc.projector]
        self.model = model
        self.predictor = getattr(model, "predictor", None)
        self.stop_grad = getattr(model.cfg, "stop_grad", True)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (l1, l2, l3), k, n2 = self.layers, x.shape[0], x.shape[1]
        b = n2 // 2
        h1 = torch.baddbmm(l1.bias, x, l1.weight).relu_()
        h2 = torch.baddbmm(l2.bias, h1, l2.weight).relu_()
        # The projector to D = 2 or 3 runs transposed (D rows), as `lab.nn._ThinLinear` does: BLAS is
        # several times faster that way round.
        y = torch.baddbmm(l3.bias.transpose(1, 2), l3.weight.transpose(1, 2), h2.transpose(1, 2))
        y = y.transpose(1, 2).contiguous()  # (K, 2B, D)
        loss, gy = self._head(y, k, b)
        # Encoder backward, gradients straight into the optimizer's buffers.
        l3.weight.grad.copy_(torch.bmm(gy.transpose(1, 2), h2).transpose(1, 2))
        torch.sum(gy, 1, keepdim=True, out=l3.bias.grad)
        gh2 = _relu_backward(torch.bmm(gy, l3.weight.transpose(1, 2)), h2)
        _mm(h1.transpose(1, 2), gh2, l2.weight.grad)
        torch.sum(gh2, 1, keepdim=True, out=l2.bias.grad)
        gh1 = _relu_backward(torch.bmm(gh2, l2.weight.transpose(1, 2)), h1)
        _mm(x.transpose(1, 2), gh1, l1.weight.grad)
        torch.sum(gh1, 1, keepdim=True, out=l1.bias.grad)
        return loss

    def _head(self, y: torch.Tensor, k: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """y: (K, 2B, D) projector output -> (loss (K,), dL/dy (K, 2B, D))."""
        name = self.model.name
        if name == "simsiam":
            return self._simsiam(y, k, b)
        zn, nz = _norm_forward(y)
        z1, z2 = zn[:, :b], zn[:, b:]
        diff = z1 - z2
        loss = diff.square().sum(-1).mean(-1)  # squared_distance
        gz = torch.cat([diff, -diff], 1).mul_(2.0 / b)
        if name == "simplified":
            lam = self.model.cfg.lam
            s = zn.mean(1, keepdim=True)
            s_norm = s.norm(dim=-1)
            loss = 0.5 * (loss - lam * s_norm.squeeze(-1))
            gz.mul_(0.5).sub_(s / s_norm.unsqueeze(-1).clamp_min(1e-30), alpha=0.5 * lam / (2 * b))
        return loss, _norm_backward(zn, nz, gz)

    def _simsiam(self, y: torch.Tensor, k: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        p, cache = self._predictor_forward(y, k, b) if self.predictor is not None else (y, None)
        pn, np_ = _norm_forward(p)
        zn, nz = (pn, np_) if cache is None else _norm_forward(y)
        target = zn.view(k, 2, b, -1).flip(1).reshape(k, 2 * b, -1)  # view 2's z for view 1's p and back
        cos = (pn * target).sum(-1)  # (K, 2B)
        loss = cos.view(k, 2, b).mean(-1).sum(-1).mul_(-0.5)
        g = -0.5 / b
        gp = _norm_backward(pn, np_, target * g)
        gy = self._predictor_backward(gp, cache) if cache is not None else gp
        if not self.stop_grad:
            g_target = (pn * g).view(k, 2, b, -1).flip(1).reshape(k, 2 * b, -1)
            gy = gy + _norm_backward(zn, nz, g_target)
        return loss, gy

    def _predictor_forward(self, y: torch.Tensor, k: int, b: int):
        lin1, bn, _, lin2 = self.predictor
        q = torch.baddbmm(lin1.bias, y, lin1.weight).view(k, 2, b, -1)  # BN statistics per view
        mean = q.mean(2, keepdim=True)
        var = (q - mean).square_().mean(2, keepdim=True)  # not q.var: its Welford pass over a middle dim is slow
        inv = (var + bn.eps).rsqrt()
        qhat = (q - mean) * inv
        r = (qhat * bn.weight.unsqueeze(1) + bn.bias.unsqueeze(1)).relu_()
        m = bn.momentum
        for v in range(2):  # running statistics as two F.batch_norm calls leave them: view 1, then view 2
            bn.running_mean.mul_(1 - m).add_(mean[:, v], alpha=m)
            bn.running_var.mul_(1 - m).add_(var[:, v] * (b / (b - 1)), alpha=m)
        r = r.view(k, 2 * b, -1)
        p = torch.baddbmm(lin2.bias, r, lin2.weight)
        return p, (y, qhat, inv, r)

    def _predictor_backward(self, gp: torch.Tensor, cache) -> torch.Tensor:
        lin1, bn, _, lin2 = self.predictor
        y, qhat, inv, r = cache
        k, b = qhat.shape[0], qhat.shape[2]
        _mm(r.transpose(1, 2), gp, lin2.weight.grad)
        torch.sum(gp, 1, keepdim=True, out=lin2.bias.grad)
        gr = _relu_backward(torch.bmm(gp, lin2.weight.transpose(1, 2)), r).view_as(qhat)
        torch.sum(gr * qhat, (1, 2), keepdim=False, out=bn.weight.grad.view(k, -1))
        torch.sum(gr, (1, 2), keepdim=False, out=bn.bias.grad.view(k, -1))
        gq_hat = gr * bn.weight.unsqueeze(1)
        gq = (gq_hat - gq_hat.mean(2, keepdim=True) - qhat * (gq_hat * qhat).mean(2, keepdim=True)) * inv
        gq = gq.view(k, 2 * b, -1)
        _mm(y.transpose(1, 2), gq, lin1.weight.grad)
        torch.sum(gq, 1, keepdim=True, out=lin1.bias.grad)
        return torch.bmm(gq, lin1.weight.transpose(1, 2))
