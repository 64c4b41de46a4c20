"""The paper's experiments, each declared once: its figure, its variants as knob overrides, the paper's
statement, and the rule of every verdict on it.

Read by the toy pages (Compare's figures), the claims (`lab.claims`: toy runs judged by the rules here),
the notebooks, the B.1 trainer's four settings, and the ImageNet presets and their figures
(`lab.engine.presets`, `lab.render.runs`). Layer: base (imports only `lab.core.geometry`, `lab.core.vocab` and
`lab.core.collapse`): declarations and pure verdict rules over summaries, nothing that trains.

A variant runs at the scales it names: "toy" (the playground's trainer), "imagenet" (the engine; also
any real-image run of the same preset), "b1" (the Appendix B.1 trainer, whose knobs are B1Config
fields, not a method's). `imagenet_knobs` are added at ImageNet scale only (a recipe's schedule turned
off so that a run keeps the value it is named after).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from lab.core import collapse as C
from lab.core import geometry as geo
from lab.core.vocab import COLLAPSE_THRESHOLD, first_epoch_above

Knobs = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Variant:
    label: str  # what a page, a claim and a legend call it
    method: str  # a method name (DESIGN §4); "invariance" for B.1
    knobs: Knobs = ()  # overrides of the method's defaults (B.1: of B1Config's)
    scales: tuple[str, ...] = ("toy", "imagenet")
    run: str | None = None  # the ImageNet preset's run name
    imagenet_knobs: Knobs = ()

    def knobs_at(self, scale: str) -> dict[str, Any]:
        return {**dict(self.knobs), **(dict(self.imagenet_knobs) if scale == "imagenet" else {})}


@dataclass(frozen=True)
class Claim:
    """One verdict on an experiment: `rule(summaries) -> held`, where summaries maps each variant's label
    to what the rule reads (toy: `lab.claims.Numbers`; B.1: the runs of one seed)."""

    key: str
    statement: str
    rule_text: str  # the rule in words, shown next to the verdict
    rule: Callable[[Mapping[str, Any]], bool] = field(compare=False)
    from_paper: bool = True  # False: a check of ours that puts a paper claim in context
    toy: str | None = None  # an engine claim's twin on the toy: the key of the toy claim of the same statement
    reads: tuple[str, ...] = ()  # an engine claim's variants that a seed needs; () = all of its experiment's
    metrics: tuple[str, ...] = ("center_norm",)  # what its rule reads of each run: the pages plot these
    # A toy claim about a knob's direction is also shown over the knob's range, so that no chosen value decides
    # it: (the axis as `lab.train.sweep.parse_axis` reads it, log spacing), one knob and the seeds.
    sweep: tuple[str, bool] | None = None
    # The control arm: the variant that runs the standard method. Where it collapsed in a seed the claim is
    # untestable in that seed (`control_health`). None: a claim with no control (a method alone, B.1).
    control: str | None = None


@dataclass(frozen=True)
class Experiment:
    key: str
    figure: str  # "Fig. 4"
    title: str
    statement: str  # what the paper says, in a sentence
    source: str  # where in the paper
    variants: tuple[Variant, ...]
    claims: tuple[Claim, ...] = ()
    preset: str | None = None  # the ImageNet preset that runs it
    panels: tuple[str, ...] = ("center_norm", "knn_acc")  # the metrics its figure shows
    note: str = ""  # what the paper's text leaves open and the lab chose
    engine_claims: tuple[Claim, ...] = ()  # judged seed by seed on the engine's runs (`RunNumbers`)

    def variants_at(self, scale: str) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if scale in v.scales)


# The toy figures' setting (Figs. 3 and 4): two of the paper's 2-D sets, 3 classes each, and 5 seeds, the mean
# drawn with the seeds' spread shaded. Every toy claim runs on these (`lab.claims`).
TOY_DATASETS = ("blobs", "moons")
TOY_SEEDS = 5


# ----------------------------------------------------------------------------------------- verdict rules
# Toy rules read one seed's final `center_norm` and `knn_acc` per variant (`lab.claims.SeedNumbers`; the
# variants of one seed number share their initial weights and batches). A claim is judged seed by seed
# (`seed_verdict`): on a data set it held when it holds in every seed, did not hold when in none, and is
# mixed otherwise, with the count beside it ("4 of 5 seeds"). A mean over seeds hides split outcomes
# (SimSiam on moons: 3 of 20 seeds above 0.9), so no verdict reads one. Written before the claims were rerun
# seed by seed (issue 12); the engine's claims follow the same rule.

def _collapsed(n) -> bool:
    return n.center_norm > COLLAPSE_THRESHOLD


def _fig4(n) -> bool:
    std, nop, nosg = n["simsiam"], n["no predictor"], n["no stop-gradient"]
    return (_collapsed(nop) and _collapsed(nosg)
            and std.center_norm <= min(nop.center_norm, nosg.center_norm) - 0.2)


def _fig4_knn(n) -> bool:
    return n["simsiam"].knn_acc >= max(n["no predictor"].knn_acc, n["no stop-gradient"].knn_acc) + 0.15


def _fig3(n) -> bool:
    return n["simplified"].center_norm < 0.2 and n["simplified"].knn_acc >= n["simsiam"].knn_acc - 0.02


def _first_collapses_second_not(a: str, b: str) -> Callable:
    return lambda n: _collapsed(n[a]) and not _collapsed(n[b])


def _swav(n) -> bool:
    return not _collapsed(n["fixed prototypes"]) and _collapsed(n["no Sinkhorn"])


def _byol(n) -> bool:
    return n["momentum 0.9"].center_norm > n["momentum 0.99"].center_norm > n["momentum 0.999"].center_norm


# B.1 rules read the four runs of one seed (`lab.train.b1.B1Run`, by setting name). The center is the
# paper's s = E_x E_ω[z(ω(x))], over the augmented features (`center_norm_aug`): the samples the loss sees.
B1_TURNED_DEG = 30.0  # a center that moved by more than this has visibly turned
B1_SETTINGS = ("mini_batch_sgd_centered_augmentation", "mini_batch_sgd_shifted_augmentation",
               "batch_sgd_centered_augmentation", "batch_sgd_shifted_augmentation")


def _b1_first(run) -> int | None:
    return first_epoch_above(run.metrics()["center_norm_aug"])


def _b1_all_collapse(runs) -> bool:
    return all(runs[name].metrics()["center_norm_aug"][-1] > COLLAPSE_THRESHOLD for name in B1_SETTINGS)


def _b1_faster(runs, per_step: bool) -> bool:
    held = True
    for kind in ("centered", "shifted"):
        at = []
        for mode in ("mini_batch_sgd", "batch_sgd"):
            run = runs[f"{mode}_{kind}_augmentation"]
            e = _b1_first(run)
            at.append(None if e is None else e * (run.config.steps_per_epoch if per_step else 1))
        held &= at[0] is not None and (at[1] is None or at[0] < at[1])
    return held


B1_MODES = ("mini_batch_sgd", "batch_sgd")
# The null of the turn: a centered run that differs from the centered one only in its augmentation noise
# draw (`B1Config.noise_seed`). Two centered runs can end with centers apart by chance alone; a shifted
# augmentation turns the center only if it turns it further than that.
B1_NULL_SUFFIX = "_null"


def b1_null_name(mode: str) -> str:
    return f"{mode}_centered_augmentation{B1_NULL_SUFFIX}"


def b1_turn_deg(runs, mode: str) -> float:
    """The angle between the final centers of the centered and the shifted run of one optimizer."""
    return geo.angle_between_deg(runs[f"{mode}_centered_augmentation"].s_aug[-1],
                                 runs[f"{mode}_shifted_augmentation"].s_aug[-1]).item()


def b1_null_turn_deg(runs, mode: str) -> float:
    """The angle between the final centers of two centered runs that differ only in their noise draw."""
    return geo.angle_between_deg(runs[f"{mode}_centered_augmentation"].s_aug[-1],
                                 runs[b1_null_name(mode)].s_aug[-1]).item()


def _b1_turns(runs) -> bool:
    return all(b1_turn_deg(runs, mode) > max(B1_TURNED_DEG, b1_null_turn_deg(runs, mode)) for mode in B1_MODES)


# ----------------------------------------------------------------------------------------- engine rules
# The engine's claims are judged seed by seed: a rule reads one seed's runs, {variant label: RunNumbers},
# and the verdict counts the seeds it holds in (`engine_verdict`). Written before any preset run, from the
# mechanism, not from results:
# - collapse is ‖s‖ above the shared threshold, read where collapse shows (before a projector's output
#   BatchNorm, `center_norm`); the untrained model's ‖s‖ is reported beside it, not subtracted;
# - dimensional collapse: fewer effective dimensions than C − 1, the fewest in which C class means can lie
#   apart (C = 10 on Fashion-MNIST, 100 on ImageNet-100);
# - a representation that learned nothing usable classifies near chance: kNN below 5 × chance (0.5 on
#   Fashion-MNIST, 0.05 on ImageNet-100) counts as failed;
# - an ordering over a sweep (BYOL's momentum) holds when the rank correlation is at most −0.8: with four
#   values, at most one neighbouring pair out of order.
KNN_CHANCE_FACTOR = 5.0
ORDER_RHO = -0.8


@dataclass(frozen=True)
class RunNumbers:
    """What an engine verdict reads of one run: its last epoch line and its epoch-0 (untrained) line."""

    center_norm: float  # the reading that can show collapse (before a projector's output BN)
    center_norm_post_bn: float
    effective_rank: float  # of the pre-BN views
    effective_rank_post_bn: float  # of what the loss is given (Barlow: the standardised embedding)
    effective_rank_max: float
    knn_acc: float | None
    n_classes: int
    epoch: int
    start_center_norm: float | None = None  # epoch 0
    start_knn_acc: float | None = None

    @property
    def collapsed(self) -> bool:
        return self.center_norm > COLLAPSE_THRESHOLD

    @property
    def rank_collapsed(self) -> bool:
        return self.effective_rank < self.n_classes - 1

    @property
    def knn_failed(self) -> bool:
        return self.knn_acc is None or self.knn_acc < KNN_CHANCE_FACTOR / self.n_classes


def _rank_correlation(xs: list[float], ys: list[float]) -> float:
    """Spearman's rho (no ties expected)."""
    def ranks(v):
        order = sorted(range(len(v)), key=v.__getitem__)
        r = [0.0] * len(v)
        for i, j in enumerate(order):
            r[j] = float(i)
        return r
    rx, ry = ranks(xs), ranks(ys)
    n = len(xs)
    return 1 - 6 * sum((a - b) ** 2 for a, b in zip(rx, ry)) / (n * (n * n - 1))


