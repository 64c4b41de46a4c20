"""Process-group setup for torchrun, the loss collectives (from `lab.core.dist`) and BatchNorm over the global batch.

`setup(device)` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); with
WORLD_SIZE > 1 it starts NCCL (CUDA) or gloo (CPU) and returns this rank's device. Without torchrun it
does nothing and returns the device it was given. `sync_batchnorm(model)` makes every BatchNorm use the
statistics of the global batch: torch's SyncBatchNorm on CUDA, `GlobalBatchNorm` (all-reduced sums,
differentiable) elsewhere, since torch's refuses CPU tensors.
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from lab.core.dist import all_gather_cat, all_reduce_max, all_reduce_sum, is_dist, rank, world_size

__all__ = ["GlobalBatchNorm", "all_gather_cat", "all_reduce_max", "all_reduce_sum", "barrier", "cleanup",
           "is_dist", "is_main", "rank", "setup", "sync_batchnorm", "world_size"]


def is_main() -> bool:
    return rank() == 0


def setup(device: str | torch.device = "cpu", timeout_s: float = 1800.0) -> torch.device:
    """Join torchrun's process group when WORLD_SIZE > 1; returns this rank's device.

    "cuda" becomes cuda:LOCAL_RANK; any other device is kept. Without torchrun: torch.device(device).
    """
    device = torch.device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_dist():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return device


def cleanup() -> None:
    """Leave the process group, once every rank is past its last collective: a rank that tears gloo down
    while another still sends aborts it now and then ("terminate called without an active exception")."""
    if is_dist():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if is_dist():
        dist.barrier()


class GlobalBatchNorm(nn.Module):
    """BatchNorm over the batch of all ranks, for any device (torch's SyncBatchNorm is CUDA-only).

    x: (N, C) or (N, C, *spatial). Training under DDP: mean and biased variance from all-reduced sums
    (the gradient flows through them), running statistics as nn.BatchNorm's. Otherwise F.batch_norm.
    """

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.num_features, self.eps, self.momentum = bn.num_features, bn.eps, bn.momentum
        self.weight, self.bias = bn.weight, bn.bias
        self.register_buffer("running_mean", bn.running_mean)
        self.register_buffer("running_var", bn.running_var)
        self.register_buffer("num_batches_tracked", bn.num_batches_tracked)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_dist()):
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                self.training or self.running_mean is None, self.momentum or 0.0, self.eps)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = all_reduce_sum(torch.tensor(float(x.numel() // x.shape[1]), device=x.device))
        xf = x.float()
        mean = all_reduce_sum(xf.sum(dims)) / count
        var = all_reduce_sum((xf - mean.view(shape)).square().sum(dims)) / count
        if self.running_mean is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                unbiased = var.detach() * count / (count - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
        out = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.weight is not None:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)


def sync_batchnorm(model: nn.Module, device: str | torch.device | None = None) -> nn.Module:
    """Every nn.BatchNorm1d/2d in `model` -> one over the global batch (call before building the optimizer).

    CUDA: torch.nn.SyncBatchNorm (fused kernels); other devices: GlobalBatchNorm. Parameters and
    buffers are kept (same tensors), so weights already loaded survive.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    if dev.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _replace_bn(model)


def _replace_bn(module: nn.Module) -> nn.Module:
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and not isinstance(module, nn.SyncBatchNorm):
        out = GlobalBatchNorm(module)
        out.train(module.training)
        return out
    for name, child in module.named_children():
        module.add_module(name, _replace_bn(child))
    return module
