"""`python -m lab.bench b1|toy|sweep|live|ui|class|imagenet|fmnist|doctor|real`: the lab's trainers (and GIF maker) against plain
implementations, as ratios.

b1 targets (issue #2): training ≥ 10× faster than a plain per-step PyTorch loop doing the same steps,
and a 200-frame 480-px GIF ≥ 5× faster than Matplotlib FuncAnimation + PillowWriter; issue #13: the same frames
as an MP4 ≥ 5× faster than FuncAnimation + FFMpegWriter.
toy targets (issue #3): the Fig. 4 suite (SimSiam, no predictor, no stop-gradient × blobs, moons × 5
seeds) ≥ 10× faster than a plain per-seed PyTorch loop doing the same steps, and under 5 s.
sweep target (issue #12): the 6 × 6 SimSiam lr × predictor_lr_scale grid (1 seed per cell) in under 15 s,
against the same 36 settings trained one after another with `train_toy`.
live (issue #13): one live seed (LiveTraining, as fast as it trains) against the plain per-seed loop, every
method on blobs, and the time to the first frame (lab/bench/live.py).
ui (issue #13): a real chromium on `streamlit run app.py`: knob change -> first live frame (target 1 s, goal
0.5 s) and live updates a second (target >= 10), every method (tools/bench/ui.py).
class (issue #13): 20 sessions on one lesson link (first live frame within 5 s, trained once), then 10 moving
knobs (first frame within 2 s), through Streamlit's websocket protocol on `streamlit run app.py`
(tools/bench/classroom.py).
doctor (issue 22): `lab.doctor.check` on a memory-mapped 1 M × 2048 .npy in under a minute with bounded memory,
against np.load + torch computing the same readings, each in a fresh process (time, peak memory; lab/bench/doctor.py).
real (issue 23): a real chromium on `streamlit run app.py`, the Real images page trained live: "Train live" -> first
frame (target 1 s) and first trained update (target 3 s), updates a second (target >= 2), and the live trainer's
steps a second against a plain loop of the same model (tools/bench/real.py); --minutes: the server's memory.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lab.core.experiments import experiment


def _best_of(repeats: int, fn) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_b1(repeats: int, frames: int, size: int) -> dict:
    from lab.render.frames import gif_bytes
    from lab.core.schedules import evenly_spaced
    from lab.train.b1 import PAPER_SETTINGS, paper_config, train_b1
    from lab.train.reference import train_plain

    configs = [paper_config(n) for n in PAPER_SETTINGS]
    steps = sum(c.epochs * c.steps_per_epoch for c in configs)
    train_b1([paper_config(n, epochs=2) for n in PAPER_SETTINGS])  # warm up kernels and allocator
    fast = _best_of(repeats, lambda: train_b1(configs))
    plain = _best_of(1, lambda: [train_plain(c) for c in configs])
    print(f"training, four settings at the paper's epochs ({steps} optimizer steps in all)")
    print(f"  lab (hand-written fwd/bwd, settings stacked): {fast:7.3f} s")
    print(f"  plain per-step loop (nn.Module + autograd + optim.SGD): {plain:7.3f} s")
    print(f"  speed-up: {plain / fast:5.1f}x   (target >= 10x)")

    from lab.bench.plain_gif import matplotlib_gif, matplotlib_mp4
    from lab.render.video import SIZE_RANGE, b1_export

    run = train_b1([paper_config("mini_batch_sgd_centered_augmentation")])[0]
    epochs = evenly_spaced(run.z.shape[0] - 1, frames)
    ours = _best_of(repeats, lambda: gif_bytes(run, size=size, max_frames=frames))
    with tempfile.TemporaryDirectory() as tmp:
        mpl = _best_of(1, lambda: matplotlib_gif(run, Path(tmp) / "plain.gif", epochs, size=size))
    per = lambda t: f"{t:7.3f} s  ({1000 * t / len(epochs):.1f} ms/frame)"  # noqa: E731
    print(f"GIF, {len(epochs)} frames at {size} px (render + encode)")
    print(f"  lab (palette frames + imageio, fixed palette): {per(ours)}")
    print(f"  matplotlib FuncAnimation + PillowWriter:       {per(mpl)}")
    print(f"  speed-up: {mpl / ours:5.1f}x   (target >= 5x)")
    out = {"train_fast_s": fast, "train_plain_s": plain, "gif_fast_s": ours, "gif_plain_s": mpl}
    if not SIZE_RANGE[0] <= size <= SIZE_RANGE[1]:
        print(f"MP4 skipped: the talk export takes sizes in [{SIZE_RANGE[0]}, {SIZE_RANGE[1]}] px, got {size}")
        return out
    mp4 = _best_of(repeats, lambda: b1_export(run, "mp4", size=size, fps=20, max_frames=frames))
    with tempfile.TemporaryDirectory() as tmp:
        mpl_mp4 = _best_of(1, lambda: matplotlib_mp4(run, Path(tmp) / "plain.mp4", epochs, size=size))
    print(f"MP4 (H.264, yuv420p), the same {len(epochs)} frames at {size} px (render + encode)")
    print(f"  lab (the same palette frames + imageio-ffmpeg): {per(mp4)}")
    print(f"  matplotlib FuncAnimation + FFMpegWriter:        {per(mpl_mp4)}")
    print(f"  speed-up: {mpl_mp4 / mp4:5.1f}x   (target >= 5x; against Matplotlib's GIF: {mpl / mp4:.1f}x)")
    return out | {"mp4_fast_s": mp4, "mp4_plain_s": mpl_mp4}


# The Fig. 4 suite as the paper's experiments declare it (SimSiam, no predictor, no stop-gradient).
FIG4 = experiment("fig4").variants_at("toy")
FIG4_VARIANTS = tuple(v.knobs for v in FIG4)
TOY_TARGET_S = 5.0


def fig4_configs(**settings) -> list:
    """The Fig. 4 suite's toy settings on the claims' data sets, variant by variant, with `settings` on top."""
    from lab.claims import DATASETS
    from lab.train.toy import ToyConfig

    return [ToyConfig(method=v.method, dataset=d, params=v.knobs, **settings) for v in FIG4 for d in DATASETS]


def bench_toy(repeats: int, epochs: int | None = None) -> dict:
    from lab.claims import DATASETS
    from lab.train.toy import train_toys
    from lab.train.toy_reference import train_toy_plain

    configs = fig4_configs(**({} if epochs is None else {"epochs": epochs}))
    steps = sum(c.epochs * c.steps_per_epoch * c.seeds for c in configs)
    train_toys(fig4_configs(epochs=2))  # warm up kernels and allocator
    fast = _best_of(repeats, lambda: train_toys(configs))
    # The same steps with only the first and last evaluation: how much of the time the metrics take.
    steps_only = _best_of(repeats, lambda: train_toys([dataclasses.replace(c, max_evals=2) for c in configs]))
    plain = _best_of(1, lambda: [train_toy_plain(c) for c in configs])
    work = floor_work(configs)
    products, knn = arithmetic_floor(work)
    evals = work[0].evals
    print(f"Fig. 4 suite: {', '.join(v.label for v in FIG4)} x {', '.join(DATASETS)} x {configs[0].seeds} seeds, "
          f"{configs[0].epochs} epochs, {evals} evaluations ({steps} optimizer steps in all)")
    print(f"  lab (seeds and both datasets stacked, 3 programs): {fast:7.3f} s   "
          f"({'under' if fast < TOY_TARGET_S else 'NOT under'} the {TOY_TARGET_S:g} s target)")
    print(f"    of which evaluations: {fast - steps_only:7.3f} s   (the same steps with 2 evaluations: {steps_only:.3f} s)")
    print(f"  plain per-seed loop (autograd + optim.SGD, K = 1):  {plain:7.3f} s")
    print(f"  speed-up: {plain / fast:5.1f}x   (target >= 10x)")
    print(f"  floor on this core: the {configs[0].hidden}x{configs[0].hidden} products alone {products:.3f} s, "
          f"the exact kNN alone {knn:.3f} s: {products + knn:.3f} s, {plain / (products + knn):.1f}x at most")
    return {"toy_fast_s": fast, "toy_steps_only_s": steps_only, "toy_plain_s": plain,
            "toy_floor_products_s": products, "toy_floor_knn_s": knn}


SWEEP_TARGET_S = 15.0


def bench_sweep(repeats: int, epochs: int | None = None) -> dict:
    from lab.train.sweep import default_axis, run_sweep
    from lab.train.toy import toy_config, train_toy

    settings = {} if epochs is None else {"epochs": epochs}
    # The knobs' own sweep ranges (issue 12's phase diagram), 6 values each.
    x, y = default_axis("simsiam", "lr", 6), default_axis("simsiam", "predictor_lr_scale", 6)
    run_sweep("simsiam", x, y, settings={"epochs": 2})  # warm up kernels and allocator
    box = {}

    def stacked():
        box["sweep"] = run_sweep("simsiam", x, y, seeds=1, settings=settings)

    fast = _best_of(repeats, stacked)
    configs = [toy_config("simsiam", "blobs", {**settings, "seeds": 1, "lr": lx, "predictor_lr_scale": sy})
               for sy in y.values for lx in x.values]
    one_by_one = _best_of(1, lambda: [train_toy(c) for c in configs])
    sweep = box["sweep"]
    c = configs[0]
    print(f"sweep: simsiam lr {x.values[0]:g}..{x.values[-1]:g} (log) x predictor_lr_scale {y.values[0]:g}.."
          f"{y.values[-1]:g} (log), 6 x 6 cells x 1 seed, {c.epochs} epochs ({c.epochs * c.steps_per_epoch} "
          f"steps per cell), {sweep.programs} stacked program(s)")
    print(f"  lab (run_sweep, one stacked program of 36 seeds): {fast:7.3f} s   "
          f"({'under' if fast < SWEEP_TARGET_S else 'NOT under'} the {SWEEP_TARGET_S:g} s target)")
    print(f"  the same 36 settings one after another (train_toy each): {one_by_one:7.3f} s")
    print(f"  speed-up: {one_by_one / fast:5.1f}x")
    return {"sweep_s": fast, "sweep_one_by_one_s": one_by_one}


@dataclasses.dataclass(frozen=True)
class FloorWork:
    """One stacked program's unavoidable work: `steps` steps of three hidden×hidden products over
    `rows` rows of `seeds` stacked seeds, and `evals` exact kNN votes of `queries` against `bank` points."""

    seeds: int
    rows: int
    hidden: int
    steps: int
    evals: int
    bank: int
    queries: int
    dim: int


def floor_work(configs) -> list[FloorWork]:
    """The programs `train_toys` makes of `configs` (stacked settings count once), as `FloorWork`."""
    from lab.data.toy import make_toy
    from lab.core.schedules import evenly_spaced
    from lab.train.toy import _stack_key

    programs: dict[tuple, list] = {}
    for c in configs:
        programs.setdefault(_stack_key(c), []).append(c)
    out = []
    for group in programs.values():
        c = group[0]
        data = make_toy(c.dataset, c.data_seed, c.n_train, c.n_test)
        out.append(FloorWork(sum(g.seeds for g in group), 2 * c.batch_size, c.hidden, c.epochs * c.steps_per_epoch,
                             len(evenly_spaced(c.epochs, c.max_evals)), len(data.x_train), len(data.x_test), c.dim))
    return out


def arithmetic_floor(work: list[FloorWork]) -> tuple[float, float]:
    """Seconds for the work no rewrite of the toy trainer can skip (`floor_work`), timed on this core:
    (products, knn).

    The three products of every stacked step (forward, weight gradient, input gradient) on hot random
    operands, and every evaluation's exact kNN vote (`lab.core.metrics.knn_accuracy` on random unit features).
    """
    from lab.core.metrics import knn_accuracy

    products = knn = 0.0
    for w in work:
        h, grad = torch.rand(w.seeds, w.rows, w.hidden), torch.randn(w.seeds, w.rows, w.hidden)
        weight = torch.randn(w.seeds, w.hidden, w.hidden)
        bank = torch.nn.functional.normalize(torch.randn(w.seeds, w.bank, w.dim), dim=-1)
        query = torch.nn.functional.normalize(torch.randn(w.seeds, w.queries, w.dim), dim=-1)
        labels, query_labels = torch.arange(w.bank) % 3, torch.arange(w.queries) % 3

        def step_products(w=w, h=h, grad=grad, weight=weight):
            for _ in range(w.steps):
                torch.bmm(h, weight), torch.bmm(h.transpose(1, 2), grad), torch.bmm(grad, weight.transpose(1, 2))

        def votes(w=w, bank=bank, query=query, labels=labels, query_labels=query_labels):
            for _ in range(w.evals):
                knn_accuracy(bank, labels, query, query_labels)

        products += _best_of(2, step_products)
        knn += _best_of(2, votes)
    return products, knn


def _imagenet(args) -> int:
    from lab.bench.imagenet import bench_imagenet

    bad = [f"{flag} must be {rule}" for flag, value, ok, rule in (
        ("--image-size", args.image_size, lambda v: 16 <= v <= 1024, "in [16, 1024]"),
        ("--batch-size", args.batch_size, lambda v: 2 <= v <= 8192, "in [2, 8192]"),
        ("--steps", args.steps, lambda v: 1 <= v <= 10_000, "in [1, 10000]"),
        ("--workers", args.workers, lambda v: 0 <= v <= 256, "in [0, 256]")) if value is not None and not ok(value)]
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        bad.append(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    elif args.device != "cpu" and not torch.cuda.is_available():
        bad.append(f"--device {args.device}: torch sees no CUDA device")
    if bad:
        print(f"error: {bad[0]}", file=sys.stderr)
        return 2
    if args.threads != 1:  # --threads' default 1 suits the toy benches; ResNet-18 on CPU takes every core
        torch.set_num_threads(args.threads)
    bench_imagenet(args.device, args.image_size, args.batch_size, args.steps, args.workers)
    return 0


def _fmnist(args) -> int:
    from lab.bench.fmnist import bench_fmnist
    from lab.data.fmnist import DEBIAN_DIR

    batch = args.batch_size or 256
    steps = args.steps or 10
    if not 2 <= batch <= 8192 or not 1 <= steps <= 10_000:
        print(f"error: --batch-size must be in [2, 8192] and --steps in [1, 10000], got {batch} and {steps}",
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads if args.threads != 1 else (os.cpu_count() or 1))
    try:
        bench_fmnist(args.data or DEBIAN_DIR, batch, steps)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


# The benchmarks that drive a browser or a websocket live in the checkout's tools/ (not in the installed package):
# `python -m lab.bench ui|class` runs them there, in a process of their own.
HARNESSES = {"ui": "tools.bench.ui", "class": "tools.bench.classroom", "real": "tools.bench.real"}
CHECKOUT = Path(__file__).resolve().parents[2]


def run_harness(args) -> int:
    if not (CHECKOUT / "tools" / "bench").is_dir():
        print(f"error: `{args.what}` drives a browser or a websocket from the checkout's tools/bench/, which is not "
              f"beside this installed lab ({CHECKOUT}); run it from a clone of the lab", file=sys.stderr)
        return 2
    minutes = [] if args.minutes is None else ["--minutes", str(args.minutes)]
    argv = {"ui": minutes, "real": minutes,
            "class": ["--clients", str(args.clients), "--movers", str(args.movers)]}[args.what]
    return subprocess.call([sys.executable, "-m", HARNESSES[args.what], *argv], cwd=CHECKOUT)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench", description=__doc__)
    parser.add_argument("what", choices=["b1", "toy", "sweep", "live", "ui", "class", "imagenet", "fmnist", "doctor",
                                         "real"],
                        help="which benchmark")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs of the fast path")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=480)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: tiny ops)")
    parser.add_argument("--epochs", type=int, help="toy, sweep: epochs per setting (default: the toy trainer's)")
    parser.add_argument("--device", default="cpu", help="imagenet: cpu (default) or cuda")
    parser.add_argument("--image-size", type=int, help="imagenet: view size (default 224 on cuda, 64 on cpu)")
    parser.add_argument("--batch-size", type=int, help="imagenet: batch (default 256 on cuda, 32 on cpu)")
    parser.add_argument("--steps", type=int, help="imagenet: timed training steps (default 20 on cuda, 5 on cpu)")
    parser.add_argument("--workers", type=int, default=2, help="imagenet: data-loading processes (default 2)")
    parser.add_argument("--data", help="fmnist: a Fashion-MNIST folder (default Debian's)")
    parser.add_argument("--clients", type=int, default=20, help="class: sessions on the lesson link (default 20)")
    parser.add_argument("--movers", type=int, default=10, help="class: sessions that move a knob (1-10, default 10)")
    parser.add_argument("--minutes", type=float, help="ui: instead of the timings, the server's memory over this "
                                                      "many minutes of live training (issue #13 asks for 10)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="doctor: rows of the file (default 1,000,000)")
    parser.add_argument("--dim", type=int, default=2048, help="doctor: dimensions of the file (default 2048)")
    parser.add_argument("--file", help="doctor: the .npy to read (used as it is if there), else written there")
    parser.add_argument("--keep", action="store_true", help="doctor: keep the file it wrote")
    args = parser.parse_args(argv)
    if args.what == "doctor":
        from lab.bench.doctor import bench_doctor

        if args.rows < 2 or args.dim < 2:
            print("error: --rows and --dim must be >= 2", file=sys.stderr)
            return 2
        return bench_doctor(args.rows, args.dim, args.file, args.keep)
    if args.what == "imagenet":
        return _imagenet(args)
    if args.what == "fmnist":
        return _fmnist(args)
    if args.what in HARNESSES:
        return run_harness(args)
    if args.repeats < 1 or args.frames < 2 or not 64 <= args.size <= 2048 or args.threads < 1 \
            or (args.epochs is not None and args.epochs < 1):
        print("error: --repeats >= 1, --frames >= 2, --size in [64, 2048], --threads >= 1, --epochs >= 1",
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    if args.what == "toy":
        bench_toy(args.repeats, args.epochs)
    elif args.what == "sweep":
        bench_sweep(args.repeats, args.epochs)
    elif args.what == "live":
        from lab.bench.live import bench_live

        bench_live(args.epochs)
    else:
        bench_b1(args.repeats, args.frames, args.size)
    return 0