def _e_collapses_other_not(a: str, b: str) -> Callable:
    return lambda r: r[a].collapsed and not r[b].collapsed


def _e_barlow_lam0(r) -> bool:
    lam0 = r["lam 0"]
    return not lam0.collapsed and lam0.effective_rank_post_bn >= lam0.n_classes - 1 and not lam0.knn_failed


def _e_swav_fixed(r) -> bool:
    fixed = r["fixed prototypes"]
    return not fixed.collapsed and not fixed.knn_failed


def _e_byol_order(r) -> bool:
    runs = [(float(label.split()[-1]), n.center_norm) for label, n in r.items() if label.startswith("momentum ")]
    return len(runs) >= 3 and _rank_correlation(*map(list, zip(*runs))) <= ORDER_RHO


def _e_invariance(r) -> bool:
    return r["invariance"].collapsed


# ----------------------------------------------------------------------------------------- control health
# Controls first (issue 21): an ablation's verdict compares its arm with the standard method's, and that means
# something only where the standard method did not collapse too. So before a seed's verdict is read, the
# claim's control arm (`Claim.control`) is judged by its method's own collapse signature
# (`lab.core.collapse`, each method module's `signature`) on its last readings, and a seed whose control is
# unhealthy is *untestable*: it counts neither for nor against the claim. Written from the mechanism before
# any run was judged by it:
# - every sign of the method's signature (a loss at its collapsed value, DINO's and SwAV's per-sample entropy
#   at ln K, Barlow's standardised rank) and of the readings any embedding is judged by (`collapse.EMBEDDING`:
#   ‖s‖ and the share of views near the mean direction ≥ the threshold, the effective rank on the sphere below
#   C − 1), since the claims judge every arm by ‖s‖ and a control must pass the test its ablation is held to
#   (Barlow's own signature leaves ‖s‖ out); except that ‖s‖ is read against the untrained model's: a head can
#   start above the threshold (DINO's on a ResNet: 0.87–0.95), so ‖s‖ counts only where training raised it;
# - a kNN accuracy below the floor a representation that learned something clears: 5 × chance (as the engine
#   rules), at most halfway from chance to 1 (the toy's 3 classes: 0.67).


