"""B.1 trainer: invariance loss only, two linear layers R³ → R^D, features on the unit circle/sphere.

Tiny models spend all their time in per-step overhead, so the forward and backward pass of
the two layers are written by hand and every setting that shares a batch size and epoch count
is trained as one stacked tensor program (leading dimension S). `lab.train.reference` holds
the plain nn.Module + autograd + optim.SGD loop that this must match step for step.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch

from lab.core import geometry as geo
from lab.core.seeds import B1_ORDER, B1_STRIDE, B1_WEIGHTS, generator
from lab.data.b1 import B1Data, make_b1_data
from lab.core.experiments import B1_MODES, experiment
from lab.train.live import LiveControl, LiveTraining

AUGMENTATIONS = ("centered", "shifted")

# Defaults, chosen once (docs/b1.md, "The B.1 experiment and its defaults", explains each):
DEFAULT_LR = 0.1  # plain SGD; a quick check found collapse robust for lr >= 0.05, unreliable at 0.01
DEFAULT_NOISE = 0.1  # augmentation std σ: augmentations stay close to their point, as crops of one image do
DEFAULT_SHIFT = (2.0, 0.0, 0.0)  # |k| = 20σ: turns the center as often as |k| = 3, without starting collapsed
DEFAULT_HIDDEN = 16

# The paper's four settings (batch size, epochs, augmentation), declared in `lab.core.experiments`.
PAPER_SETTINGS: dict[str, dict] = {v.label: dict(v.knobs) for v in experiment("b1").variants}
# The paper's two optimizers, mode (`B1_MODES`: "mini_batch_sgd", "batch_sgd") -> (batch size, epochs).
PAPER_OPTIMIZERS: dict[str, tuple[int, int]] = {
    mode: (PAPER_SETTINGS[f"{mode}_centered_augmentation"]["batch_size"],
           PAPER_SETTINGS[f"{mode}_centered_augmentation"]["epochs"]) for mode in B1_MODES}

MAX_EPOCHS = 5000


@dataclass(frozen=True)
class B1Config:
    """One B.1 run. `shift` applies only when augmentation == "shifted"; `dim` 2 = circle, 3 = sphere."""

    batch_size: int = PAPER_OPTIMIZERS["mini_batch_sgd"][0]  # the paper's mini-batch SGD
    epochs: int = PAPER_OPTIMIZERS["mini_batch_sgd"][1]
    lr: float = DEFAULT_LR
    augmentation: str = "centered"
    shift: tuple[float, float, float] = DEFAULT_SHIFT
    noise: float = DEFAULT_NOISE
    n_points: int = 100
    n_aug: int = 10
    hidden: int = DEFAULT_HIDDEN
    dim: int = 2
    seed: int = 0
    noise_seed: int | None = None  # None: the seed's own noise draw (`make_b1_data`)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shift", tuple(float(v) for v in self.shift))
        _validate(self)

    @property
    def n_samples(self) -> int:
        return self.n_points * self.n_aug

    @property
    def steps_per_epoch(self) -> int:
        return self.n_samples // self.batch_size

    @property
    def effective_shift(self) -> tuple[float, float, float]:
        return self.shift if self.augmentation == "shifted" else (0.0, 0.0, 0.0)

    def to_dict(self) -> dict:
        return asdict(self)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _finite(v: float) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _validate(c: B1Config) -> None:
    _check(isinstance(c.n_points, int) and 2 <= c.n_points <= 100_000,
           f"n_points must be an integer in [2, 100000], got {c.n_points!r}")
    _check(isinstance(c.n_aug, int) and 2 <= c.n_aug <= 1000,
           f"n_aug must be an integer in [2, 1000], got {c.n_aug!r}")
    _check(isinstance(c.batch_size, int) and 1 <= c.batch_size <= c.n_samples,
           f"batch_size must be an integer in [1, {c.n_samples}], got {c.batch_size!r}")
    _check(isinstance(c.epochs, int) and 0 <= c.epochs <= MAX_EPOCHS,
           f"epochs must be an integer in [0, {MAX_EPOCHS}], got {c.epochs!r}")
    _check(_finite(c.lr) and 0 < c.lr <= 100, f"lr must be a finite number in (0, 100], got {c.lr!r}")
    _check(_finite(c.noise) and 0 <= c.noise <= 100, f"noise must be a finite number in [0, 100], got {c.noise!r}")
    _check(c.augmentation in AUGMENTATIONS,
           f"augmentation must be one of {', '.join(AUGMENTATIONS)}, got {c.augmentation!r}")
    _check(len(c.shift) == 3 and all(_finite(v) and abs(v) <= 100 for v in c.shift),
           f"shift must be three finite numbers in [-100, 100], got {c.shift!r}")
    _check(isinstance(c.hidden, int) and 1 <= c.hidden <= 1024,
           f"hidden must be an integer in [1, 1024], got {c.hidden!r}")
    _check(c.dim in (2, 3), f"dim must be 2 (circle) or 3 (sphere), got {c.dim!r}")
    _check(isinstance(c.seed, int) and 0 <= c.seed < 2**31, f"seed must be an integer in [0, 2^31), got {c.seed!r}")
    _check(c.noise_seed is None or (isinstance(c.noise_seed, int) and 0 <= c.noise_seed < 2**31),
           f"noise_seed must be empty or an integer in [0, 2^31), got {c.noise_seed!r}")


def paper_config(name: str, **overrides) -> B1Config:
    """The config of one of the paper's four B.1 settings, with optional overrides (lr, seed, dim, ...)."""
    if name not in PAPER_SETTINGS:
        raise ValueError(f"unknown setting {name!r}; valid: {', '.join(PAPER_SETTINGS)}")
    return B1Config(**{**PAPER_SETTINGS[name], **overrides})


