"""`python -m lab runs ...`: launch, list, show, stop and resume runs.

    runs launch NAME [--gpus G] [--device D] [--preset P] [--demo] [--slurm --nodes N --gpus-per-node G
                     --cpus-per-task C --mem-gb M --time-min T --partition P] -- <train args>
    runs list [--json]        runs show NAME [--json]        runs stop NAME [--wait S] [--kill]
    runs resume NAME

Everything after `--` is `python -m lab.engine.train`'s flags (an argv list, never a shell line): the
launcher parses them once into the run's config, adds --out ROOT/NAME and --device, writes it to
ROOT/NAME/train_config.json and starts the engine with --config that file. With --preset, NAME is the
prefix of the preset's run names. Every subcommand takes --root DIR (default $LAB_RUNS_DIR, else ./runs).
Bad input: one line on stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from lab.core.collapse import collapse_kind, phrase
from lab.runs.core import (EXTERNAL, demo_data, demo_train_args, get_run, launch, launch_preset, list_runs, log_tail,
                           resume, stop)
from lab.runs.slurm import SlurmError, SlurmSpec

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m lab runs", description="Launch and watch ImageNet runs (locally or on SLURM).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    root = argparse.ArgumentParser(add_help=False)
    root.add_argument("--root", help="runs root (default: $LAB_RUNS_DIR, else ./runs)")
    la = sub.add_parser("launch", parents=[root], help="start a run (train args after --)",
                        epilog="Train args follow a lone --, e.g. -- --data DIR --method simsiam --epochs 100; "
                               "the launcher adds --out ROOT/NAME and --device and writes the run's config "
                               "to ROOT/NAME/train_config.json.")
    la.add_argument("name", help="run name (letters, digits, . _ -), or the name prefix with --preset")
    la.add_argument("--gpus", type=int, default=1, help="processes (GPUs) per node; > 1 uses torchrun (default 1)")
    la.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto: cuda when present)")
    la.add_argument("--preset", help="launch a paper preset's whole sweep (python -m lab.engine.train --preset)")
    la.add_argument("--demo", action="store_true", help="a CPU demo run: SimSiam on Debian's Fashion-MNIST (generated images where it is missing)")
    la.add_argument("--stop-grace", type=float, default=120.0, metavar="S",
                    help="seconds from SIGTERM to SIGKILL when stopping (default 120)")
    la.add_argument("--json", action="store_true", help="print the launched runs as JSON")
    sl = la.add_argument_group("SLURM")
    sl.add_argument("--slurm", action="store_true", help="submit as a SLURM batch job")
    spec = SlurmSpec()  # the defaults, declared once there
    sl.add_argument("--nodes", type=int, default=spec.nodes)
    sl.add_argument("--gpus-per-node", type=int, help="default: --gpus if > 1, else 0 (a CPU job)")
    sl.add_argument("--cpus-per-task", type=int, default=spec.cpus_per_task)
    sl.add_argument("--mem-gb", type=int, default=spec.mem_gb)
    sl.add_argument("--time-min", type=int, default=spec.time_min)
    sl.add_argument("--partition", default=spec.partition)
    ls = sub.add_parser("list", parents=[root], help="all runs, newest first")
    ls.add_argument("--json", action="store_true", help="a JSON array of the runs")
    sh = sub.add_parser("show", parents=[root], help="status, progress, last metrics and the log tail of a run")
    sh.add_argument("name")
    sh.add_argument("--json", action="store_true")
    sh.add_argument("--lines", type=int, default=20, help="log lines to show (default 20)")
    st = sub.add_parser("stop", parents=[root], help="stop a run (SIGTERM: it checkpoints; resume continues it)")
    st.add_argument("name")
    st.add_argument("--wait", type=float, default=60.0, help="seconds to wait for it to end (default 60)")
    st.add_argument("--kill", action="store_true", help="SIGKILL now (loses progress since the last checkpoint)")
    rs = sub.add_parser("resume", parents=[root], help="start a stopped or failed run again from its checkpoint")
    rs.add_argument("name")
    return p


def _split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def _slurm_spec(args: argparse.Namespace) -> SlurmSpec | None:
    if not args.slurm:
        return None
    gpn = args.gpus_per_node if args.gpus_per_node is not None else (args.gpus if args.gpus > 1 else 0)
    return SlurmSpec(nodes=args.nodes, gpus_per_node=gpn, cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb,
                     time_min=args.time_min, partition=args.partition)


def _progress(info) -> str:
    if not info.epochs:
        return f"epoch {info.epoch}"
    return f"epoch {info.epoch}/{info.epochs} ({100 * info.epoch / info.epochs:.0f} %)"


def _where(info) -> str:
    if info.backend == "slurm":
        return f"SLURM job {info.job_id}"
    if info.backend == EXTERNAL:
        return "started outside the lab"
    return f"pid {info.pid}" if info.pid else "local"


def cmd_launch(args: argparse.Namespace, train_args: list[str]) -> int:
    if args.demo:
        train_args = demo_train_args(demo_data(args.root)) + train_args
        if args.device == "auto":
            args.device = "cpu"
    spec = _slurm_spec(args)
    kw = dict(gpus=args.gpus, root=args.root, slurm=spec, device=args.device, stop_grace_s=args.stop_grace)
    if args.preset:
        infos = launch_preset(args.preset, train_args, prefix=args.name, **kw)
    else:
        infos = [launch(args.name, train_args, **kw)]
    if args.json:
        print(json.dumps([i.to_json() for i in infos], indent=1))
        return 0
    for info in infos:
        print(f"launched {info.name}: {info.status} ({_where(info)}) -> {info.path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    runs = list_runs(args.root)
    if args.json:
        print(json.dumps([r.to_json() for r in runs], indent=1))
        return 0
    if not runs:
        print("no runs yet")
        return 0
    rows = [("NAME", "STATUS", "PROGRESS", "METHOD", "WHERE", "STARTED")]
    rows += [(r.name, r.status, _progress(r), r.method or "?", _where(r), r.started) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return 0


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def cmd_show(args: argparse.Namespace) -> int:
    info = get_run(args.name, args.root)
    if args.json:
        print(json.dumps({**info.to_json(), "log_tail": log_tail(info.path, args.lines)}, indent=1))
        return 0
    print(f"{info.name}: {info.status}, {_progress(info)}, {info.method or '?'}, {info.backend} ({_where(info)}), "
          f"started {info.started}" + (f", exit code {info.exit_code}" if info.exit_code is not None else ""))
    print(f"folder: {info.path}")
    if info.message:
        print("message: " + info.message)
    if info.last_epoch_metrics:
        keys = [k for k in ("loss", "center_norm", "knn_acc", "z_std", "lr", "images_per_s")
                if info.last_epoch_metrics.get(k) is not None]
        print("last epoch: " + ", ".join(f"{k} {_fmt(info.last_epoch_metrics[k])}" for k in keys))
        signs = [s for s in info.last_epoch_metrics.get("collapse_signs") or [] if isinstance(s, dict)]
        if signs:
            print(f"collapse: {collapse_kind(signs)} ({'; '.join(map(phrase, signs))})")
    tail = log_tail(info.path, args.lines)
    if tail:
        print("log:")
        for line in tail:
            print("  " + line)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    info = stop(args.name, args.root, wait=args.wait, kill=args.kill)
    why = f" ({info.message.splitlines()[0]})" if info.message else ""
    print(f"{info.name}: {info.status}, {_progress(info)}{why}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    info = resume(args.name, args.root)
    print(f"resumed {info.name}: {info.status} ({_where(info)}), from epoch {info.epoch}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ours, train_args = _split(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(ours)
        if args.command is None:
            build_parser().print_help()
            return EXIT_BAD_INPUT
        if args.command != "launch" and train_args:
            raise UsageError(f"runs {args.command} takes no train args after --")
        handlers = {"list": cmd_list, "show": cmd_show, "stop": cmd_stop, "resume": cmd_resume}
        return cmd_launch(args, train_args) if args.command == "launch" else handlers[args.command](args)
    except (UsageError, ValueError, SlurmError) as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
