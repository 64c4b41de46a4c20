"""A real browser against `streamlit run app.py` with a temp runs root: open the Runs page, click the CPU
demo run, see the run running and its ‖s‖ chart gain points as epochs finish, then stop it from the page."""
import json
import subprocess
import sys

import pytest
import torch

from test_browser import CHROMIUM, TIMEOUT_MS, streamlit_server

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian's chromium at {CHROMIUM}"),
              pytest.mark.skipif(torch.cuda.is_available(), reason="the page offers the CPU demo only without a GPU")]

SHOT = "/tmp/runs_page.png"
EPOCH_WAIT_MS = TIMEOUT_MS  # a hang guard: a demo epoch takes ~5-12 s on a quiet 2-core machine, the first one longer
# The number of points on the ‖s‖ chart's line of the demo run (-1 while no such chart is drawn).
POINTS_JS = """name => {
    for (const gd of document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')) {
        if (!gd.layout || !gd.layout.title || !String(gd.layout.title.text).includes('center norm')) continue;
        const line = (gd.data || []).find(t => t.name === name);
        return line ? line.y.length : 0;
    }
    return -1;
}"""


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def server(root, subprocess_env, runs_dir, tmp_path_factory):
    from lab import runs as labruns

    env = dict(subprocess_env, LAB_RUNS_DIR=str(runs_dir))
    with streamlit_server(root, env, tmp_path_factory.mktemp("streamlit")) as url:
        try:
            yield url
        finally:
            for info in labruns.list_runs(runs_dir):  # a failed test must not leave a training behind
                if info.status in ("queued", "running"):
                    labruns.stop(info.name, root=runs_dir)


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            yield page
        finally:
            browser.close()


def points(page, name: str) -> int:
    return page.evaluate(POINTS_JS, name)


def wait_points(page, name: str, at_least: int) -> int:
    page.wait_for_function(f"name => ({POINTS_JS})(name) >= {at_least}", arg=name, timeout=EPOCH_WAIT_MS)
    return points(page, name)


def test_cpu_demo_run_live_chart_then_stop(page, server, runs_dir, subprocess_env):
    expect = sync_api.expect
    expect.set_options(timeout=TIMEOUT_MS)
    page.goto(f"{server}/Runs")
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    expect(page.get_by_text("No runs yet")).to_be_visible()
    page.get_by_role("button", name="CPU demo run").click()

    # The run appears, running, with its controls; the page refreshes itself (no reload from here on).
    panel = page.get_by_text("demo-1: running, log and controls")
    expect(panel).to_be_visible()
    before = wait_points(page, "demo-1", 0)  # the ‖s‖ chart is there, normally before the first epoch ends
    grown = wait_points(page, "demo-1", before + 1)  # the next epoch, drawn by the fragment's timer: no reload
    assert grown > before
    ys = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')]
        .find(gd => String(gd.layout.title.text).includes('center norm')).data.find(t => t.name === 'demo-1').y""")
    assert all(0.0 <= y <= 1.0 for y in ys)
    page.set_viewport_size({"width": 1500, "height": 2300})
    page.wait_for_timeout(500)
    page.screenshot(path=SHOT)
    page.set_viewport_size({"width": 1500, "height": 1100})

    # Stop from the page: the trainer checkpoints and exits; the page shows it stopped.
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.get_by_text("demo-1: stopped, log and controls")).to_be_visible(timeout=EPOCH_WAIT_MS)
    expect(page.get_by_role("button", name="Resume", exact=True)).to_be_enabled()
    status = json.loads(subprocess.run(
        [sys.executable, "-m", "lab", "runs", "list", "--json"], capture_output=True, text=True, check=True,
        env=dict(subprocess_env, LAB_RUNS_DIR=str(runs_dir)), cwd=str(runs_dir)).stdout)
    assert [(r["name"], r["status"]) for r in status] == [("demo-1", "stopped")]
