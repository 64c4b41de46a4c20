"""A real browser against `streamlit run app.py`: open the Method playground from a link, move a slider
with the keyboard, see the animation change and the URL follow; then the Compare page."""
import json
import re
import urllib.parse

import pytest

from test_browser import CHROMIUM, TIMEOUT_MS, page, server, wait_idle  # noqa: F401 (fixtures)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian's chromium at {CHROMIUM}")

PLAYGROUND_SHOT = "/tmp/playground.png"
COMPARE_SHOT = "/tmp/compare.png"
QUICK = "method=simsiam&dataset=moons&predictor=false&lr=0.03&epochs=20&seeds=2"

# The animation as the browser holds it: the last frame's first trace and every frame's center label.
ANIMATION_JS = """() => {
    const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
    if (!gd || !gd._transitionData || !gd._transitionData._frames.length) return null;
    const frames = gd._transitionData._frames;
    const last = frames[frames.length - 1];
    return JSON.stringify({n: frames.length, last: last.data[0].x.slice(0, 20), names: last.data.map(t => t.name)});
}"""


def animation(page) -> dict:
    return json.loads(page.evaluate(ANIMATION_JS) or "null")


def query(page) -> dict:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query))


def slider(page, label: str):
    # Streamlit's sliders are <input type=range> labelled by the widget's label.
    return page.locator(f'[data-testid="stSidebar"] input[type=range][aria-label="{label}"]')


def screenshot(page, path: str) -> None:
    # Streamlit scrolls inside its own container, so full_page would stop at the viewport: grow it instead.
    page.set_viewport_size({"width": 1500, "height": 2300})
    page.wait_for_timeout(500)  # let Plotly relayout at the new size
    page.screenshot(path=path)
    page.set_viewport_size({"width": 1500, "height": 1100})


def test_playground_slider_changes_animation_and_url(page, server):  # noqa: F811
    sync_api.expect.set_options(timeout=TIMEOUT_MS)
    page.goto(f"{server}/Method_playground?{QUICK}")
    sync_api.expect(page.get_by_role("heading", name="Method playground")).to_be_visible()
    page.wait_for_function(f"() => ({ANIMATION_JS})() !== null", timeout=TIMEOUT_MS)
    wait_idle(page)
    before = animation(page)
    assert before["n"] == 21  # epochs 0..20, frames carried to the browser
    # The URL now holds the whole setting, with the link's values.
    q = query(page)
    assert q["method"] == "simsiam" and q["predictor"] == "false" and q["lr"] == "0.03" and q["epochs"] == "20"
    assert "sgd_momentum" in q and "batch_size" in q
    lr = slider(page, "Learning rate")
    assert lr.get_attribute("aria-valuetext") == "0.03"
    screenshot(page, PLAYGROUND_SHOT)

    lr.focus()
    page.keyboard.press("ArrowRight")  # the next stop: 0.05
    page.wait_for_function(  # the rerun replaces the chart once the new run is trained
        f"""before => {{ const now = ({ANIMATION_JS})();
            return now !== null && JSON.stringify(JSON.parse(now).last) !== JSON.stringify(before); }}""",
        arg=before["last"], timeout=TIMEOUT_MS)
    wait_idle(page)
    after = animation(page)
    assert after["n"] == before["n"] and after["last"] != before["last"], "a new run, a new animation"
    sync_api.expect(page).to_have_url(re.compile(r"[?&]lr=0\.05(&|$)"))
    assert query(page)["dataset"] == "moons", "the rest of the setting stays in the URL"

    # Reloading the URL reproduces the view.
    page.reload()
    page.wait_for_function(f"() => ({ANIMATION_JS})() !== null", timeout=TIMEOUT_MS)
    wait_idle(page)
    sync_api.expect(slider(page, "Learning rate")).to_have_attribute("aria-valuetext", "0.05")
    assert animation(page)["last"] == after["last"]


def test_playground_lesson_link_has_no_controls(page, server):  # noqa: F811
    page.goto(f"{server}/Method_playground?{QUICK}&lesson=1")
    page.wait_for_function(f"() => ({ANIMATION_JS})() !== null", timeout=TIMEOUT_MS)
    wait_idle(page)
    assert page.locator('[data-testid="stSlider"]').count() == 0
    assert page.locator('[data-testid="stSelectbox"]').count() == 0
    sync_api.expect(page.locator(".updatemenu-item-text", has_text="▶ Play")).to_be_visible()  # Plotly's button: SVG text, not a <button>
    assert query(page)["lesson"] == "1"


def test_compare_page_renders(page, server):  # noqa: F811
    page.goto(f"{server}/Compare?fig=4&epochs=30&a.epochs=30&b.epochs=30&b.method=simsiam&b.predictor=false")
    sync_api.expect(page.get_by_role("heading", name="Compare", exact=True)).to_be_visible()
    plots = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot')
    sync_api.expect(plots).to_have_count(10, timeout=TIMEOUT_MS)
    wait_idle(page)
    names = plots.first.evaluate("gd => gd.data.map(t => t.name)")
    assert {"simsiam", "no predictor", "no stop-gradient"} <= set(names)
    screenshot(page, COMPARE_SHOT)
