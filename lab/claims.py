"""The paper's claims that toy data can check, run over seeds, each with its numbers and a verdict.

Every setting is the method's defaults (and the toy trainer's) plus the one knob the claim is about:
nothing here is tuned to make a claim pass. A claim is checked on each dataset separately; the
verdict is "held" when it holds on every dataset, "did not hold" when on none, "mixed" otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from lab.train.toy import ToyConfig, ToyRun, train_toys

COLLAPSED = 0.9  # mean final center_norm above this: collapsed (issue #3, Fig. 4)
DATASETS = ("blobs", "moons")

Variant = tuple[str, str, tuple[tuple[str, object], ...]]  # (label, method, params)


@dataclass(frozen=True)
class Numbers:
    """Final-epoch mean and std over seeds of the metrics a verdict reads."""

    center_norm: float
    center_norm_std: float
    knn_acc: float
    knn_acc_std: float
    diverged: str | None = None

    def text(self) -> str:
        return (f"‖s‖ {self.center_norm:.2f} ± {self.center_norm_std:.2f}, "
                f"kNN {self.knn_acc:.2f} ± {self.knn_acc_std:.2f}" + (" (diverged)" if self.diverged else ""))


@dataclass(frozen=True)
class Claim:
    key: str
    statement: str
    source: str
    variants: tuple[Variant, ...]
    check: Callable[[Mapping[str, Numbers]], tuple[bool, str]] = field(compare=False)


@dataclass(frozen=True)
class Result:
    claim: Claim
    verdict: str  # "held" | "did not hold" | "mixed"
    per_dataset: dict[str, tuple[bool, str]]
    numbers: dict[str, dict[str, Numbers]]  # dataset -> variant label -> numbers


def _collapsed(n: Numbers) -> bool:
    return n.center_norm > COLLAPSED


def _fig4(n):
    std, nop, nosg = n["simsiam"], n["no predictor"], n["no stop-gradient"]
    ok = (_collapsed(nop) and _collapsed(nosg)
          and std.center_norm <= min(nop.center_norm, nosg.center_norm) - 0.2)
    return ok, f"both ablations above {COLLAPSED}; simsiam at least 0.2 lower"


def _fig4_knn(n):
    std, nop, nosg = n["simsiam"], n["no predictor"], n["no stop-gradient"]
    return std.knn_acc >= max(nop.knn_acc, nosg.knn_acc) + 0.15, "simsiam's kNN at least 0.15 above both ablations"


def _fig3(n):
    simp, sims = n["simplified"], n["simsiam"]
    ok = simp.center_norm < 0.2 and simp.knn_acc >= sims.knn_acc - 0.02
    return ok, "simplified ‖s‖ < 0.2 and kNN within 0.02 of simsiam (or better)"


def _first_collapses_second_not(a: str, b: str):
    def check(n):
        return _collapsed(n[a]) and not _collapsed(n[b]), f"{a} above {COLLAPSED}, {b} not"
    return check


def _none_collapse(*labels: str):
    def check(n):
        return all(not _collapsed(n[x]) for x in labels), f"{', '.join(labels)}: ‖s‖ ≤ {COLLAPSED}"
    return check


def _swav(n):
    ok = not _collapsed(n["fixed prototypes"]) and _collapsed(n["no Sinkhorn"])
    return ok, f"fixed prototypes ≤ {COLLAPSED}, no Sinkhorn above it"


def _byol(n):
    low, mid, high = n["momentum 0.9"], n["momentum 0.99"], n["momentum 0.999"]
    ok = low.center_norm > mid.center_norm > high.center_norm
    return ok, "‖s‖ falls as the momentum rises (0.9 > 0.99 > 0.999)"


CLAIMS: tuple[Claim, ...] = (
    Claim("fig4", "SimSiam without predictor or without stop-gradient collapses; standard SimSiam does not",
          "paper §3.2, Fig. 4",
          (("simsiam", "simsiam", ()), ("no predictor", "simsiam", (("predictor", False),)),
           ("no stop-gradient", "simsiam", (("stop_grad", False),))), _fig4),
    Claim("fig4_knn", "... and the collapsed ablations classify clearly worse (kNN)", "paper §3.2, Fig. 4",
          (("simsiam", "simsiam", ()), ("no predictor", "simsiam", (("predictor", False),)),
           ("no stop-gradient", "simsiam", (("stop_grad", False),))), _fig4_knn),
    Claim("fig3", "the simplified objective does at least as well as SimSiam", "paper §3.1, Fig. 3",
          (("simplified", "simplified", ()), ("simsiam", "simsiam", ())), _fig3),
    Claim("dino_centering", "DINO without centering collapses", "paper Fig. B.4",
          (("no centering", "dino", (("centering", False),)), ("dino", "dino", ())),
          _first_collapses_second_not("no centering", "dino")),
    Claim("barlow_lam0", "Barlow Twins with λ = 0 and BatchNorm does not collapse", "paper §3, Fig. 5",
          (("lam 0", "barlow", (("lam", 0.0),)), ("barlow", "barlow", ())), _none_collapse("lam 0")),
    Claim("swav_fixed", "SwAV with fixed prototypes does not collapse; without Sinkhorn it does",
          "paper §A.1, Fig. 6",
          (("fixed prototypes", "swav", (("fixed_prototypes", True),)),
           ("no Sinkhorn", "swav", (("sinkhorn_iters", 0),)), ("swav", "swav", ())), _swav),
    Claim("byol_momentum", "a lower BYOL momentum gives a larger center", "paper §2.4, Fig. 7",
          (("momentum 0.9", "byol", (("momentum", 0.9),)), ("momentum 0.99", "byol", (("momentum", 0.99),)),
           ("momentum 0.999", "byol", (("momentum", 0.999),))), _byol),
    Claim("simsiam_predictor_lr", "SimSiam with the predictor at 1 % of the learning rate collapses",
          "paper Fig. B.6",
          (("predictor lr 1 %", "simsiam", (("predictor_lr_scale", 0.01),)), ("simsiam", "simsiam", ())),
          _first_collapses_second_not("predictor lr 1 %", "simsiam")),
)
CLAIM_KEYS = tuple(c.key for c in CLAIMS)


def summarize(run: ToyRun) -> Numbers:
    """Final-epoch mean and std over seeds of center_norm and knn_acc."""
    c, k = run.metrics["center_norm"][-1], run.metrics["knn_acc"][-1]
    return Numbers(c.mean().item(), c.std(unbiased=False).item(), k.mean().item(), k.std(unbiased=False).item(),
                   run.diverged)


def claim_configs(claims: Sequence[Claim], seeds: int = 5, epochs: int | None = None,
                  datasets: Sequence[str] = DATASETS) -> dict[tuple[str, str, tuple], ToyConfig]:
    """Every distinct (method, params, dataset) the claims need, once each."""
    extra = {} if epochs is None else {"epochs": epochs}
    out = {}
    for claim in claims:
        for _, method, params in claim.variants:
            for ds in datasets:
                out.setdefault((method, ds, params), ToyConfig(method=method, dataset=ds, params=params,
                                                               seeds=seeds, **extra))
    return out


def run_claims(keys: Sequence[str] | None = None, seeds: int = 5, epochs: int | None = None,
               datasets: Sequence[str] = DATASETS,
               progress: Callable[[int, int], None] | None = None) -> list[Result]:
    """Train what the chosen claims need (shared settings once) and judge each claim."""
    unknown = [k for k in (keys or []) if k not in CLAIM_KEYS]
    if unknown:
        raise ValueError(f"unknown claim {', '.join(unknown)}; valid: {', '.join(CLAIM_KEYS)}")
    claims = [c for c in CLAIMS if keys is None or c.key in keys]
    configs = claim_configs(claims, seeds, epochs, datasets)
    runs = dict(zip(configs, train_toys(list(configs.values()), progress)))
    return judge(claims, runs, datasets)


def judge(claims: Sequence[Claim], runs: Mapping[tuple[str, str, tuple], ToyRun],
          datasets: Sequence[str] = DATASETS) -> list[Result]:
    """Verdicts for claims on runs already trained, keyed like `claim_configs` ((method, dataset, params))."""
    results = []
    for claim in claims:
        numbers = {ds: {label: summarize(runs[(m, ds, p)]) for label, m, p in claim.variants} for ds in datasets}
        per_dataset = {ds: claim.check(numbers[ds]) for ds in datasets}
        held = [ok for ok, _ in per_dataset.values()]
        verdict = "held" if all(held) else "did not hold" if not any(held) else "mixed"
        results.append(Result(claim, verdict, per_dataset, numbers))
    return results


def results_table(results: Sequence[Result]) -> str:
    """Plain-text report: one block per claim with the verdict, the test and the numbers per dataset."""
    lines = []
    for r in results:
        lines.append(f"[{r.verdict}] {r.claim.statement} ({r.claim.source})")
        for ds, (ok, test) in r.per_dataset.items():
            lines.append(f"    {ds}: {'held' if ok else 'did not hold'} — test: {test}")
            for label, n in r.numbers[ds].items():
                lines.append(f"        {label:18s} {n.text()}")
    return "\n".join(lines)