@dataclass
class B1Run:
    """Everything one run produced, one snapshot per epoch (epoch 0 = before training).

    z: (E+1, N, D) features of the dataset points; z_aug: (E+1, N, A, D) of the augmented points;
    batch_index: (E+1, B) source points of the mini-batch whose center is `s_batch`;
    s_data, s_batch, s_aug: (E+1, D) the green, blue and red centers; loss: (E+1,) mean step loss
    of that epoch (epoch 0: loss at initialisation).
    """

    config: B1Config
    z: torch.Tensor
    z_aug: torch.Tensor
    batch_index: torch.Tensor
    loss: torch.Tensor
    s_data: torch.Tensor = field(init=False)
    s_batch: torch.Tensor = field(init=False)
    s_aug: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.s_data = geo.center_vector(self.z)
        self.s_aug = geo.augmented_center(self.z_aug)
        self.s_batch = torch.stack([geo.batch_center(z, i) for z, i in zip(self.z, self.batch_index)])

    @property
    def epochs(self) -> list[int]:
        return list(range(self.z.shape[0]))

    @property
    def steps(self) -> list[int]:
        return [e * self.config.steps_per_epoch for e in self.epochs]

    def metrics(self) -> dict[str, list[float]]:
        """The B.1 metrics per epoch, plain floats (JSON-ready)."""
        return {
            "epoch": self.epochs,
            "step": self.steps,
            "center_norm": self.s_data.norm(dim=-1).tolist(),
            "center_norm_aug": self.s_aug.norm(dim=-1).tolist(),
            "batch_center_norm": self.s_batch.norm(dim=-1).tolist(),
            "residual_norm": geo.residual_norm(self.z).tolist(),
            "center_angle_deg": geo.center_angle_deg(self.s_data).tolist(),
            "loss": self.loss.tolist(),
        }


# ---------------------------------------------------------------- initial state


def _generator(seed: int, stream: int) -> torch.Generator:
    # Independent streams, so a change of shift or batch size never changes the weights.
    return generator(seed, stream, strides=(B1_STRIDE,))


def init_weights(c: B1Config) -> dict[str, torch.Tensor]:
    """nn.Linear's default init (U(±1/√fan_in) for weight and bias), in nn.Linear's layout:
    W1 (H, 3), b1 (H,), W2 (D, H), b2 (D,).

    Depends only on (seed, hidden, dim): all four paper settings start from the same projector.
    """
    g = _generator(c.seed, B1_WEIGHTS)

    def uniform(*shape: int, fan_in: int) -> torch.Tensor:
        bound = 1.0 / math.sqrt(fan_in)
        return (torch.rand(*shape, generator=g) * 2 - 1) * bound

    return {
        "W1": uniform(c.hidden, 3, fan_in=3), "b1": uniform(c.hidden, fan_in=3),
        "W2": uniform(c.dim, c.hidden, fan_in=c.hidden), "b2": uniform(c.dim, fan_in=c.hidden),
    }


def make_data(c: B1Config) -> B1Data:
    return make_b1_data(c.seed, c.n_points, c.n_aug, c.noise, c.effective_shift, c.noise_seed)


