"""A class on one server: many browsers against a real `streamlit run app.py`, in bounded time.

(a) N browser contexts (LAB_LOAD_BROWSERS, 8 by default for a 2-core machine; 20 for a full class) open ONE
    lesson link within a short window. The setting trains once on the server (`lab.ui.train_cached`): every
    page shows the same run, the same `trained in X s` caption (the one ToyRun's own training time) and the
    final ‖s‖ this test computes itself; at most one page ever showed the training progress ("… epoch E of
    T"), the others that came while it trained showed "waiting for it".
(b) M contexts each move a different knob (three learning rates and the epochs) and each sees its own run:
    the final ‖s‖ of the setting its URL names.

Timings (time to the first frame per context) and the server's memory (RSS) are printed, not asserted.
"""
from __future__ import annotations

import os
import time
import urllib.parse
from pathlib import Path

import psutil
import pytest

from lab.bench.ui import CHROMIUM, streamlit_server
from lab.methods import method_config
from lab.train.toy import ToyConfig, toy_config, train_toys

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian's chromium at {CHROMIUM}")]

BROWSERS = int(os.environ.get("LAB_LOAD_BROWSERS", "8"))
LESSON = "method=simsiam&dataset=moons&seeds=3&lesson=1"
BUDGET_S = 120.0 if BROWSERS <= 8 else 240.0
BIG_MESSAGE = 500_000  # bytes: the playground's animation (51 frames of 600 points) is one message of several MB

# Record every progress text a page shows (the bar lives for seconds; poll it every 20 ms from page start).
WATCH_PROGRESS = """(() => { window.__lab_progress = [];
    setInterval(() => { for (const e of document.querySelectorAll('[data-testid="stProgress"]')) {
        const t = e.innerText.trim(); if (t && !window.__lab_progress.includes(t)) window.__lab_progress.push(t); }
    }, 20); })();"""
READY_JS = """() => { const gd = document.querySelector('.st-key-pg_animation .js-plotly-plot');
    return !!(gd && gd._transitionData && gd._transitionData._frames.length)
        && document.querySelectorAll('[data-testid="stMetricValue"]').length >= 4; }"""
SHOWN_JS = """() => ({
    s: document.querySelector('[data-testid="stMetricValue"]').innerText,
    trained: ([...document.querySelectorAll('[data-testid="stCaptionContainer"]')].map(e => e.innerText)
              .find(t => t.includes('trained in')) || null),
    progress: window.__lab_progress || [],
    errors: document.querySelectorAll('[data-testid="stException"]').length,
    traceback: document.body.innerText.includes('Traceback'),
})"""


def rss_mb(pid: int) -> float:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def config_of(url: str) -> ToyConfig:
    """The toy setting a playground URL names (the page writes every knob into it)."""
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(url).query))
    method = q["method"]
    keys = set(ToyConfig.__dataclass_fields__) | set(method_config(method).__dataclass_fields__)
    keys -= {"method", "dataset", "params", "changes"}
    return toy_config(method, q["dataset"], {k: v for k, v in q.items() if k in keys})


def config_value(url: str, key: str) -> str:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(url).query))[key]


def final_s(config: ToyConfig) -> str:
    run = train_toys([config])[0]
    return f"{run.metrics['center_norm'][-1].mean().item():.3f}"


def wait_all(pages, started: list[float], deadline: float) -> list[float]:
    """Seconds from each page's goto to its animation and metrics, polling the pages in turn."""
    ready = [None] * len(pages)
    while None in ready:
        assert time.monotonic() < deadline, f"not every page got its animation: {ready}"
        for i, pg in enumerate(pages):
            if ready[i] is None and pg.evaluate(READY_JS):
                ready[i] = time.monotonic() - started[i]
        time.sleep(0.05)
    return ready


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("load") / "server.log"
    with streamlit_server(log_path=log_path) as (url, proc):
        yield url, proc
    log = Path(log_path).read_text()
    assert "Traceback" not in log, log[-3000:]


