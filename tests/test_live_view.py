"""The live view's data (`lab.render.live`): what each rerun of a live page sends the browser's canvas view,
checked against the run it shows. The drawing itself is checked in a real browser (test_browser_live)."""
import time

import numpy as np
import pytest
import torch

from lab.core.geometry import center_vector
from lab.render.live import MAX_FRAMES, live_curve, live_frames, live_payload, pack_points, unpack_points
from lab.train.toy import live_toy, toy_config
from waits import HANG_S


def wait_for(cond, timeout=HANG_S):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("dim", [2, 3])
def test_packed_points_come_back_within_a_pixel(dim):
    z = torch.nn.functional.normalize(torch.randn(600, dim, generator=torch.Generator().manual_seed(dim)), dim=1)
    back = unpack_points(pack_points(z.numpy()), dim)
    assert back.shape == (600, dim)
    assert np.abs(back - z.numpy()).max() <= 0.5 / 32767 + 1e-12  # a 460 px sphere: 1e-5 of a pixel
    assert len(pack_points(z.numpy())) == 4 * -(-600 * dim * 2 // 3), "base64 of 2 bytes a coordinate"


def test_frames_carry_the_full_center_norm_and_above_d3_the_shown_coordinates_renormalised():
    z = torch.nn.functional.normalize(torch.randn(50, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    ((epoch, packed, norm, caption),) = live_frames([(7, z)], [(3, "stop-gradient off at epoch 3"), (9, "later")])
    assert epoch == 7 and caption == "stop-gradient off at epoch 3", "only changes made by the frame's epoch"
    assert norm == pytest.approx(center_vector(z).norm().item(), abs=1e-6), "‖s‖ of all 8 coordinates"
    shown = unpack_points(packed, 3)
    np.testing.assert_allclose(shown, torch.nn.functional.normalize(z[:, :3], dim=1).numpy(), atol=1e-4)


def test_a_late_rerun_sends_only_the_newest_frames_and_a_diverged_seed_draws_at_the_origin():
    z = torch.full((4, 3), float("nan"))
    frames = live_frames([(e, z) for e in range(100)])
    assert [f[0] for f in frames] == list(range(100 - MAX_FRAMES, 100))
    assert np.all(unpack_points(frames[0][1], 3) == 0) and frames[0][2] == 0.0


def test_the_curve_is_mean_and_band_over_seeds():
    values = torch.tensor([[0.1, 0.3], [0.5, 0.9]])
    assert live_curve([0, 1], values) == {"x": [0, 1], "mean": [0.2, 0.7], "lo": [0.1, 0.5], "hi": [0.3, 0.9],
                                       "seeds": 2}


def test_frames_since_hands_over_every_epoch_not_yet_sent_once():
    live = live_toy(toy_config("simsiam", "blobs", {"seeds": 2, "epochs": 30}), playing=False)
    wait_for(lambda: live.control.epoch == 0)
    live.control.step(5)
    wait_for(lambda: live.control.epoch == 5)
    first = live.control.frames_since(-1, seed_index=1)
    assert [e for e, _ in first] == [0, 1, 2, 3, 4, 5] and first[0][1].shape == (600, 3)
    assert torch.equal(first[-1][1], live.control.latest()[1][1]), "the asked-for seed's newest features"
    assert live.control.frames_since(5) == [] and [e for e, _ in live.control.frames_since(3)] == [4, 5]
    assert len(live.control.frames_since(-1, most=2)) == 2
    live.control.stop()
    live.thread.join(HANG_S)
    payload = live_payload(live.id, live.run.data.y_train, 3, 30, live_frames(first), live_curve([0], [[0.5]]))
    assert payload["run"] == live.id and payload["dim"] == 3 and len(payload["labels"]) == 600
    assert len(payload["colors"]) == 3 and payload["threshold"] == 0.9
    assert payload["title"] == "‖s‖ center norm, one seed", "one seed: no band to explain"
    two = live_payload(live.id, live.run.data.y_train, 3, 30, [], live_curve([0], [[0.5, 0.7]]))
    assert two["title"] == "‖s‖ center norm, mean over 2 seeds (band: lowest to highest)"


def test_before_the_first_epoch_the_curve_is_empty():
    assert live_curve([], []) == {"x": [], "mean": [], "lo": [], "hi": [], "seeds": 0}
