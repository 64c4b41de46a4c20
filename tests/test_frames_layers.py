"""The B.1 frames' fast paths draw what the plain ways draw: discs in one index write, the fixed parts
(outline, title, legend) as cached layers, and palette frames into an MP4 as ffmpeg's pal8."""
import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image, ImageDraw

from lab.render import frames, video
from lab.train.b1 import paper_config, train_b1


@pytest.fixture(scope="module")
def run():
    return train_b1([paper_config("mini_batch_sgd_centered_augmentation", epochs=12)])[0]


def stamp_offset_by_offset(pixels, xs, ys, colors, radius):
    size = pixels.shape[0]
    dy, dx = frames._disc(radius)
    xi, yi = np.rint(xs).astype(np.int64), np.rint(ys).astype(np.int64)
    for oy, ox in zip(dy, dx):
        x, y = xi + ox, yi + oy
        ok = (x >= 0) & (x < size) & (y >= 0) & (y < size)
        pixels[y[ok], x[ok]] = colors[ok]


def test_stamp_is_the_offset_by_offset_loop_where_discs_overlap_and_leave_the_canvas():
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(-5, 45, 300), rng.uniform(-5, 45, 300)  # crowded: most discs overlap
    colors = rng.integers(16, 200, 300).astype(np.uint8)
    for radius in (1, 2, 5):
        canvas = frames._Canvas(40, 2)
        canvas.stamp(xs, ys, colors, radius)
        want = np.full((40, 40), frames.WHITE, np.uint8)
        stamp_offset_by_offset(want, xs, ys, colors, radius)
        assert np.array_equal(canvas.pixels, want)


@pytest.mark.parametrize("paint, arg", [(frames._draw_outline, 2), (frames._draw_outline, 3),
                                        (frames._draw_legend, None), (frames._draw_legend, "a title")])
@pytest.mark.parametrize("size", [64, 480])
def test_a_cached_layer_pasted_is_the_layer_drawn(paint, arg, size):
    rng = np.random.default_rng(size)
    under = rng.integers(0, 255, (size, size), dtype=np.uint8)  # whatever the frame has there
    drawn = Image.fromarray(under, mode="P")
    paint(ImageDraw.Draw(drawn), size, arg)
    pasted = Image.fromarray(under, mode="P")
    pasted.paste(*frames._layer(paint, size, arg))
    assert np.array_equal(np.asarray(pasted), np.asarray(drawn))
    assert (np.asarray(drawn) != under).sum() > 50  # the layer draws something


def test_title_and_legend_are_in_the_frame(run):
    plain, titled = (np.asarray(frames.draw_frame(run, 6, size=300, title=t)) for t in (None, "my title"))
    differ = np.argwhere(plain != titled)
    assert len(differ) > 20 and differ[:, 0].max() < 60  # only the title's line, near the top
    assert (plain[-40:] == frames.TEXT).sum() > 100  # the legend's labels along the bottom


def test_palette_mp4_shows_the_palette_colours_unswapped():
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    indices = np.repeat(rng.integers(0, 256, (6, 1, 1), dtype=np.uint8), 48, 1).repeat(64, 2)  # flat colours
    clip = video.Clip(indices, palette.tobytes())
    back = iio.imread(video.encode_mp4(clip, fps=6), index=None, extension=".mp4")
    assert back.shape == (6, 48, 64, 3)
    assert np.abs(back.astype(int) - clip.rgb().astype(int)).mean() < 6


def test_b1_mp4_frames_are_the_b1_clip(run):
    clip = video.b1_frames(run, size=160, max_frames=13)
    data = video.b1_export(run, "mp4", size=160, fps=10, max_frames=13)
    meta = iio.immeta(data, plugin="FFMPEG", extension=".mp4")
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    back = iio.imread(data, index=None, extension=".mp4")
    assert back.shape == (13, 160, 160, 3)
    assert np.abs(back.astype(int) - clip.rgb().astype(int)).mean() < 8
