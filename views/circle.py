"""Collapse on the circle: the paper's Appendix B.1 toy with every knob exposed.

Widgets -> B1Config -> lab.train.b1 -> lab.render -> st.*; no math here.
"""
from functools import partial
from pathlib import Path

import streamlit as st

from lab.core import vocab
from views import ui
from lab.claims import check_b1, read_b1_survey, with_b1_nulls
from lab.render import video
from lab.render.frames import gif_bytes
from lab.render.interactive import center_curves_figure, feature_animation, point_colors
from lab.render.live import live_curve, live_frames, live_payload
from lab.train.b1 import (DEFAULT_LR, DEFAULT_NOISE, DEFAULT_SHIFT, PAPER_OPTIMIZERS, PAPER_SETTINGS, B1Config,
                          live_b1, paper_config, train_b1)

MINI, BATCH = PAPER_OPTIMIZERS["mini_batch_sgd"], PAPER_OPTIMIZERS["batch_sgd"]  # (batch size, epochs) each
MODES = {f"Mini-batch SGD (batch {MINI[0]:,})": MINI, f"Batch SGD (batch {BATCH[0]:,})": BATCH,
         "Custom batch size": None}
B1_DEFAULT = B1Config()  # the paper's 100 points × 10 augmentations, mini-batch SGD
STEPS = B1_DEFAULT.steps_per_epoch  # of mini-batch SGD
X_AXES = {"per epoch": "epoch", "per optimizer step": "step"}
COLLAPSE_AT = vocab.COLLAPSE_THRESHOLD

# Written by `python -m lab b1-survey --seeds 20 --out assets/b1_survey.json`; read, not typed in.
SURVEY_FILE = Path(__file__).resolve().parents[1] / "assets" / "b1_survey.json"


@st.cache_resource(show_spinner="Training…", max_entries=32)
def train_one(fields: tuple):
    return train_b1([B1Config(**dict(fields))])[0]


@st.cache_resource(show_spinner="Training the four paper settings…", max_entries=8)
def train_paper(overrides: tuple):
    """The four settings, and the two null runs the turn claim is judged against."""
    names = list(PAPER_SETTINGS)
    return with_b1_nulls(dict(zip(names, train_b1([paper_config(n, **dict(overrides)) for n in names]))))


@st.cache_resource(show_spinner=False, max_entries=32)
def animation(fields: tuple):
    return legend_aside(feature_animation(train_one(fields), max_frames=60, height=560))


@st.cache_resource(show_spinner=False, max_entries=32)
def paper_animation(overrides: tuple, name: str):
    # Four of these share the page: fewer frames, and no legend (the big animation above has it).
    fig = feature_animation(train_paper(overrides)[name], max_frames=40, height=460)
    return fig.update_layout(showlegend=False)


def legend_aside(fig):
    # Below the plot the legend collides with the epoch slider; beside the (square) circle there is room.
    return fig.update_layout(legend=dict(orientation="v", x=1.0, xanchor="left", y=0.5, yanchor="middle"))


def paper_overrides(c: B1Config) -> tuple:
    """The knobs the paper grid takes from this page; batch size, epochs and augmentation are the paper's."""
    return tuple((k, getattr(c, k)) for k in ("lr", "seed", "noise", "shift", "dim"))


def setting_name(c: B1Config) -> str:
    """The paper's GIF name for this config (at one of the paper's batch sizes), else one in the same pattern."""
    opt = {batch: mode for mode, (batch, _) in PAPER_OPTIMIZERS.items()}.get(c.batch_size, f"batch{c.batch_size}_sgd")
    name = f"{opt}_{c.augmentation}_augmentation"
    return name + ("_sphere" if c.dim == 3 else "") + (f"_seed{c.seed}" if c.seed else "")


def epoch_text(epoch: int | None) -> str:
    return "never" if epoch is None else str(epoch)


def per_step_text(survey: dict | None) -> str:
    """' (18 of 20 seeds at the defaults)': the shipped survey's count of seeds where batch SGD is first per step."""
    held = next((c["held"] for c in (survey or {}).get("claims", ()) if c.get("key") == "b1_faster_steps"), None)
    return "" if held is None else f" ({len(held) - sum(held)} of {len(held)} seeds at the defaults)"


def on_mode_change() -> None:
    # Switching optimizer resets epochs to the paper's value for it (`PAPER_OPTIMIZERS`).
    preset = MODES[st.session_state.b1_mode]
    if preset:
        st.session_state.b1_epochs = preset[1]


