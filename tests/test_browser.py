"""A real browser against `streamlit run app.py`: home page -> circle page, change a control, download the GIF."""
import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from lab.train.b1 import DEFAULT_SHIFT
from tools.bench.ui import streamlit_server as bench_server
from waits import HANG_MS

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path("/tmp/circle_page.png")
TIMEOUT_MS = HANG_MS  # a hang guard (tests/waits.py): the first page load takes 5-7 s on a quiet 2-core machine

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian's chromium at {CHROMIUM}")
sync_api = pytest.importorskip("playwright.sync_api")


@contextlib.contextmanager
def streamlit_server(root, env: dict, log_dir: Path):
    """`streamlit run app.py` on a free localhost port (the benches' own server, tools/bench/ui.py): yields its
    URL; on exit stops it and checks that its log holds no traceback."""
    log_path = log_dir / "server.log"
    with bench_server(root, env, log_path) as (url, _proc):
        yield url
    output = log_path.read_text()
    assert "Traceback" not in output, output[-3000:]


@pytest.fixture(scope="module")
def server(root, subprocess_env, tmp_path_factory):
    with streamlit_server(root, subprocess_env, tmp_path_factory.mktemp("streamlit")) as url:
        yield url


@contextlib.contextmanager
def browser_page(width: int = 1500, height: int = 1100, **context_options):
    """A page of Debian's chromium (Playwright), with the hang guard as its default timeout."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        context = browser.new_context(viewport={"width": width, "height": height}, **context_options)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            yield page
        finally:
            context.close()
            browser.close()


@pytest.fixture(scope="module")
def page(server):
    with browser_page() as page:
        yield page


# What the page shows, read in the browser: the metric values and the ‖s‖ curves of the second
# Plotly chart (last value and length of each trace), as one JSON string.
SHOWN_JS = """() => JSON.stringify({
    metrics: [...document.querySelectorAll('[data-testid="stMetricValue"]')].map(e => e.innerText),
    curves: [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')].slice(1, 2)
        .flatMap(gd => gd.data.map(t => [t.name, t.y[t.y.length - 1], t.x.length])),
})"""


def shown(page) -> dict:
    return json.loads(page.evaluate(SHOWN_JS))


def wait_until_both_change(page, before: dict) -> dict:
    """A rerun replaces the sidebar first and the metrics and charts after training: wait for both."""
    page.wait_for_function(
        f"""before => {{ const now = JSON.parse(({SHOWN_JS})());
            return now.metrics.length === before.metrics.length && now.curves.length === before.curves.length
                && JSON.stringify(now.metrics) !== JSON.stringify(before.metrics)
                && JSON.stringify(now.curves) !== JSON.stringify(before.curves); }}""",
        arg=before, timeout=TIMEOUT_MS)
    return shown(page)


def wait_idle(page) -> None:
    """Streamlit shows a status widget while a script runs; wait until it is gone."""
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)


def test_home_to_circle_page_control_and_gif(page, server):
    sync_api.expect.set_options(timeout=TIMEOUT_MS)
    page.goto(server)
    sync_api.expect(page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot')).to_have_count(1)
    # st.navigation's menu: "Home" first (not the script's name), then every page, in order.
    nav = page.locator('[data-testid="stSidebarNav"] a')
    names = ("Home", "Collapse on the circle", "Method playground", "Compare", "Sweep", "Claims", "Real images", "Runs",
             "Check a model")
    sync_api.expect(nav).to_have_text([re.compile(f"{name}$") for name in names])  # after each icon's name
    page.get_by_role("link", name="Collapse on the circle (paper Appendix B.1)").click()
    sync_api.expect(page).to_have_url(f"{server}/Collapse_on_the_circle")
    sync_api.expect(page.get_by_role("heading", name="Collapse on the circle")).to_be_visible()
    plots = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot')
    sync_api.expect(plots).to_have_count(2)
    sync_api.expect(page.locator('[data-testid="stMetricValue"]')).to_have_count(4)
    wait_idle(page)
    # Streamlit scrolls inside its own container, so full_page would stop at the viewport: grow it instead.
    page.set_viewport_size({"width": 1500, "height": 2000})
    page.screenshot(path=str(SCREENSHOT))
    page.set_viewport_size({"width": 1500, "height": 1100})

    # The animation carries its frames to the browser: it plays without the server.
    n_frames = plots.first.evaluate("gd => gd._transitionData._frames.length")
    assert n_frames == 60
    before = shown(page)
    assert len(before["metrics"]) == 4 and len(before["curves"]) == 3

    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("shifted", exact=True).click()
    after = wait_until_both_change(page, before)
    wait_idle(page)
    # The shift vector k appears only for shifted augmentation, at the library's default.
    sync_api.expect(sidebar.get_by_label("x", exact=True)).to_have_value(f"{DEFAULT_SHIFT[0]:.2f}")
    assert after != before

    with page.expect_download(timeout=TIMEOUT_MS) as info:
        page.get_by_role("button", name="Download this run as a GIF").click()
    download = info.value
    assert download.suggested_filename == "mini_batch_sgd_shifted_augmentation.gif"
    data = Path(download.path()).read_bytes()
    assert data[:6] == b"GIF89a"
    gif = Image.open(io.BytesIO(data))
    assert gif.n_frames > 1 and gif.is_animated
    assert gif.size == (360, 360)
