"""What every SSL method shares: the encoder forward, the method interface, the registry.

A method is a small module: a frozen config dataclass, the head it adds, its loss. The encoder
(backbone → projector) exists once, here; methods compose it rather than inherit a large base.
All tensors carry a leading seed dimension K (see `lab.core.nn`): x (K, N, d), z (K, N, D).
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import nn

from lab.core import geometry as geo
from lab.core.checks import knob
from lab.core.collapse import CENTER, CONCENTRATED, RANK, Sign
from lab.core.nn import SeedLinear, seed_generators, seed_mlp
from lab.core.seeds import TOY_HEADS, TOY_WEIGHTS

REGISTRY: dict[str, type["Method"]] = {}

# Slider stops and help shared by knobs of the same meaning in several methods (`lab.core.checks.knob`).
PREDICTOR_HELP = "The predictor MLP on the online branch."
PREDICTOR_HIDDEN_STOPS = (2, 4, 8, 16, 32, 64)
TEMPERATURE_STOPS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
PROTOTYPE_STOPS = (2, 3, 4, 8, 16, 32, 64, 128)


def register(cls: type["Method"]) -> type["Method"]:
    """Class decorator: make a method findable by its `name`."""
    if cls.name in REGISTRY:
        raise ValueError(f"method {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


class Encoder(nn.Module):
    """Backbone MLP (in_dim → hidden → hidden, ReLU) and a linear projector (hidden → D).

    x: (K, N, in_dim) -> h: (K, N, hidden) backbone features, y: (K, N, D) projector output (not normalised).
    """

    def __init__(self, gens: Sequence[torch.Generator], in_dim: int, hidden: int, dim: int):
        super().__init__()
        self.backbone = nn.Sequential(seed_mlp(gens, [in_dim, hidden, hidden]), nn.ReLU())
        self.projector = SeedLinear(gens, hidden, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone(x)
        return h, self.projector(h)

    def linear_layers(self) -> tuple[SeedLinear, SeedLinear, SeedLinear]:
        """The three linear layers in order (for a hand-written step: `lab.methods.fused`)."""
        mlp = self.backbone[0]
        return mlp[0], mlp[2], self.projector


def predictor_head(gens: Sequence[torch.Generator], dim: int, hidden: int, enabled: bool) -> nn.Module | None:
    """SimSiam/BYOL predictor D → hidden (BN, ReLU) → D, or None when the knob turns it off."""
    return seed_mlp(gens, [dim, hidden, dim], batchnorm=True) if enabled else None


def predictor_knob(help_extra: str = "") -> Any:
    """The `predictor` on/off knob of SimSiam and BYOL."""
    return knob(True, "Predictor", PREDICTOR_HELP + help_extra)


def predictor_hidden_knob() -> Any:
    # SimSiam's bottleneck predictor: hidden = D/4 at ImageNet scale; wider here.
    return knob(16, "Predictor hidden width", stops=PREDICTOR_HIDDEN_STOPS, range=(1, 65536), head_size=True)


def online_predictions(predictor: nn.Module | None, z1: torch.Tensor, z2: torch.Tensor):
    """The online branch's predictions p = h(z) of both views, or z itself without a predictor. (K, N, D) each."""
    return (predictor(z1), predictor(z2)) if predictor is not None else (z1, z2)


def joint_bn_knob() -> Any:
    """The `joint_bn` knob of the methods whose originals put both views through the encoder as one batch."""
    return knob(False, "Views through BatchNorm together", "On: both views go through the encoder as one batch, "
                "so its BatchNorm layers take their statistics over both (DINO's MultiCropWrapper, SwAV's "
                "multi-crop forward, SimCLR's TensorFlow code). Off: view by view (SimSiam, BYOL, Barlow Twins "
                "and solo-learn do so). The toy's encoder has no BatchNorm, so there it changes nothing.",
                scale="imagenet")


def encode_views(encoder: nn.Module, x1: torch.Tensor, x2: torch.Tensor, joint: bool):
    """(h, y) of each view from `encoder`; joint: as one batch of 2N, so that BatchNorm sees both views.

    x1, x2: (K, N, ...) -> ((h1, y1), (h2, y2)), each (K, N, F) and (K, N, D)."""
    if not joint:
        return encoder(x1), encoder(x2)
    n = x1.shape[1]
    h, y = encoder(torch.cat([x1, x2], dim=1))
    return (h[:, :n], y[:, :n]), (h[:, n:], y[:, n:])


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """-cos(p, z) averaged over samples. p, z: (K, N, D) -> (K,). Collapse value: -1."""
    return -(geo.normalize(p) * geo.normalize(z)).sum(-1).mean(-1)


