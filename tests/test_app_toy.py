"""Headless runs (AppTest) of the Method playground and Compare pages: defaults, widgets generated from
the method's config, the setting in the URL, lesson links, bad URL values, a diverging run, Fig. 4."""
import base64
import json
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import lab.claims as C
from lab.train.live import _LIVE
from lab.train.toy import ToyConfig, toy_config, train_toys
from apptest import open_page
from waits import HANG_S

PLAYGROUND = "views/playground.py"
COMPARE = "views/compare.py"
QUICK = {"epochs": "10", "seeds": "2"}  # a few epochs keep every run here under a second


def run_page(root, path: str, query: dict | None = None) -> AppTest:
    return open_page(root, path, query)  # live off: these tests read the finished run's replay (tests/apptest.py)


def charts(at: AppTest) -> dict:
    """Plotly charts by user key -> their spec (JSON decoded)."""
    return {c.proto.id.rsplit("-", 1)[-1]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def widget_keys(at: AppTest) -> set:
    return {w.key for w in at.sidebar if getattr(w, "key", None)}


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_playground_defaults(root):
    at = run_page(root, PLAYGROUND)
    assert not at.error and not at.warning
    assert at.selectbox(key="pg_method").value == "simsiam"
    assert at.selectbox(key="pg_dataset").value == "blobs"
    assert at.toggle(key="pg_simsiam_predictor").value is True
    assert at.toggle(key="pg_simsiam_stop_grad").value is True
    assert at.select_slider(key="pg_seeds").value == 3
    assert at.select_slider(key="pg_epochs").value == ToyConfig().epochs
    shown = charts(at)
    animation = shown["pg_animation"]
    assert len(animation["frames"]) == 51 and animation["layout"]["sliders"]
    assert {"pg_chart_center_norm", "pg_chart_knn_acc_linear_acc", "pg_chart_z_std", "pg_chart_loss",
            "pg_chart_alignment", "pg_chart_uniformity", "pg_chart_effective_rank"} <= set(shown)
    assert at.get("download_button")[0].proto.deferred_file_id, "the GIF is made on click"
    # The URL now holds the whole setting.
    assert at.query_params["method"] == "simsiam" and at.query_params["predictor"] == "true"
    assert at.query_params["epochs"] == str(ToyConfig().epochs)
    text = " ".join(m.value for m in at.markdown)
    assert "collapsed model can keep a good kNN score" in text
    assert any("Collapse value of the simsiam loss: -1" in c.value for c in at.caption)


def test_changing_method_rerenders_knob_widgets(root):
    at = run_page(root, PLAYGROUND, QUICK)
    assert "pg_simsiam_predictor" in widget_keys(at)
    at.selectbox(key="pg_method").set_value("byol").run()
    assert not at.exception and not at.error
    keys = widget_keys(at)
    assert "pg_simsiam_predictor" not in keys and {"pg_byol_momentum", "pg_byol_predictor"} <= keys
    assert at.select_slider(key="pg_byol_momentum").value == 0.99
    assert at.query_params["method"] == "byol" and at.query_params["momentum"] == "0.99"
    assert "predictor_lr_scale" not in at.query_params
    at.selectbox(key="pg_method").set_value("dino").run()
    assert not at.exception
    assert {"pg_dino_centering", "pg_dino_teacher_temperature"} <= widget_keys(at)
    assert "pg_chart_teacher_entropy_teacher_sample_entropy" in charts(at)
    at.selectbox(key="pg_method").set_value("barlow").run()
    assert "pg_chart_center_norm_pre_bn_center_norm_post_bn" in charts(at)


def test_url_sets_the_widgets_and_widgets_set_the_url(root):
    at = run_page(root, PLAYGROUND, {"method": "simsiam", "dataset": "moons", "predictor": "false",
                                     "lr": "0.03", **QUICK})
    assert not at.error
    assert at.selectbox(key="pg_dataset").value == "moons"
    assert at.toggle(key="pg_simsiam_predictor").value is False
    assert at.select_slider(key="pg_lr").value == 0.03
    assert at.select_slider(key="pg_epochs").value == 10  # not a slider stop: added for this link
    assert at.select_slider(key="pg_seeds").value == 2
    assert at.query_params["predictor"] == "false" and at.query_params["lr"] == "0.03"
    before = charts(at)["pg_animation"]["frames"]
    at.select_slider(key="pg_lr").set_value(0.1).run()
    assert not at.exception
    assert at.query_params["lr"] == "0.1" and at.query_params["dataset"] == "moons"
    after = charts(at)["pg_animation"]["frames"]
    assert after[0] == before[0] and after[-1] != before[-1], "same start, a different run"
    at.toggle(key="pg_simsiam_predictor").set_value(True).run()
    assert at.query_params["predictor"] == "true"


def test_lock_hides_controls_and_shows_their_values(root):
    at = run_page(root, PLAYGROUND, {"lr": "0.03", "predictor": "false", "lock": "lr,predictor", **QUICK})
    assert not at.error
    keys = widget_keys(at)
    assert "pg_lr" not in keys and "pg_simsiam_predictor" not in keys
    assert {"pg_method", "pg_epochs", "pg_simsiam_stop_grad"} <= keys
    text = " ".join(m.value for m in at.sidebar.markdown)
    assert "Learning rate: **0.03**" in text and "Predictor: **off**" in text
    assert at.query_params["lock"] == "lr,predictor"
    # The lock survives a rerun from another control, and the locked values stay.
    at.select_slider(key="pg_batch_size").set_value(50).run()
    assert not at.exception and "pg_lr" not in widget_keys(at)
    assert at.query_params["lr"] == "0.03" and at.query_params["lock"] == "lr,predictor"


def replay_after_live(at: AppTest, timeout: float = HANG_S) -> AppTest:
    """Rerun a page whose run trains live until its replay (the Plotly animation) is on it."""
    deadline = time.monotonic() + timeout
    while "pg_animation" not in charts(at):
        assert time.monotonic() < deadline, "the live run never ended"
        time.sleep(0.1)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
    return at


def test_lesson_link_hides_every_control_and_the_class_watches_one_live_run(root):
    lesson = {"method": "invariance", "lesson": "1", **QUICK, "epochs": "40"}
    at = run_page(root, PLAYGROUND, lesson)
    assert not at.error
    assert not widget_keys(at), "no controls, not even the live view's: one student's pause would pause the class"
    assert "pg_animation" not in charts(at), "a lesson link first shows its run training live"
    at2 = run_page(root, PLAYGROUND, lesson)  # a second browser on the same link: the same run, not a second one
    replay_after_live(at)
    replay_after_live(at2)
    config = toy_config("invariance", "blobs", {"epochs": 40, "seeds": 2})
    started = [live for live in list(_LIVE) if live.config == config]
    assert len(started) == 1, f"one live run for the class, not one per browser: {len(started)}"
    assert not at.expander, "no share expander in a lesson"
    assert at.caption[0].value.startswith("Invariance only")
    shown = [m.value for m in at.metric][0]
    assert shown == f"{train_toys([config])[0].metrics['center_norm'][-1].mean().item():.3f}", "the plain run's ‖s‖"
    at3 = replay_after_live(run_page(root, PLAYGROUND, {"hide": "all", **QUICK}))
    assert not widget_keys(at3) and "pg_animation" in charts(at3)


def test_share_expander_builds_a_lesson_link(root):
    at = run_page(root, PLAYGROUND, QUICK)
    at.multiselect(key="pg_share_lock").set_value(["lr", "predictor"]).run()
    link = at.code[0].value
    assert "lock=lr%2Cpredictor" in link and "method=simsiam" in link and "epochs=10" in link
    at.toggle(key="pg_share_lesson").set_value(True).run()
    assert "lesson=1" in at.code[0].value and "lock=" not in at.code[0].value


@pytest.mark.parametrize("query, words", [
    ({"lr": "abc"}, ["lr=abc", "number", "0.05"]),
    ({"lr": "0"}, ["lr=0", "(0.0, 100.0]"]),
    ({"seeds": "9"}, ["seeds=9", "[1, 5]"]),
    ({"method": "nope"}, ["method=nope", "simsiam"]),
    ({"predictor": "maybe"}, ["predictor=maybe", "true or false"]),
    ({"lam": "-1"}, ["lam", "valid:"]),  # simsiam has no lam
    ({"lock": "lr,warp"}, ["warp", "valid:"]),
    ({"show": "4"}, ["show=4", "takes one of"]),
])
def test_bad_url_value_gives_one_line_error_and_the_page_renders(root, query, words):
    at = run_page(root, PLAYGROUND, {**QUICK, **query})
    assert len(at.error) == 1, errors(at)
    message = at.error[0].value
    assert "\n" not in message and all(w in message for w in words), message
    assert "pg_animation" in charts(at), "the rest of the page falls back to defaults"
    # The URL no longer carries the bad value; a rerun shows no stale error.
    at.run()
    assert not at.exception and not at.error


def test_diverging_run_warns_with_the_epoch_and_still_shows_what_it_has(root):
    at = run_page(root, PLAYGROUND, {"method": "barlow", "batchnorm": "false", "lr": "10", "epochs": "5",
                                     "seeds": "2"})
    assert not at.error
    assert len(at.warning) == 1 and "diverged at epoch 1" in at.warning[0].value
    assert "pg_animation" in charts(at) and "pg_chart_center_norm" in charts(at)


def test_higher_dimension_says_what_the_animation_shows(root):
    at = run_page(root, PLAYGROUND, {"dim": "8", **QUICK})
    assert not at.error
    assert any("first 3 coordinates" in i.value for i in at.info)
    assert "first 3 coordinates" in charts(at)["pg_animation"]["layout"]["title"]["text"]


def test_compare_renders_fig4_and_two_settings(root):
    at = run_page(root, COMPARE, {"fig": "4", "epochs": "20", "a.epochs": "10", "b.epochs": "10",
                                  "b.method": "simsiam", "b.predictor": "false"})
    assert not at.error
    shown = charts(at)
    for ds in ("blobs", "moons"):
        for metric in ("center_norm", "knn_acc"):
            names = {t.get("name") for t in shown[f"cmp_fig4_{ds}_{metric}"]["data"]}
            assert {"simsiam", "no predictor", "no stop-gradient"} <= names
            bands = [t for t in shown[f"cmp_fig4_{ds}_{metric}"]["data"] if t.get("fill") == "toself"]
            assert len(bands) == 3, "one shaded spread per variant"
    assert {"cmp_anim_A", "cmp_anim_B", "cmp_pair_center_norm", "cmp_pair_knn_acc"} <= set(shown)
    assert at.toggle(key="cmp_b_simsiam_predictor").value is False
    assert at.get("download_button")[0].proto.deferred_file_id
    assert len(at.dataframe) == 1
    # Fig. 3 on request; widgets write the URL.
    at.radio(key="cmp_fig").set_value("3").run()
    assert not at.exception
    assert "cmp_fig3_blobs_center_norm" in charts(at) and at.query_params["fig"] == "3"
    at.select_slider(key="cmp_a_lr").set_value(0.1).run()
    assert at.query_params["a.lr"] == "0.1"


def test_compare_bad_url_value(root):
    at = run_page(root, COMPARE, {"fig": "5", "epochs": "20", "a.epochs": "10", "b.epochs": "10", "a.lr": "-1"})
    assert len(at.error) == 2 and all("\n" not in e for e in errors(at))
    assert "fig=5" in errors(at)[0] and "a.lr=-1" in errors(at)[1]
    assert "cmp_fig3_blobs_center_norm" in charts(at)


def _ys(trace: dict) -> list[float]:
    """A trace's y values; Plotly writes numpy arrays as base64 ("bdata")."""
    y = trace["y"]
    if isinstance(y, dict):
        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]).tolist()
    return list(y)


