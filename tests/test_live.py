"""Live toy training (`lab.train.toy.LiveTraining`): a background thread steered by the page (play, pause,
one epoch, stop, speed, knob changes from the next epoch), the same run as a plain one with the same changes,
and the Method playground's live view. Timings are benchmarks, not asserted here."""
import time

import pytest
import torch
from streamlit.testing.v1 import AppTest

from lab.train.changes import Change, movable_differences
from lab.train.toy import LiveTraining, toy_config, train_toys


def wait_for(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_first_frame_is_the_untrained_model_and_pause_holds_it():
    live = LiveTraining(toy_config("simsiam", "moons", {"seeds": 2, "epochs": 40}), playing=False)
    wait_for(lambda: live.control.epoch == 0)
    epochs, z, metrics = live.control.latest()
    assert epochs == [0] and z.shape == (2, 600, 3) and metrics["center_norm"].shape == (1, 2)
    time.sleep(0.2)
    assert live.control.epoch == 0, "paused: nothing trains"
    live.control.step()
    wait_for(lambda: live.control.epoch == 1)
    time.sleep(0.2)
    assert live.control.epoch == 1, "one epoch, then paused again"
    live.control.stop()
    live.thread.join(10)
    assert live.done and live.run.epochs == [0, 1] and live.error is None


def test_a_change_asked_for_mid_run_acts_from_the_next_epoch_and_the_run_equals_a_plain_one_with_it():
    config = toy_config("simsiam", "moons", {"seeds": 2, "epochs": 30})
    live = LiveTraining(config, playing=False)
    wait_for(lambda: live.control.epoch == 0)
    live.control.step(12)
    wait_for(lambda: live.control.epoch == 12)
    asked = live.control.change("stop_grad", "false")
    assert asked == Change(12, "stop_grad", False)
    live.control.play()
    live.thread.join(60)
    assert live.run.config.changes == (Change(12, "stop_grad", False),)
    plain = train_toys([toy_config("simsiam", "moons", {"seeds": 2, "epochs": 30, "changes": "12:stop_grad=false"})])[0]
    assert torch.allclose(live.run.metrics["center_norm"][-1], plain.metrics["center_norm"][-1], atol=1e-6)


def test_a_bad_change_is_refused_at_once_with_its_range():
    live = LiveTraining(toy_config("barlow", "blobs", {"seeds": 1, "epochs": 20}), playing=False)
    wait_for(lambda: live.control.epoch == 0)
    with pytest.raises(ValueError, match=r"lam must be in \[0.0, 100.0\]"):
        live.control.change("lam", -1)
    with pytest.raises(ValueError, match="cannot change mid-run"):
        live.control.change("nope", 1)
    live.control.stop()
    live.thread.join(10)
    assert live.run.config.changes == ()


def test_which_setting_changes_go_to_the_running_model():
    a = toy_config("simsiam", "moons", {"seeds": 2})
    assert movable_differences(a, a) == {}
    assert movable_differences(a, toy_config("simsiam", "moons", {"seeds": 2, "stop_grad": False, "lr": 0.1})) == \
        {"stop_grad": False, "lr": 0.1}
    assert movable_differences(a, toy_config("simsiam", "moons", {"seeds": 2, "predictor": False})) == \
        {"predictor": False}
    for other in (toy_config("simsiam", "blobs", {"seeds": 2}), toy_config("simsiam", "moons", {"seeds": 3}),
                  toy_config("simsiam", "moons", {"seeds": 2, "predictor_hidden": 4}),
                  toy_config("byol", "moons", {"seeds": 2})):
        assert movable_differences(a, other) is None


def test_the_playground_trains_live_pauses_takes_a_knob_and_links_it(root):
    at = AppTest.from_file(str(root / "views/playground.py"), default_timeout=60)
    at.query_params.update({"method": "simsiam", "dataset": "moons", "seeds": "2", "epochs": "60"})
    at.run()
    at.toggle(key="pg_live_on").set_value(True).run()
    assert not at.exception and not at.error
    assert {"⏸ Pause", "+1 epoch", "Reset"} <= {b.label for b in at.button}
    live = at.session_state["pg_live"]
    at.button(key="pg_live_play").click().run()  # pause
    assert not live.control.playing
    at.toggle(key="pg_simsiam_stop_grad").set_value(False).run()
    assert at.session_state["pg_live"] is live, "a knob that can change mid-run does not restart the run"
    at.button(key="pg_live_play").click().run()  # play on
    live.thread.join(60)
    at.run()
    assert not at.exception
    (change,) = live.run.config.changes
    assert change.knob == "stop_grad" and change.value is False
    assert at.query_params["at"] == f"{change.epoch}:stop_grad=false" and at.query_params["stop_grad"] == "true"
    assert any(c.proto.id.endswith("pg_animation") for c in at.get("plotly_chart")), "the replay once it has ended"
    at.select_slider(key="pg_epochs").set_value(25).run()  # not a mid-run knob: a new run
    assert at.session_state["pg_live"] is not live and not at.exception
