"""`python -m lab.bench live`: one live seed (`lab.train.toy.live_toy`, as fast as it trains) against the plain
per-seed loop (`lab.train.toy_reference`) on the same setting, for every method at its defaults on blobs; and
the time to the live view's first frame.

Both evaluate fully at the setting's `max_evals` epochs; the live run also embeds the training points every
epoch for its view (features and ‖s‖), which is part of what it is timed for.
"""
from __future__ import annotations

import dataclasses
import time

import torch


def _wait(cond, timeout: float = 120.0) -> None:
    deadline = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > deadline:
            raise TimeoutError("live training did not get there in time")
        time.sleep(0.0005)


def time_live(config) -> dict:
    """One LiveTraining of `config` playing as fast as it trains: {"first_frame_s", "total_s", "epochs"}."""
    from lab.train.toy import live_toy

    start = time.perf_counter()
    live = live_toy(config, playing=True, epochs_per_second=None)
    _wait(lambda: live.control.epoch >= 0 or live.done)
    first = time.perf_counter() - start
    live.thread.join(600)
    total = time.perf_counter() - start
    if live.error:
        raise RuntimeError(f"{config.method}: {live.error}")
    return {"first_frame_s": first, "total_s": total, "epochs": live.run.epochs[-1]}


def time_plain(config) -> float:
    from lab.train.toy_reference import train_toy_plain

    start = time.perf_counter()
    train_toy_plain(config)
    return time.perf_counter() - start


def bench_live(epochs: int | None = None, methods=None, dataset: str = "blobs") -> list[dict]:
    from lab.methods import METHOD_NAMES
    from lab.train.toy import toy_config

    torch.set_num_threads(1)
    settings = {"seeds": 1} | ({} if epochs is None else {"epochs": epochs})
    rows = []
    for method in methods or METHOD_NAMES:
        config = toy_config(method, dataset, settings)
        warm = dataclasses.replace(config, epochs=2)
        time_live(warm), time_plain(warm)  # kernels, allocator, first-call imports
        live = time_live(config)
        plain = time_plain(config)
        n = live["epochs"]
        rows.append({"method": method, "epochs": n, "first_frame_s": live["first_frame_s"],
                     "live_eps": n / live["total_s"], "plain_eps": config.epochs / plain,
                     "live_s": live["total_s"], "plain_s": plain})
    c = config
    print(f"live vs plain: 1 seed on {dataset}, {c.epochs} epochs of {c.steps_per_epoch} steps at each method's "
          f"defaults, torch {torch.__version__}, 1 thread")
    print("  live: LiveTraining, epochs_per_second=None, features and ‖s‖ every epoch; both evaluate fully at "
          f"{c.max_evals} epochs; plain: lab/train/toy_reference.py")
    head = f"  {'method':<11} {'1st frame':>10} {'live ep/s':>10} {'plain ep/s':>11} {'live / plain':>13}"
    print(head)
    for r in rows:
        print(f"  {r['method']:<11} {1000 * r['first_frame_s']:>8.1f}ms {r['live_eps']:>10.0f} {r['plain_eps']:>11.0f}"
              f" {r['live_eps'] / r['plain_eps']:>12.1f}x")
    worst = min(rows, key=lambda r: r["live_eps"])
    print(f"  slowest live method: {worst['method']} at {worst['live_eps']:.0f} epochs/s; slowest first frame "
          f"{1000 * max(r['first_frame_s'] for r in rows):.1f} ms")
    return rows
