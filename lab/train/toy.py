"""Toy trainer for the method playground: K seeds of one method trained as one batched program.

Seeds are stacked along a leading dimension (see `lab.core.nn`), so K seeds cost one forward and one
backward per step, not K. Runs on different datasets with the same method can stack too
(`train_toys`), which is how the Fig. 3 / Fig. 4 suites answer live.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import torch

from lab.core import geometry as geo
from lab.core import metrics as M
from lab.core import pull as P
from lab.core.checks import check_knobs, check_range, knob, parse_text
from lab.core.seeds import PROBE_SEED, TOY_BATCHES, generator
from lab.core.vocab import COLLAPSE_THRESHOLD
from lab.data.toy import DATASETS, ToyData, make_toy
from lab.methods import METHOD_NAMES, build_method, method_class, method_config
from lab.methods.fused import fused_step
from lab.core.schedules import evenly_spaced
from lab.train.changes import Change, change_check, changes_text, parse_changes
from lab.train.live import LiveControl, LiveTraining

TRAIN_FIELDS = ("batch_size", "epochs", "lr", "sgd_momentum", "weight_decay", "dim", "hidden")


@dataclass(frozen=True)
class ToyConfig:
    """One playground setting: a method with its knobs on a dataset, over `seeds` seeds (seed, seed+1, ...).

    Training defaults (SGD with momentum 0.9, lr 0.05, batch 100 of the 600 training points, 250
    epochs = 1,500 steps, D = 3) are one setting for every method, chosen so that each standard
    method keeps its center below collapse on blobs and moons (docs/toy-settings.md, "Training defaults").
    """

    method: str = "simsiam"
    dataset: str = "blobs"
    params: tuple[tuple[str, Any], ...] = ()
    seeds: int = knob(5, "Seeds", "Seeds seed, seed+1, … trained together as one batched program; curves show "
                      "their mean and spread.", stops=(1, 2, 3, 4, 5), range=(1, 64))
    seed: int = knob(0, "First seed", "Seeds used: seed, seed + 1, …", range=(0, 2**31 - 1))
    data_seed: int = 0
    batch_size: int = knob(100, "Batch size", "Of the 600 training points (200 per class); a positive pair is two "
                           "points of one class.", stops=(10, 20, 30, 50, 100, 150, 200, 300, 600))
    epochs: int = knob(250, "Epochs", "Passes over the 600 training points.",
                       stops=(10, 25, 50, 100, 150, 200, 250, 300, 400, 500, 750, 1000), range=(0, 100_000))
    lr: float = knob(0.05, "Learning rate", "SGD learning rate.",
                     stops=(0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0), range=(0.0, 100.0),
                     low_open=True, sweep=(0.01, 0.2, True))  # issue 12's phase diagram, with the predictor lr
    # not `momentum`: that name is BYOL's EMA knob (DESIGN §4)
    sgd_momentum: float = knob(0.9, "SGD momentum", stops=(0.0, 0.5, 0.8, 0.9, 0.95, 0.99), range=(0.0, 0.999))
    weight_decay: float = knob(1e-4, "Weight decay", stops=(0.0, 1e-5, 1e-4, 5e-4, 1e-3, 1e-2), range=(0.0, 1.0))
    # the sphere: at D = 2 DINO's center sits at 0.96-0.98 with these defaults (docs/toy-settings.md)
    dim: int = knob(3, "Feature dimension D", "2: the circle, 3: the sphere; above 3 the animation shows the first 3 "
                    "coordinates.", stops=(2, 3, 4, 8, 16, 32, 64, 128), range=(2, 512))
    hidden: int = knob(64, "Hidden width", "Width of the two-layer MLP backbone.", stops=(8, 16, 32, 64, 128, 256),
                       range=(2, 4096))
    n_train: int = knob(200, range=(2, 100_000))
    n_test: int = knob(100, range=(1, 100_000))
    max_evals: int = knob(51, range=(2, 10_000))
    # Knob changes mid-run, (epoch, knob, value), as `lab.train.changes` reads them ("120:stop_grad=false")
    changes: tuple = ()

    def __post_init__(self):
        if self.method not in METHOD_NAMES:
            raise ValueError(f"unknown method {self.method!r}; valid: {', '.join(METHOD_NAMES)}")
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; valid: {', '.join(DATASETS)}")
        object.__setattr__(self, "params", tuple(sorted(dict(self.params).items())))
        self.method_config  # validates the method's knobs
        for name in ("seeds", "seed", "batch_size", "epochs", "dim", "hidden"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int):
                raise ValueError(f"{name} must be an integer, got {getattr(self, name)!r}")
        check_knobs(self)
        check_range("batch_size", self.batch_size, 2, 3 * self.n_train)  # its range depends on n_train
        items = self.changes if isinstance(self.changes, str) else [
            Change(*c) if isinstance(c, (tuple, list)) and not isinstance(c, Change) else c for c in self.changes]
        object.__setattr__(self, "changes", parse_changes(items, self.method, dict(self.params), self.epochs,
                                                          ToyConfig.__dataclass_fields__))

    @property
    def method_config(self):
        return method_config(self.method, dict(self.params))

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))

    @property
    def steps_per_epoch(self) -> int:
        return (3 * self.n_train) // self.batch_size

    def resolved_params(self) -> dict[str, Any]:
        """Every parameter that decides the run: the method's knobs and the training settings."""
        out = asdict(self.method_config)
        out.update({k: getattr(self, k) for k in TRAIN_FIELDS})
        out.update(seeds=self.seeds, seed=self.seed, data_seed=self.data_seed)
        if self.changes:
            out["changes"] = changes_text(self.changes)
        return out


