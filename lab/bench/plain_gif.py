"""The plain way to make a B.1 GIF or MP4: Matplotlib draws each frame, FuncAnimation + PillowWriter (GIF) or
FFMpegWriter (MP4, H.264 through the ffmpeg binary of the imageio-ffmpeg wheel) encode it."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib import animation  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lab.render import style  # noqa: E402


def matplotlib_gif(run, path: Path, epochs: list[int], size: int = 480, fps: float = 20.0) -> None:
    """Same content as `lab.render.frames.draw_frame` (points, three center arrows, caption), one figure reused."""
    _matplotlib_animation(run, epochs, size).save(str(path), writer=animation.PillowWriter(fps=fps))


def matplotlib_mp4(run, path: Path, epochs: list[int], size: int = 480, fps: float = 20.0) -> None:
    """The frames of `matplotlib_gif` as an H.264 MP4 (yuv420p) by Matplotlib's FFMpegWriter."""
    import imageio_ffmpeg

    writer = animation.FFMpegWriter(fps=fps, codec="libx264", extra_args=["-pix_fmt", "yuv420p"])
    with matplotlib.rc_context({"animation.ffmpeg_path": imageio_ffmpeg.get_ffmpeg_exe()}):
        _matplotlib_animation(run, epochs, size).save(str(path), writer=writer)


def _matplotlib_animation(run, epochs: list[int], size: int) -> animation.FuncAnimation:
    dpi = 100
    fig = Figure(figsize=(size / dpi, size / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    n = run.z.shape[1]
    colors = [style.hex_color(style.hue(i * style.N_HUES // n, style.N_HUES)) for i in range(n)]
    aug_colors = [c for c in colors for _ in range(run.z_aug.shape[2])]

    def draw(epoch: int):
        ax.clear()
        ax.set_xlim(-1.25, 1.25), ax.set_ylim(-1.25, 1.25), ax.set_aspect("equal"), ax.axis("off")
        ax.add_patch(matplotlib.patches.Circle((0, 0), 1.0, fill=False, color="#cccccc"))
        za = run.z_aug[epoch].reshape(-1, 2).numpy()
        z = run.z[epoch].numpy()
        ax.scatter(za[:, 0], za[:, 1], s=4, c=aug_colors)
        ax.scatter(z[:, 0], z[:, 1], s=30, c=colors, edgecolors="black", linewidths=0.5)
        for key in ("s_aug", "s_batch", "s_data"):
            s = getattr(run, key)[epoch].numpy()
            ax.arrow(0, 0, s[0], s[1], width=0.01, color=style.hex_color(style.CENTER_COLORS[key]),
                     length_includes_head=True)
        ax.text(-1.2, 1.15, f"epoch {epoch}   |s| {run.s_data[epoch].norm():.2f}")
        return []

    return animation.FuncAnimation(fig, draw, frames=epochs, blit=False)
