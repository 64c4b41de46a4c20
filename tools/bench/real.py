"""`python -m lab.bench real`: the live Real images view as a browser sees it, and what the live trainer costs
against a plain training loop. A headless chromium (Playwright) on the real app (`streamlit run app.py` on a free
localhost port):

- press -> first frame: "Train live" pressed on the Real images page (SimSiam at its recipe, seed 0) until the
  live view shows "step 0/…" (the untrained model's held-out features), and until it shows a step ≥ 1 (the first
  trained update); once on a fresh server (its first run) and once more after Reset (a warm server);
- updates a second: distinct step titles of the view over WINDOW_S while it trains as fast as it can;
- in this process, no browser: steps a second of `lab.train.real_live` (a step, then the held-out reading) against
  a plain loop of the same model, batch and augmentations with no reading, at the same torch threads: the ratio
  is what watching costs.

Targets from issue #23, reported, not asserted: first frame within 1 s, first trained update within 3 s, at least
2 updates a second. `--minutes M`: instead, the server's memory over M minutes of one live run (2,000 steps).
Needs Debian's chromium, Playwright and Debian's dataset-fashion-mnist.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import sys
import time

import torch

from lab.core.clitools import OneLineParser
from lab.data import fmnist
from lab.train import real_live
from tools.bench.ui import CHROMIUM, TIMEOUT_MS, growth_per_minute, streamlit_server

WINDOW_S = 5.0
TITLE_JS = """() => { const el = document.querySelector('.st-key-rl_live_frame .lab-live-title');
    const t = el && el.textContent; return t && /^step \\d+\\/\\d+/.test(t) ? t : null; }"""
# Poll the view's title every 5 ms from now: window.__lab_seen = [[ms since the press, title], ...] on each change.
WATCH_JS = """titleJs => {
    const title = eval(titleJs);
    if (window.__lab_timer) clearInterval(window.__lab_timer);
    window.__lab_t0 = performance.now(); window.__lab_seen = []; let last = null;
    window.__lab_timer = setInterval(() => {
        const now = title();
        if (now !== null && now !== last) window.__lab_seen.push([performance.now() - window.__lab_t0, now]);
        last = now;
    }, 5);
}"""


def step_of(title: str) -> int:
    return int(title.split(" ", 2)[1].split("/")[0])


def seen(page) -> list[tuple[float, str]]:
    return [(ms, t) for ms, t in page.evaluate("() => window.__lab_seen || []")]


def wait_seen(page, test, timeout_s: float = 120.0) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for ms, title in seen(page):
            if test(step_of(title)):
                return ms
        page.wait_for_timeout(20)
    raise TimeoutError(f"no live frame passing the test within {timeout_s:.0f} s; seen {seen(page)[-3:]}")


def press_and_watch(page, button: str) -> dict:
    """Press `button`, then time the first frame, the first trained one and the updates a second."""
    page.evaluate(WATCH_JS, f"({TITLE_JS})")
    page.get_by_role("button", name=button).click()
    first = wait_seen(page, lambda s: s >= 0)
    trained = wait_seen(page, lambda s: s >= 1)
    page.wait_for_timeout(int(1000 * WINDOW_S))
    window = [(ms, t) for ms, t in seen(page) if ms >= trained]
    span = (window[-1][0] - window[0][0]) / 1000 if len(window) > 1 else 0.0
    steps = step_of(window[-1][1]) - step_of(window[0][1]) if window else 0
    return {"first_ms": first, "trained_ms": trained, "updates_per_s": (len(window) - 1) / span if span else 0.0,
            "steps_per_s": steps / span if span else 0.0}


def bench_browser() -> list[dict]:
    from playwright.sync_api import sync_playwright

    rows = []
    with streamlit_server() as (url, _proc), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{url}/Real_images")
            page.get_by_role("button", name="▶ Train live").wait_for()
            page.wait_for_timeout(3000)  # a person reads the page before pressing: the data set loads meanwhile
            rows.append({"when": "fresh server, first run"} | press_and_watch(page, "▶ Train live"))
            print(" ", rows[-1], flush=True)
            page.locator(".st-key-rl_live_reset button").filter(visible=True).first.click()
            page.wait_for_timeout(500)
            page.get_by_role("button", name="▶ Train live").wait_for()
            rows.append({"when": "after Reset, a warm server"} | press_and_watch(page, "▶ Train live"))
        finally:
            browser.close()
    return rows


def bench_trainer(steps: int = 12, threads: int | None = None) -> dict:
    """Steps a second of the live trainer (step + held-out reading) and of a plain loop (step only)."""
    threads = threads or real_live.LIVE_THREADS
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        config = real_live.RealLiveConfig(steps=steps + 2)
        trainer = real_live._Trainer(config, None)
        trainer.read(0, None, None)
        trainer.step(0), trainer.step(1)  # first calls
        t = time.perf_counter()
        for s in range(2, steps + 2):
            loss, center = trainer.step(s)
            trainer.read(s + 1, loss, center)
        live = steps / (time.perf_counter() - t)
        plain = _plain_steps_per_s(config, steps)
    finally:
        torch.set_num_threads(old)
    return {"threads": threads, "live_steps_per_s": live, "plain_steps_per_s": plain, "ratio": plain / live}


def _plain_steps_per_s(config, steps: int) -> float:
    """The same model, optimizer, batch and augmentations in a plain loop: what training alone costs."""
    from lab.data.augment import SSLAugment
    from lab.engine.model import build_model
    from lab.engine.optim import build_optimizer
    from lab.engine.recipes import SCALES, recipe

    rec, scale = recipe("simsiam", "fmnist"), SCALES["fmnist"]
    model = build_model("simsiam", {}, seed=0, scale="fmnist")
    lr = rec.lr * config.batch_size / 256
    opt = build_optimizer(rec, model.param_groups(lr), lr, rec.weight_decay, rec.momentum)
    augment = SSLAugment(28, min_scale=rec.min_scale, mean=scale.mean, std=scale.std)
    images = fmnist.load_split(config.data, "train")[0]
    t = 0.0
    for s in range(steps + 2):
        began = time.perf_counter()
        v1, v2 = augment(images[s * config.batch_size:(s + 1) * config.batch_size])
        loss, _ = model.loss(v1[None], v2[None])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if s >= 2:
            t += time.perf_counter() - began
    return steps / t


def bench_memory(minutes: float, sample_s: float = 15.0) -> int:
    import psutil
    from playwright.sync_api import sync_playwright

    samples = []
    with streamlit_server() as (url, proc), sync_playwright() as pw:
        server = psutil.Process(proc.pid)
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{url}/Real_images?live=simsiam&steps=2000")
            page.wait_for_function(TITLE_JS)  # the run's first frame: the server has imported and read everything
            start = time.monotonic()
            while time.monotonic() - start < 60 * minutes:
                samples.append((time.monotonic() - start, server.memory_info().rss / 2**20,
                                page.evaluate(TITLE_JS)))
                print(f"  {samples[-1][0]:6.0f} s: server RSS {samples[-1][1]:6.1f} MiB, {samples[-1][2]}", flush=True)
                page.wait_for_timeout(int(1000 * sample_s))
        finally:
            browser.close()
    slope = growth_per_minute(samples)
    print(f"one live Fashion-MNIST run for {minutes:g} min in one headless chromium (reached {samples[-1][2]}): "
          f"server RSS {samples[0][1]:.0f} MiB at start, {max(m for _, m, _ in samples):.0f} MiB at most, "
          f"{samples[-1][1]:.0f} MiB at the end; growth over the second half {slope:+.2f} MiB/min")
    return 0


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m tools.bench.real", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, help="instead of the timings, the server's memory over this many "
                                                      "minutes of one live run (issue #23 asks for 10)")
    args = parser.parse_args(argv)
    if args.minutes is not None and not 0 < args.minutes <= 120:
        parser.error(f"--minutes must be in (0, 120], got {args.minutes:g}")
    if importlib.util.find_spec("playwright") is None or not CHROMIUM.exists():
        print(f"error: the real bench needs Playwright and chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    if not fmnist.is_fashion_mnist(fmnist.DEBIAN_DIR):
        print(f"error: the real bench needs Fashion-MNIST at {fmnist.DEBIAN_DIR}: {fmnist.INSTALL_HINT}", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.minutes is not None:
            return bench_memory(args.minutes)
        began = time.perf_counter()
        trainer = bench_trainer()
        rows = bench_browser()
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"live Real images in headless chromium, `streamlit run app.py` on this machine ({os.cpu_count()} CPUs), "
          f"SimSiam at its Fashion-MNIST recipe, batch 128, {real_live.RealLiveConfig.held_out} held-out images; {time.perf_counter() - began:.0f} s")
    for r in rows:
        print(f"  {r['when']}: press -> first frame {r['first_ms']:.0f} ms (target 1000: "
              f"{'met' if r['first_ms'] <= 1000 else 'NOT met'}), -> first trained update {r['trained_ms']:.0f} ms "
              f"(target 3000: {'met' if r['trained_ms'] <= 3000 else 'NOT met'}), {r['updates_per_s']:.1f} updates/s "
              f"(target >= 2: {'met' if r['updates_per_s'] >= 2 else 'NOT met'}), {r['steps_per_s']:.1f} steps/s")
    print(f"  trainer in this process, {trainer['threads']} torch threads: {trainer['live_steps_per_s']:.2f} steps/s "
          f"with the held-out reading, {trainer['plain_steps_per_s']:.2f} steps/s in a plain loop: watching costs "
          f"{trainer['ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
