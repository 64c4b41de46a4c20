"""`python -m tools.bench.gpu_check STEP ...`: the Python side of `scripts/gpu_check.sh`, one subcommand per step.

- `device`: the CUDA device's name on stdout; exit 1 with one line when torch sees none.
- `bench`: `lab.bench.imagenet.bench_imagenet` (what `python -m lab.bench imagenet` runs: SimSiam training
  throughput, generated 500x375 JPEGs through the loader, the pre-decoded cache of the same images), its
  table on stdout and its numbers as JSON.
- `amp`: the engine (`python -m lab.engine.train`, a subprocess each) twice on the same generated
  ImageFolder, same seed, same views: bf16 autocast + channels_last (`--amp --channels-last`, the engine's
  CUDA default) and float32 (`--no-amp --no-channels-last`), a step line every step. The untrained model's
  loss (epoch 0), every step's loss and the epoch's mean loss must agree within `AMP_TOLERANCE`.
- `fmnist`: a paper preset at Fashion-MNIST scale (`--preset NAME --run`'s configs, each through
  `lab.engine.train.train`), seed by seed, runs started only while the time budget allows one more.
- `summary`: the JSON of the steps -> one line per figure, `gpu_check <device>: <figure> <value> <unit>`.

Every subcommand takes `--device` (default cuda), so that the steps can be tried on a CPU at toy sizes;
on a CPU both engine runs of `amp` are float32 (the engine autocasts on CUDA only), so there it checks
the plumbing, not bf16.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

# The loss is SimSiam's negative cosine, bounded in [-1, 1] and near 0 at initialisation (a relative
# difference means nothing there), so the tolerance is absolute. bf16 keeps 8 significant bits (unit
# roundoff 2^-9 ~ 0.2 %); through ResNet-18's ~20 layers (fp32 accumulation) and the heads the features move
# by ~1 %, and the loss, a mean over the batch of cosines, by ~1e-3: CPU bf16 autocast of this model (batch
# 32, 64 px, 4 SGD steps on the same views) differed from fp32 by 1.5e-4 at the first step and at most
# 1.8e-3 after. 0.02 (1 % of the loss's range) leaves ~10x margin over that; what it is there to catch is a
# bf16 / channels_last path that breaks (a NaN or inf, a crash, a missing step line, a loss off by more than
# rounding explains).
AMP_TOLERANCE = 0.02


def _json_dump(path: str | None, data: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=1, default=str) + "\n")


def _check_device(name: str):
    import torch

    if name != "cpu" and not torch.cuda.is_available():
        raise SystemExit(f"gpu_check: no CUDA device: torch {torch.__version__} (CUDA build: "
                         f"{torch.version.cuda or 'none'}) sees none")
    return torch.device(name)


# ----------------------------------------------------------------------------------------- device

def cmd_device(args) -> int:
    import torch

    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device: torch {torch.__version__} (CUDA build: {torch.version.cuda or 'none'}) "
              f"sees none", file=sys.stderr)
        return 1
    print(torch.cuda.get_device_name(0))
    return 0


# ----------------------------------------------------------------------------------------- bench

def cmd_bench(args) -> int:
    from lab.bench.imagenet import bench_imagenet

    _check_device(args.device)
    workers = args.workers if args.workers is not None else min(8, os.cpu_count() or 1)
    start = time.perf_counter()
    result = bench_imagenet(args.device, args.image_size, args.batch_size, args.steps, workers, args.jpegs)
    result["workers"] = workers
    result["wall_s"] = time.perf_counter() - start
    _json_dump(args.json, result)
    return 0


# ----------------------------------------------------------------------------------------- amp

def _engine(data: Path, out: Path, device: str, args, precision: list[str], timeout: float) -> tuple[list[dict], float]:
    """One `python -m lab.engine.train` run; -> (its metrics.jsonl rows, wall seconds)."""
    from lab.core.runlog import read_jsonl

    cmd = [sys.executable, "-m", "lab.engine.train", "--data", str(data), "--method", "simsiam",
           "--out", str(out), "--device", device, "--epochs", "1", "--max-steps-per-epoch", str(args.steps),
           "--batch-size", str(args.batch_size), "--image-size", str(args.image_size), "--log-every", "1",
           "--workers", str(args.workers), "--seed", "0", "--no-progress", *precision]
    print("$ " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, timeout=timeout)
    return read_jsonl(out / "metrics.jsonl"), time.perf_counter() - start


def _losses(rows: list[dict]) -> dict[str, float]:
    """{"epoch 0 (untrained)": loss, "step 1": loss, ..., "epoch 1 mean": loss} of one run."""
    out = {}
    for r in rows:
        if r.get("kind") == "epoch" and r.get("epoch") == 0:
            out["epoch 0 (untrained)"] = r["loss"]
    for r in rows:
        if r.get("kind") == "step":
            out[f"step {r['step']}"] = r["loss"]
    for r in rows:
        if r.get("kind") == "epoch" and r.get("epoch") == 1:
            out["epoch 1 mean"] = r["loss"]
    return out


def amp_compare(fp32: dict[str, float], bf16: dict[str, float], tolerance: float = AMP_TOLERANCE) -> dict:
    """Row by row |bf16 - fp32| of two `_losses`; ok when both have the same rows, all finite, all within
    tolerance."""
    rows, worst_abs, worst_rel, ok = [], 0.0, 0.0, set(fp32) == set(bf16) and len(fp32) > 0
    for key, a in fp32.items():
        b = bf16.get(key)
        if b is None or not (math.isfinite(a) and math.isfinite(b)):
            ok = False
            rows.append({"what": key, "fp32": a, "bf16": b, "abs": None, "rel": None})
            continue
        diff = abs(b - a)
        rel = diff / max(abs(a), 1e-12)
        worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, rel)
        ok = ok and diff <= tolerance
        rows.append({"what": key, "fp32": a, "bf16": b, "abs": diff, "rel": rel})
    return {"rows": rows, "max_abs": worst_abs, "max_rel": worst_rel, "tolerance": tolerance, "ok": ok}


def cmd_amp(args) -> int:
    from lab.data.fake import write_fake_imagefolder

    _check_device(args.device)
    deadline = time.monotonic() + args.budget
    work = Path(args.work or tempfile.mkdtemp(prefix="lab-gpu-check-amp-"))
    per_class = max(1, math.ceil(args.batch_size * args.steps / 4))
    data = write_fake_imagefolder(work / "data", classes=4, per_class=per_class, size=args.fake_size)
    cuda = args.device != "cpu"
    runs = {}
    for label, flags in (("bf16", ["--amp", "--channels-last"]), ("fp32", ["--no-amp", "--no-channels-last"])):
        try:
            rows, wall = _engine(data, work / label, args.device, args, flags, max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"gpu_check: the {label} run did not end within the {args.budget:g} s budget", file=sys.stderr)
            return 1
        except subprocess.CalledProcessError as e:
            print(f"gpu_check: the {label} run failed (exit status {e.returncode})", file=sys.stderr)
            return 1
        runs[label] = {"losses": _losses(rows), "wall_s": wall,
                       "images_per_s": next((r["images_per_s"] for r in rows
                                             if r.get("kind") == "epoch" and r.get("epoch") == 1), None)}
    result = amp_compare(runs["fp32"]["losses"], runs["bf16"]["losses"], args.tolerance)
    result.update({"runs": {k: {"wall_s": v["wall_s"], "images_per_s": v["images_per_s"]} for k, v in runs.items()},
                   "device": args.device, "steps": args.steps, "batch_size": args.batch_size,
                   "image_size": args.image_size, "bf16_is_bf16": cuda})
    print(f"SimSiam / ResNet-18 through the engine, {args.steps} steps of batch {args.batch_size} at {args.image_size} "
          f"px, same seed and views: bf16 autocast + channels_last against float32"
          + ("" if cuda else " (CPU: both runs are float32, the engine autocasts on CUDA only)"))
    print(f"  {'what':<20} {'fp32':>10} {'bf16':>10} {'|diff|':>9} {'rel':>8}")
    for r in result["rows"]:
        num = lambda v, f: format(v, f) if v is not None else "-"  # noqa: E731
        print(f"  {r['what']:<20} {num(r['fp32'], '10.5f')} {num(r['bf16'], '10.5f')} {num(r['abs'], '9.2e')} "
              f"{num(r['rel'], '8.1e')}")
    verdict = "agree" if result["ok"] else "DO NOT agree"
    print(f"max |diff| {result['max_abs']:.2e} (max relative {result['max_rel']:.1e}, not the criterion: the loss "
          f"starts near 0); tolerance {args.tolerance:g} absolute on a loss in [-1, 1]: the losses {verdict}")
    _json_dump(args.json, result)
    return 0 if result["ok"] else 1


# ----------------------------------------------------------------------------------------- fmnist

def cmd_fmnist(args) -> int:
    from lab.data.fmnist import INSTALL_HINT, is_fashion_mnist
    from lab.engine.config import preset_configs
    from lab.engine.train import train
    from lab.core.runlog import read_jsonl

    _check_device(args.device)
    if not is_fashion_mnist(args.data):
        print(f"gpu_check: {args.data}: no Fashion-MNIST files; {INSTALL_HINT}", file=sys.stderr)
        return 2
    began = time.monotonic()
    work = Path(args.work or tempfile.mkdtemp(prefix="lab-gpu-check-fmnist-"))
    over = {"data": args.data, "out": str(work), "device": args.device, "progress": False}
    over.update({k: v for k, v in (("epochs", args.epochs), ("max_steps_per_epoch", args.max_steps_per_epoch),
                                   ("knn_every", args.knn_every), ("batch_size", args.batch_size),
                                   ("workers", args.workers)) if v is not None})
    configs = sorted((cfg for _, cfg in preset_configs(args.preset, over)), key=lambda c: c.seed)  # stable
    done = []
    for cfg in configs:
        elapsed = time.monotonic() - began
        longest = max((d["wall_s"] for d in done), default=0.0)
        if done and elapsed + 1.2 * longest > args.budget:
            print(f"budget: {elapsed:.0f} s of {args.budget:g} s spent, a run takes up to {longest:.0f} s; "
                  f"{len(configs) - len(done)} run(s) not started", flush=True)
            break
        start = time.perf_counter()
        summary = train(cfg)  # SIGTERM (the shell's timeout): the step finishes, status "stopped"
        wall = time.perf_counter() - start
        rows = read_jsonl(Path(cfg.out) / "metrics.jsonl")
        epochs = [r for r in rows if r.get("kind") == "epoch" and r.get("epoch", 0) >= 1]
        images = sum(r.get("images_per_s", 0) * r.get("epoch_seconds", 0) for r in epochs)
        seconds = sum(r.get("epoch_seconds", 0) for r in epochs)
        last = epochs[-1] if epochs else {}
        done.append({"name": Path(cfg.out).name, "status": summary["status"], "wall_s": wall,
                     "train_s": seconds, "images_per_s": images / seconds if seconds else None,
                     "steps": summary["step"], "knn_acc": last.get("knn_acc"), "center_norm": last.get("center_norm")})
        print(f"run {done[-1]['name']}: {summary['status']}, {wall:.1f} s wall, {seconds:.1f} s training, "
              f"{done[-1]['images_per_s'] or 0:,.0f} images/s", flush=True)
        if summary["status"] == "stopped":
            print("stopped by a signal: no further run started", flush=True)
            break
    whole = [d for d in done if d["status"] in ("finished", "collapsed")]  # a stopped run's time is no run's
    rates = [d["images_per_s"] for d in whole if d["images_per_s"]]
    result = {"preset": args.preset, "runs_total": len(configs), "runs_done": len(whole), "runs": done,
              "wall_s": time.monotonic() - began, "budget_s": args.budget,
              "epochs": configs[0].epochs if configs else None,
              "steps_per_epoch": configs[0].max_steps_per_epoch if configs else None,
              "median_run_s": statistics.median(d["wall_s"] for d in whole) if whole else None,
              "median_images_per_s": statistics.median(rates) if rates else None,
              "all_finished": all(d["status"] in ("finished", "collapsed") for d in done)}
    print(f"Fashion-MNIST preset {args.preset}: {len(whole)} of {len(configs)} runs in {result['wall_s']:.0f} s, "
          f"median {result['median_run_s'] or 0:.1f} s a run, {result['median_images_per_s'] or 0:,.0f} images/s")
    _json_dump(args.json, result)
    return 0 if whole and result["all_finished"] else 1


# ----------------------------------------------------------------------------------------- summary

def _bench_lines(b: dict) -> list[tuple[str, float, str]]:
    size, batch, load = b["image_size"], b["batch_size"], int(round(b["image_size"] * 256 / 224))
    prec = "bf16 channels_last" if b["device"] != "cpu" else "fp32"
    w = b.get("workers")
    jpeg, cache = b["loading"]["jpeg"], b["loading"]["cache"]
    return [
        (f"imagenet bench training step with augmentation (SimSiam ResNet-18 {size} px batch {batch} {prec})",
         b["train_aug"]["images_per_s"], "images/s"),
        (f"imagenet bench training step views precomputed ({size} px batch {batch} {prec})",
         b["train_plain"]["images_per_s"], "images/s"),
        (f"imagenet bench augmentation only (2 views {size} px)", b["augment"]["images_per_s"], "images/s"),
        (f"imagenet bench loading generated JPEGs 500x375 -> {load} px ({w} workers)", jpeg["images_per_s"],
         "images/s"),
        (f"imagenet bench loading pre-decoded cache {load} px ({w} workers)", cache["images_per_s"], "images/s"),
        (f"imagenet bench cache build ({w} workers)", cache["build_images_per_s"], "images/s"),
        ("imagenet bench end to end JPEG path (min of loading and training)", b["end_to_end_jpeg"], "images/s"),
        ("imagenet bench end to end cache path (min of loading and training)", b["end_to_end_cache"], "images/s"),
        ("imagenet bench end to end cache path / 8000 images/s target", b["end_to_end_cache"] / 8000, "x"),
    ]


def _amp_lines(a: dict) -> list[tuple[str, float | str, str]]:
    what = (f"simsiam engine bf16+channels_last vs fp32 ({a['steps']} steps batch {a['batch_size']} "
            f"{a['image_size']} px)" + ("" if a.get("bf16_is_bf16", True) else " [CPU: both fp32]"))
    lines: list[tuple[str, float | str, str]] = []
    for r in a["rows"]:
        if r["what"] in ("epoch 0 (untrained)", "step 1", f"step {a['steps']}"):
            lines.append((f"{what} loss {r['what']} fp32", r["fp32"], ""))
            lines.append((f"{what} loss {r['what']} bf16", r["bf16"] if r["bf16"] is not None else "missing", ""))
    lines.append((f"{what} max |loss difference| (tolerance {a['tolerance']:g})", a["max_abs"], ""))
    lines.append((f"{what} max relative loss difference", a["max_rel"], ""))
    lines.append((f"{what} verdict", "agree" if a["ok"] else "DISAGREE", ""))
    return lines


def _fmnist_lines(f: dict) -> list[tuple[str, float | str, str]]:
    name = f"fmnist preset {f['preset']} ({f['epochs']} epochs x {f['steps_per_epoch']} steps a run)"
    lines: list[tuple[str, float | str, str]] = [(f"{name} runs finished within the {f['budget_s']:g} s budget",
                                                  f"{f['runs_done']}/{f['runs_total']}", "runs")]
    if f["median_run_s"] is not None:
        lines.append((f"{name} median wall time a run", f["median_run_s"], "s"))
        lines.append((f"{name} whole preset at that rate", f["median_run_s"] * f["runs_total"], "s"))
    if f["median_images_per_s"] is not None:
        lines.append((f"{name} median training rate", f["median_images_per_s"], "images/s"))
    for r in f["runs"]:
        lines.append((f"{name} run {r['name']} wall time ({r['status']}, knn_acc "
                      f"{r['knn_acc'] if r['knn_acc'] is None else format(r['knn_acc'], '.3f')})", r["wall_s"], "s"))
    return lines


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.4g}"


def cmd_summary(args) -> int:
    """One line per figure from the steps' JSON files (a missing file: that step's status line only)."""
    lines = []
    readers = (("bench", _bench_lines), ("amp", _amp_lines), ("fmnist", _fmnist_lines))
    for key, reader in readers:
        path = getattr(args, key)
        if path and Path(path).is_file():
            try:
                figures = reader(json.loads(Path(path).read_text()))
            except (KeyError, TypeError, ValueError) as e:
                figures = [(f"{key} results unreadable ({type(e).__name__}: {e})", "", "")]
            lines += [f"gpu_check {args.name}: {what} {_fmt(value)}{' ' + unit if unit else ''}"
                      for what, value, unit in figures]
    for what in args.line or []:
        lines.append(f"gpu_check {args.name}: {what}")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        with open(args.write, "a") as f:
            f.write(text)
    return 0


# ----------------------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    sub.add_parser("device", help="the CUDA device's name; exit 1 without one")

    b = sub.add_parser("bench", help="the ImageNet-size bench (training, generated JPEGs, cache)")
    b.add_argument("--device", default="cuda")
    b.add_argument("--image-size", type=int)
    b.add_argument("--batch-size", type=int)
    b.add_argument("--steps", type=int)
    b.add_argument("--workers", type=int, help="loader processes (default: min(8, cores))")
    b.add_argument("--jpegs", type=int, help="generated JPEGs (default: max(4 x batch, 256))")
    b.add_argument("--json")

    a = sub.add_parser("amp", help="the engine in bf16 + channels_last against fp32, loss by loss")
    a.add_argument("--device", default="cuda")
    a.add_argument("--steps", type=int, default=5)
    a.add_argument("--batch-size", type=int, default=64)
    a.add_argument("--image-size", type=int, default=224)
    a.add_argument("--fake-size", type=int, default=160, help="side of the generated JPEGs")
    a.add_argument("--workers", type=int, default=4)
    a.add_argument("--tolerance", type=float, default=AMP_TOLERANCE)
    a.add_argument("--budget", type=float, default=100.0, help="seconds for both runs together")
    a.add_argument("--work", help="folder for the data and the two runs (default: a new temporary one)")
    a.add_argument("--json")

    f = sub.add_parser("fmnist", help="a paper preset at Fashion-MNIST scale, within a time budget")
    f.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    f.add_argument("--preset", default="b5-simsiam-predictor")
    f.add_argument("--device", default="cuda")
    f.add_argument("--budget", type=float, default=130.0, help="seconds; no run starts that would not fit")
    f.add_argument("--epochs", type=int, help="default: the preset's")
    f.add_argument("--max-steps-per-epoch", type=int, help="default: the preset's")
    f.add_argument("--knn-every", type=int, help="default: the preset's")
    f.add_argument("--batch-size", type=int, help="default: the recipe's")
    f.add_argument("--workers", type=int, help="default: the engine's")
    f.add_argument("--work", help="folder for the runs (default: a new temporary one)")
    f.add_argument("--json")

    s = sub.add_parser("summary", help="one line per figure from the steps' JSON")
    s.add_argument("--name", required=True, help="the device's name")
    s.add_argument("--bench")
    s.add_argument("--amp")
    s.add_argument("--fmnist")
    s.add_argument("--line", action="append", help="an extra line as it is (a step's status); repeatable")
    s.add_argument("--write", help="append the lines to this file too")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return {"device": cmd_device, "bench": cmd_bench, "amp": cmd_amp, "fmnist": cmd_fmnist,
            "summary": cmd_summary}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