@dataclass(frozen=True)
class Health:
    healthy: bool
    why: str  # the readings that decided it, in words

    def to_json(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "why": self.why}


def knn_floor(n_classes: int) -> float:
    chance = 1.0 / n_classes
    return min(KNN_CHANCE_FACTOR * chance, (1.0 + chance) / 2)


def control_health(signature, readings: Mapping[str, Any], n_classes: int | None,
                   start_center_norm: float | None = None) -> Health:
    """A control arm's health from its last readings (an epoch line's keys: center_norm, center_share,
    effective_rank, knn_acc, the method's own) by its method's `signature` (a tuple of `lab.core.collapse.Sign`).
    start_center_norm: the untrained model's ‖s‖ (None: unknown, ‖s‖ read alone)."""
    # The readings every arm is judged by (`collapse.EMBEDDING`: ‖s‖, the share near s, the rank) join the
    # method's own signs: a control must pass the test its claim's ablation is held to.
    signature = tuple(signature) + tuple(sign for sign in C.EMBEDDING if sign not in signature)
    signs = [sign for sign in C.collapse_signs(signature, readings, n_classes=n_classes)
             if not (sign["metric"] == "center_norm" and start_center_norm is not None
                     and sign["value"] <= start_center_norm)]
    problems = [C.phrase(sign) for sign in signs]
    knn = readings.get("knn_acc")
    if knn is not None and n_classes and knn < knn_floor(n_classes):
        problems.append(f"kNN {knn:.3f} < {knn_floor(n_classes):.3f} (learned next to nothing)")
    if problems:
        return Health(False, "collapsed: " + "; ".join(problems))
    start = "" if start_center_norm is None else f" (untrained {start_center_norm:.3f})"
    shown = [f"‖s‖ {readings['center_norm']:.3f}{start}" if readings.get("center_norm") is not None else ""]
    shown += [f"{name} {readings[key]:.3g}" for key, name in (("center_share", "share near s"),
              ("effective_rank", "rank"), ("knn_acc", "kNN")) if readings.get(key) is not None]
    return Health(True, "healthy: " + ", ".join(x for x in shown if x))


