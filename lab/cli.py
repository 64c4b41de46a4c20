"""Command line: `python -m lab b1 --out DIR ...` (more subcommands join here as the lab grows).

Bad input ends with one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Sequence

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """Bad input from the command line: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise UsageError(f"{self.prog}: {message}")


def _csv_floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers like 2,0,0, got {text!r}") from None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected three finite numbers like 2,0,0, got {text!r}")
    return values


def _paper_epochs() -> str:
    """'200 or 500': the epochs of the paper's B.1 settings, for --help."""
    from lab.train.b1 import PAPER_SETTINGS

    return " or ".join(str(e) for e in sorted({s["epochs"] for s in PAPER_SETTINGS.values()}))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m lab", description="Collapse Lab command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_b1(sub)
    _add_toy(sub)
    _add_sweep(sub)
    _add_claims(sub)
    _add_b1_survey(sub)
    _add_doctor(sub)
    # listed for --help; main() hands `runs ...` to lab.runs.cli, whose args after -- go to the engine
    sub.add_parser("runs", help="launch, list, show, stop and resume ImageNet runs (python -m lab runs --help)")
    return parser


def _add_b1(sub: argparse._SubParsersAction) -> None:
    from lab.train.b1 import DEFAULT_LR, DEFAULT_NOISE, DEFAULT_SHIFT, PAPER_SETTINGS

    b1 = sub.add_parser("b1", help="the paper's B.1 experiment: collapse on the circle, four settings")
    b1.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    b1.add_argument("--settings", default=",".join(PAPER_SETTINGS),
                    help="comma-separated settings (default: all four): " + ", ".join(PAPER_SETTINGS))
    b1.add_argument("--epochs", type=int, help=f"epochs for every setting (default: the paper's, {_paper_epochs()})")
    b1.add_argument("--seed", type=int, default=0, help="seed of data, weights and batch order (default 0)")
    b1.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"SGD learning rate (default {DEFAULT_LR})")
    b1.add_argument("--noise", type=float, default=DEFAULT_NOISE,
                    help=f"augmentation noise σ (default {DEFAULT_NOISE})")
    b1.add_argument("--shift", type=_csv_floats, default=DEFAULT_SHIFT,
                    help="shift k of the shifted augmentation, as kx,ky,kz (default %s)" %
                         ",".join(f"{v:g}" for v in DEFAULT_SHIFT))
    b1.add_argument("--sphere", action="store_true", help="features on the sphere S² (R³ → R³) instead of the circle")
    b1.add_argument("--no-gif", action="store_true", help="write metrics.json only")
    b1.add_argument("--fps", type=float, default=20.0, help="GIF frames per second (default 20, range 0.5-60)")
    b1.add_argument("--size", type=int, default=480, help="GIF size in pixels (default 480, range 64-2048)")
    b1.add_argument("--loop", type=int, default=0, help="GIF plays: 0 = forever (default)")
    b1.add_argument("--max-frames", type=int, default=200,
                    help="at most this many GIF frames, evenly spread over the epochs (default 200)")


def _add_toy(sub: argparse._SubParsersAction) -> None:
    toy = sub.add_parser("toy", help="train one SSL method on toy data over several seeds (method playground)")
    _toy_run_flags(toy, "a method knob or a training setting (batch_size, epochs, lr, dim, ...); repeatable")
    toy.add_argument("--dataset", required=True, help="one of: " + ", ".join(_dataset_names()))
    toy.add_argument("--seeds", type=int, help="number of seeds trained together (default 5)")
    toy.add_argument("--at", action="append", default=[], metavar="EPOCH:KNOB=VALUE",
                     help="change a knob mid-run, after EPOCH epochs (e.g. --at 120:stop_grad=false); repeatable")


