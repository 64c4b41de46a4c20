"""An independent DINO on Fashion-MNIST, to check the lab's: `python -m tools.dino_probe --steps 80 [options]`.

Written from facebookresearch/dino's main_dino.py (DINOHead: MLP with GELU, optional BatchNorm, trunc_normal
init, L2-normalised bottleneck, weight-normalised last layer with g = 1; DINOLoss: teacher softmax of the
centred logits at the teacher temperature, the center an EMA of the teacher's batch mean; the teacher an EMA of
the student, cosine to 1; the last layer frozen for the first steps; multi-crop). It shares no code with
`lab.methods.dino`; only the data (the engine's loader and augmentations), the ResNet-18 and LARS are the lab's.
Every `--every` steps it prints a JSON line: s_y, ‖s‖ of the student's L2-normalised bottleneck (what the
prototypes read); s_h, the backbone's; H_t and H_mean, the teacher's per-sample entropy and that of its batch
mean (ln K for a uniform teacher). docs/engine.md holds what it found (issue 21).
"""
from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from lab.data import fmnist
from lab.engine.config import TrainConfig
from lab.engine.loop import _views
from lab.engine.optim import build_optimizer
from lab.engine.resnet import resnet18
from lab.engine.run import prepare


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.dino_probe", description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--data", default=str(fmnist.DEBIAN_DIR), help="Fashion-MNIST's idx folder")
    add("--out", default="runs/dino-probe", help="run folder prepare() may write into")
    add("--steps", type=int, default=80); add("--every", type=int, default=10); add("--seed", type=int, default=0)
    add("--batch", type=int, default=128); add("--total", type=int, default=4680, help="schedule length, steps")
    add("--warmup", type=int, default=117); add("--lr", type=float, default=0.3, help="per 256")
    add("--opt", choices=("lars", "sgd", "adamw"), default="lars"); add("--wd", type=float, default=1e-6)
    add("--width", type=int, default=16); add("--hidden", type=int, default=512)
    add("--bottleneck", type=int, default=64); add("--prototypes", type=int, default=1024)
    add("--bn-head", action="store_true"); add("--default-init", action="store_true")
    add("--trainable-norm", action="store_true", help="norm_last_layer off: the weight norm's g learns")
    add("--tt", type=float, default=0.04); add("--tt-final", type=float, default=0.07)
    add("--tt-warmup", type=int, default=585, help="steps; 0: --tt throughout")
    add("--ts", type=float, default=0.1); add("--ema", type=float, default=0.996)
    add("--center-momentum", type=float, default=0.9); add("--freeze-steps", type=int, default=12)
    add("--local", type=int, default=0, help="local crops"); add("--local-size", type=int, default=12)
    add("--joint-bn", action="store_true", help="both global views through the backbone together")
    return p.parse_args(argv)


class Head(nn.Module):
    """main_dino.py's DINOHead. h (N, F) -> (logits (N, K), bottleneck y (N, bottleneck))."""

    def __init__(self, a: argparse.Namespace, d_in: int):
        super().__init__()
        dims, layers = [d_in, a.hidden, a.hidden], []
        for i in range(2):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            layers += [nn.BatchNorm1d(dims[i + 1])] if a.bn_head else []
            layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers, nn.Linear(a.hidden, a.bottleneck))
        if not a.default_init:
            for m in self.mlp.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)
        self.last = nn.utils.parametrizations.weight_norm(nn.Linear(a.bottleneck, a.prototypes, bias=False))
        self.last.parametrizations.weight.original0.data.fill_(1)
        self.last.parametrizations.weight.original0.requires_grad = a.trainable_norm

    def forward(self, h):
        y = self.mlp(h)
        return self.last(F.normalize(y, dim=-1)), y


class Net(nn.Module):
    """Backbone + head; crops of one size go through together where main_dino's MultiCropWrapper does."""

    def __init__(self, a: argparse.Namespace):
        super().__init__()
        self.joint = a.joint_bn
        self.backbone = resnet18(False, "small", a.width, 1)
        self.head = Head(a, 8 * a.width)

    def forward(self, crops: list[torch.Tensor]):
        groups = [crops[:2], crops[2:]] if self.joint else [[c] for c in crops]
        logits, ys, hs = [], [], []
        for group in (g for g in groups if g):
            h = self.backbone(torch.cat(group))
            out, y = self.head(h)
            logits += out.chunk(len(group)); ys += y.chunk(len(group)); hs += h.chunk(len(group))
        return logits, ys, hs


def local_crops(x: torch.Tensor, n: int, size: int) -> list[torch.Tensor]:
    """n random resized crops of 5-20 % of each image's area, flipped half the time. x: uint8 (B, 1, S, S)."""
    b, out = x.shape[0], []
    xf = (x.float() / 255 - fmnist.MEAN) / fmnist.STD
    for _ in range(n):
        s = torch.empty(b).uniform_(0.05, 0.2).sqrt()
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0] = s * torch.where(torch.rand(b) < 0.5, -1.0, 1.0)
        theta[:, 1, 1] = s
        theta[:, :, 2] = (torch.rand(b, 2) * 2 - 1) * (1 - s[:, None])
        grid = F.affine_grid(theta, (b, 1, size, size), align_corners=False)
        out.append(F.grid_sample(xf, grid, align_corners=False))
    return out