def controls() -> dict:
    """Sidebar widgets -> B1Config fields (unvalidated: B1Config says what is wrong)."""
    sb = st.sidebar
    sb.header("Setting")
    mode = sb.radio("Optimizer", list(MODES), key="b1_mode", on_change=on_mode_change)
    batch = MODES[mode][0] if MODES[mode] else sb.number_input(
        "Batch size", value=100, step=10, key="b1_batch_size",
        help=f"1 … {B1_DEFAULT.n_samples:,} (the whole {B1_DEFAULT.n_points} × {B1_DEFAULT.n_aug} samples). "
             "A last partial batch of an epoch is dropped.")
    aug = sb.radio("Augmentation", ["centered", "shifted"], key="b1_augmentation", horizontal=True,
                   help="centered: E[x_ω] = x; shifted: E[x_ω] = x + k.")
    shift = DEFAULT_SHIFT
    if aug == "shifted":
        sb.caption("Shift vector k")
        cols = sb.columns(3)
        shift = tuple(col.number_input(axis, value=float(v), step=0.5, key=f"b1_shift_{axis}")
                      for col, axis, v in zip(cols, "xyz", DEFAULT_SHIFT))
    sb.header("Training")
    lr = sb.number_input("Learning rate", value=DEFAULT_LR, step=0.01, format="%.3f", key="b1_lr")
    # The default lives in session state (not value=) because on_mode_change also writes it.
    st.session_state.setdefault("b1_epochs", MODES[mode][1] if MODES[mode] else B1_DEFAULT.epochs)
    epochs = sb.slider("Epochs", 10, 1000, step=10, key="b1_epochs")
    seed = sb.number_input("Seed", value=0, step=1, key="b1_seed")
    noise = sb.number_input("Augmentation noise σ", value=DEFAULT_NOISE, step=0.05, format="%.2f", key="b1_noise")
    dim = sb.radio("Features on the", ["circle (2-D)", "sphere (3-D)"], key="b1_dim", horizontal=True)
    return dict(batch_size=int(batch), epochs=int(epochs), lr=float(lr), augmentation=aug, shift=shift,
                noise=float(noise), seed=int(seed), dim=2 if dim.startswith("circle") else 3)


def live_session(config: B1Config):
    """This browser's live run of `config`: the one it has while the setting is unchanged, else a new one
    (every B.1 knob changes the data or the schedule, so none changes mid-run)."""
    live = st.session_state.get("b1_live")
    if live is not None and live.config == config:
        return live
    return ui.keep_live("b1_live", live_b1(config, playing=True, epochs_per_second=ui.live_speed("b1_"),
                                           idle_hold_s=ui.LIVE_IDLE_HOLD_S))