def seed_verdict(claim: Claim, seeds: Mapping[int, Mapping[str, Any]], labels: tuple[str, ...],
                 health: Mapping[int, Health] | None = None) -> dict[str, Any]:
    """claim judged in each seed that has all its `labels` and a healthy control: {"held", "n", "per_seed":
    {seed: bool}, "untestable": {seed: why}, "health": {seed: Health JSON}, "verdict"}: "held" in every
    testable seed, "did not hold" in none, "mixed" otherwise, "untestable" where every complete seed's control
    collapsed, "no runs" without a complete seed. health: the control's, by seed (`control_health`; None or a
    seed missing: not judged, e.g. a claim without a control). The rule of toy and engine claims alike."""
    health = health or {}
    complete = {seed: runs for seed, runs in sorted(seeds.items()) if all(label in runs for label in labels)}
    untestable = {seed: health[seed].why for seed in complete if seed in health and not health[seed].healthy}
    per_seed = {seed: bool(claim.rule(runs)) for seed, runs in complete.items() if seed not in untestable}
    held, n = sum(per_seed.values()), len(per_seed)
    if n == 0:
        verdict = "untestable" if untestable else "no runs"
    else:
        verdict = "held" if held == n else "did not hold" if held == 0 else "mixed"
    return {"held": held, "n": n, "per_seed": per_seed, "untestable": untestable,
            "health": {seed: health[seed].to_json() for seed in complete if seed in health}, "verdict": verdict}


