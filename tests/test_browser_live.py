"""A real browser against `streamlit run app.py`: "Train live" on the Method playground. The frame's epoch
advances, Pause stops it, "+1 epoch" trains exactly one more, a knob changed while paused (stop-gradient off)
acts from the next epoch once Play is pressed, and at the end the link holds the change (at=E:stop_grad=false)
and the finished run's replay animation appears. No timing is asserted (tools/bench/ui.py measures it)."""
import re
import time
import urllib.parse

import pytest
from test_browser import CHROMIUM, page, server, wait_idle  # noqa: F401 (fixtures)

from tools.bench.ui import FRAME_JS, epoch_of
from lab.render.toy import CENTER_COLOR, CLASS_COLORS
from waits import HANG_MS, HANG_S

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian's chromium at {CHROMIUM}")]

LINK = "method=simsiam&dataset=moons&seeds=2&epochs=150&dim=2"  # D = 2: a flat chart, quick to draw
# Pixels of a colour (within 40 per channel) on one of the live view's canvases: what it has drawn.
PIXELS_JS = """([selector, rgb]) => {
    const c = document.querySelector('.st-key-pg_live_frame ' + selector);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4)
        if (d[i + 3] > 100 && Math.abs(d[i] - rgb[0]) < 40 && Math.abs(d[i + 1] - rgb[1]) < 40
            && Math.abs(d[i + 2] - rgb[2]) < 40) n++;
    return n;
}"""
REPLAY_JS = """() => { const gd = document.querySelector('.st-key-pg_animation .js-plotly-plot');
    return !!(gd && gd._transitionData && gd._transitionData._frames.length); }"""


def frame_epoch(pg) -> int | None:
    title = pg.evaluate(FRAME_JS)
    return None if title is None else epoch_of(title)[0]


def test_train_live_pause_step_change_play(page, server):  # noqa: F811
    def until(cond, what: str):  # each wait has its own hang guard (tests/waits.py); no step is timed here
        deadline = time.monotonic() + HANG_S
        while not (value := cond()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            page.wait_for_timeout(50)
        return value

    side = page.locator('[data-testid="stSidebar"]')
    page.goto(f"{server}/Method_playground?{LINK}")
    side.get_by_text("Train live").wait_for(timeout=HANG_MS)  # on by default: no click
    first = until(lambda: frame_epoch(page) is not None and [frame_epoch(page)], "the first live frame")[0]
    # Slow it to 10 epochs a second, so that Pause comes well before the 150th epoch.
    speed = page.locator(".st-key-pg_live_speed input[type=range]")
    speed.focus()
    page.keyboard.press("ArrowLeft")
    until(lambda: (frame_epoch(page) or 0) > first, "the epoch to advance")

    play = page.locator(".st-key-pg_live_play button").filter(visible=True)
    sync_api.expect(play).to_have_text(re.compile("Pause"), timeout=HANG_MS)
    play.click()
    sync_api.expect(play).to_have_text(re.compile("Play"), timeout=HANG_MS)
    # Paused, the view stops polling; a rerun of the page (here: the curves' x axis, a view setting that
    # leaves the run alone) draws the trainer's latest epoch again.
    axis = iter(["optimizer step", "epoch"] * 50)

    def redraw() -> int:
        side.get_by_text(next(axis), exact=True).click()
        wait_idle(page)
        return frame_epoch(page)

    # A redraw may still show the frame before it (its rerun not drawn yet), and the trainer may finish the
    # epoch it is in after the click: read until two redraws 0.7 s apart agree, then it must hold.
    def settled() -> int:
        deadline = time.monotonic() + HANG_S
        last = redraw()
        while True:
            page.wait_for_timeout(700)
            now = redraw()
            if now == last:
                return now
            assert time.monotonic() < deadline, "the frame did not settle"
            last = now

    paused = settled()
    for _ in range(2):
        page.wait_for_timeout(700)
        assert redraw() == paused, "paused: no more epochs"

    wait_idle(page)
    page.locator(".st-key-pg_live_step button").filter(visible=True).click()
    page.wait_for_timeout(300)  # the click's own rerun first: a redraw's rerun now would cut it short
    wait_idle(page)
    until(lambda: redraw() != paused, "the one more epoch")
    stepped = settled()
    assert stepped == paused + 1, "exactly one more epoch"
    page.wait_for_timeout(700)
    assert redraw() == stepped, "then paused again"
    assert not dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query)).get("at"), "no change yet"

    # Stop-gradient off while paused: asked for now, applied from the next epoch once it plays.
    side.locator(".st-key-pg_simsiam_stop_grad label").first.click()
    wait_idle(page)
    sync_api.expect(play).to_have_text(re.compile("Play"), timeout=HANG_MS)
    play.click()
    # Drawn, not only titled: the change named over the frame, its marker (red) on the curve, the points of
    # every class and the center arrow on the circle.
    until(lambda: "stop-gradient off at epoch" in (page.evaluate(FRAME_JS) or "").lower(), "the change in the title")
    assert page.evaluate(PIXELS_JS, [".lab-live-curve", [215, 48, 39]]) > 50, "the change's marker on the curve"
    for rgb in (*CLASS_COLORS, CENTER_COLOR):
        assert page.evaluate(PIXELS_JS, [".lab-live-sphere", list(rgb)]) > 20, f"nothing drawn in {rgb}"
    page.wait_for_function(REPLAY_JS, timeout=HANG_MS)  # the run ended: the whole page, with its replay
    wait_idle(page)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query))
    assert query["at"] == f"{stepped}:stop_grad=false", page.url
    assert query["stop_grad"] == "true", "the link's starting knobs, then the change"
    assert page.locator('[data-testid="stException"]').count() == 0
    frames = page.evaluate("""() => document.querySelector('.st-key-pg_animation .js-plotly-plot')
        ._transitionData._frames.map(f => f.name)""")
    assert len(frames) > 2


B1_FRAME_JS = FRAME_JS.replace("pg_live_frame", "b1_live_frame")


def test_collapse_on_the_circle_trains_live_then_shows_its_replay(page, server):  # noqa: F811
    """The B.1 page's live view: the epoch advances, the 100 points' colours and the center arrow are
    drawn, and at the end (200 epochs at 25 a second) the page shows the run's replay."""
    page.goto(f"{server}/Collapse_on_the_circle")
    side = page.locator('[data-testid="stSidebar"]')
    side.get_by_text("Train live").wait_for()  # on by default: no click
    page.wait_for_function(f"() => ({B1_FRAME_JS})() !== null", timeout=HANG_MS)
    first = epoch_of(page.evaluate(B1_FRAME_JS))
    assert first[1] == 200, "the page's default: 200 epochs"
    page.wait_for_function(f"() => {{ const t = ({B1_FRAME_JS})(); return t && +t.split(' ')[1].split('/')[0] > "
                           f"{first[0]}; }}", timeout=HANG_MS)
    drawn = page.evaluate(PIXELS_JS.replace("pg_live_frame", "b1_live_frame"), [".lab-live-sphere", list(CENTER_COLOR)])
    assert drawn > 20, "the center arrow"
    page.locator(".st-key-b1_animation .js-plotly-plot").wait_for(timeout=HANG_MS)
    assert page.locator('[data-testid="stException"]').count() == 0
