"""ImageNet-100 / ResNet-18 recipe of every method, after solo-learn's (github.com/vturrisi/solo-learn).

solo-learn's yamls (scripts/pretrain/imagenet-100/<method>.yaml) give a per-GPU batch on 2 GPUs and
scale lr by total batch / 256 (solo/args/pretrain.py); here `batch_size` is the total (2 × theirs) and `lr`
the base lr for batch 256, so the trainer scales it the same way. Their scheduler defaults: warmup_cosine
with 10 warmup epochs, min lr 0; SGD/LARS momentum 0.9; LARS η 0.02, clip_lr, biases and norms excluded.
Their linear top-1 with these recipes (400 epochs): simsiam 74.5, byol 80.2, dino 74.8, swav 74.0,
barlow 80.4, simclr 77.6.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

_YAML = "solo-learn scripts/pretrain/imagenet-100/"
_COMMON = "; solo-learn defaults: warmup_cosine, 10 warmup epochs, momentum 0.9, LARS eta 0.02 clip_lr"


@dataclass(frozen=True)
class Recipe:
    """One method's ImageNet-100 training recipe. `proj_dims` = (hidden..., D): Linear per entry."""

    optimizer: str  # "sgd" | "lars"
    lr: float  # for a total batch of 256; scaled by batch_size / 256
    weight_decay: float
    batch_size: int  # total over all GPUs
    proj_dims: tuple[int, ...]
    method_params: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    momentum: float = 0.9  # the optimizer's
    epochs: int = 400
    warmup_epochs: int = 10
    min_scale: float = 0.08  # random-resized-crop scale range (min_scale, 1)
    proj_hidden_bn: bool = True  # BatchNorm1d after every hidden Linear
    proj_out_bn: bool = False  # a BatchNorm1d without affine after the last Linear (SimSiam)
    proj_act: str = "relu"  # "relu" | "gelu" (DINO's head)

    def __post_init__(self):
        if self.optimizer not in ("sgd", "lars"):
            raise ValueError(f"optimizer must be sgd or lars, got {self.optimizer!r}")
        if self.proj_act not in ("relu", "gelu"):
            raise ValueError(f"proj_act must be relu or gelu, got {self.proj_act!r}")
        if not self.proj_dims:
            raise ValueError("proj_dims needs at least the output dimension")
        object.__setattr__(self, "method_params", MappingProxyType(dict(self.method_params)))

    @property
    def dim(self) -> int:
        """D, the projector's output dimension (the features the loss sees)."""
        return self.proj_dims[-1]

    def scaled_lr(self, batch_size: int) -> float:
        return self.lr * batch_size / 256

    def as_dict(self) -> dict:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["method_params"], d["proj_dims"] = dict(self.method_params), list(self.proj_dims)
        return d


_SIMSIAM = dict(optimizer="sgd", lr=0.5, weight_decay=1e-5, batch_size=256, proj_dims=(2048, 2048, 2048),
                proj_out_bn=True)
_NO_RECIPE = (" has no solo-learn recipe: SimSiam's optimizer and projector (" + _YAML + "simsiam.yaml)"
              + _COMMON)

RECIPES: dict[str, Recipe] = {
    "simsiam": Recipe(**_SIMSIAM, method_params={"predictor_hidden": 512, "predictor_fixed_lr": True},
                      source=_YAML + "simsiam.yaml (sgd lr 0.5 wd 1e-5, 2x128 batch, proj 2048-2048-2048 + BN, "
                      "pred hidden 512) and solo/methods/simsiam.py (predictor static lr)" + _COMMON),
    "byol": Recipe(optimizer="lars", lr=0.5, weight_decay=1e-6, batch_size=256, proj_dims=(4096, 256),
                   method_params={"momentum": 0.99, "momentum_schedule": True, "predictor_hidden": 8192},
                   source=_YAML + "byol.yaml (lars lr 0.5 wd 1e-6, 2x128 batch, proj 4096->256, pred hidden 8192, "
                   "tau 0.99->1.0 cosine)" + _COMMON),
    "dino": Recipe(optimizer="lars", lr=0.3, weight_decay=1e-6, batch_size=128, proj_dims=(2048, 2048, 256),
                   proj_hidden_bn=False, proj_act="gelu",
                   method_params={"n_prototypes": 4096, "teacher_momentum": 0.9995, "teacher_momentum_schedule": True,
                                  "temperature": 0.1, "teacher_temperature": 0.04, "teacher_temperature_final": 0.07,
                                  "teacher_temperature_warmup": 50 / 400, "center_momentum": 0.9},
                   source=_YAML + "dino.yaml (lars lr 0.3 wd 1e-6, 2x64 batch, head 2048-2048-256 no BN GELU, "
                   "4096 prototypes, tau 0.9995->1.0) and solo/methods/dino.py (student T 0.1, teacher T "
                   "0.04->0.07 over 50 epochs); no last-layer freeze" + _COMMON),
    "swav": Recipe(optimizer="lars", lr=0.6, weight_decay=1e-6, batch_size=256, proj_dims=(2048, 128),
                   method_params={"n_prototypes": 3000, "epsilon": 0.05, "sinkhorn_iters": 3, "temperature": 0.1},
                   source=_YAML + "swav.yaml (lars lr 0.6 wd 1e-6, 2x128 batch, proj 2048->128, 3000 prototypes, "
                   "T 0.1; eps 0.05, 3 Sinkhorn iterations: solo-learn defaults); no queue, no 2-epoch prototype "
                   "freeze" + _COMMON),
    "barlow": Recipe(optimizer="lars", lr=0.3, weight_decay=1e-4, batch_size=256, proj_dims=(2048, 2048, 2048),
                     method_params={"lam": 0.0051, "scale": 0.1},
                     source=_YAML + "barlow.yaml (lars lr 0.3 wd 1e-4, 2x128 batch, proj 2048-2048-2048, "
                     "scale_loss 0.1; lamb 0.0051: solo-learn default)" + _COMMON),
    "simclr": Recipe(optimizer="lars", lr=0.3, weight_decay=1e-4, batch_size=128, proj_dims=(4096, 512),
                     proj_hidden_bn=False, method_params={"temperature": 0.2},
                     source=_YAML + "simclr.yaml (lars lr 0.3 wd 1e-4, 2x64 batch, proj 4096->512 no BN, T 0.2)"
                     + _COMMON),
    "simplified": Recipe(**_SIMSIAM, method_params={"lam": -1.0},
                         source="simplified (paper §3.1, lam -1)" + _NO_RECIPE),
    "invariance": Recipe(**_SIMSIAM, source="invariance" + _NO_RECIPE),
    "triplet": Recipe(**_SIMSIAM, source="triplet (margin inf, the paper's limit)" + _NO_RECIPE),
}


def recipe(method: str) -> Recipe:
    if method not in RECIPES:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(RECIPES)}")
    return RECIPES[method]
