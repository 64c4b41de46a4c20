"""ImageNet-100 / ResNet-18 recipe of every method, after solo-learn's (github.com/vturrisi/solo-learn).

solo-learn's yamls (scripts/pretrain/imagenet-100/<method>.yaml) give a per-GPU batch on 2 GPUs and
scale lr by total batch / 256 (solo/args/pretrain.py); here `batch_size` is the total (2 × theirs) and `lr`
the base lr for batch 256, so the trainer scales it the same way. Their scheduler defaults: warmup_cosine
with 10 warmup epochs, min lr 0; SGD/LARS momentum 0.9; LARS η 0.02, clip_lr, biases and norms excluded.
Their linear top-1 with these recipes (400 epochs): simsiam 74.5, byol 80.2, dino 74.8, swav 74.0,
barlow 80.4, simclr 77.6.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from lab.data import fmnist
from lab.methods import method_class

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
    # "default": PyTorch's nn.Linear init; "trunc_normal": weights trunc_normal(std 0.02), biases 0 (DINOHead's)
    proj_init: str = "default"
    # The backbone: ResNet-18 with this stem and stage width, on images of in_channels channels.
    stem: str = "imagenet"
    width: int = 64
    in_channels: int = 3

    def __post_init__(self):
        if self.optimizer not in ("sgd", "lars"):
            raise ValueError(f"optimizer must be sgd or lars, got {self.optimizer!r}")
        if self.proj_act not in ("relu", "gelu"):
            raise ValueError(f"proj_act must be relu or gelu, got {self.proj_act!r}")
        if self.proj_init not in ("default", "trunc_normal"):
            raise ValueError(f"proj_init must be default or trunc_normal, got {self.proj_init!r}")
        if not self.proj_dims:
            raise ValueError("proj_dims needs at least the output dimension")
        object.__setattr__(self, "method_params", MappingProxyType(dict(self.method_params)))

    @property
    def features(self) -> int:
        """The backbone's output width (ResNet-18: 8 × stage width)."""
        return 8 * self.width

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
                   method_params={"momentum": 0.99, "momentum_schedule": True, "predictor_hidden": 8192,
                                  "scale": 4.0},
                   source=_YAML + "byol.yaml (lars lr 0.5 wd 1e-6, 2x128 batch, proj 4096->256, pred hidden 8192, "
                   "tau 0.99->1.0 cosine; loss sum over views of 2 - 2cos: scale 4)" + _COMMON),
    "dino": Recipe(optimizer="lars", lr=0.3, weight_decay=1e-6, batch_size=128, proj_dims=(2048, 2048, 256),
                   proj_hidden_bn=False, proj_act="gelu", proj_init="trunc_normal",
                   method_params={"n_prototypes": 4096, "teacher_momentum": 0.9995, "teacher_momentum_schedule": True,
                                  "temperature": 0.1, "teacher_temperature": 0.04, "teacher_temperature_final": 0.07,
                                  "teacher_temperature_warmup": 50 / 400, "center_momentum": 0.9,
                                  "last_layer_freeze": 1 / 400, "joint_bn": True},
                   source=_YAML + "dino.yaml (lars lr 0.3 wd 1e-6, 2x64 batch, head 2048-2048-256 no BN GELU, "
                   "4096 prototypes, tau 0.9995->1.0) and solo/methods/dino.py (student T 0.1, teacher T "
                   "0.04->0.07 over 50 epochs, last layer frozen for the first epoch); main_dino.py's DINOHead init "
                   "(trunc_normal std 0.02, zero biases) and MultiCropWrapper (both views through BatchNorm together)"
                   + _COMMON),
    "swav": Recipe(optimizer="lars", lr=0.6, weight_decay=1e-6, batch_size=256, proj_dims=(2048, 128),
                   method_params={"n_prototypes": 3000, "epsilon": 0.05, "sinkhorn_iters": 3, "temperature": 0.1,
                                  "queue_size": 3840, "queue_start": 50 / 400, "prototype_freeze": 2 / 400,
                                  "joint_bn": True},
                   source=_YAML + "swav.yaml (lars lr 0.6 wd 1e-6, 2x128 batch, proj 2048->128, 3000 prototypes, "
                   "T 0.1, queue 3840 from epoch 50, prototypes frozen for 2 epochs; eps 0.05, 3 Sinkhorn "
                   "iterations: solo-learn defaults); main_swav.py puts the views through BatchNorm together"
                   + _COMMON),
    "barlow": Recipe(optimizer="lars", lr=0.3, weight_decay=1e-4, batch_size=256, proj_dims=(2048, 2048, 2048),
                     method_params={"lam": 0.0051, "lam_per_d": False, "scale": 0.1},
                     source=_YAML + "barlow.yaml (lars lr 0.3 wd 1e-4, 2x128 batch, proj 2048-2048-2048, "
                     "scale_loss 0.1; lamb 0.0051: solo-learn default)" + _COMMON),
    "simclr": Recipe(optimizer="lars", lr=0.3, weight_decay=1e-4, batch_size=128, proj_dims=(4096, 512),
                     proj_hidden_bn=False, method_params={"temperature": 0.2, "joint_bn": True},
                     source=_YAML + "simclr.yaml (lars lr 0.3 wd 1e-4, 2x64 batch, proj 4096->512 no BN, T 0.2); SimCLR's "
                     "TensorFlow code puts the views through BatchNorm together" + _COMMON),
    "simplified": Recipe(**_SIMSIAM, method_params={"lam": -1.0},
                         source="simplified (paper §3.1, lam -1)" + _NO_RECIPE),
    "invariance": Recipe(**_SIMSIAM, source="invariance" + _NO_RECIPE),
    "triplet": Recipe(**_SIMSIAM, source="triplet (margin inf, the paper's limit)" + _NO_RECIPE),
}