def _toy_run_flags(p: argparse.ArgumentParser, set_help: str) -> None:
    """The flags a toy run and a sweep share: the method, its fixed settings, the epochs, the output file."""
    p.add_argument("--method", required=True, help="one of: " + ", ".join(_method_names()))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--epochs", type=int, help="training epochs (default 250)")
    p.add_argument("--out", required=True, type=Path, help="output JSON file")


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    sweep = sub.add_parser("sweep", help="a grid of two knobs (or one knob and the seed) of one method, up to 8 x 8, "
                                         "as few stacked programs as the maths allows (phase diagram)")
    _toy_run_flags(sweep, "a fixed method knob or training setting for every cell; repeatable")
    sweep.add_argument("--x", required=True, metavar="KNOB=LO:HI:N",
                       help="the x axis: N <= 8 values from LO to HI (or KNOB=V1,V2,...; a switch: KNOB=false,true); "
                            "lr, sgd_momentum, weight_decay or one of the method's knobs")
    sweep.add_argument("--y", metavar="KNOB=LO:HI:N", help="the y axis, as --x (default: none, one knob and the seed)")
    sweep.add_argument("--log-x", action="store_true", help="log-spaced x values (LO > 0)")
    sweep.add_argument("--log-y", action="store_true", help="log-spaced y values (LO > 0)")
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per cell (default 1, range 1-16)")
    sweep.add_argument("--dataset", default="blobs", help="one of: " + ", ".join(_dataset_names()) + " (default blobs)")


def _add_claims(sub: argparse._SubParsersAction) -> None:
    from lab.core.experiments import TOY_SEEDS

    claims = sub.add_parser("claims", help="run the paper's claims that toy data can check, with verdicts; "
                                           "--runs DIR: judge the engine's preset runs there instead")
    claims.add_argument("--only", help="comma-separated claim keys (default: all)")
    claims.add_argument("--seeds", type=int, default=TOY_SEEDS, help=f"seeds per setting (default {TOY_SEEDS})")
    claims.add_argument("--epochs", type=int, help="training epochs (default: the toy trainer's)")
    claims.add_argument("--out", type=Path, help="also write the results as JSON here (with --runs: and each "
                                                 "experiment's figure as PNG beside it)")
    claims.add_argument("--markdown", type=Path, metavar="RESULTS",
                        help="print the claims table of docs/claims.md from a results file (python -m lab claims --out "
                             "RESULTS); trains nothing")
    claims.add_argument("--sweeps", type=Path, metavar="DIR",
                        help="also sweep the knob of each claim that declares a sweep, one knob and the seeds, and "
                             "write DIR/<claim>-<dataset>.json (the Claims page reads assets/sweeps)")
    claims.add_argument("--runs", type=Path, metavar="DIR",
                        help="judge the finished preset runs under DIR (python -m lab.engine.train --preset all "
                             "--run --out DIR) seed by seed; trains nothing")


def _add_b1_survey(sub: argparse._SubParsersAction) -> None:
    from lab.train.b1 import DEFAULT_LR, DEFAULT_NOISE, DEFAULT_SHIFT

    survey = sub.add_parser("b1-survey", help="check the paper's three B.1 claims on many seeds")
    survey.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 (default 20, range 1-200)")
    survey.add_argument("--lr", type=float, default=DEFAULT_LR)
    survey.add_argument("--noise", type=float, default=DEFAULT_NOISE)
    survey.add_argument("--shift", type=_csv_floats, default=DEFAULT_SHIFT)
    survey.add_argument("--out", type=Path, help="also write the counts as JSON here (the B.1 page reads "
                                                 "assets/b1_survey.json)")


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser("doctor", help="check your own model: read an embedding file (.npy, .npz, .pt, "
                                           ".safetensors), or embed a checkpoint, and name its collapse, if any, "
                                           "with the deciding numbers")
    doctor.add_argument("path", type=Path, metavar="PATH",
                        help="the embeddings, one row per sample: (N, D); or a checkpoint to embed: a run folder of "
                             "python -m lab.engine.train (or its checkpoint.pt), or a ResNet-18/50 state dict in "
                             "torchvision's key layout (solo-learn's and lightly's too)")
    doctor.add_argument("other", type=Path, metavar="PATH2", nargs="?",
                        help="a second model, read the same way and shown beside the first (e.g. epoch 0 and the "
                             "end, or two methods)")
    doctor.add_argument("--labels", type=Path, metavar="FILE",
                        help="the class of each row (.npy, .pt or .txt, one per line): kNN accuracy, and the rank "
                             "judged against C - 1")
    doctor.add_argument("--report", type=Path, metavar="OUT.html",
                        help="also write a standalone HTML report: the readings beside references, the rows on the "
                             "sphere (images on hover for checkpoints), the spectrum")
    doctor.add_argument("--views", type=Path, metavar="FILE",
                        help="the paired second view of each row, (N, D): alignment and uniformity")
    doctor.add_argument("--json", type=Path, metavar="OUT", help="also write the readings and the signature here")
    doctor.add_argument("--data", type=Path, metavar="DIR",
                        help="checkpoints: the images to embed, a folder of Fashion-MNIST's idx files (e.g. "
                             "/usr/share/datasets/fashion-mnist) or an ImageFolder; default: a run's own --data")
    doctor.add_argument("--arch", choices=("resnet18", "resnet50"),
                        help="checkpoints: the ResNet of a state dict (default: read off its keys)")
    doctor.add_argument("--features", choices=("backbone", "projector"),
                        help="checkpoints: which features (default backbone, what kNN reads; projector: what the "
                             "loss sees, lab runs only)")
    doctor.add_argument("--limit", type=int, metavar="N",
                        help="checkpoints: embed a seeded sample of N images (default: the whole split)")
    doctor.add_argument("--split", choices=("test", "train"),
                        help="checkpoints: the split to embed (default test: Fashion-MNIST's test split, an "
                             "ImageFolder's val/ or test/)")