def test_compare_draws_the_figure_suite_from_the_shipped_results_when_they_match(root, monkeypatch, tmp_path):
    """The suite's settings are the claims' own: shipped curves show at once, and the page says whence."""
    data = C.toy_results_json(C.run_claims(["fig3"], seeds=5, epochs=12), seeds=5, epochs=12)
    (tmp_path / "toy_claims.json").write_text(json.dumps(data))
    monkeypatch.setattr(C, "TOY_RESULTS", tmp_path / "toy_claims.json")
    at = run_page(root, COMPARE, {"fig": "3", "epochs": "12", "a.epochs": "5", "b.epochs": "5"})
    assert any("From the shipped results" in c.value and data["commit"] in c.value for c in at.caption)
    shipped = data["curves"][C.config_key("simplified", "moons", ())]["metrics"]["center_norm"]
    line = next(t for t in charts(at)["cmp_fig3_moons_center_norm"]["data"] if t.get("name") == "simplified")
    assert _ys(line) == pytest.approx([sum(row) / 5 for row in shipped], abs=1e-6)
    # At other epochs the shipped runs do not apply: the page trains, and says nothing about shipped results.
    at = run_page(root, COMPARE, {"fig": "3", "epochs": "10", "a.epochs": "5", "b.epochs": "5"})
    assert not any("From the shipped results" in c.value for c in at.caption)
    at = run_page(root, COMPARE, {"fig": "3", "epochs": "12", "a.epochs": "5", "b.epochs": "5"})
    at.toggle(key="cmp_train_here").set_value(True).run()
    assert not at.exception
    line = next(t for t in charts(at)["cmp_fig3_moons_center_norm"]["data"] if t.get("name") == "simplified")
    assert _ys(line) == pytest.approx([sum(row) / 5 for row in shipped], abs=1e-3)  # the same runs, trained here
