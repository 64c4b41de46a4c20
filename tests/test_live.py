"""Live toy training (`lab.train.toy.live_toy`, `lab.train.live`): a background thread steered by the page (play, pause,
one epoch, stop, speed, knob changes from the next epoch), the same run as a plain one with the same changes,
and the Method playground's live view. Timings are benchmarks, not asserted here."""
import time

import pytest
import torch
from streamlit.testing.v1 import AppTest

from lab.train.b1 import B1Config, live_b1, train_b1
from lab.train.changes import Change, movable_differences
from lab.train.toy import live_toy, toy_config, train_toys
from waits import HANG_S, watch_until_done


def wait_for(cond, timeout=HANG_S):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_first_frame_is_the_untrained_model_and_pause_holds_it():
    live = live_toy(toy_config("simsiam", "moons", {"seeds": 2, "epochs": 40}), playing=False)
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
    live.thread.join(HANG_S)
    assert live.done and live.run.epochs == [0, 1] and live.error is None


def test_a_run_nobody_reads_holds_resumes_when_read_and_stops_when_left_for_good():
    live = live_toy(toy_config("simsiam", "blobs", {"seeds": 1, "epochs": 300}), playing=True,
                    epochs_per_second=None, idle_hold_s=0.05)
    assert live.control.wait_first(HANG_S) and live.control.epoch >= 0
    wait_for(lambda: live.control.held)  # nobody reads it: it holds, at the start of an epoch
    at = live.control.epoch
    time.sleep(0.3)
    assert live.control.held and live.control.epoch == at, "held: nothing trains"
    wait_for(lambda: live.control.latest() and live.control.epoch > at)  # read again: it trains on
    live.thread.join(HANG_S)  # left for IDLE_STOP_TIMES x idle_hold_s (6 s): it stops, its thread ends
    assert live.done and live.error is None and live.run.epochs[-1] < 300


def test_a_runs_stop_token_stops_it_when_dropped_as_a_closed_sessions_state_is():
    live = live_toy(toy_config("simsiam", "blobs", {"seeds": 1, "epochs": 300}), playing=False)
    token = live.stop_token()
    assert live.control.wait_first(HANG_S)
    del token
    live.thread.join(HANG_S)
    assert live.done and live.run.epochs == [0], "paused at epoch 0, then stopped when its token went"


def test_a_change_asked_for_mid_run_acts_from_the_next_epoch_and_the_run_equals_a_plain_one_with_it():
    config = toy_config("simsiam", "moons", {"seeds": 2, "epochs": 30})
    live = live_toy(config, playing=False)
    wait_for(lambda: live.control.epoch == 0)
    live.control.step(12)
    wait_for(lambda: live.control.epoch == 12)
    asked = live.control.change("stop_grad", "false")
    assert asked == Change(12, "stop_grad", False)
    live.control.play()
    live.thread.join(HANG_S)
    assert live.run.config.changes == (Change(12, "stop_grad", False),)
    plain = train_toys([toy_config("simsiam", "moons", {"seeds": 2, "epochs": 30, "changes": "12:stop_grad=false"})])[0]
    # The view saw every epoch; the run keeps the plain run's evaluations (its epochs, every metric).
    assert live.run.epochs == plain.epochs and 12 in plain.epochs
    for name, values in plain.metrics.items():
        assert torch.allclose(live.run.metrics[name], values, atol=1e-5, equal_nan=True), name


def test_a_bad_change_is_refused_at_once_with_its_range():
    live = live_toy(toy_config("barlow", "blobs", {"seeds": 1, "epochs": 20}), playing=False)
    wait_for(lambda: live.control.epoch == 0)
    with pytest.raises(ValueError, match=r"lam must be in \[0.0, 100.0\]"):
        live.control.change("lam", -1)
    with pytest.raises(ValueError, match="cannot change mid-run"):
        live.control.change("nope", 1)
    live.control.stop()
    live.thread.join(HANG_S)
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
    at = AppTest.from_file(str(root / "views/playground.py"), default_timeout=HANG_S)
    at.query_params.update({"method": "simsiam", "dataset": "moons", "seeds": "2", "epochs": "60"})
    at.run()
    assert at.toggle(key="pg_live").value, "live is the default: the page trains while it shows the features"
    assert not at.exception and not at.error
    assert {"❚❚ Pause", "+1 epoch", "Reset"} <= {b.label for b in at.button}
    live = at.session_state["pg_live_run"]
    at.button(key="pg_live_play").click().run()  # pause
    assert not live.control.playing
    at.toggle(key="pg_simsiam_stop_grad").set_value(False).run()
    assert at.session_state["pg_live_run"] is live, "a knob that can change mid-run does not restart the run"
    at.button(key="pg_live_play").click().run()  # play on
    watch_until_done(live)
    at.run()
    assert not at.exception
    (change,) = live.run.config.changes
    assert change.knob == "stop_grad" and change.value is False
    assert at.query_params["at"] == f"{change.epoch}:stop_grad=false" and at.query_params["stop_grad"] == "true"
    assert any(c.proto.id.endswith("pg_animation") for c in at.get("plotly_chart")), "the replay once it has ended"
    at.select_slider(key="pg_epochs").set_value(25).run()  # not a mid-run knob: a new run
    assert at.session_state["pg_live_run"] is not live and not at.exception


