"""SSL augmentations, batched on the images' device with kornia (no torchvision).

The two views follow BYOL's asymmetric recipe (Grill et al. 2020, Table 6): random resized crop,
horizontal flip, colour jitter (0.4, 0.4, 0.2, 0.1) with p 0.8, grayscale p 0.2, Gaussian blur
(p 1.0 / 0.1), solarize (p 0 / 0.2). Randomness comes from torch's global RNG (kornia draws its
parameters there); the trainer seeds it.

Grayscale images (Fashion-MNIST, one channel) get the same views minus what needs colour: brightness and
contrast jitter in place of colour jitter, no grayscale step, a 3-px blur kernel (10 % of 28 px, at least 3).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia import augmentation as K
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_uint8(x: torch.Tensor, channels: int = 3) -> None:
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"expected uint8 images (B, {channels}, H, W), got {x.dtype} {tuple(x.shape)}")


def _blur_kernel(image_size: int) -> int:
    """BYOL blurs with a kernel of 10% of the image side (23 at 224 px); odd, at least 3."""
    k = max(3, int(0.1 * image_size))
    return k if k % 2 else k + 1


def _view(image_size: int, min_scale: float, blur_p: float, solarize_p: float, colour: bool = True) -> nn.Module:
    steps = [
        # 'resample' warps the whole batch in one grid_sample; 'slice' would resize sample by sample.
        K.RandomResizedCrop((image_size, image_size), scale=(min_scale, 1.0), cropping_mode="resample"),
        K.RandomHorizontalFlip(),
    ]
    if colour:
        steps += [K.ColorJitter(0.4, 0.4, 0.2, 0.1, p=0.8), K.RandomGrayscale(p=0.2)]
    else:
        steps.append(K.ColorJitter(0.4, 0.4, 0.0, 0.0, p=0.8))
    if blur_p > 0:
        k = _blur_kernel(image_size)
        steps.append(K.RandomGaussianBlur((k, k), sigma=(0.1, 2.0), p=blur_p))
    if solarize_p > 0:
        # thresholds=0, additions=0: solarize at exactly 0.5, as torchvision's Solarize(128) in BYOL.
        steps.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=solarize_p))
    return K.AugmentationSequential(*steps)


class SSLAugment(nn.Module):
    """x (B, C, S, S) uint8 on any device -> (view1, view2), each (B, C, image_size, image_size) float32,
    normalised with `mean` and `std` (default ImageNet's; one value each for grayscale, C = 1)."""

    def __init__(self, image_size: int, min_scale: float = 0.08, mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD):
        super().__init__()
        if not isinstance(image_size, int) or not 8 <= image_size <= 1024:
            raise ValueError(f"image_size must be an integer in 8..1024, got {image_size!r}")
        if not 0.0 < min_scale <= 1.0:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale!r}")
        if len(mean) not in (1, 3) or len(std) != len(mean):
            raise ValueError(f"mean and std need 1 or 3 values each, got {mean!r} and {std!r}")
        self.image_size, self.min_scale, self.channels = image_size, min_scale, len(mean)
        colour = self.channels == 3
        self.view1 = _view(image_size, min_scale, blur_p=1.0, solarize_p=0.0, colour=colour)
        self.view2 = _view(image_size, min_scale, blur_p=0.1, solarize_p=0.2, colour=colour)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_uint8(x, self.channels)
        x = x.float().div_(255)
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return tuple((v(x).clamp_(0, 1) - mean) / std for v in (self.view1, self.view2))


def eval_transform(x: torch.Tensor, image_size: int, mean: tuple = IMAGENET_MEAN,
                   std: tuple = IMAGENET_STD) -> torch.Tensor:
    """x (B, C, S, S) uint8 -> (B, C, image_size, image_size) float32, resized (antialiased bilinear
    when shrinking) and normalised with mean and std (C values each); no randomness. The loader already
    center cropped to a square."""
    _check_uint8(x, len(mean))
    y = x.float().div_(255)
    if y.shape[-2:] != (image_size, image_size):
        y = F.interpolate(y, size=(image_size, image_size), mode="bilinear", align_corners=False,
                          antialias=True).clamp_(0, 1)
    mean_t = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (y - mean_t) / std_t