@dataclass(frozen=True)
class Scale:
    """Where a run trains: the data and the backbone, and how the ImageNet recipes are carried over to it."""

    name: str
    label: str
    stem: str
    width: int
    in_channels: int
    image_size: int
    load_size: int | None  # None: image_size · 256/224
    epochs: int | None  # None: the recipe's
    min_scale: float | None  # None: the recipe's
    mean: tuple[float, ...]
    std: tuple[float, ...]
    why: str
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # method -> knobs, said in `why`


SCALES: dict[str, Scale] = {
    "imagenet": Scale("imagenet", "ImageNet-100", "imagenet", 64, 3, 224, None, None, None,
                      (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "solo-learn's ImageNet-100 recipes as they are"),
    "fmnist": Scale(
        "fmnist", "Fashion-MNIST", "small", 16, 1, 28, 28, 10, 0.2, (fmnist.MEAN,), (fmnist.STD,),
        "ResNet-18 in its small-image form at width 16 (128 features, 0.7 M parameters; 1,220 training "
        "images/s with two views on a 2-core CPU, so an epoch of 60,000 takes under a minute); every projector, "
        "predictor hidden layer, prototype count and SwAV queue scaled by the backbone's width ratio 16/64, so "
        "heads keep their ImageNet size relative to the features (and SwAV's batch plus queue about as many "
        "samples per prototype: 1.6 against 1.4); warmup the same fraction of training (10 of 400 "
        "epochs); crops from 0.2 of the area, because 0.08 of a 28-px image is an 8-px patch that often holds "
        "no edge of the garment; DINO's teacher EMA 0.996 (the DINO paper's default) instead of 0.9995, whose "
        "horizon of 2,000 steps would be 40 % of a 10-epoch run (1 % at ImageNet-100's 400 epochs)",
        overrides={"dino": {"teacher_momentum": 0.996}}),
}


def _scaled(n: int, ratio: float) -> int:
    return max(8, int(round(n * ratio)))


def _at_scale(method: str, rec: Recipe, scale: Scale) -> Recipe:
    """rec carried over to `scale` by the rule in `scale.why` (the identity for ImageNet)."""
    if scale.name == "imagenet":
        return rec
    ratio = scale.width / rec.width
    sizes = {f.name for f in dataclasses.fields(method_class(method).Config) if f.metadata.get("head_size")}
    params = {k: (_scaled(v, ratio) if k in sizes else v) for k, v in rec.method_params.items()}
    params.update(scale.overrides.get(method, {}))
    epochs = scale.epochs or rec.epochs
    return dataclasses.replace(
        rec, proj_dims=tuple(_scaled(d, ratio) for d in rec.proj_dims), method_params=params, epochs=epochs,
        warmup_epochs=rec.warmup_epochs * epochs / rec.epochs, min_scale=scale.min_scale or rec.min_scale,
        stem=scale.stem, width=scale.width, in_channels=scale.in_channels,
        source=f"{rec.source}; at {scale.label}: {scale.why}")


def data_scale(data) -> str:
    """The scale of a --data folder: "fmnist" for a folder of Fashion-MNIST's idx files, else "imagenet"."""
    return "fmnist" if data is not None and fmnist.is_fashion_mnist(data) else "imagenet"


# Knobs of a recipe rather than of a method, set like a method's (`--set proj_out_bn=false`): which recipes
# have each, and its help. Fig. B.5's second pair turns SimSiam's output BatchNorm off.
RECIPE_KNOBS: dict[str, tuple[tuple[str, ...], str]] = {
    "proj_out_bn": (tuple(m for m, r in RECIPES.items() if r.proj_out_bn),
                    "the BatchNorm without affine after the projector's last Linear (SimSiam's recipe family)"),
}


def split_knobs(knobs: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """knobs -> (the recipe's, the method's)."""
    knobs = dict(knobs or {})
    return ({k: v for k, v in knobs.items() if k in RECIPE_KNOBS},
            {k: v for k, v in knobs.items() if k not in RECIPE_KNOBS})


def _bool_knob(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{key} must be true or false, got {value!r}")


def recipe_knobs(method: str, knobs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The recipe knobs in `knobs`, parsed; one the method's recipe lacks -> ValueError naming who has it."""
    own, _ = split_knobs(knobs)
    for key in own:
        methods, _help = RECIPE_KNOBS[key]
        if method not in methods:
            raise ValueError(f"{key} is a knob of the recipes of {', '.join(methods)}, not of {method}")
    return {k: _bool_knob(k, v) for k, v in own.items()}


def recipe(method: str, scale: str = "imagenet", knobs: Mapping[str, Any] | None = None) -> Recipe:
    """`method`'s recipe at `scale`, with the recipe knobs among `knobs` applied (the method's are ignored)."""
    if method not in RECIPES:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(RECIPES)}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    rec = _at_scale(method, RECIPES[method], SCALES[scale])
    own = recipe_knobs(method, knobs)
    return dataclasses.replace(rec, **own) if own else rec