def test_collapse_on_the_circle_trains_live_and_a_new_setting_starts_a_new_run(root):
    at = AppTest.from_file(str(root / "views/circle.py"), default_timeout=HANG_S).run()
    assert at.toggle(key="b1_live_on").value, "live is the default"
    at.slider(key="b1_epochs").set_value(60).run()
    assert not at.exception and not at.error
    live = at.session_state["b1_live"]
    assert live.config.epochs == 60 and {"❚❚ Pause", "+1 epoch", "Reset"} <= {b.label for b in at.button}
    at.button(key="b1_live_play").click().run()  # pause
    assert not live.control.playing
    at.number_input(key="b1_seed").set_value(1).run()  # any B.1 knob: a new run, the old one stopped
    assert at.session_state["b1_live"] is not live and at.session_state["b1_live"].config.seed == 1
    live.thread.join(HANG_S)
    assert live.done and live.run.epochs[-1] < 60, "the old run stopped where it was"
    new = at.session_state["b1_live"]
    watch_until_done(new)
    at.run()
    assert not at.exception and new.run.epochs[-1] == 60
    assert any(c.proto.id.endswith("b1_animation") for c in at.get("plotly_chart")), "the replay once it has ended"


def test_a_live_b1_run_is_the_plain_run_and_a_stop_keeps_the_epochs_so_far():
    config = B1Config(epochs=30, batch_size=50)
    live = live_b1(config, playing=False)
    wait_for(lambda: live.control.epoch == 0)
    live.control.step(7)
    wait_for(lambda: live.control.epoch == 7)
    epochs, z, metrics = live.control.latest()
    assert epochs == list(range(8)) and z.shape == (1, 1000, 2)
    plain = train_b1([config])[0]
    assert torch.allclose(metrics["center_norm_aug"][:, 0], plain.s_aug[:8].norm(dim=-1), atol=1e-6)
    with pytest.raises(ValueError, match="cannot change mid-run"):
        live.control.change("lr", 0.2)
    live.control.stop()
    live.thread.join(HANG_S)
    assert torch.equal(live.run.z, plain.z[:8]) and live.run.s_aug.shape == (8, 2)
    live = live_b1(config, playing=True)
    live.thread.join(HANG_S)
    assert torch.equal(live.run.z, plain.z) and torch.equal(live.run.loss, plain.loss)


@pytest.mark.parametrize("method", ["simsiam", "byol"])
def test_a_predictor_turned_on_mid_run_in_a_run_started_without_one(method):
    """Built with the predictor switched off, the run is the predictor-less run to the bit until the switch
    goes on; then the predictor acts (the run departs from the one without it) and a live run equals the
    plain run with the same change."""
    settings = {"seeds": 2, "epochs": 16, "predictor": False}
    bare = train_toys([toy_config(method, "moons", settings)])[0]
    later = train_toys([toy_config(method, "moons", settings | {"changes": "10:predictor=true"})])[0]
    assert torch.equal(bare.metrics["center_norm"][:11], later.metrics["center_norm"][:11])
    assert not torch.equal(bare.metrics["center_norm"][12:], later.metrics["center_norm"][12:])
    live = live_toy(toy_config(method, "moons", settings), playing=False)
    wait_for(lambda: live.control.epoch == 0)
    live.control.step(10)
    wait_for(lambda: live.control.epoch == 10)
    assert live.control.change("predictor", True) == Change(10, "predictor", True)
    live.control.play()
    live.thread.join(HANG_S)
    assert live.error is None
    assert torch.allclose(live.run.metrics["center_norm"], later.metrics["center_norm"], atol=1e-6)
