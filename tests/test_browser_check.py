"""A real browser on the "Check a model" page: upload an .npy, see the signature, the sphere and the spectrum,
download the HTML report; an upload over the page's limit gets one line, not a traceback."""
import re

import numpy as np
import pytest
import torch

from lab.data import fmnist
from lab.engine.resnet import resnet18

from test_browser import CHROMIUM, TIMEOUT_MS, browser_page, streamlit_server, wait_idle

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian's chromium at {CHROMIUM}")

SHOT = "/tmp/check_page.png"
LIMIT_MB = 1  # the page's upload limit for this server (LAB_UPLOAD_LIMIT_MB), so that "too large" is 2 MB


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tmp_path_factory.mktemp("models")  # a folder the page may read ($LAB_CHECK_ROOTS)


@pytest.fixture(scope="module")
def server(root, subprocess_env, tmp_path_factory, models):
    env = dict(subprocess_env, LAB_UPLOAD_LIMIT_MB=str(LIMIT_MB), LAB_CHECK_ROOTS=str(models))
    with streamlit_server(root, env, tmp_path_factory.mktemp("streamlit")) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    with browser_page(1500, 1300, accept_downloads=True) as page:
        yield page


def upload(page, path) -> None:
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(path))
    sync_api.expect(page.get_by_text(path.name)).to_be_visible()
    wait_idle(page)


def test_upload_collapsed_embedding_then_report(page, server, tmp_path):
    expect = sync_api.expect
    expect.set_options(timeout=TIMEOUT_MS)
    rng = np.random.default_rng(0)
    collapsed = tmp_path / "collapsed.npy"  # every row near one point: complete collapse
    np.save(collapsed, (rng.standard_normal((3000, 64)) * 0.02 + rng.standard_normal(64)).astype(np.float32))
    page.goto(f"{server}/Check_a_model")
    expect(page.get_by_role("heading", name="Check a model")).to_be_visible()
    upload(page, collapsed)
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.get_by_text(re.compile(r"collapsed\.npy: complete collapse\."))).to_be_visible()
    plots = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot')
    expect(plots).to_have_count(2)  # the sphere and the spectrum
    titles = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')]
        .map(gd => gd.layout.title.text)""")
    assert "rows on the sphere" in titles[0] and "Singular values" in titles[1]
    names = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')][1]
        .data.map(t => t.name)""")
    assert names[0].startswith("collapsed.npy") and any(n.startswith("reference: uniform") for n in names)
    expect(page.locator('[data-testid="stDataFrame"]')).to_have_count(1)
    with page.expect_download() as info:
        page.get_by_role("button", name="Download the HTML report").click()
    html = open(info.value.path(), encoding="utf-8").read()
    assert "collapsed.npy: complete collapse" in html and "Plotly.newPlot" in html
    page.screenshot(path=SHOT, full_page=True)


def test_upload_over_the_limit_is_one_line(page, server, tmp_path):
    expect = sync_api.expect
    big = tmp_path / "big.npy"
    np.save(big, np.ones((2 * LIMIT_MB * 1_000_000 // 4 // 64 + 10, 64), dtype=np.float32))  # just over 2 MB
    page.goto(f"{server}/Check_a_model")
    upload(page, big)
    page.get_by_role("button", name="Check", exact=True).click()
    alert = page.get_by_text(re.compile(rf"big\.npy is 2 MB; this page takes at most {LIMIT_MB} MB"))
    expect(alert).to_be_visible()
    expect(page.get_by_text("Traceback")).to_have_count(0)


# In the sphere's frame: make Plotly report a hover on the first point (as the mouse over it would), then what
# the report's script shows: the hovered row and the image's source.
HOVER_JS = """() => {
    const gd = document.querySelector('.js-plotly-plot');
    const trace = gd.data.find(t => t.customdata && t.customdata.length);
    gd.emit('plotly_hover', {points: [{customdata: trace.customdata[0]}]});
    const img = gd.querySelector('img');
    return {row: trace.customdata[0][0], shown: img && img.style.display, src: img ? img.src.slice(0, 22) : ''};
}"""


@pytest.mark.skipif(not fmnist.is_fashion_mnist(fmnist.DEBIAN_DIR), reason="needs Debian's dataset-fashion-mnist")
def test_a_resnet_state_dict_path_embeds_fashion_mnist_with_images_on_hover(page, server, models):
    expect = sync_api.expect
    torch.manual_seed(0)
    torch.save(resnet18(stem="small", width=8, in_channels=1).state_dict(), models / "r18.pt")
    page.goto(f"{server}/Check_a_model")
    page.get_by_text("A path on this machine").first.click()
    page.get_by_role("textbox", name=re.compile("^Embedding file")).fill(str(models / "r18.pt"))
    page.get_by_role("textbox", name=re.compile("^Images to embed")).fill(str(fmnist.DEBIAN_DIR))
    page.get_by_role("spinbutton", name=re.compile("^Images to embed")).fill("300")
    page.keyboard.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.get_by_text(re.compile(r"^r18\.pt: "))).to_be_visible()
    expect(page.get_by_text("Hover over a point to see its image")).to_be_visible()
    page.wait_for_function("() => [...document.querySelectorAll('iframe')].some(f => "
                           "f.contentDocument && f.contentDocument.querySelector('.js-plotly-plot .main-svg'))")
    # The main frame also holds plotly charts (the spectrum); the sphere is the one inside the component's iframe.
    frame = next(f for f in page.frames if f is not page.main_frame and f.query_selector(".js-plotly-plot"))
    assert "T-shirt/top" in frame.evaluate("() => document.querySelector('.js-plotly-plot').data.map(t => t.name)")
    hovered = frame.evaluate(HOVER_JS)
    assert hovered["shown"] == "block" and hovered["src"] == "data:image/png;base64,"
    page.screenshot(path="/tmp/check_page_checkpoint.png", full_page=True)
