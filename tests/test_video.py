"""Talk export (`lab.render.video`): MP4s read back with imageio, fps or duration, even sizes, the checks'
messages, side by side as one file, and the export expanders of the Compare and circle pages (AppTest)."""
import io

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from lab.render import video
from lab.render.toy import side_by_side_gif, toy_gif_bytes
from lab.train.b1 import paper_config, train_b1
from lab.train.toy import ToyConfig, toy_config, train_toys
from test_app_toy import run_page


@pytest.fixture(scope="module")
def toys():
    return train_toys([ToyConfig(method="simsiam", dataset="blobs", seeds=1, epochs=12, dim=2),
                       ToyConfig(method="invariance", dataset="moons", seeds=1, epochs=6, dim=3)])


@pytest.fixture(scope="module")
def b1_run():
    return train_b1([paper_config("mini_batch_sgd_centered_augmentation", epochs=30)])[0]


def read_mp4(data: bytes) -> tuple[np.ndarray, dict]:
    return iio.imread(data, index=None, plugin="FFMPEG", extension=".mp4"), \
        iio.immeta(data, plugin="FFMPEG", extension=".mp4")


def gif_frames(data: bytes) -> tuple[int, tuple[int, int], list[int]]:
    img = Image.open(io.BytesIO(data))
    durations = []
    for i in range(img.n_frames):
        img.seek(i)
        durations.append(img.info["duration"])
    return img.n_frames, img.size, durations


def test_mp4_is_h264_with_every_frame_at_the_fps():
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 256, (24, 1, 1, 3), dtype=np.uint8), 64, 1).repeat(80, 2)  # flat colours
    data = video.encode_mp4(frames, fps=8)
    assert data[4:8] == b"ftyp"
    back, meta = read_mp4(data)
    assert back.shape == (24, 64, 80, 3)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == pytest.approx(8, rel=0.01) and meta["duration"] == pytest.approx(3.0, abs=0.15)
    # Flat colours survive yuv420p to within a few levels.
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 6


def test_palette_clip_matches_its_rgb_and_odd_sides_are_padded_with_white(toys):
    clip = video.toy_frames(toys[0], size=121, max_frames=5)
    assert clip.frames.shape == (5, 121, 121)
    back, meta = read_mp4(video.export(clip, "mp4", fps=5))
    assert back.shape == (5, 122, 122, 3)
    assert np.abs(back[:, :121, :121].astype(int) - clip.rgb().astype(int)).mean() < 8
    assert back[:, :, -1].min() > 230 and back[:, -1].min() > 230, "the pad is the canvas white"
    assert video.pad_even(np.zeros((2, 3, 5, 3), np.uint8)).shape == (2, 4, 6, 3)
    assert video.pad_even(np.zeros((2, 4, 6), np.uint8), 0).shape == (2, 4, 6)


def test_toy_gif_frames_are_the_gif_modules_frames(toys):
    # Same frames as lab.render.toy's GIFs: the GIF export at their frame time is the same file.
    run = toys[0]
    assert video.toy_export(run, "gif", size=200, fps=12.5, max_frames=6) == \
        toy_gif_bytes(run, size=200, fps=12.5, max_frames=6, hold_last=0)
    assert video.side_by_side_export(*toys, "gif", size=160, fps=10, titles=("a", "b"), max_frames=5) == \
        side_by_side_gif(*toys, titles=("a", "b"), size=160, fps=10, max_frames=5, hold_last=0)


@pytest.mark.parametrize("n, duration, fmt, count, fps", [
    (200, 10, "mp4", 200, 20.0),  # 20 fps plays every frame
    (200, 2, "mp4", 120, 60.0),  # past 60 fps frames are dropped
    (200, 2, "gif", 100, 50.0),  # a GIF's shortest delay is 2/100 s
    (10, 30, "mp4", 30, 1.0),  # under 1 fps frames are repeated
    (51, 4, "gif", 50, 12.5),  # GIF delays are whole 1/100 s: 8/100 s
])
def test_duration_picks_fps_and_frame_count(n, duration, fmt, count, fps):
    indices, rate = video.plan(n, fmt, duration_s=duration)
    assert len(indices) == count and rate == pytest.approx(fps)
    assert indices[0] == 0 and indices[-1] >= n - 1 - n // count and np.all(np.diff(indices) >= 0)
    assert len(indices) / rate == pytest.approx(duration, rel=0.03)


def test_duration_export_lasts_that_long(b1_run):
    data = video.b1_export(b1_run, "mp4", size=160, duration_s=2, max_frames=31)
    back, meta = read_mp4(data)
    assert meta["fps"] == pytest.approx(15.5, rel=0.01) and len(back) == 31
    assert meta["duration"] == pytest.approx(2.0, abs=0.1)
    n, size, durations = gif_frames(video.b1_export(b1_run, "gif", size=160, duration_s=2, max_frames=31))
    assert size == (160, 160) and sum(durations) == pytest.approx(2000, rel=0.05)
    n, _, durations = gif_frames(video.b1_export(b1_run, "gif", size=160, fps=10, max_frames=31))
    assert n == 31 and set(durations) == {100}


