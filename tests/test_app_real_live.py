"""The Real images page's live section headless (AppTest): a link starts a run with its changes, a knob turned
while it trains goes to it and into the link, the finished run shows its replay, curves and export, and a bad
link value, a missing data set and a run that diverges are each one line, never a traceback. The canvas view in
a real browser: tests/test_browser_real_live.py."""
import pytest

from apptest import open_page
from lab.data import fmnist
from lab.train import real_live
from lab.train.changes import Change
from lab.train.live import _LIVE
from lab.train.real_live import RealLiveConfig
from waits import watch_until_done

PAGE = "views/real.py"
needs_fmnist = pytest.mark.skipif(not fmnist.is_fashion_mnist(fmnist.DEBIAN_DIR),
                                  reason="needs Debian's dataset-fashion-mnist")


def texts(at, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


def test_without_the_data_set_the_page_says_how_to_install_it(root, monkeypatch, tmp_path):
    monkeypatch.setattr(fmnist, "DEBIAN_DIR", tmp_path)
    at = open_page(root, PAGE, {"live": "simsiam"})
    assert any("apt-get install dataset-fashion-mnist" in t for t in texts(at, "info"))
    assert "rl_live" not in at.session_state, "no run starts"
    assert any(h.value == "The shipped verdicts" for h in at.subheader), "the rest of the page is there"


@needs_fmnist
def test_bad_link_values_are_one_line_each_and_start_nothing(root):
    at = open_page(root, PAGE, {"live": "nope", "steps": "lots", "stop_grad": "maybe", "colour": "red"})
    errors = texts(at, "error")
    for words in ("`live=nope`: takes one of", "`steps=lots`", "Unknown URL parameter `colour`"):
        assert any(words in e and "\n" not in e for e in errors), (words, errors)
    assert at.session_state["rl_live"] is None if "rl_live" in at.session_state else True, "no run starts"
    at = open_page(root, PAGE, {"live": "simsiam", "steps": "20", "at": "25:stop_grad=false"})
    assert any(e.startswith("Cannot train this setting:") and "[0, 19]" in e for e in texts(at, "error"))


@needs_fmnist
def test_a_link_starts_its_run_a_knob_steers_it_and_the_end_shows_replay_and_export(root):
    at = open_page(root, PAGE, {"live": "simsiam", "steps": "12", "at": "3:stop_grad=false"})
    live = at.session_state["rl_live"]
    assert live.config.changes == (Change(3, "stop_grad", False),) and live.config.steps == 12
    at.toggle(key="rl_simsiam_predictor").set_value(False).run()  # while it trains: to the run, not a new one
    assert at.session_state["rl_live"] is live and not at.exception
    watch_until_done(live)
    at.run()
    assert not at.exception and live.error is None
    (turned,) = [ch for ch in live.run.config.changes if ch.knob == "predictor"]
    assert turned.value is False and live.run.steps[-1] == 12
    assert at.query_params["at"] == f"3:stop_grad=false;{turned.epoch}:predictor=false"
    assert at.query_params["live"] == "simsiam"
    assert at.slider(key="rl_replay").value == 12 and at.get("image"), "the replay of the finished run"
    assert any(c.proto.id.endswith("rl_curves") for c in at.get("plotly_chart"))
    assert any(b.proto.id.endswith("rl_export_download") for b in at.get("download_button"))
    assert any("Stop-gradient off at step 50" in i or "rose in" in i for i in texts(at, "info")), \
        "the shipped per-seed verdict of the page's lesson beside the run"


@needs_fmnist
def test_a_run_that_diverges_is_one_line_and_keeps_its_steps(root, monkeypatch):
    real = real_live.SSLAugment.forward

    def poisoned(self, x):
        v1, v2 = real(self, x)
        return v1 * float("nan"), v2

    monkeypatch.setattr(real_live.SSLAugment, "forward", poisoned)
    at = open_page(root, PAGE, {"live": "simsiam", "steps": "12"})
    live = at.session_state["rl_live"]
    watch_until_done(live)
    at.run()
    assert not at.exception
    assert any(w.startswith("training diverged at step 1: the loss became nan") for w in texts(at, "warning"))


@needs_fmnist
def test_a_lesson_link_shows_one_shared_run_without_controls(root):
    link = {"live": "simsiam", "steps": "10", "at": "2:stop_grad=false", "lesson": "1"}
    first, second = open_page(root, PAGE, link), open_page(root, PAGE, link)
    for at in (first, second):
        assert not at.exception
        assert not [b for b in at.button if b.label in ("▶ Train live", "❚❚ Pause", "▶ Play")], "no controls"
        assert not at.toggle, "no knobs"
    runs = [at.session_state["rl_live"] for at in (first, second) if "rl_live" in at.session_state]
    assert not runs, "a lesson's run is the server's, not a session's"
    config = RealLiveConfig(steps=10, changes="2:stop_grad=false")
    started = [live for live in list(_LIVE) if live.config == config]
    assert len(started) == 1, f"one live run for the class, not one per browser: {len(started)}"
    live = started[0]
    watch_until_done(live)
    first.run()
    assert not first.exception and any(c.proto.id.endswith("rl_curves") for c in first.get("plotly_chart"))
