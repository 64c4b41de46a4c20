"""ResNet-18 and ResNet-50 without torchvision: the same layers, parameter names (`conv1.weight`,
`layer1.0.downsample.0.weight`, ...), parameter count and initialisation, so torchvision's state dicts load as
they are (less `fc.*`: no classifier here).

ImageNet stem (7×7 conv stride 2, 3×3 max-pool stride 2), four stages of two BasicBlocks
(64, 128, 256, 512 channels), global average pool, no classifier: (N, 3, H, W) -> (N, 512),
11,176,512 parameters. Works in channels_last (every op is a conv, BN, ReLU, pool or add).

The small-image form (`stem="small"`) for 28-px Fashion-MNIST: one 3×3 conv of stride 2 and no max-pool,
so the four stages see 14, 7, 4 and 2 px; `width` scales every stage (64 is ResNet-18's). Why stride 2 and
not CIFAR's stride-1 stem: on this project's 2-core CPU, training at width 16 with two views runs
1,220 images/s with it and 185 with stride 1 (6.6× slower), which would make one Fashion-MNIST epoch take
5 minutes instead of under one.

ResNet-50 (`ResNet50`): torchvision's Bottleneck blocks (1×1, 3×3 with the stride, 1×1 to 4× the channels; the
stride on the 3×3 as in torchvision's "v1.5"), stages of 3, 4, 6 and 3 blocks, (N, 3, H, W) -> (N, 2048) at
width 64, 23,508,032 parameters; the same stem, width and in_channels options.
"""
from __future__ import annotations

from torch import Tensor, nn

FEATURES = 512


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


def _downsample(c_in: int, c_out: int, stride: int) -> nn.Sequential | None:
    """torchvision's projection shortcut (1×1 conv + BN), where the block changes the shape; None elsewhere."""
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = _conv3x3(c_out, c_out), nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(c_in, c_out, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


STEMS = ("imagenet", "small")


class _ResNet(nn.Module):
    """What ResNet-18 and ResNet-50 share: stem, four stages, global average pool (torchvision's forward)."""

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)


class ResNet18(_ResNet):
    """x: (N, in_channels, H, W) -> (N, 8·width) features after global average pooling."""

    def __init__(self, zero_init_residual: bool = False, stem: str = "imagenet", width: int = 64,
                 in_channels: int = 3):
        super().__init__()
        _stem(self, stem, width, in_channels)
        self.features = 8 * width
        widths, c_in, stages = tuple(width * m for m in (1, 2, 4, 8)), width, []
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(c_in, w, stride), BasicBlock(w, w)))
            c_in = w
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        _init(self, zero_init_residual)


def _stem(model: nn.Module, stem: str, width: int, in_channels: int) -> None:
    """conv1, maxpool, bn1, relu of `model`: (N, in_channels, H, W) -> (N, width, H/4, W/4) ("imagenet") or
    (N, width, H/2, W/2) ("small")."""
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
    if not isinstance(width, int) or not 1 <= width <= 1024:
        raise ValueError(f"width must be an integer in 1..1024, got {width!r}")
    if stem == "imagenet":
        model.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        model.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
    else:
        model.conv1 = nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False)
        model.maxpool = nn.Identity()
    model.bn1 = nn.BatchNorm2d(width)
    model.relu = nn.ReLU(inplace=True)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck: (N, c_in, H, W) -> (N, 4·planes, H/stride, W/stride)."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1):
        super().__init__()
        c_out = planes * self.expansion
        self.conv1, self.bn1 = nn.Conv2d(c_in, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(c_in, c_out, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(_ResNet):
    """x: (N, in_channels, H, W) -> (N, 32·width) features after global average pooling (2048 at width 64)."""

    BLOCKS = (3, 4, 6, 3)

    def __init__(self, zero_init_residual: bool = False, stem: str = "imagenet", width: int = 64,
                 in_channels: int = 3):
        super().__init__()
        _stem(self, stem, width, in_channels)
        self.features = 8 * width * Bottleneck.expansion
        c_in, stages = width, []
        for i, blocks in enumerate(self.BLOCKS):
            planes = width * 2 ** i
            layers = [Bottleneck(c_in, planes, 1 if i == 0 else 2)]
            c_in = planes * Bottleneck.expansion
            layers += [Bottleneck(c_in, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        _init(self, zero_init_residual)


def _init(model: nn.Module, zero_init_residual: bool) -> None:
    """torchvision's: He normal (fan_out) convs, BN γ = 1, β = 0; optionally γ = 0 on each block's last BN,
    which starts every residual branch at zero (Goyal et al., 2017)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)
            elif isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)


def resnet18(zero_init_residual: bool = False, stem: str = "imagenet", width: int = 64,
             in_channels: int = 3) -> ResNet18:
    """ResNet-18 backbone without the classifier: (N, in_channels, H, W) -> (N, 8·width)."""
    return ResNet18(zero_init_residual, stem, width, in_channels)


def resnet50(zero_init_residual: bool = False, stem: str = "imagenet", width: int = 64,
             in_channels: int = 3) -> ResNet50:
    """ResNet-50 backbone without the classifier: (N, in_channels, H, W) -> (N, 32·width)."""
    return ResNet50(zero_init_residual, stem, width, in_channels)
