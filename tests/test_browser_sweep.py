"""A real browser against `streamlit run app.py`: the Sweep page runs a small grid, and a click on a cell of
the heatmap replays that cell (what AppTest cannot do: Plotly's selection event comes from the browser)."""
import json

import pytest

from test_browser import CHROMIUM, TIMEOUT_MS, page, server, wait_idle  # noqa: F401 (fixtures)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian's chromium at {CHROMIUM}")]

SHOT = "/tmp/sweep.png"

# The heatmap's cells (first trace: customdata (iy, ix) per square) and the animation's title, as the browser holds them.
STATE_JS = """() => {
    const plots = [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')];
    const heat = plots.find(gd => gd.data && gd.data[0] && gd.data[0].name === 'cells');
    const anim = plots.find(gd => gd._transitionData && gd._transitionData._frames.length);
    return JSON.stringify({cells: heat ? heat.data[0].customdata.length : 0,
                           title: anim && anim.layout.title ? anim.layout.title.text : null});
}"""


def state(page) -> dict:
    return json.loads(page.evaluate(STATE_JS))


def test_sweep_runs_and_a_click_replays_the_cell(page, server):  # noqa: F811
    sync_api.expect.set_options(timeout=TIMEOUT_MS)
    page.goto(f"{server}/Sweep")
    sync_api.expect(page.get_by_role("heading", name="Sweep")).to_be_visible()
    wait_idle(page)
    side = page.locator('[data-testid="stSidebar"]')
    # 10 epochs: the epoch slider's first stop; then a 3 x 2 grid.
    epochs = side.locator('input[type=range][aria-label="Epochs"]')
    epochs.focus()
    page.keyboard.press("Home")
    wait_idle(page)
    for label, n in (("x values", 3), ("y values", 2)):
        handle = side.locator(f'input[type=range][aria-label="{label}"]')
        handle.focus()
        page.keyboard.press("Home")
        for _ in range(n - 1):
            page.keyboard.press("ArrowRight")
        wait_idle(page)
    sync_api.expect(side.get_by_text("6 cells × 1 seed(s) in 1 stacked program(s).")).to_be_visible()
    side.get_by_role("button", name="Run sweep").click()
    page.wait_for_function(f"() => JSON.parse(({STATE_JS})()).cells === 6", timeout=TIMEOUT_MS)
    wait_idle(page)
    first = state(page)
    assert "lr = 0.01, predictor_lr_scale = 0.01" in first["title"]  # the picker's first cell
    # Click the top-right square: lr = 0.2, predictor_lr_scale = 1.
    box = page.evaluate("""() => {
        const gd = [...document.querySelectorAll('.js-plotly-plot')].find(g => g.data[0].name === 'cells');
        const pts = gd.querySelectorAll('.scatterlayer .trace:first-child .points path');
        const r = pts[pts.length - 1].getBoundingClientRect();
        return {x: r.x + r.width / 2, y: r.y + r.height / 2};
    }""")
    page.mouse.click(box["x"], box["y"])
    page.wait_for_function(f"() => (JSON.parse(({STATE_JS})()).title || '').includes('lr = 0.2, predictor_lr_scale = 1')",
                           timeout=TIMEOUT_MS)
    wait_idle(page)
    page.set_viewport_size({"width": 1500, "height": 1800})
    page.wait_for_timeout(500)
    page.screenshot(path=SHOT)
    page.set_viewport_size({"width": 1500, "height": 1100})