def squared_distance(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """‖z1 − z2‖² of normalised features, averaged over samples. (K, N, D) -> (K,). Collapse value: 0."""
    return (geo.normalize(z1) - geo.normalize(z2)).square().sum(-1).mean(-1)


class Method(nn.Module):
    """Interface of an SSL method on K stacked seeds.

    Subclasses set `name`, `label`, `Config` (a frozen dataclass of the method's knobs, defaults from the
    method's paper), `collapse_loss` (the loss value a collapsed model reaches, or None) and, where it
    differs from ‖s‖ and the effective rank, its `signature` (`lab.core.collapse`: which readings mean which
    kind of collapse), state what the paper predicts for its center pull (`pull_prediction`), build their
    head in `__init__`, and implement `loss`. What the lab knows of one method is said in its module, so that
    the layers above ask the method rather than keep tables of their own (its ImageNet recipe excepted, which
    the engine keeps: `lab.engine.recipes`).
    """

    name: ClassVar[str]
    label: ClassVar[str]  # what a page calls it
    Config: ClassVar[type]
    collapse_loss: ClassVar[str | None] = None
    signature: ClassVar[tuple[Sign, ...]] = (CENTER, CONCENTRATED, RANK)
    # The Config fields that `fused_head` honours; None: no hand-written step (`lab.methods.fused`).
    fused_knobs: ClassVar[tuple[str, ...] | None] = None
    # The Config fields (floats) whose value may differ between the seeds of one stacked program (a sweep's
    # cells, `lab.train.sweep`): the method reads them with `knob_value`, a (K,) tensor where they differ.
    seed_knobs: ClassVar[tuple[str, ...]] = ()
    # The Config fields that shape the model's layers or its optimizer groups: fixed for a run. Every other
    # knob may change mid-run (`change_knobs`): the loss reads it from `self.cfg` at every step.
    structural_knobs: ClassVar[tuple[str, ...]] = ()
    # A switch knob -> the attribute of the module it turns on: off mid-run leaves the module unused, on
    # mid-run needs a run that was built with it.
    toggled_modules: ClassVar[dict[str, str]] = {}

    def __init__(self, cfg: Any, seeds: Sequence[int], in_dim: int, dim: int, hidden: int = 64,
                 encoder: nn.Module | None = None):
        super().__init__()
        self.cfg, self.k, self.dim = cfg, len(seeds), dim
        # The toy MLP unless the caller brings its own (the ImageNet trainer: ResNet-18 + projector,
        # K = 1); any module mapping x -> (h (K, N, F), y (K, N, dim)) fits.
        if encoder is None:
            encoder = Encoder(seed_generators(seeds, TOY_WEIGHTS), in_dim, hidden, dim)
        self.encoder = encoder
        self.head_gens = seed_generators(seeds, TOY_HEADS)  # for the heads subclasses add

    @classmethod
    def toy_knobs(cls) -> tuple[dataclasses.Field, ...]:
        """The Config fields that mean something at toy scale: all but the ImageNet recipes' schedules
        (`scale="imagenet"` in a knob's metadata)."""
        return tuple(f for f in dataclasses.fields(cls.Config) if f.metadata.get("scale") != "imagenet")

    @classmethod
    def movable_knobs(cls) -> tuple[dataclasses.Field, ...]:
        """The toy knobs that may change on a running model (`change_knobs`): those not in `structural_knobs`."""
        return tuple(f for f in cls.toy_knobs() if f.name not in cls.structural_knobs)

    @classmethod
    def pull_prediction(cls, cfg: Any) -> tuple[str | None, str]:
        """What the paper predicts for the sign of the center pull (`lab.core.pull`) under config `cfg`:
        (ALONG: > 0, NOT_ALONG: ≈ 0 or < 0, None: no sign predicted; one sentence with the paper's section)."""
        return None, "The paper says nothing about this method."

    @classmethod
    def setting_note(cls, cfg: Any, dim: int) -> str | None:
        """One line on a knob whose value in effect depends on the setting (Barlow's λ scaled with D), for the
        pages to show next to the controls; None where every knob acts as written."""
        return None

    @classmethod
    def collapse_value(cls, cfg: Any, dim: int, batch: int) -> float | None:
        """`collapse_loss` as a number for config `cfg`, feature dimension `dim` and global batch `batch`
        (what the loss reads once every feature is one point); None where it is not one number.
        Methods whose `collapse_loss` is a plain number need no override."""
        try:
            return float(cls.collapse_loss) if cls.collapse_loss is not None else None
        except ValueError:
            return None

    def loss(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x1, x2: (K, B, d) the two views -> (loss per seed (K,), logs of (K,) tensors)."""
        raise NotImplementedError

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """`loss`, so that a DistributedDataParallel wrapper (which hooks `forward`) can run a step."""
        return self.loss(x1, x2)

    def fused_head(self, yt: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The head and loss on the feature-major projector output of both views, yt: (K, D, 2B) ->
        (loss (K,), dL/dyt (K, D, 2B)), head gradients written into their buffers. Methods that set
        `fused_knobs` implement it."""
        raise NotImplementedError

    def set_seed_knobs(self, values: dict[str, torch.Tensor]) -> None:
        """Per-seed values, (K,) tensors, of some of `seed_knobs` (the rest keep the config's value)."""
        unknown = sorted(set(values) - set(self.seed_knobs))
        if unknown:
            raise ValueError(f"{self.name} cannot take per-seed values of {', '.join(unknown)}; "
                             f"it can of: {', '.join(self.seed_knobs) or 'none'}")
        self._seed_values = {k: v.reshape(self.k) for k, v in values.items()}

    def change_knobs(self, changes: Mapping[str, Any]) -> None:
        """Knob changes that apply from the next step of a running model (a mid-run event): the config is
        replaced (its ranges checked). A structural knob -> ValueError naming it and the knobs that can change."""
        fixed = sorted(set(changes) & set(self.structural_knobs))
        if fixed:
            movable = [f.name for f in self.movable_knobs()]
            raise ValueError(f"{self.name}: {', '.join(fixed)} cannot change mid-run (it shapes the model's layers); "
                             f"knobs that can: {', '.join(movable) or 'none'}")
        for switch, attr in self.toggled_modules.items():
            if changes.get(switch) is True and getattr(self, attr, None) is None:
                raise ValueError(f"{self.name}: {switch} cannot be turned on mid-run, this run was built without it; "
                                 f"start with {switch} on and turn it off instead")
        self.cfg = dataclasses.replace(self.cfg, **changes)

    @property
    def active_predictor(self):
        """The predictor the loss uses now: None where the method has none or its knob is off."""
        predictor = getattr(self, "predictor", None)
        return predictor if predictor is not None and getattr(self.cfg, "predictor", True) else None

    def knob_value(self, name: str):
        """A knob's value: the config's, or a (K,) tensor where the stacked seeds differ in it."""
        values = getattr(self, "_seed_values", None)
        return values[name] if values and name in values else getattr(self.cfg, name)

    def param_groups(self, lr: float | torch.Tensor) -> list[dict]:
        """Optimizer groups; methods with a separate learning rate (SimSiam's predictor) override. lr: a
        float, or a (K,) tensor of per-seed rates (`lab.train.toy._FlatSGD` takes either)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def after_step(self, progress: float) -> None:
        """Called after every optimizer step with training progress in [0, 1] (EMA teachers, ...)."""

    def resume_at(self, progress: float) -> None:
        """Training goes on at `progress` in [0, 1] (a resumed run, before its first step): what a method keeps
        of the schedule between steps is set from it, not from the weights (DINO's teacher temperature)."""

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised features on the sphere for evaluation and pictures. x: (K, N, d) -> (K, N, D)."""
        return geo.normalize(self.encoder(x)[1])

    @torch.no_grad()
    def loss_view(self, y: torch.Tensor) -> torch.Tensor:
        """What the loss's own normalisation makes of projector outputs y (K, N, D) before comparing views
        (Barlow Twins: each dimension standardised over the batch). The identity for most methods."""
        return y

    def extra_metrics(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Method-specific metrics on data x (K, N, d): name -> (K,)."""
        return {}


def config_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}