def test_side_by_side_is_one_file_twice_as_wide(toys):
    one, meta = read_mp4(video.toy_export(toys[0], "mp4", size=160, fps=10, max_frames=5))
    both, _ = read_mp4(video.side_by_side_export(*toys, "mp4", size=160, fps=10, max_frames=5))
    assert one.shape[1:3] == (160, 160)
    assert both.shape[1] == 160 and both.shape[2] >= 2 * one.shape[2] and both.shape[2] % 2 == 0
    assert len(both) == 5
    n, size, _ = gif_frames(video.side_by_side_export(*toys, "gif", size=160, fps=10, max_frames=5))
    assert n == 5 and size[0] >= 320 and size[1] == 160


@pytest.mark.parametrize("call, words", [
    (lambda r: video.b1_export(r, "mp4", size=100), ["size", "100", "[120, 1080]"]),
    (lambda r: video.b1_export(r, "mp4", size=2000), ["size", "2000", "[120, 1080]"]),
    (lambda r: video.b1_export(r, "gif", size=300.5), ["size", "300.5"]),
    (lambda r: video.b1_export(r, "mp4", fps=0), ["fps", "0", "[1, 60]"]),
    (lambda r: video.b1_export(r, "gif", fps=float("nan")), ["fps", "nan", "[1, 60]"]),
    (lambda r: video.b1_export(r, "mp4", fps=61), ["fps", "61", "[1, 60]"]),
    (lambda r: video.b1_export(r, "mp4", duration_s=0.5), ["duration", "0.5", "[1, 120]"]),
    (lambda r: video.b1_export(r, "gif", duration_s=121), ["duration", "121", "[1, 120]"]),
    (lambda r: video.b1_export(r, "webm"), ["format", "webm", "gif, mp4"]),
    (lambda r: video.b1_export(r, "mp4", fps=10, duration_s=5), ["fps", "duration"]),
    (lambda r: video.encode_mp4(np.zeros((2, 8, 8), np.uint8), fps=10), ["frames", "(2, 8, 8)"]),
])
def test_bad_values_raise_one_line_naming_value_and_range(b1_run, call, words):
    with pytest.raises(ValueError) as err:
        call(b1_run)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message


# ---------------------------------------------------------------- pages




def export_expander(at: AppTest):
    found = [e for e in at.expander if e.label == "Export for a talk"]
    assert len(found) == 1
    return found[0]


def test_compare_page_exports_a_and_b_side_by_side(root):
    at = run_page(root, "views/compare.py", {"fig": "4", "epochs": "10", "a.epochs": "10", "b.epochs": "10"})
    assert not at.error
    export_expander(at)
    button = [b for b in at.get("download_button") if b.proto.label == "Download as MP4"]
    assert button and button[0].proto.deferred_file_id, "nothing is encoded until the click"
    at.radio(key="cmp_talk_fmt").set_value("GIF").run()
    assert [b for b in at.get("download_button") if b.proto.label == "Download as GIF"]
    at.radio(key="cmp_talk_timing").set_value("duration").run()
    at.number_input(key="cmp_talk_duration").set_value(500.0).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Cannot export: duration must be in [1, 120] seconds, got 500.0"]
    assert not [b for b in at.get("download_button") if b.proto.label.startswith("Download as")]


def test_circle_page_has_the_export_expander(root):
    at = run_page(root, "views/circle.py")
    assert not at.error
    export_expander(at)
    assert at.get("download_button")[0].proto.label == "Download this run as a GIF"
    assert [b for b in at.get("download_button") if b.proto.label == "Download as MP4"][0].proto.deferred_file_id
    at.number_input(key="b1_talk_size").set_value(5000).run()
    assert not at.exception
    assert len(at.error) == 1 and "size" in at.error[0].value and "5000" in at.error[0].value
    at.number_input(key="b1_talk_size").set_value(480).run()
    at.number_input(key="b1_talk_fps").set_value(0.0).run()
    assert len(at.error) == 1 and "fps must be in [1, 60], got 0.0" in at.error[0].value


def test_playground_exports_its_run_for_a_talk_and_the_mp4_is_that_run(root):
    at = run_page(root, "views/playground.py", {"method": "simsiam", "epochs": "10", "seeds": "1"})
    assert not at.error
    export_expander(at)
    assert [b for b in at.get("download_button") if b.proto.label == "Download as MP4"][0].proto.deferred_file_id
    at.number_input(key="pg_talk_size").set_value(50).run()
    assert not at.exception and len(at.error) == 1 and "50" in at.error[0].value


def test_toy_export_mp4_has_one_frame_per_evaluated_epoch():
    run = train_toys([toy_config("simsiam", "blobs", {"seeds": 1, "epochs": 12})])[0]
    data = video.toy_export(run, "mp4", size=200, fps=10)
    frames = iio.imread(data, index=None, extension=".mp4")
    assert frames.shape[0] == len(run.epochs) and frames.shape[1:3] == (200, 200)