def toy_config(method: str, dataset: str, settings: Mapping[str, Any] | None = None) -> ToyConfig:
    """Split key=value settings into the method's knobs and the training fields (strings parsed)."""
    train_keys = {f for f in ToyConfig.__dataclass_fields__ if f not in ("method", "dataset", "params")}
    params, train = {}, {}
    method_keys = set(method_config(method).__dataclass_fields__) if method in METHOD_NAMES else set()
    for key, value in (settings or {}).items():
        if key == "changes":
            train[key] = value  # text or (epoch, knob, value) items: ToyConfig checks them
        elif key in train_keys:
            train[key] = _parse_train(key, value)
        elif key in method_keys or method not in METHOD_NAMES:
            params[key] = value
        else:
            valid = ", ".join(sorted(method_keys) + sorted(train_keys))
            raise ValueError(f"unknown parameter {key!r} for {method}; valid: {valid}")
    return ToyConfig(method=method, dataset=dataset, params=tuple(params.items()), **train)


def _parse_train(key: str, value: Any) -> Any:
    # NaN and inf fail ToyConfig's range checks, which name the range.
    kind = type(ToyConfig.__dataclass_fields__[key].default)
    return parse_text(key, kind, value) if isinstance(value, str) else value


@dataclass
class ToyRun:
    """A trained setting. epochs: the evaluated epochs (≤ max_evals, first and last included);
    z: (T, K, N, D) features of the training points at those epochs; metrics: name -> (T, K).
    pull_arrows: the loss's pull on a few points at those epochs (`lab.core.pull.arrows`), for the animation:
    {"points": (K, P) indices into the training points, "common": (T, K, D) the mean pull, "residual":
    (T, K, P, D) each point's pull less it}; None where the run was made without them."""

    config: ToyConfig
    data: ToyData
    epochs: list[int]
    z: torch.Tensor
    metrics: dict[str, torch.Tensor]
    train_seconds: float
    diverged: str | None = None
    pull_arrows: dict[str, torch.Tensor] | None = None
    s: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.s = geo.center_vector(self.z)

    @property
    def steps(self) -> int:
        return self.config.epochs * self.config.steps_per_epoch

    def to_json(self) -> dict:
        """The CLI's output: {method, dataset, params, steps, train_seconds, epoch, metrics: {name: [[per epoch] per seed]}}."""
        return {
            "method": self.config.method,
            "dataset": self.config.dataset,
            "params": self.config.resolved_params(),
            "steps": self.steps,
            "train_seconds": self.train_seconds,
            "epoch": self.epochs,
            "metrics": {k: v.T.tolist() for k, v in self.metrics.items()},
            "diverged": self.diverged,
        }


@dataclass
class ToyCurves:
    """A trained setting's metrics without its features: what shipped results keep of a `ToyRun`, enough for
    the curves and tables (`lab.render.toy.metric_band_figure`). metrics: name -> (T, K) at `epochs`."""

    config: ToyConfig
    epochs: list[int]
    metrics: dict[str, torch.Tensor]
    diverged: str | None = None

    @property
    def data(self) -> ToyData:
        return make_toy(self.config.dataset, self.config.data_seed, self.config.n_train, self.config.n_test)

    def to_json(self, digits: int = 4) -> dict:
        """{"epoch": [...], "metrics": {name: [[per seed] per epoch]}, "diverged"}, values rounded."""
        return {"epoch": list(self.epochs), "diverged": self.diverged,
                "metrics": {k: [[round(float(x), digits) for x in row] for row in v.tolist()]
                            for k, v in self.metrics.items()}}

    @classmethod
    def from_json(cls, config: ToyConfig, data: Mapping[str, Any]) -> "ToyCurves":
        return cls(config, list(data["epoch"]), {k: torch.tensor(v) for k, v in data["metrics"].items()},
                   data.get("diverged"))


