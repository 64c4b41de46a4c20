"""A real browser against `streamlit run app.py`: the Real images page trains Fashion-MNIST live. A link starts
the run; the frame's step advances, Pause holds it, "+1 step" trains exactly one more, stop-gradient turned off
while paused acts from the next step (named over the frame, marked on the curve, kept in the link's `at=`), a
point shows its image on hover, and at the end the run's curves and a GIF for a talk come. A link's own `at=`
acts at its step; bad link values are one line each. No timing is asserted (`python -m lab.bench ui --real`)."""
import re
import time
import urllib.parse

import pytest
from test_browser import CHROMIUM, page, server, wait_idle  # noqa: F401 (fixtures)

from lab.data import fmnist
from waits import HANG_MS, HANG_S

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian's chromium at {CHROMIUM}"),
              pytest.mark.skipif(not fmnist.is_fashion_mnist(fmnist.DEBIAN_DIR),
                                 reason="needs Debian's dataset-fashion-mnist")]

STATUS_JS = """() => { const el = document.querySelector('.st-key-rl_live_frame .lab-live-status');
    return el ? el.textContent : ''; }"""
TITLE_JS = """() => { const el = document.querySelector('.st-key-rl_live_frame .lab-live-title');
    const t = el && el.textContent; return t && /^step \\d+\\/\\d+/.test(t) ? t : null; }"""
# The screen position of the first point drawn in front, in page pixels (the view keeps them for its hover).
POINT_JS = """() => { const root = document.querySelector('.st-key-rl_live_frame .lab-live');
    const v = root.parentNode.__labLive, c = v.sphere.getBoundingClientRect();
    for (let i = 0; i < v.screen.length / 3; i++) if (v.screen[3 * i + 2]) return [c.left + v.screen[3 * i], c.top + v.screen[3 * i + 1]];
    return null; }"""
HOVER_JS = """() => { const h = document.querySelector('.st-key-rl_live_frame .lab-live-hover');
    return [h.style.display, h.querySelector('img').src.slice(0, 22), h.querySelector('span').textContent]; }"""


def step_of(page) -> int | None:
    title = page.evaluate(TITLE_JS)
    return None if title is None else int(title.split(" ", 2)[1].split("/")[0])


def until(page, cond, what: str):
    deadline = time.monotonic() + HANG_S
    while not (value := cond()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(50)
    return value


def query(page) -> dict:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query))


def test_live_run_pause_step_change_hover_and_export(page, server):  # noqa: F811
    page.goto(f"{server}/Real_images?live=simsiam&steps=40")
    until(page, lambda: step_of(page) is not None, "the first frame")
    until(page, lambda: (step_of(page) or 0) >= 2, "the steps to advance")
    play = page.locator(".st-key-rl_live_play button").filter(visible=True)
    sync_api.expect(play).to_have_text(re.compile("Pause"), timeout=HANG_MS)
    play.click()
    sync_api.expect(play).to_have_text(re.compile("Play"), timeout=HANG_MS)

    keys = iter(["ArrowLeft", "ArrowRight"] * 50)

    def redraw() -> tuple[str, int] | None:
        """A rerun of the page (the speed slider, which leaves a paused run alone), then its status line:
        ("Paused", step) once the trainer waits (after Pause it finishes the step it is in), else ("...", step)."""
        speed = page.locator(".st-key-rl_live_speed input[type=range]")
        speed.focus()
        page.keyboard.press(next(keys))
        wait_idle(page)
        found = re.match(r"(\w+) · step (\d+) of", page.evaluate(STATUS_JS))
        return (found[1], int(found[2])) if found else None

    def paused_at(other_than: int | None = None) -> int:
        state = until(page, lambda: (now := redraw()) and now[0] == "Paused" and now[1] != other_than and now,
                      "the trainer waiting, paused")
        return state[1]

    paused = paused_at()
    page.wait_for_timeout(1000)
    assert redraw() == ("Paused", paused), "paused: no more steps"
    page.locator(".st-key-rl_live_step button").filter(visible=True).click()
    wait_idle(page)
    stepped = paused_at(other_than=paused)
    assert stepped == paused + 1, "exactly one more step"
    page.wait_for_timeout(1000)
    assert redraw() == ("Paused", stepped), "then paused again"
    assert "at" not in query(page), "no change yet"

    point = until(page, lambda: page.evaluate(POINT_JS), "a point drawn in front")
    page.mouse.move(*point)
    shown, src, name = until(page, lambda: page.evaluate(HOVER_JS)[0] == "block" and page.evaluate(HOVER_JS),
                             "the hovered image")
    assert src == "data:image/png;base64," and name in fmnist.CLASSES

    page.locator(".st-key-rl_simsiam_stop_grad label").first.click()
    wait_idle(page)
    page.locator(".st-key-rl_live_play button").filter(visible=True).click()
    until(page, lambda: "stop-gradient off at step" in (page.evaluate(TITLE_JS) or "").lower(), "the change named")
    until(page, lambda: query(page).get("at") == f"{stepped}:stop_grad=false", "the change in the link")
    page.locator(".st-key-rl_curves .js-plotly-plot").wait_for(timeout=HANG_MS)  # the run ended: its curves
    page.screenshot(path="/tmp/real_live_page.png", full_page=True)
    page.get_by_text("Export for a talk").click()
    page.locator(".st-key-rl_export_fmt").get_by_text("GIF").click()
    button = page.locator(".st-key-rl_export_download button").filter(has_text="Download as GIF")
    button.wait_for(timeout=HANG_MS)  # the rerun that made the GIF's button
    wait_idle(page)
    with page.expect_download() as download:
        button.click()
    data = open(download.value.path(), "rb").read()
    assert data[:6] == b"GIF89a" and len(data) > 10_000
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_links_change_acts_at_its_step_and_bad_values_are_one_line(page, server):  # noqa: F811
    page.goto(f"{server}/Real_images?live=simsiam&steps=12&at=3:stop_grad=false")
    until(page, lambda: "stop-gradient off at step 3" in (page.evaluate(TITLE_JS) or "").lower(),
          "the link's change at step 3")
    assert (step_of(page) or 0) >= 3
    page.goto(f"{server}/Real_images?live=bogus&steps=abc&colour=red")
    alerts = page.locator('[data-testid="stAlertContentError"]')
    for words in ("live=bogus", "steps=abc", "Unknown URL parameter colour"):
        until(page, lambda: any(words in e for e in alerts.all_inner_texts()), f"the line about {words}")
    wait_idle(page)
    page.wait_for_timeout(1000)
    assert page.evaluate(TITLE_JS) is None, "no run started: the view is empty"
    page.goto(f"{server}/Real_images?live=simsiam&steps=20&at=30:stop_grad=false")
    wait_idle(page)
    sync_api.expect(page.get_by_text(re.compile("Cannot train this setting: .*must be in \\[0, 19\\]"))).to_be_visible()
    assert page.locator('[data-testid="stException"]').count() == 0