def sample_order(c: B1Config) -> tuple[torch.Tensor, torch.Tensor]:
    """Which samples each step sees: (anchor, partner) flat indices into the N·A augmented samples.

    Each epoch is a random permutation of all N·A samples cut into batches (a last partial batch
    is dropped); every anchor is paired with another augmentation of the same point.
    Returns two (E, steps_per_epoch, B) int64 tensors.
    """
    g = _generator(c.seed, B1_ORDER)
    n, a, b, steps = c.n_samples, c.n_aug, c.batch_size, c.steps_per_epoch
    anchors = torch.empty(c.epochs, steps, b, dtype=torch.long)
    offsets = torch.empty(c.epochs, steps, b, dtype=torch.long)
    for e in range(c.epochs):  # epoch by epoch, so more epochs never change the earlier ones
        anchors[e] = torch.randperm(n, generator=g)[: steps * b].view(steps, b)
        offsets[e] = torch.randint(1, a, (steps, b), generator=g)
    partners = anchors - anchors % a + (anchors % a + offsets) % a
    return anchors, partners


# ---------------------------------------------------------------- the stacked program
# Activations are kept feature-major, (S, features, samples): with 2 or 3 output features,
# row-major matmuls and norms run several times slower on a CPU than this layout.


def _forward(p: dict[str, torch.Tensor], x: torch.Tensor):
    """x: (S, 4, M) inputs with a row of ones (so W1 (S, H, 4) carries b1) -> h (S, H, M), |y| (S, 1, M), z (S, D, M)."""
    h = torch.bmm(p["W1"], x)
    y = torch.baddbmm(p["b2"], p["W2"], h)
    r = y.square().sum(1, keepdim=True).sqrt_()
    return h, r, y / r