def curves_of(run: ToyRun, metrics: Sequence[str]) -> ToyCurves:
    return ToyCurves(run.config, list(run.epochs), {m: run.metrics[m] for m in metrics if m in run.metrics},
                     run.diverged)


def _pair_indices(y: torch.Tensor, anchors: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """For each anchor index, a random other sample of the same class. y: (N,), anchors: (...,) -> (...,)."""
    order = torch.argsort(y, stable=True)
    counts = torch.bincount(y)
    starts = torch.cumsum(counts, 0) - counts
    cls = y[anchors]
    pick = (torch.rand(anchors.shape, generator=g) * counts[cls]).long()
    return order[starts[cls] + pick]


class _Batches:
    """Every seed's batch order and positive partners, drawn from that seed's own generator.

    Per seed and epoch: a permutation of the training points cut into `steps` batches, then for each
    anchor a random sample of its class (`_pair_indices`, vectorised over seeds: the class tables are
    built once). The two views of a whole epoch are gathered in one indexing op.
    """

    def __init__(self, xs: torch.Tensor, ys: torch.Tensor, seeds: Sequence[int], steps: int, batch: int):
        self.xs, self.ys, self.steps, self.batch = xs, ys, steps, batch
        self.gens = [generator(s, TOY_BATCHES) for s in seeds]
        k, n = ys.shape
        self.rows = torch.arange(k).view(k, 1, 1)
        self.order = torch.argsort(ys, dim=1, stable=True)
        self.counts = torch.nn.functional.one_hot(ys).sum(1)  # (K, C)
        self.starts = torch.cumsum(self.counts, 1) - self.counts

    def partners(self, anchors: torch.Tensor) -> torch.Tensor:
        """anchors: (K, S, B) -> (K, S, B) partner indices; one draw of shape (S, B) per seed's generator."""
        rows = self.rows
        u = torch.stack([torch.rand(anchors.shape[1:], generator=g) for g in self.gens])
        cls = self.ys[rows, anchors]
        pick = (u * self.counts[rows, cls]).long()
        return self.order[rows, self.starts[rows, cls] + pick]

    def first(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `batch` points of each seed with partners: for the loss before training. -> 2 × (K, B, d)."""
        anchors = torch.arange(self.batch).expand(len(self.gens), 1, -1)
        return self.xs[:, : self.batch], self.xs[self.rows, self.partners(anchors)][:, 0]

    def epoch(self) -> torch.Tensor:
        """The next epoch's views: (2, S, K, B, d), [0] anchors, [1] partners; [v, step] is contiguous."""
        n, s, b = self.ys.shape[1], self.steps, self.batch
        anchors = torch.stack([torch.randperm(n, generator=g)[: s * b].view(s, b) for g in self.gens])
        idx = torch.stack([anchors, self.partners(anchors)]).transpose(1, 2)  # (2, S, K, B)
        return self.xs[self.rows.view(1, 1, -1, 1), idx]

    def epoch_joined(self) -> torch.Tensor:
        """The same draws as `epoch`, both views of a step side by side: (S, K, 2B, d), [..., :B, :] anchors."""
        views = self.epoch()
        s, k, b = views.shape[1], views.shape[2], views.shape[3]
        return views.permute(1, 2, 0, 3, 4).reshape(s, k, 2 * b, -1)


class _FlatSGD:
    """torch.optim.SGD (weight decay, momentum, no dampening or Nesterov) on flat parameters.

    Each group's parameters become views into one flat tensor, and their gradients views into
    another, so a step is four ops on a few thousand numbers instead of four per parameter tensor
    (at this size the per-tensor dispatch costs more than the arithmetic). The arithmetic is
    torch.optim.SGD's, in the same order; the plain reference uses torch.optim.SGD itself and the
    tests compare the two. One difference in kind: a parameter that gets no gradient in a step is
    updated with a zero gradient (weight decay, momentum) where torch.optim.SGD would skip it; every
    method's trainable parameters take part in its loss.

    A group's `lr`, and `momentum` / `weight_decay`, may also be (K,) tensors, one value per stacked
    seed (the sweep's cells, `lab.train.sweep`): every parameter of a toy model has the seed as its
    leading dimension, so each becomes a per-element vector over the flat buffer and the step is the
    same four ops with a product in place of a scalar.
    """

    def __init__(self, groups: list[dict], momentum: float | torch.Tensor, weight_decay: float | torch.Tensor):
        self.momentum, self.weight_decay, self.groups, self._owners = momentum, weight_decay, [], []
        for group in groups:
            params = list(group["params"])
            if not params:
                continue
            flat = torch.cat([p.detach().reshape(-1) for p in params])
            grad = torch.zeros_like(flat)
            at = 0
            for p in params:
                p.data = flat[at: at + p.numel()].view_as(p)
                p.grad = grad[at: at + p.numel()].view_as(p)  # backward accumulates into these views
                at += p.numel()
            lr, wd, mom = (_per_element(v, params) for v in (group["lr"], weight_decay, momentum))
            if torch.is_tensor(lr):
                lr = -lr  # the step adds lr·d with the sign folded in, as add_(d, alpha=-lr) does
            self.groups.append((flat, grad, torch.zeros_like(flat), lr, wd, mom))
            self._owners.append(params)

    def zero_grad(self) -> None:
        for group in self.groups:
            group[1].zero_()

    @torch.no_grad()
    def step(self) -> None:
        for flat, grad, buf, lr, wd, mom in self.groups:
            if torch.is_tensor(wd):
                d = torch.addcmul(grad, flat, wd)
            else:
                d = grad.add(flat, alpha=wd) if wd else grad
            if torch.is_tensor(mom) or mom:
                d = buf.mul_(mom).add_(d)  # first step: 0·m + d = d, as SGD's buffer clone
            if torch.is_tensor(lr):
                flat.addcmul_(d, lr)
            else:
                flat.add_(d, alpha=-lr)

    def set_hyper(self, groups: list[dict], momentum: float, weight_decay: float) -> None:
        """New learning rates (the groups as `Method.param_groups` gives them, same parameters in the same
        order), SGD momentum and weight decay, from the next step: a knob changed mid-run. Momentum buffers
        are kept."""
        groups = [g for g in groups if list(g["params"])]
        self.momentum, self.weight_decay = momentum, weight_decay
        for i, (group, params) in enumerate(zip(groups, self._owners)):
            lr, wd, mom = (_per_element(v, params) for v in (group["lr"], weight_decay, momentum))
            flat, grad, buf = self.groups[i][:3]
            self.groups[i] = (flat, grad, buf, -lr if torch.is_tensor(lr) else lr, wd, mom)

    @torch.no_grad()
    def reset_seeds(self, seeds: torch.Tensor) -> None:
        """Zero the parameters and momentum of the stacked seeds at indices `seeds` (a diverged cell of a
        sweep: it then trains on as zeros, harmlessly, and its readings are reported as NaN)."""
        for (flat, _, buf, *_), params in zip(self.groups, self._owners):
            at = 0
            for p in params:
                p.data[seeds] = 0
                buf[at: at + p.numel()].view_as(p)[seeds] = 0
                at += p.numel()


def _per_element(value, params: Sequence[torch.Tensor]):
    """A scalar as it is; a (K,) tensor of per-seed values -> one float32 value per element of the flat
    buffer of `params`, each parameter (K, ...) seed-major."""
    if not torch.is_tensor(value):
        return value
    k = value.numel()
    for p in params:
        if p.shape[0] != k:
            raise ValueError(f"a per-seed optimizer value needs every parameter's leading dim = {k} seeds, "
                             f"got shape {tuple(p.shape)}")
    return torch.cat([value.to(torch.float32).repeat_interleave(p.numel() // k) for p in params])


def _evaluate(model, xs_train, xs_test, ys_train, ys_test, probe, arrows_at: torch.Tensor | None = None,
              arrows_into: list | None = None) -> tuple[torch.Tensor, dict]:
    """probe: (K, N) a fixed same-class partner of every training point, per seed (`_positive_probes`).

    center_pull, residual_pull (`lab.core.pull`): the method's own loss on the N training points as one batch,
    each paired with its probe partner, in training mode (BatchNorm on batch statistics, as a step sees
    it), every buffer put back. arrows_at: (K, P) points whose pull arrows (`lab.core.pull.arrows`) are
    appended to `arrows_into`."""
    model.eval()
    z = model.embed(xs_train)
    zt = model.embed(xs_test)
    pos = z[torch.arange(len(z)).view(-1, 1), probe]  # the partners are training points: already embedded
    out = {
        "center_norm": geo.center_norm(z),
        "center_share": geo.center_share(z, COLLAPSE_THRESHOLD),
        "residual_norm": geo.residual_norm(z),
        "z_std": geo.z_std(z),
        "knn_acc": M.knn_accuracy(z, ys_train, zt, ys_test),
        "linear_acc": M.linear_accuracy(z, ys_train, zt, ys_test),
        "alignment": M.alignment(z, pos),
        "uniformity": M.uniformity(zt),  # on the held-out points: 300², not 600², pairs
        "effective_rank": M.effective_rank(z),
    }
    out.update(model.extra_metrics(xs_train))
    model.train()
    pulled = P.center_pull(model, xs_train, partner=probe)
    out["center_pull"], out["residual_pull"] = pulled["center_pull"], pulled["residual_pull"]
    if arrows_at is not None and arrows_into is not None:
        arrows_into.append(P.arrows(pulled, arrows_at))
    return z, out


_PROBE: dict[int, torch.Tensor] = {}
ARROWS_PER_CLASS = 2  # points per class whose pull arrows a run keeps (`ToyRun.pull_arrows`)


def _arrow_points(ys: torch.Tensor) -> torch.Tensor:
    """The points per seed that get pull arrows (`lab.core.pull.arrow_points`). ys: (K, N) -> (K, P); a seed with
    fewer classes than another repeats its last point, so the rows stack."""
    picks = [P.arrow_points(y, ARROWS_PER_CLASS) for y in ys]
    width = max(len(p) for p in picks)
    return torch.stack([torch.cat([p, p[-1:].expand(width - len(p))]) for p in picks])


def _positive_probes(ys: torch.Tensor) -> torch.Tensor:
    """A fixed partner of the same class for every training point (for alignment), from each seed's own
    labels: stacked runs on different datasets have different classes. ys: (K, N) -> (K, N)."""
    out = []
    for y in ys:
        key = hash(tuple(y.tolist()))
        if key not in _PROBE:
            _PROBE[key] = _pair_indices(y, torch.arange(len(y)), generator(PROBE_SEED))
        out.append(_PROBE[key])
    return torch.stack(out)


# Training fields that stacked seeds may differ in: the optimizer takes them as (K,) tensors (`_FlatSGD`).
SEED_TRAIN_FIELDS = ("lr", "sgd_momentum", "weight_decay")


def _per_seed(configs: Sequence[ToyConfig], value: Callable[[ToyConfig], Any]) -> Any:
    """One value per stacked seed: the common value as it is, else a (K,) float64 tensor (cast to the
    parameters' float32 where used, as a Python float is)."""
    values = [value(c) for c in configs]
    if all(v == values[0] for v in values):
        return values[0]
    return torch.tensor([v for c, v in zip(configs, values) for _ in c.seed_list], dtype=torch.float64)


def _build_switchable(c: ToyConfig, seeds: Sequence[int], in_dim: int, may_switch_on: bool):
    """The model of `c`. Where a switched-off module (SimSiam's or BYOL's predictor) may be turned on
    mid-run (a live run, or a change in `c.changes`), it is built with the module and the switch then
    turned off: the module is built last from its own generators and is unused while off, so the run is
    the same as one built without it until the switch goes on."""
    params, knobs = dict(c.params), c.method_config
    # read off the parsed config: a link or the CLI gives "false" as text
    off = {k: False for k in method_class(c.method).toggled_modules if getattr(knobs, k) is False}
    if not may_switch_on and not any(ch.knob in off and ch.value is True for ch in c.changes):
        off = {}
    model = build_method(c.method, params | {k: True for k in off}, seeds, in_dim, c.dim, c.hidden)
    if off:
        model.change_knobs(off)
    return model


def _train_stack(configs: Sequence[ToyConfig], progress: Callable[[int, int], None] | None,
                 use_fused: bool = True, live: "LiveControl | None" = None) -> list[ToyRun]:
    """One stacked program. The configs share `_stack_key(c, loose=True)`; where they differ in the
    optimizer's fields or a method's `seed_knobs`, those go in as per-seed tensors, and a seed whose loss
    turns non-finite is reset to zeros and reported as NaN from then on while the others train on
    (each run gets its own `diverged`). Configs that share the strict key train exactly as before."""
    return _StackedProgram(configs, use_fused, live).train(progress)


class _StackedProgram:
    """The seeds of `configs` as one model, its optimizer and batches, and what training records: the
    evaluated epochs' features and metrics (`_record`), and for a live run every epoch's features and ‖s‖."""

    def __init__(self, configs: Sequence[ToyConfig], use_fused: bool = True, live: LiveControl | None = None):
        self.configs, self.c0, self.live = configs, configs[0], live
        c0 = self.c0
        self.seeds = [s for c in configs for s in c.seed_list]
        self.datas = [make_toy(c.dataset, c.data_seed, c.n_train, c.n_test) for c in configs for _ in c.seed_list]
        self.xs_train, self.xs_test, self.ys_train, self.ys_test = (
            torch.stack([getattr(d, name) for d in self.datas]) for name in ("x_train", "x_test", "y_train", "y_test"))
        self.k = len(self.seeds)
        torch.manual_seed(self.seeds[0])
        self.model = _build_switchable(c0, self.seeds, self.datas[0].in_dim, may_switch_on=live is not None)
        self.per_seed = len({_stack_key(c) for c in configs}) > 1
        if self.per_seed:
            self._set_seed_knobs()
        self.opt = self._optimizer()
        self.dead = torch.zeros(self.k, dtype=torch.bool)  # seeds whose loss turned non-finite (per-seed stacks)
        self.dead_at: dict[int, int] = {}
        self.step_by_hand = fused_step(self.model) if use_fused else None
        self.batches = _Batches(self.xs_train, self.ys_train, self.seeds, c0.steps_per_epoch, c0.batch_size)
        # A change's epoch is read too: the curves show the state it acted on.
        self.eval_at = set(evenly_spaced(c0.epochs, c0.max_evals)) | {ch.epoch for ch in c0.changes if ch.epoch > 0}
        if self.per_seed and c0.changes:
            raise ValueError("settings with per-seed knob values (a sweep's cells) cannot also change knobs mid-run")
        self.train_now = {f: getattr(c0, f) for f in SEED_TRAIN_FIELDS}
        self.probe = _positive_probes(self.ys_train)
        self.arrow_points = _arrow_points(self.ys_train)
        # backward of Σ_k loss_k without the sum op: each seed gets its own loss's gradient
        self.ones = torch.ones(self.k)
        self.snaps, self.logs, self.epochs, self.arrows = [], [], [], []  # per evaluated epoch (`_record`)
        self.diverged: str | None = None
        # A live view gets every epoch, but only what it draws (the features, ‖s‖): the full evaluation (probes,
        # kNN, pull) stays at the plain run's epochs, which keeps a live run the plain one, and half the cost.
        self.seen, self.seen_z, self.seen_logs = [], [], []
        self.shown_loss = None  # the loss of the epoch on show

    def _set_seed_knobs(self) -> None:
        knobs = {name: _per_seed(self.configs, lambda c, name=name: getattr(c.method_config, name))
                 for name in type(self.model).seed_knobs}
        self.model.set_seed_knobs({n: v for n, v in knobs.items() if torch.is_tensor(v)})

    def _optimizer(self) -> _FlatSGD:
        c0, model = self.c0, self.model
        if not self.per_seed:
            return _FlatSGD(model.param_groups(c0.lr), c0.sgd_momentum, c0.weight_decay)
        lr, momentum, decay = (_per_seed(self.configs, lambda c, f=f: getattr(c, f)) for f in SEED_TRAIN_FIELDS)
        return _FlatSGD(model.param_groups(lr), momentum, decay)

    def train(self, progress: Callable[[int, int], None] | None) -> list[ToyRun]:
        """Every epoch (a live run: until stopped from the page) -> one run per config."""
        c0, live = self.c0, self.live
        start = time.perf_counter()
        first_loss = self._loss_before_training()
        self._record(0, first_loss)
        self._apply_changes(0)
        more: list | None = []
        if live is not None:
            more = self._turn(0, first_loss)  # the first frame: the untrained model
            self._take_changes(0, more or ())
        last_epoch = 0 if live is not None and more is None else c0.epochs
        for epoch in range(1, last_epoch + 1):
            epoch_loss = self._train_epoch(epoch)
            if self._stops_on_divergence(epoch, epoch_loss):
                break
            if epoch in self.eval_at:
                self._record(epoch, epoch_loss)
            if progress:
                progress(epoch, c0.epochs)
            self._apply_changes(epoch)
            if live is not None:
                more = self._turn(epoch, epoch_loss)
                if more is None:  # stopped from the page: the run ends with the epoch it got to
                    if self.epochs[-1] != epoch:
                        self._record(epoch, epoch_loss)
                    break
                self._take_changes(epoch, more)
        return self._runs(time.perf_counter() - start)

    def _loss_before_training(self) -> torch.Tensor:
        model = self.model
        with torch.no_grad():
            # Peek at the loss before training without moving any state (DINO's center, BN statistics).
            saved = [t.clone() for t in model.buffers()]
            first_loss = model.loss(*self.batches.first())[0]
            for t, old in zip(model.buffers(), saved):
                t.copy_(old)
        return first_loss

    def _train_epoch(self, epoch: int) -> torch.Tensor:
        """One epoch of SGD steps -> (K,) the mean loss of each seed's steps."""
        model, opt, steps, step_by_hand = self.model, self.opt, self.c0.steps_per_epoch, self.step_by_hand
        views = self.batches.epoch_joined() if step_by_hand else self.batches.epoch()
        epoch_loss = torch.zeros(self.k)
        for step in range(steps):
            if step_by_hand:
                with torch.no_grad():
                    loss = step_by_hand(views[step])
            else:
                loss, _ = model.loss(views[0, step], views[1, step])
                opt.zero_grad()
                loss.backward(self.ones)
            opt.step()
            model.after_step((epoch - 1 + (step + 1) / steps) / self.c0.epochs)
            epoch_loss += loss.detach()
        epoch_loss /= steps
        return epoch_loss

    def _stops_on_divergence(self, epoch: int, epoch_loss: torch.Tensor) -> bool:
        """A non-finite loss ends a plain program (`diverged` names the seeds); in a per-seed stack it marks its
        seeds dead, which train on as zeros and read as NaN. True: the program ends here."""
        dead = self.dead
        if not torch.isfinite(epoch_loss[~dead]).all():
            if not self.per_seed:
                bad = [self.seeds[i] for i in range(self.k) if not torch.isfinite(epoch_loss[i])]
                self.diverged = f"training diverged at epoch {epoch}: the loss became NaN or infinite (seeds {bad})"
                return True
            newly = ~torch.isfinite(epoch_loss) & ~dead
            self.dead_at.update({int(i): epoch for i in newly.nonzero().flatten()})
            dead |= newly
            if dead.all():
                return True
        if dead.any():  # every epoch: a zeroed seed may still pick up NaN from a method's state
            self.opt.reset_seeds(dead.nonzero().flatten())
            with torch.no_grad():
                for t in list(self.model.parameters()) + list(self.model.buffers()):
                    t[dead] = 0
            epoch_loss[dead] = float("nan")
        return False

    def _apply_changes(self, epoch: int, extra: Sequence[Change] = ()) -> None:
        """The config's changes at `epoch` and `extra` (asked for from a live page): knobs to the model, training
        fields to the optimizer."""
        todo = [ch for ch in self.c0.changes if ch.epoch == epoch] + list(extra)
        if not todo:
            return
        train_now = self.train_now
        knobs = {ch.knob: ch.value for ch in todo if ch.knob not in train_now}
        train_now.update({ch.knob: ch.value for ch in todo if ch.knob in train_now})
        if knobs:
            self.model.change_knobs(knobs)
        self.opt.set_hyper(self.model.param_groups(train_now["lr"]), train_now["sgd_momentum"],
                           train_now["weight_decay"])

    def _record(self, epoch: int, loss: torch.Tensor) -> None:
        """The full evaluation of `epoch` (`_evaluate`), a dead seed's readings NaN."""
        dead = self.dead
        z, m = _evaluate(self.model, self.xs_train, self.xs_test, self.ys_train, self.ys_test, self.probe,
                         self.arrow_points, self.arrows)
        m["loss"] = loss
        if dead.any():
            z[dead] = float("nan")
            for v in list(m.values()) + list(self.arrows[-1].values()):
                v[dead] = float("nan")
        self.snaps.append(z), self.logs.append(m), self.epochs.append(epoch)

    def _turn(self, epoch: int, loss: torch.Tensor) -> list[Change] | None:
        """A live run's turn after `epoch`: show it, wait -> the changes asked for since (None: stop)."""
        self.shown_loss = loss
        self._show(epoch)
        return self.live.wait_turn(epoch)

    def _show(self, epoch: int) -> None:
        if self.epochs and self.epochs[-1] == epoch:
            z = self.snaps[-1]
        else:
            self.model.eval()
            z = self.model.embed(self.xs_train)
            self.model.train()
            z[self.dead] = float("nan")
        # The epoch last: a reader takes as many entries as there are epochs (`LiveControl.latest`).
        self.seen_z.append(z), self.seen_logs.append({"center_norm": geo.center_norm(z)}), self.seen.append(epoch)
        self.live.publish(self.seen, self.seen_z, self.seen_logs)

    def _take_changes(self, epoch: int, changes: Sequence[Change]) -> None:
        if changes and self.epochs[-1] != epoch:  # the curves show the state a change acted on, as a plain run's do
            self._record(epoch, self.shown_loss)
        self._apply_changes(epoch, changes)

    def _runs(self, seconds: float) -> list[ToyRun]:
        """One run per config: its seeds' slice of everything recorded."""
        z = torch.stack(self.snaps)
        metrics = {key: torch.stack([m[key] for m in self.logs]) for key in self.logs[0]}
        common = torch.stack([a["common"] for a in self.arrows])
        residual = torch.stack([a["residual"] for a in self.arrows])
        runs, at = [], 0
        for c in self.configs:
            sl = slice(at, at + c.seeds)
            diverged = self._seed_divergence(at, c.seeds) if self.per_seed else self.diverged
            if self.live is not None and self.live.applied:  # the run's config holds the changes made from the page
                c = replace(c, changes=tuple(c.changes) + tuple(self.live.applied))
            arrows = {"points": self.arrow_points[sl], "common": common[:, sl], "residual": residual[:, sl]}
            runs.append(ToyRun(c, self.datas[at], list(self.epochs), z[:, sl],
                               {kk: v[:, sl] for kk, v in metrics.items()}, seconds, diverged, arrows))
            at += c.seeds
        return runs

    def _seed_divergence(self, at: int, seeds: int) -> str | None:
        """`diverged` of the config whose seeds are at at, at + 1, ... in a per-seed stack."""
        bad = {self.seeds[i]: self.dead_at[i] for i in range(at, at + seeds) if i in self.dead_at}
        return (f"training diverged at epoch {min(bad.values())}: the loss became NaN or infinite "
                f"(seeds {sorted(bad)})") if bad else None


def live_toy(config: ToyConfig, playing: bool = True, epochs_per_second: float | None = None,
             idle_hold_s: float | None = None) -> LiveTraining:
    """`config` trained live (`lab.train.live`): every epoch evaluated and published, knobs changeable;
    held while nobody has read it for idle_hold_s (`LiveControl`)."""
    return LiveTraining(config, lambda c, control: _train_stack([c], None, live=control)[0], playing,
                        epochs_per_second, check=change_check(config.method, config.params, config.epochs,
                                                  ToyConfig.__dataclass_fields__), idle_hold_s=idle_hold_s)


def _stack_key(c: ToyConfig, loose: bool = False) -> tuple:
    """Settings with equal keys train as one stacked program. loose: leave out what may differ per seed
    (`SEED_TRAIN_FIELDS` and the method's `seed_knobs`), as a sweep stacks its cells."""
    if loose:
        free = method_class(c.method).seed_knobs
        return (c.method, tuple(kv for kv in c.params if kv[0] not in free), c.batch_size, c.epochs, c.dim,
                c.hidden, c.n_train, c.n_test, c.max_evals, c.changes)
    return (c.method, c.params, c.batch_size, c.epochs, c.lr, c.sgd_momentum, c.weight_decay, c.dim, c.hidden,
            c.n_train, c.n_test, c.max_evals, c.changes)


def train_toys(configs: Sequence[ToyConfig], progress: Callable[[int, int], None] | None = None,
               use_fused: bool = True, stack_knobs: bool = False,
               on_runs: Callable[[list[int], list[ToyRun]], None] | None = None) -> list[ToyRun]:
    """Train several settings; those that differ only in dataset and seeds share one stacked program.

    progress(done_epochs, total_epochs) over all programs. Returns runs in the order of `configs`.
    use_fused=False trains every method through autograd (the hand-written step of `lab.methods.fused`,
    which methods declare in their own modules; the tests compare the two).
    stack_knobs: settings that differ also in lr, SGD momentum, weight decay or a method's `seed_knobs`
    stack too (per-seed values, `_train_stack`): the sweep. on_runs(indices, runs) is called as each
    program finishes, with the indices into `configs` it trained.
    """
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault(_stack_key(c, loose=stack_knobs), []).append(i)
    total = sum(configs[idx[0]].epochs for idx in groups.values())
    done = 0
    out: list[ToyRun | None] = [None] * len(configs)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads cost more than they give
    try:
        for idx in groups.values():
            tick = (lambda e, t, base=done: progress(base + e, total)) if progress else None
            runs = _train_stack([configs[i] for i in idx], tick, use_fused)
            for i, run in zip(idx, runs):
                out[i] = run
            done += configs[idx[0]].epochs
            if on_runs:
                on_runs(list(idx), runs)
    finally:
        torch.set_num_threads(threads)
    return out  # type: ignore[return-value]


def train_toy(config: ToyConfig, progress: Callable[[int, int], None] | None = None) -> ToyRun:
    return train_toys([config], progress)[0]