def make_optimizer(a: argparse.Namespace, student: Net) -> torch.optim.Optimizer:
    params = [p for p in student.parameters() if p.requires_grad]
    base_lr = a.lr * a.batch / 256
    if a.opt == "lars":
        return build_optimizer("lars", [{"params": params}], base_lr, a.wd)
    groups = [{"params": [p for p in params if p.ndim > 1]},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    if a.opt == "adamw":
        return torch.optim.AdamW(groups, lr=base_lr, weight_decay=a.wd)
    return torch.optim.SGD(groups, lr=base_lr, momentum=0.9, weight_decay=a.wd)


def schedules(a: argparse.Namespace, step: int) -> tuple[float, float, float]:
    """(lr, teacher temperature, teacher EMA momentum) at `step`: main_dino.py's warmup + cosine."""
    base = a.lr * a.batch / 256
    lr = base * step / a.warmup if step < a.warmup else \
        base * 0.5 * (1 + math.cos(math.pi * (step - a.warmup) / max(1, a.total - a.warmup)))
    tt = a.tt + (a.tt_final - a.tt) * min(1.0, step / a.tt_warmup) if a.tt_warmup else a.tt
    ema = 1 - (1 - a.ema) * (math.cos(math.pi * step / a.total) + 1) / 2
    return lr, tt, ema


def dino_loss(student_logits, teacher_probs, ts: float) -> torch.Tensor:
    """DINOLoss: the mean over (teacher view, other student view) pairs of −Σ q log softmax(s/τ_s)."""
    total, n = 0.0, 0
    for iq, q in enumerate(teacher_probs):
        for v, s in enumerate(student_logits):
            if v != iq:
                total, n = total + (-q * F.log_softmax(s / ts, -1)).sum(-1).mean(), n + 1
    return total / n


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


def _unit_mean_norm(z: torch.Tensor) -> float:
    return F.normalize(z, dim=-1).mean(0).norm().item()


def train_step(a, run, student, teacher, opt, center, x, step):
    """One DINO step on uint8 images x -> (loss, student bottlenecks and features, teacher probabilities, center)."""
    lr, tt, ema = schedules(a, step)
    for g in opt.param_groups:
        g["lr"] = lr
    v1, v2 = _views(run, x, 0, step, step)
    logits, ys, hs = student([v1, v2] + (local_crops(x, a.local, a.local_size) if a.local else []))
    with torch.no_grad():
        t_logits, _, _ = teacher([v1, v2])
        probs = [F.softmax((t - center) / tt, -1) for t in t_logits]
    loss = dino_loss(logits, probs, a.ts)
    opt.zero_grad()
    loss.backward()
    if step < a.freeze_steps:
        for p in student.head.last.parameters():
            p.grad = None
    opt.step()
    with torch.no_grad():
        for ps, pt in zip(student.parameters(), teacher.parameters()):
            pt.mul_(ema).add_((1 - ema) * ps.detach())
        center = center * a.center_momentum + torch.cat(t_logits).mean(0, keepdim=True) * (1 - a.center_momentum)
    return loss.item(), ys[0].detach(), hs[0].detach(), torch.cat(probs), center, lr


def main(argv=None) -> list[dict]:
    a = parse_args(argv)
    torch.manual_seed(a.seed)
    run = prepare(TrainConfig(data=a.data, method="dino", out=a.out, batch_size=a.batch, workers=0, seed=a.seed,
                              progress=False))
    student, teacher = Net(a), Net(a)
    teacher.load_state_dict(student.state_dict())
    teacher.requires_grad_(False)
    opt, center = make_optimizer(a, student), torch.zeros(1, a.prototypes)
    batches, rows, t0 = iter(run.loader), [], time.time()
    for step in range(a.steps):
        x = next(batches, None)
        if x is None:
            batches = iter(run.loader)
            x = next(batches)
        x = x[0] if isinstance(x, (tuple, list)) else x
        loss, y, h, probs, center, lr = train_step(a, run, student, teacher, opt, center, x, step)
        if step % a.every == 0 or step == a.steps - 1:
            rows.append({"step": step, "loss": round(loss, 3), "s_y": round(_unit_mean_norm(y), 3),
                         "s_h": round(_unit_mean_norm(h), 3), "y_norm": round(y.norm(dim=-1).mean().item(), 2),
                         "H_t": round(_entropy(probs).mean().item(), 2),
                         "H_mean": round(_entropy(probs.mean(0)).item(), 2), "lr": round(lr, 4),
                         "sec": round(time.time() - t0)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main()