def _method_names() -> list[str]:
    from lab.methods import METHOD_NAMES

    return list(METHOD_NAMES)


def _dataset_names() -> list[str]:
    from lab.data.toy import DATASETS

    return list(DATASETS)


def run_toy(args: argparse.Namespace) -> int:
    from lab.train.changes import change_caption
    from lab.train.toy import toy_config, train_toy

    settings = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set takes KEY=VALUE, got {item!r}")
        settings[key.strip()] = value.strip()
    for key in ("seeds", "epochs"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.at:
        settings["changes"] = list(args.at)
    try:
        config = toy_config(args.method, args.dataset, settings)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.out.exists() and args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; give a file name like run.json")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    run = train_toy(config, progress=_progress(f"{config.method} on {config.dataset}"))
    _write_json_atomic(args.out, run.to_json())
    m = run.metrics
    print(f"{config.method} on {config.dataset}, {config.seeds} seed(s), {run.steps} steps each, "
          f"{run.train_seconds:.2f} s -> {args.out}")
    for change in config.changes:
        at = run.epochs.index(change.epoch) if change.epoch in run.epochs else None
        before = f" (‖s‖ then {m['center_norm'][at].mean():.3f})" if at is not None else ""
        print(f"  {change_caption(change, config.method)}{before}")
    final = m["center_norm"][-1]
    print(f"  final center_norm {final.mean():.3f} ± {final.std(unbiased=False):.3f} ({int((final > 0.9).sum())} of "
          f"{len(final)} seeds above 0.9), knn_acc {m['knn_acc'][-1].mean():.3f}, linear_acc {m['linear_acc'][-1].mean():.3f}")
    if run.diverged:
        print(f"  {run.diverged}", file=sys.stderr)
        return 1
    return 0


def _settings(items: Sequence[str]) -> dict[str, str]:
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set takes KEY=VALUE, got {item!r}")
        settings[key.strip()] = value.strip()
    return settings


def run_sweep_cli(args: argparse.Namespace) -> int:
    from lab.train.sweep import plan_sweep, run_sweep

    settings = _settings(args.set)
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    kw = dict(method=args.method, x=args.x, y=args.y, seeds=args.seeds, dataset=args.dataset, settings=settings,
              log_x=args.log_x, log_y=args.log_y)
    try:
        sweep, _, cells = plan_sweep(**kw)  # every check before any training
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.out.exists() and args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; give a file name like sweep.json")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ny, nx = sweep.shape
    what = f"{args.method} sweep {nx} x {ny}" if sweep.y.knob else f"{args.method} sweep {nx} x seed"
    sweep = run_sweep(progress=_progress(what), **kw)
    _write_json_atomic(args.out, sweep.to_json())
    print(f"{what}, {len(cells)} cells x {args.seeds} seed(s) in {sweep.programs} stacked program(s), "
          f"{sweep.train_seconds:.2f} s -> {args.out}")
    counts = sweep.counts_above()
    print(f"  cells with a seed above ‖s‖ {sweep.threshold:g}: {int((counts > 0).sum())} of {len(cells)}")
    return 0


def run_engine_claims(args: argparse.Namespace) -> int:
    from lab.core import experiments as X
    from lab.claims import engine_curves, engine_table, judge_engine_runs
    from lab.render.figures import fig_engine_claim, save_png

    if not args.runs.is_dir():
        raise UsageError(f"--runs {args.runs} is not a folder")
    results = judge_engine_runs(args.runs)
    if not results["runs"]:
        raise UsageError(f"--runs {args.runs} holds no finished preset run (python -m lab.engine.train --preset "
                         "all --run --out DIR makes them)")
    print(engine_table(results))
    if args.out:
        for experiment in X.EXPERIMENTS:
            panels, curves = engine_curves(results, experiment.key)
            if experiment.preset and curves:
                png = args.out.parent / f"{experiment.preset}.png"
                save_png(fig_engine_claim(panels, curves, f"{experiment.figure}: {experiment.title} — "
                                          f"{results['made']}, {results['machine']}, commit {results['commit']}"), png)
                print(f"  wrote {png}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(args.out, results)
        print(f"  wrote {args.out}")
    return 0


def run_claims_cli(args: argparse.Namespace) -> int:
    if args.runs is not None:
        return run_engine_claims(args)

    from lab.claims import claim_sweeps, claims_markdown, read_toy_results, results_table, run_claims, toy_results_json

    if args.markdown is not None:
        data = read_toy_results(args.markdown)
        if data is None:
            raise UsageError(f"{args.markdown} is not a toy claims results file with seed counts "
                             "(python -m lab claims --out FILE writes one)")
        print(claims_markdown(data))
        return 0

    keys = [k.strip() for k in args.only.split(",") if k.strip()] if args.only else None
    try:
        results = run_claims(keys, seeds=args.seeds, epochs=args.epochs, progress=_progress("claims"))
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(results_table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(args.out, toy_results_json(results, args.seeds, args.epochs))
    if args.sweeps:
        args.sweeps.mkdir(parents=True, exist_ok=True)
        for name, data in claim_sweeps(keys, seeds=args.seeds, progress=_progress("sweeps"),
                                       epochs=args.epochs).items():
            _write_json_atomic(args.sweeps / f"{name}.json", data)
            counts = ", ".join(f"{v:g}: {c}/{data['seeds']}" for v, c in zip(data["x"]["values"],
                                                                              data["counts"]["center_norm_above"][0]))
            print(f"sweep {name} ({data['x']['knob']}; seeds above {data['threshold']}): {counts}")
    return 0


def run_b1_survey(args: argparse.Namespace) -> int:
    from lab.claims import survey_b1
    from lab.core.experiments import experiment

    if not 1 <= args.seeds <= 200:
        raise UsageError(f"--seeds must be in [1, 200], got {args.seeds}")
    try:
        table = survey_b1(range(args.seeds), lr=args.lr, noise=args.noise, shift=args.shift)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(f"the paper's B.1 claims over seeds 0..{args.seeds - 1} (lr {args.lr}, noise {args.noise}, "
          f"shift {','.join(f'{v:g}' for v in args.shift)}):")
    for claim, held in table.items():
        failed = [i for i, h in enumerate(held) if not h]
        print(f"  {sum(held):3d}/{len(held)} held: {claim}" + (f"  (not for seeds {failed})" if failed else ""))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(args.out, {"seeds": args.seeds, "lr": args.lr, "noise": args.noise,
                                      "shift": list(args.shift), "made": time.strftime("%Y-%m-%d"),
                                      "claims": [{"key": c.key, "claim": c.statement, "held": table[c.statement]}
                                                 for c in experiment("b1").claims]})
    return 0


def run_doctor_cli(args: argparse.Namespace) -> int:
    from lab.doctor import check_and_project, report_table

    for flag, path, example in (("--json", args.json, "doctor.json"), ("--report", args.report, "report.html")):
        if path is not None and path.is_dir():
            raise UsageError(f"{flag} {path} is a folder; give a file name like {example}")
    paths = [args.path] + ([args.other] if args.other is not None else [])
    options = dict(labels=args.labels, views=args.views, data=args.data, arch=args.arch, features=args.features,
                   limit=args.limit, split=args.split, progress=_progress("embedding"))
    try:
        checked = [check_and_project(path, **options) for path in paths]
    except ValueError as e:
        raise UsageError(str(e)) from None
    for path, (report, _, _) in zip(paths, checked):
        print(report_table(report, str(path)))
    if args.json is not None:
        docs = [{"source": str(path), "signature": report.signature, "why": report.why, "readings": report.readings}
                for path, (report, _, _) in zip(paths, checked)]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(args.json, docs[0] if len(docs) == 1 else docs)
    if args.report is not None:
        _write_doctor_report(args.report, paths, checked)
    return 0


def _write_doctor_report(out: Path, paths: list[Path], checked: list) -> None:
    from lab.doctor.references import references_for
    from lab.render.doctor import report_html, thumbnails

    names = [p.name if len(paths) == 1 else f"{'AB'[i]}: {p.name}" for i, p in enumerate(paths)]
    refs = references_for(checked[0][0].readings)
    models = [(name, report, shown, None if emb.images is None else thumbnails(emb.images, shown.index))
              for name, (report, shown, emb) in zip(names, checked)]
    text = report_html(models, refs, f"made {time.strftime('%Y-%m-%d %H:%M')} by python -m lab doctor",
                       checked[0][2].class_names)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(out, text)
    print(f"report: {out}")


def _progress(prefix: str):
    """A one-line progress bar on a terminal; silent when stderr is not one."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{prefix} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} steps")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def run_b1(args: argparse.Namespace) -> int:
    from lab.train.b1 import PAPER_SETTINGS, paper_config, train_b1

    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    unknown = [n for n in names if n not in PAPER_SETTINGS]
    if not names or unknown:
        raise UsageError(f"unknown setting {', '.join(unknown) or repr(args.settings)}; "
                         f"valid: {', '.join(PAPER_SETTINGS)}")
    if not (math.isfinite(args.fps) and 0.5 <= args.fps <= 60):
        raise UsageError(f"--fps must be in [0.5, 60], got {args.fps}")
    if not 64 <= args.size <= 2048:
        raise UsageError(f"--size must be in [64, 2048] pixels, got {args.size}")
    if args.loop < 0 or args.max_frames < 2:
        raise UsageError(f"--loop must be >= 0 and --max-frames >= 2, got {args.loop} and {args.max_frames}")
    overrides = dict(seed=args.seed, lr=args.lr, noise=args.noise, shift=args.shift, dim=3 if args.sphere else 2)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    try:
        configs = [paper_config(n, **overrides) for n in names]
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a folder")
    args.out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    runs = train_b1(configs, progress=_progress("training"))
    train_seconds = time.perf_counter() - start
    result = {
        "train_seconds": train_seconds,
        "runs": {n: r.metrics() for n, r in zip(names, runs)},
        "configs": {n: r.config.to_dict() for n, r in zip(names, runs)},
    }
    _write_json_atomic(args.out / "metrics.json", result)
    print(f"trained {len(runs)} setting(s) in {train_seconds:.2f} s -> {args.out / 'metrics.json'}")
    for n, r in zip(names, runs):
        m = r.metrics()
        print(f"  {n}: final ‖s‖ augmented {m['center_norm_aug'][-1]:.3f}, dataset points {m['center_norm'][-1]:.3f}")
    if not args.no_gif:
        _write_pictures(args, names, runs, result["runs"])
    return 0


def _write_pictures(args: argparse.Namespace, names: Sequence[str], runs, metrics: dict) -> None:
    from lab.render.frames import write_gif

    for i, (name, run) in enumerate(zip(names, runs)):
        path = write_gif(args.out / f"{name}.gif", run, fps=args.fps, size=args.size, loop=args.loop,
                         max_frames=args.max_frames, title=name)
        print(f"  wrote {path} ({i + 1}/{len(runs)})")
    try:
        from lab.render.figures import fig_b1, save_png
    except ImportError:  # figures need matplotlib; the GIFs do not
        return
    save_png(fig_b1(metrics), args.out / "fig_b1.png")
    print(f"  wrote {args.out / 'fig_b1.png'}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["runs"]:
        from lab.runs.cli import main as runs_main

        return runs_main(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_BAD_INPUT
        return {"b1": run_b1, "b1-survey": run_b1_survey, "toy": run_toy, "claims": run_claims_cli,
                "sweep": run_sweep_cli, "doctor": run_doctor_cli}[args.command](args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