def test_a_class_opens_one_lesson_link_and_moves_knobs(server):
    url, proc = server
    deadline = time.monotonic() + BUDGET_S
    rss = {"start": rss_mb(proc.pid)}
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            contexts = [browser.new_context(viewport={"width": 1200, "height": 900}) for _ in range(BROWSERS)]
            pages, arrived = [], [None] * BROWSERS  # when each page's socket got the animation (its big message)

            def on_socket(ws, i):
                def got(payload):
                    if arrived[i] is None and len(payload) > BIG_MESSAGE:
                        arrived[i] = time.monotonic()
                ws.on("framereceived", got)

            for i, ctx in enumerate(contexts):
                ctx.add_init_script(WATCH_PROGRESS)
                pg = ctx.new_page()
                pg.on("websocket", lambda ws, i=i: on_socket(ws, i))
                pg.set_default_timeout(60_000)
                pages.append(pg)
            # (a) everyone opens the lesson link at once ("commit": do not wait for each page to load).
            started = []
            for pg in pages:
                started.append(time.monotonic())
                pg.goto(f"{url}/Method_playground?{LESSON}", wait_until="commit")
            window = started[-1] - started[0]
            first_frame = wait_all(pages, started, deadline)
            on_socket_s = [a - t if a else float("nan") for a, t in zip(arrived, started)]
            rss["after (a)"] = rss_mb(proc.pid)
            shown = [pg.evaluate(SHOWN_JS) for pg in pages]
            expected = final_s(config_of(pages[0].url))
            trainers = [i for i, s in enumerate(shown) if any(" epoch " in t and " of " in t for t in s["progress"])]
            waiters = [i for i, s in enumerate(shown) if any("waiting for it" in t for t in s["progress"])]
            print(f"\n(a) {BROWSERS} browsers opened {LESSON} within {window:.2f} s; time to the animation per "
                  f"context: {', '.join(f'{t:.1f}' for t in first_frame)} s (median "
                  f"{sorted(first_frame)[len(first_frame) // 2]:.1f} s, max {max(first_frame):.1f} s); "
                  "the animation reached "
                  f"each page's socket after {', '.join(f'{t:.1f}' for t in on_socket_s)} s; "
                  f"{len(trainers)} page(s) showed the training progress, {len(waiters)} waited for it, "
                  f"{BROWSERS - len(trainers) - len(waiters)} found it trained")
            for s in shown:
                assert s["errors"] == 0 and not s["traceback"], s
                assert s["s"] == expected, (s, expected)
            assert len({s["trained"] for s in shown}) == 1 and shown[0]["trained"], \
                f"one run for every page: {[s['trained'] for s in shown]}"
            assert len(trainers) <= 1, f"trained more than once: pages {trainers} each showed the progress"
            assert len(trainers) + len(waiters) >= 1, "someone trained it while the others opened it"
            print(f"    every page: final ‖s‖ {expected}, '{shown[0]['trained']}'")

            # (b) M of them move different knobs in the full (non-lesson) view.
            moves = [("lr", "ArrowLeft"), ("lr", "ArrowRight"), ("lr", "Home"), ("epochs", "ArrowLeft")]
            movers = pages[:len(moves)]
            for pg in movers:
                pg.goto(f"{url}/Method_playground?{LESSON.replace('&lesson=1', '')}")
            wait_all(movers, [time.monotonic()] * len(movers), deadline)
            initial = [config_value(pg.url, knob) for pg, (knob, _) in zip(movers, moves)]
            started = []
            for i, (pg, (knob, key)) in enumerate(zip(movers, moves)):
                pg.locator(f'[data-testid="stSidebar"] .st-key-pg_{knob} input[type=range]').focus()
                arrived[i] = None
                started.append(time.monotonic())
                pg.keyboard.press(key)
            for pg, (knob, _), before in zip(movers, moves, initial):  # the URL follows the knob, the run after
                pg.wait_for_function("([k, v]) => new URLSearchParams(location.search).get(k) !== v",
                                     arg=[knob, before], timeout=60_000)
            while None in arrived[:len(movers)]:  # Playwright hands the socket's events over while it is called
                assert time.monotonic() < deadline, f"not every mover got a new animation: {arrived}"
                movers[0].wait_for_timeout(50)
            new_socket = [a - t for a, t in zip(arrived, started)]
            configs = [config_of(pg.url) for pg in movers]
            assert len(set(configs)) == len(moves), "each browser its own setting"
            expected = [final_s(c) for c in configs]
            for pg, want in zip(movers, expected):
                pg.wait_for_function(f"() => ({READY_JS})() && document.querySelector("
                                     f"'[data-testid=\"stMetricValue\"]').innerText === {want!r}", timeout=60_000)
            # upper bounds: polled one page after another, after this test trained the four settings itself
            new_frame = [time.monotonic() - t for t in started]
            rss["after (b)"] = rss_mb(proc.pid)
            for pg in pages:
                s = pg.evaluate(SHOWN_JS)
                assert s["errors"] == 0 and not s["traceback"], s
            print(f"(b) {len(moves)} browsers moved {', '.join(f'{k} ({key})' for k, key in moves)}: "
                  + ", ".join(f"{c.lr:g}/{c.epochs} ep -> ‖s‖ {e}" for c, e in zip(configs, expected))
                  + f"; knob -> its new animation on the page's socket after "
                  f"{', '.join(f'{t:.1f}' for t in new_socket)} s (shown and checked within "
                  f"{', '.join(f'{t:.1f}' for t in new_frame)} s, the test's own training included)")
        finally:
            browser.close()
    print("server RSS (MiB, with children): " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))
    assert time.monotonic() < deadline, f"the load test took over {BUDGET_S:.0f} s"