def _step(p: dict[str, torch.Tensor], x: torch.Tensor, neg_lr: torch.Tensor) -> torch.Tensor:
    """One SGD step on L = mean over pairs of (1 - <z_a, z_b>), with the gradient through both views.

    x: (S, 4, 2B), columns [:B] anchors and [B:] their partners; neg_lr: (S, 1, 1) = -learning rate.
    Returns (S, 1, 2B) <z, ∂L/∂z> per sample (= -<z_a, z_b>/B), from which the caller gets the loss.
    """
    s, _, rows = x.shape
    h, r, z = _forward(p, x)
    # ∂L/∂z_a = -z_b / B and vice versa: swap the two halves.
    gz = z.view(s, -1, 2, rows // 2).flip(2).view_as(z).mul_(-2.0 / rows)
    return _backward_and_update(p, x, h, r, z, gz, neg_lr)


def _full_batch_step(p: dict[str, torch.Tensor], x: torch.Tensor, partner: torch.Tensor,
                     neg_lr: torch.Tensor) -> torch.Tensor:
    """The same step when the batch is the whole dataset: every sample is an anchor once, so each
    sample goes through the network once (not twice) and the pair gradients are gathered and scattered.

    x: (S, 4, M) all samples; partner: (S, 1, M) the partner of anchor m, as sample indices.
    ∂L/∂z_j = -(z_partner(j) + Σ_{m: partner(m) = j} z_m) / M. Returns (S, 1, M) like `_step`.
    """
    h, r, z = _forward(p, x)
    index = partner.expand_as(z)
    gz = torch.gather(z, 2, index).scatter_add_(2, index, z).mul_(-1.0 / x.shape[2])
    return _backward_and_update(p, x, h, r, z, gz, neg_lr)


def _backward_and_update(p, x, h, r, z, gz, neg_lr) -> torch.Tensor:
    """From ∂L/∂z (S, D, M) to an in-place SGD update of W1 (bias included) and W2, b2. Returns <z, ∂L/∂z>."""
    dot = (z * gz).sum(1, keepdim=True)
    # Back through z = y/|y| (drop the radial part, scale by 1/|y|), with the step size folded in.
    step_y = gz.addcmul_(z, dot, value=-1.0).div_(r).mul_(neg_lr)
    step_h = torch.bmm(p["W2"].transpose(1, 2), step_y)
    p["W2"].baddbmm_(step_y, h.transpose(1, 2))
    p["b2"].add_(step_y.sum(2, keepdim=True))
    p["W1"].baddbmm_(step_h, x.transpose(1, 2))
    return dot


def _with_ones(x: torch.Tensor) -> torch.Tensor:
    """(S, M, 3) samples -> (S, 4, M) feature-major with a row of ones for the first layer's bias."""
    return torch.cat([x.transpose(1, 2), torch.ones(x.shape[0], 1, x.shape[1])], dim=1).contiguous()


def _train_group(configs: Sequence[B1Config], progress: Callable[[int], None] | None,
                 live: LiveControl | None = None) -> list[B1Run]:
    """live: publish every epoch's augmented features and ‖s‖ to it and wait its turn; a stop ends the run
    at the epoch reached (the run then has fewer epochs than its config)."""
    c0 = configs[0]
    S, E, N, A, D = len(configs), c0.epochs, c0.n_points, c0.n_aug, c0.dim
    datas = [make_data(c) for c in configs]
    flat = torch.stack([d.x_aug.reshape(-1, 3) for d in datas])  # (S, M, 3)
    # Snapshots: dataset points and augmented samples in one forward pass.
    snapshot_x = _with_ones(torch.cat([torch.stack([d.x for d in datas]), flat], dim=1))
    p = _stacked_weights(configs)
    neg_lr = torch.tensor([-c.lr for c in configs]).view(-1, 1, 1)
    orders = [sample_order(c) for c in configs]
    anchors = torch.stack([o[0] for o in orders], dim=2)  # (E, steps, S, B)
    partners = torch.stack([o[1] for o in orders], dim=2)
    publish = _LiveView(live, N) if live is not None else None

    z_all = torch.empty(E + 1, S, N + N * A, D)
    loss = torch.empty(E + 1, S)
    with torch.no_grad():
        z_all[0] = _forward(p, snapshot_x)[2].transpose(1, 2)
        train_epoch = _epoch_trainer(p, flat, anchors, partners, neg_lr, c0)
        done = E
        if publish is not None and not publish(z_all[0], 0):
            done = 0
        for epoch in range(done):
            dots = train_epoch(epoch)
            # mean <z_a, z_b> = -(Σ_samples dot) / 2 per step
            loss[epoch + 1] = 1.0 + torch.stack(dots).sum(dim=(0, 2, 3)) / (2 * c0.steps_per_epoch)
            z_all[epoch + 1] = _forward(p, snapshot_x)[2].transpose(1, 2)
            if progress:
                progress(c0.steps_per_epoch)
            if publish is not None and not publish(z_all[epoch + 1], epoch + 1):
                done = epoch + 1
                break
    return _group_runs(configs, z_all[:done + 1], loss[:done + 1], anchors[:done])


def _stacked_weights(configs: Sequence[B1Config]) -> dict[str, torch.Tensor]:
    """Every config's initial weights stacked: W1 (S, H, 4) with b1 as its last column, W2 (S, D, H), b2 (S, D, 1)."""
    w = [init_weights(c) for c in configs]
    return {"W1": torch.stack([torch.cat([v["W1"], v["b1"][:, None]], dim=1) for v in w]),  # (S, H, 4)
            "W2": torch.stack([v["W2"] for v in w]), "b2": torch.stack([v["b2"] for v in w]).unsqueeze(2)}


def _epoch_trainer(p: dict[str, torch.Tensor], flat: torch.Tensor, anchors: torch.Tensor, partners: torch.Tensor,
                   neg_lr: torch.Tensor, c0: B1Config) -> Callable[[int], list[torch.Tensor]]:
    """-> train(epoch): that epoch's SGD steps on p, returning each step's <z, ∂L/∂z> (`_step`). A batch of the
    whole dataset takes `_full_batch_step`, which sends each sample through the network once."""
    if c0.batch_size == c0.n_samples:
        all_x = _with_ones(flat)
        # partner_of[e, s, 0, m]: the partner of sample m when m is the anchor (anchors: a permutation).
        partner_of = torch.empty(c0.epochs, len(flat), 1, flat.shape[1], dtype=torch.long)
        partner_of.scatter_(3, anchors[:, 0].unsqueeze(2), partners[:, 0].unsqueeze(2))
        return lambda epoch: [_full_batch_step(p, all_x, partner_of[epoch], neg_lr)]
    flat1 = torch.cat([flat, torch.ones(len(flat), flat.shape[1], 1)], dim=2)  # (S, M, 4)
    batch_idx = torch.cat([anchors, partners], dim=-1)  # (E, steps, S, 2B)
    rows = torch.arange(len(flat)).view(-1, 1)

    def train(epoch: int) -> list[torch.Tensor]:
        # One gather per epoch: (steps, S, 4, 2B)
        batches = flat1[rows, batch_idx[epoch]].transpose(-1, -2).contiguous()
        return [_step(p, batches[step], neg_lr) for step in range(c0.steps_per_epoch)]
    return train


class _LiveView:
    """A live run's view, published after every epoch: the augmented points' features and the norms of both
    centers (`center_norm_aug`, the paper's s, and `center_norm` of the dataset points)."""

    def __init__(self, live: LiveControl, n_points: int):
        self.live, self.n_points = live, n_points
        self.seen: list[int] = []
        self.snaps: list[torch.Tensor] = []
        self.logs: list[dict[str, torch.Tensor]] = []

    def __call__(self, z: torch.Tensor, epoch: int) -> bool:
        """z: (S, N + N·A, D) the epoch's snapshot. Waits the run's turn; False: stopped from the page."""
        n = self.n_points
        self.snaps.append(z[:, n:].clone())
        self.logs.append({"center_norm_aug": z[:, n:].mean(1).norm(dim=-1),
                          "center_norm": z[:, :n].mean(1).norm(dim=-1)})
        self.seen.append(epoch)  # last: a reader takes as many entries as there are epochs
        self.live.publish(self.seen, self.snaps, self.logs)
        return self.live.wait_turn(epoch) is not None


def _group_runs(configs: Sequence[B1Config], z_all: torch.Tensor, loss: torch.Tensor,
                anchors: torch.Tensor) -> list[B1Run]:
    """The runs of the epochs trained: z_all (E+1, S, N + N·A, D) snapshots, loss (E+1, S) (its epoch 0 filled
    in here), anchors (E, steps, S, B) the batches' anchors."""
    c0 = configs[0]
    E, S, N, A, D = len(anchors), len(configs), c0.n_points, c0.n_aug, c0.dim
    z, z_aug = z_all[:, :, :N], z_all[:, :, N:]
    loss[0] = _pair_loss(z_aug[0], c0)
    # The blue center: epoch e uses the source points of the last batch of epoch e (epoch 0: the first one).
    if E:
        src = anchors // A
        blue = torch.cat([src[:1, 0], src[:, -1]])  # (E+1, S, B)
    else:
        blue = torch.arange(min(c0.batch_size, N)).view(1, 1, -1).expand(1, S, -1) % N
    return [
        B1Run(config=c, z=z[:, i], z_aug=z_aug[:, i].reshape(E + 1, N, A, D), batch_index=blue[:, i], loss=loss[:, i])
        for i, c in enumerate(configs)
    ]


def _pair_loss(z_aug_flat: torch.Tensor, c: B1Config) -> torch.Tensor:
    """Mean over all pairs of different augmentations of one point of 1 - <z_a, z_b>. (S, N·A, D) -> (S,)."""
    zz = z_aug_flat.reshape(z_aug_flat.shape[0], c.n_points, c.n_aug, -1)
    m = zz.sum(2)
    same = (m * m).sum(-1) - (zz * zz).sum((-1, -2))  # Σ_{a≠b} <z_a, z_b> per point
    return 1.0 - same.mean(-1) / (c.n_aug * (c.n_aug - 1))


def train_b1(configs: Sequence[B1Config], progress: Callable[[int, int], None] | None = None) -> list[B1Run]:
    """Train every config; settings that share (batch size, epochs, sizes) run as one stacked program.

    Runs on one CPU thread: these tensors are tiny and extra threads only add overhead
    (with 2 threads on a 2-core machine a run was seen to take 10x longer).

    progress(done_steps, total_steps) is called after every epoch of every group.
    Returns the runs in the order of `configs`.
    """
    configs = list(configs)
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(configs):
        key = (c.batch_size, c.epochs, c.n_points, c.n_aug, c.hidden, c.dim)
        groups.setdefault(key, []).append(i)
    total = sum(configs[idx[0]].epochs * configs[idx[0]].steps_per_epoch for idx in groups.values())
    done = 0

    def tick(steps: int) -> None:
        nonlocal done
        done += steps
        if progress:
            progress(done, total)

    runs: list[B1Run | None] = [None] * len(configs)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for idx in groups.values():
            for i, run in zip(idx, _train_group([configs[i] for i in idx], tick)):
                runs[i] = run
    finally:
        torch.set_num_threads(threads)
    return runs  # type: ignore[return-value]


def live_b1(config: B1Config, playing: bool = True, epochs_per_second: float | None = None,
            idle_hold_s: float | None = None) -> LiveTraining:
    """`config` trained live (`lab.train.live`), one epoch at a time: the view gets the augmented points'
    features (N·A, D) of every epoch and ‖s‖ (`center_norm_aug`, the paper's s, and `center_norm`). No knob
    changes mid-run: every B.1 knob changes the data or the schedule, so a change starts a new run. Held
    while nobody has read it for idle_hold_s (`LiveControl`)."""
    def train(c: B1Config, control: LiveControl) -> B1Run:
        return _train_group([c], None, live=control)[0]
    return LiveTraining(config, train, playing, epochs_per_second, idle_hold_s=idle_hold_s)