engine_verdict = seed_verdict


def combined_verdict(verdicts: list[str]) -> str:
    """One claim over several data sets: held on all, did not hold on all, else mixed; a data set where it was
    untestable (its control collapsed in every seed) says nothing either way; untestable on all: untestable."""
    if verdicts and all(v == "untestable" for v in verdicts):
        return "untestable"
    verdicts = [v for v in verdicts if v != "untestable"]
    if verdicts and all(v == "held" for v in verdicts):
        return "held"
    if verdicts and all(v == "did not hold" for v in verdicts):
        return "did not hold"
    return "mixed"


# ----------------------------------------------------------------------------------------- the registry

_T = COLLAPSE_THRESHOLD
_B1 = ("b1",)
EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment(
        "b1", "Fig. B.2 / B.3", "Collapse on the circle (Appendix B.1)",
        "With the invariance loss alone all four settings collapse; mini-batch SGD collapses faster than batch "
        "SGD; a shifted augmentation turns the center's direction.", "paper Appendix B.1, Figs. B.2 and B.3",
        (Variant("mini_batch_sgd_centered_augmentation", "invariance",
                 (("batch_size", 50), ("epochs", 200), ("augmentation", "centered")), _B1),
         Variant("mini_batch_sgd_shifted_augmentation", "invariance",
                 (("batch_size", 50), ("epochs", 200), ("augmentation", "shifted")), _B1),
         Variant("batch_sgd_centered_augmentation", "invariance",
                 (("batch_size", 1000), ("epochs", 500), ("augmentation", "centered")), _B1),
         Variant("batch_sgd_shifted_augmentation", "invariance",
                 (("batch_size", 1000), ("epochs", 500), ("augmentation", "shifted")), _B1)),
        (Claim("b1_collapse", f"all four settings collapse (final ‖s‖ > {_T})",
               f"final ‖s‖ of the augmented points above {_T} in all four", _b1_all_collapse),
         Claim("b1_faster", f"mini-batch SGD reaches ‖s‖ > {_T} in fewer epochs than batch SGD",
               "for centered and shifted augmentations alike", lambda r: _b1_faster(r, per_step=False)),
         Claim("b1_faster_steps", "... and in fewer optimizer steps (mini-batch: 20 an epoch, batch: 1; read at "
               "epoch ends)", "a check of ours that puts the claim above in context",
               lambda r: _b1_faster(r, per_step=True), from_paper=False),
         Claim("b1_turns", f"shifted augmentation turns the center (> {B1_TURNED_DEG:.0f}° from the centered run's)",
               f"for mini-batch and batch SGD alike, by more than {B1_TURNED_DEG:.0f}° and more than the null: the "
               "turn between the centered run and one that differs only in its augmentation noise draw", _b1_turns)),
        panels=("center_norm_aug", "center_norm", "batch_center_norm"),
        note="the paper gives neither the learning rate nor the augmentation noise; lab.train.b1 says which"),
    Experiment(
        "fig4", "Fig. 4", "SimSiam ablations",
        "Without the predictor or without stop-gradient SimSiam collapses (‖s‖ → 1, accuracy falls); with both "
        "it does not.", "paper §3.2, Fig. 4",
        (Variant("simsiam", "simsiam", scales=("toy",)),
         Variant("no predictor", "simsiam", (("predictor", False),), ("toy",)),
         Variant("no stop-gradient", "simsiam", (("stop_grad", False),), ("toy",))),
        (Claim("fig4", "SimSiam without predictor or without stop-gradient collapses; standard SimSiam does not",
               f"per seed: both ablations above {_T}; simsiam at least 0.2 lower", _fig4, control="simsiam"),
         Claim("fig4_knn", "... and the collapsed ablations classify clearly worse (kNN)",
               "per seed: simsiam's kNN at least 0.15 above both ablations", _fig4_knn, metrics=("knn_acc",),
               control="simsiam"))),
    Experiment(
        "fig3", "Fig. 3", "Simplified vs SimSiam",
        "The simplified objective, invariance plus an explicit penalty on ‖s‖, does at least as well as SimSiam.",
        "paper §3.1, Fig. 3",
        (Variant("simplified", "simplified", scales=("toy",)), Variant("simsiam", "simsiam", scales=("toy",))),
        (Claim("fig3", "the simplified objective does at least as well as SimSiam",
               "per seed: simplified ‖s‖ < 0.2 and kNN within 0.02 of simsiam's (or better)", _fig3,
               metrics=("center_norm", "knn_acc"), control="simsiam"),)),
    Experiment(
        "fig5", "Fig. 5", "Barlow Twins with and without the off-diagonal term",
        "Barlow Twins with λ = 0 (no off-diagonal term) and BatchNorm does not collapse; ‖s‖ before and after BN.",
        "paper §3.3, Fig. 5",
        (Variant("barlow", "barlow", run="barlow"), Variant("lam 0", "barlow", (("lam", 0.0),), run="barlow-lam0")),
        (Claim("barlow_lam0", "Barlow Twins with λ = 0 and BatchNorm does not collapse", f"per seed: lam 0 ‖s‖ ≤ {_T}",
               lambda n: not _collapsed(n["lam 0"]), control="barlow"),),
        preset="fig5-barlow", panels=("center_norm", "center_norm_post_bn", "effective_rank_post_bn", "knn_acc"),
        note="λ = 0 vs Barlow's 0.0051",
        engine_claims=(Claim("barlow_lam0", "Barlow Twins with λ = 0 and BatchNorm does not collapse",
                             f"lam 0: ‖s‖ ≤ {_T}, effective rank of the standardised embedding ≥ C − 1, and kNN ≥ "
                             f"{KNN_CHANCE_FACTOR:g} × chance", _e_barlow_lam0, control="barlow"),)),
    Experiment(
        "fig6", "Fig. 6", "SwAV with fixed vs learned prototypes",
        "SwAV with prototypes fixed at their random start does not collapse; Sinkhorn's equipartition is what "
        "keeps the center small.", "paper §3.4, A.1, Fig. 6",
        (Variant("swav", "swav", run="swav"),
         Variant("fixed prototypes", "swav", (("fixed_prototypes", True),), run="swav-fixed"),
         Variant("no Sinkhorn", "swav", (("sinkhorn_iters", 0),), ("toy",))),
        (Claim("swav_fixed", "SwAV with fixed prototypes does not collapse; without Sinkhorn it does",
               f"per seed: fixed prototypes ≤ {_T}, no Sinkhorn above it", _swav, control="swav"),),
        preset="fig6-swav-fixed", note="fixed vs learnable prototypes",
        engine_claims=(Claim("swav_fixed", "SwAV with fixed prototypes does not collapse",
                             f"fixed prototypes: ‖s‖ ≤ {_T} and kNN ≥ {KNN_CHANCE_FACTOR:g} × chance",
                             _e_swav_fixed, control="swav"),)),
    Experiment(
        "fig7", "Fig. 7", "BYOL EMA momentum sweep", "A lower BYOL momentum gives a larger center and a lower kNN.",
        "paper §2.4, §3.5, Fig. 7",
        tuple(Variant(f"momentum {m:g}", "byol", (("momentum", m),), scales, f"byol-m{m:g}",
                      (("momentum_schedule", False),))
              for m, scales in ((0.5, ("imagenet",)), (0.9, ("toy", "imagenet")), (0.99, ("toy", "imagenet")),
                                (0.996, ("imagenet",)), (0.999, ("toy",)))),
        (Claim("byol_momentum", "a lower BYOL momentum gives a larger center",
               "per seed: ‖s‖ falls as the momentum rises (0.9 > 0.99 > 0.999)", _byol,
               sweep=("momentum=0.5,0.8,0.9,0.95,0.98,0.99,0.995,0.999", False), control="momentum 0.99"),),
        preset="fig7-byol-momentum",
        note="the paper's text does not give Fig. 7's values: 0.5, 0.9, 0.99, 0.996 are ours (0.99 the paper's "
             "'typical value', 0.996 BYOL's) at ImageNet scale, 0.9, 0.99, 0.999 on the toy; constant ε (no cosine "
             "to 1), so each run keeps the ε it is named after",
        engine_claims=(Claim("byol_momentum", "a lower BYOL momentum gives a larger center",
                             f"rank correlation of momentum and final ‖s‖ ≤ {ORDER_RHO:g} (of four momenta, at most "
                             "one neighbouring pair out of order)", _e_byol_order, control="momentum 0.99"),)),
    Experiment(
        "b4", "Fig. B.4", "DINO with and without centering", "DINO without centering collapses.",
        "paper B.2, Fig. B.4",
        (Variant("dino", "dino", run="dino"),
         Variant("no centering", "dino", (("centering", False),), run="dino-nocenter")),
        (Claim("dino_centering", "DINO without centering collapses", f"per seed: no centering above {_T}, dino not",
               _first_collapses_second_not("no centering", "dino"), control="dino"),),
        preset="b4-dino-centering", note="centering on vs off",
        # The per-sample teacher entropy tells the two failures apart: ln K is the uniform one (centering
        # without enough sharpening), far below it with ‖s‖ = 1 every sample on one distribution.
        panels=("center_norm", "teacher_sample_entropy", "knn_acc"),
        engine_claims=(Claim("dino_centering", "DINO without centering collapses", f"no centering above {_T}, dino not",
                             _e_collapses_other_not("no centering", "dino"), control="dino"),)),
    Experiment(
        "b5", "Fig. B.5", "SimSiam with and without the predictor",
        "SimSiam without the predictor collapses: its center is much larger.", "paper B.3, Fig. B.5",
        (Variant("simsiam", "simsiam", scales=("imagenet",), run="simsiam"),
         Variant("no predictor", "simsiam", (("predictor", False),), ("imagenet",), "simsiam-nopred"),
         Variant("simsiam, no output BN", "simsiam", (("proj_out_bn", False),), ("imagenet",), "simsiam-nobn"),
         Variant("no predictor, no output BN", "simsiam", (("predictor", False), ("proj_out_bn", False)),
                 ("imagenet",), "simsiam-nopred-nobn")),
        preset="b5-simsiam-predictor", panels=("center_norm", "center_norm_post_bn", "effective_rank", "knn_acc"),
        note="predictor on vs off, each with and without the projector's output BatchNorm (the paper's runs have "
             "it: SimSiam's recipe)",
        engine_claims=(Claim("simsiam_predictor", "SimSiam without the predictor collapses; with it, it does not",
                             f"no predictor above {_T} (before the output BN), simsiam not",
                             _e_collapses_other_not("no predictor", "simsiam"), toy="fig4",
                             reads=("simsiam", "no predictor"), control="simsiam"),
                       Claim("simsiam_predictor_nobn", "... and the same without the projector's output BatchNorm",
                             f"no predictor, no output BN above {_T}, simsiam, no output BN not",
                             _e_collapses_other_not("no predictor, no output BN", "simsiam, no output BN"),
                             from_paper=False, reads=("simsiam, no output BN", "no predictor, no output BN"),
                             control="simsiam, no output BN"))),
    Experiment(
        "b6", "Fig. B.6", "SimSiam predictor learning rate 1 % … 100 %",
        "SimSiam with the predictor's learning rate at 1 % of the base collapses.", "paper B.4, Fig. B.6",
        (Variant("predictor lr 1 %", "simsiam", (("predictor_lr_scale", 0.01),), run="simsiam-predlr1"),
         Variant("predictor lr 10 %", "simsiam", (("predictor_lr_scale", 0.1),), ("imagenet",), "simsiam-predlr10"),
         Variant("simsiam", "simsiam", (("predictor_lr_scale", 1.0),), ("imagenet",), "simsiam-predlr100"),
         Variant("simsiam", "simsiam", scales=("toy",))),
        (Claim("simsiam_predictor_lr", "SimSiam with the predictor at 1 % of the learning rate collapses",
               f"per seed: predictor lr 1 % above {_T}, simsiam not",
               _first_collapses_second_not("predictor lr 1 %", "simsiam"), sweep=("predictor_lr_scale=0.001:1:8", True),
               control="simsiam"),),
        preset="b6-simsiam-predictor-lr", note="predictor lr 1 % … 100 % of the base lr; the text names 1 %, 10 % "
                                               "and 100 %",
        engine_claims=(Claim("simsiam_predictor_lr", "SimSiam with the predictor at 1 % of the learning rate collapses",
                             f"predictor lr 1 % above {_T}, simsiam (100 %) not",
                             _e_collapses_other_not("predictor lr 1 %", "simsiam"), control="simsiam"),)),
    Experiment(
        "invariance", "§2.1", "The invariance loss alone",
        "Minimising only the distance between two views of an image has a trivial solution: every image on one "
        "point (‖s‖ → 1).", "paper §1, §2.1",
        (Variant("invariance", "invariance", scales=("imagenet",), run="invariance"),),
        preset="baseline-invariance", panels=("center_norm", "effective_rank", "knn_acc"),
        note="the baseline every other method adds a mechanism to: SimSiam's projector and optimizer, no predictor, "
             "no stop-gradient",
        engine_claims=(Claim("invariance_collapses", "the invariance loss alone collapses", f"invariance above {_T}",
                             _e_invariance),)),
)
BY_KEY: dict[str, Experiment] = {e.key: e for e in EXPERIMENTS}
BY_PRESET: dict[str, Experiment] = {e.preset: e for e in EXPERIMENTS if e.preset}


def experiment(key: str) -> Experiment:
    if key not in BY_KEY:
        raise ValueError(f"unknown experiment {key!r}; valid: {', '.join(BY_KEY)}")
    return BY_KEY[key]


def toy_twin(claim: Claim) -> str | None:
    """The key of the toy claim that checks an engine claim's statement: its `toy`, else its own key where the
    toy has a claim of that key."""
    toy_keys = {c.key for _, c in claims_at("toy")}
    key = claim.toy or claim.key
    return key if key in toy_keys else None


def engine_claims() -> tuple[tuple[Experiment, Claim], ...]:
    """Every claim judged on the engine's preset runs, in the registry's order."""
    return tuple((e, c) for e in EXPERIMENTS for c in e.engine_claims)


def claims_at(scale: str) -> tuple[tuple[Experiment, Claim], ...]:
    """Every claim of the experiments that run at `scale`, in the registry's order."""
    return tuple((e, c) for e in EXPERIMENTS for c in e.claims if e.variants_at(scale))