def live_panel(live) -> None:
    """The augmented points' features (each point's 10 in its colour) and the paper's ‖s‖ as they train."""
    c = live.config
    labels, colors = [i // c.n_aug for i in range(c.n_samples)], point_colors(c.n_points)

    def payload(frames, epochs, metrics) -> dict:
        status = "Starting…"
        if epochs:
            s_norm = metrics["center_norm_aug"][-1, 0].item()
            status = (f"{'Training' if live.control.playing else 'Paused'} · epoch {epochs[-1]} of {c.epochs} · "
                      f"‖s‖ {s_norm:.3f} (augmented points: the paper's s), "
                      + ("collapsed" if s_norm > COLLAPSE_AT else "not collapsed") + f" at {COLLAPSE_AT}. "
                      "Change a setting in the sidebar to start again with it.")
        curve = live_curve(epochs, metrics["center_norm_aug"]) if epochs else live_curve([], [])
        return live_payload(live.id, labels, c.dim, c.epochs, live_frames(frames), curve,
                            speed=live.control.epochs_per_second, status=status, metric="center_norm_aug",
                            colors=colors)

    ui.live_panel(live, "b1_", payload)


def page() -> None:
    st.title("Collapse on the circle")
    st.markdown(
        "The paper's Appendix B.1: 100 points in R³, 10 augmentations each, two linear layers R³ → R², "
        "features normalised onto the unit circle, trained on the **invariance loss only**. Nothing pushes the "
        "center vector `s` back to 0, so the features collapse (at the default seed all four paper settings do; "
        "over 20 seeds some runs stall or split into two opposite clusters, see docs/b1.md); what differs is how "
        "fast, and where `s` points."
    )
    fields = controls()
    try:
        config = B1Config(**fields)
    except ValueError as err:
        st.error(f"Invalid setting: {err}")
        st.stop()
    live_first(config)
    key = tuple(config.to_dict().items())
    run = train_one(key)
    metrics = run.metrics()
    anim_col, info_col = st.columns([3, 2], gap="large")
    with anim_col:
        st.plotly_chart(animation(key), key="b1_animation")
    with info_col:
        run_readings(run, config, metrics)
    x_label = center_curves(config, metrics)
    st.subheader("All four paper settings")
    if st.toggle("Train and show all four paper settings side by side", key="b1_compare",
                 help="The paper's batch sizes and epochs, with this page's learning rate, seed, noise, shift "
                      "and circle/sphere."):
        four_settings(config, x_label)


def live_first(config: B1Config) -> None:
    """Live is the default: the run trains in view, and the page's replay comes when it has ended."""
    st.session_state.setdefault("b1_live_on", True)  # in session state, as b1_epochs (AppTests set it first)
    if st.sidebar.toggle("Train live", key="b1_live_on",
                         help="Watch the features move while the model trains; pause, step one epoch, reset. "
                              "Off: train first, then show the replay."):
        live = live_session(config)
        if not live.done:
            live_panel(live)
            st.stop()  # the replay, the curves and the export once the run has ended


def run_readings(run, config: B1Config, metrics) -> None:
    """The final center norms, the collapse epoch, the GIF and talk export, and what the picture shows."""
    # Row by row: data | augmented, batch | collapse epoch. A rising ‖s‖ is bad news: inverse colours.
    cells = st.columns(2) + st.columns(2)
    for cell, label, name in zip(cells, ("Final ‖s‖ · data (green)", "Final ‖s‖ · augmented (red)",
                                         "Final ‖s‖ · one batch (blue)"),
                                 ("center_norm", "center_norm_aug", "batch_center_norm")):
        first, last = metrics[name][0], metrics[name][-1]
        cell.metric(label, f"{last:.3f}", delta=f"{last - first:+.3f} since epoch 0", delta_color="inverse")
    cells[3].metric(f"First epoch with ‖s‖ > {COLLAPSE_AT}",
                    epoch_text(vocab.first_epoch_above(metrics["center_norm_aug"], metrics["epoch"], COLLAPSE_AT)),
                    help="‖s‖ of the augmented points (red), the paper's s = E_x E_ω z(ω(x)).")
    # A callable is run only when the button is clicked (~0.4 s), so reruns never pay for the GIF;
    # partial binds this run, since the click arrives after the script has finished.
    st.download_button("Download this run as a GIF", key="b1_gif", file_name=f"{setting_name(config)}.gif",
                       data=partial(gif_bytes, run, max_frames=100, size=360, title=setting_name(config)),
                       mime="image/gif", on_click="ignore", icon=":material/download:")
    ui.talk_export("b1_talk", setting_name(config), partial(video.b1_export, run, max_frames=200,
                                                          title=setting_name(config)), 480)
    st.markdown(
        """
    **What you see.** Each colour is one of the 100 points (large dot) with its 10 augmentations (small dots).
    - **Green** arrow: center of the features of all dataset points.
    - **Blue** arrow: center estimated from one mini-batch of un-augmented points.
    - **Red** arrow: center of the features of all augmented points, the paper's `s`.
    - Grey lines: residuals `r = z − s`, the sample-specific part.
    - **Orange** and **purple** arrows, on a few points: the loss's pull on that feature split as in eq. 4,
      the **center term** `s` (the same for every sample) and the **residual term** `μ_z − s` (its own).
      As `‖s‖` grows the orange pull wins and all points slide together.
    """
    )


def center_curves(config: B1Config, metrics) -> str:
    st.subheader("Center magnitudes")
    x_label = st.radio("x-axis", list(X_AXES), key="b1_curve_x", horizontal=True)
    st.plotly_chart(center_curves_figure({setting_name(config): metrics}, x=X_AXES[x_label]), key="b1_curves")
    st.caption(
        f"This run takes {config.steps_per_epoch} optimizer step(s) per epoch. Mini-batch SGD (batch {MINI[0]}) takes "
        f"{STEPS} steps per epoch, batch SGD (batch {BATCH[0]:,}) one. Per epoch, mini-batch SGD usually collapses "
        "much faster; per optimizer step batch SGD usually gets there first"
        f"{per_step_text(read_b1_survey(SURVEY_FILE))}: the two tell different stories. "
        f"(Snapshots are taken once per epoch, so a mini-batch curve has a point every {STEPS} steps.)"
    )
    return x_label


def four_settings(config: B1Config, x_label: str) -> None:
    """The paper's four settings side by side with this page's lr, seed, noise, shift and D, and its B.1 claims."""
    overrides = paper_overrides(config)
    with_nulls = train_paper(overrides)
    runs = {name: with_nulls[name] for name in PAPER_SETTINGS}
    for row in (list(runs)[:2], list(runs)[2:]):
        for col, name in zip(st.columns(2), row):
            col.markdown(f"**{name}**")  # not a Plotly title: that one collides with the play buttons
            col.plotly_chart(paper_animation(overrides, name), key=f"b1_grid_{name}")
    b1_fig = center_curves_figure({n: r.metrics() for n, r in runs.items()}, x=X_AXES[x_label],
                                  keys=("center_norm_aug", "center_norm"), height=460,
                                  title="Fig. B.1 style: ‖s‖ of augmented (dashed) and dataset (solid) points")
    st.plotly_chart(b1_fig, key="b1_grid_curves")
    st.markdown(f"**The paper's B.1 claims on these four runs (seed {config.seed})**")
    for finding in check_b1(with_nulls):
        verdict = "held" if finding.held else "did not hold"
        source = "" if finding.from_paper else " *(our check, not the paper's)*"
        (st.success if finding.held else st.warning)(f"**{verdict}**: {finding.claim}{source}  \n{finding.numbers}")
    survey = read_b1_survey(SURVEY_FILE)
    if survey is not None:
        counts = "; ".join(f"{sum(c['held'])}/{len(c['held'])}: {c['claim']}" for c in survey["claims"])
        st.caption(f"Across seeds 0–{survey['seeds'] - 1} at the defaults (`python -m lab b1-survey --seeds "
                   f"{survey['seeds']} --out assets/b1_survey.json`, run {survey['made']}), each claim held in: {counts}. "
                   "docs/b1.md describes the runs that do not collapse.")


if __name__ == "__main__":
    page()
