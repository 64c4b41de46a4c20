"""Method playground: nine SSL methods on toy data, every knob a widget, the whole setting in the URL.

Widgets (generated from the method's Config dataclass by views.ui) -> ToyConfig -> lab.train.toy ->
lab.render.toy -> st.*; no math here. A link carries the setting (`?method=simsiam&predictor=false`),
`lock=lr,predictor` fixes controls, `lesson=1` (or `hide=all`) hides them all.
"""
from functools import partial
from urllib.parse import urlencode

import streamlit as st

from lab.core import pull, vocab
from views import ui
from lab.data.toy import make_toy
from lab.methods import method_class
from lab.render import video
from lab.render.live import live_curve, live_frames, live_payload
from lab.render.toy import metric_band_figure, toy_animation, toy_gif_bytes
from lab.train.changes import change_caption, changes_text, movable_differences
from lab.train.toy import live_toy

PAGE = "Method_playground"
SEEDS_DEFAULT = 3  # three seeds keep the page responsive; the Compare page uses five
COLLAPSE_AT = vocab.COLLAPSE_THRESHOLD
URL_STATE = "pg_url"
SHOW = ui.Param("show", "Seed in the animation", int, 0, "view", (0, 1, 2, 3, 4), group="view", widget="radio",
                format=lambda i: f"#{i + 1}", options_from=lambda v: tuple(range(v.get("seeds", 1))),
                help="Which of the seeds the animation and the GIF show; the curves show all of them.")

X_AXIS = ui.Param("x", "Curves against", str, "epoch", "view", ("epoch", "step"), group="view", widget="radio",
                  format=lambda x: {"epoch": "epoch", "step": "optimizer step"}[x])

# The charts under the animation: (metrics on one chart, caption). Method-specific ones only where present.
CHARTS = (
    ("center_norm", "‖s‖ → 1 is collapse: every point maps to the same feature."),
    ("center_share", "The share of points within 26° of the mean direction s/‖s‖ (cosine ≥ 0.9). ‖s‖ is the mean "
                     "of the points' cosines to s, so a few points on the far side hold it down; they do not hold "
                     "this down. 1: every point near one direction."),
    ("center_pull", "The loss's pull on the features (−∂L/∂z on the sphere), its mean over the points read along "
                    "s: positive = the loss pulls every feature toward s (the collapse direction), negative = it "
                    "pushes against s."),
    (("knn_acc", "linear_acc"), "kNN and linear accuracy on held-out points; chance is 1/3."),
    ("z_std", "Std of each feature coordinate; spread evenly it is about 1/√D, collapsed 0."),
    ("loss", None),
    ("alignment", "Mean ‖z − z⁺‖² over positive pairs (Wang & Isola): 0 when views agree."),
    ("uniformity", "log E exp(−2‖z − z′‖²) over held-out pairs: lower is more spread; 0 when collapsed."),
    ("effective_rank", "exp(entropy of the singular values) of the centered features, 1 … D: the shape of the "
                       "residuals, not their size, so a collapsed model can still score high."),
    (("center_norm_pre_bn", "center_norm_post_bn"), "Barlow Twins: the center before and after BatchNorm."),
    (("teacher_entropy", "teacher_sample_entropy"),
     "DINO: entropy of the mean teacher output and the mean of each sample's. Against ln K: healthy is ln K on "
     "the first and low on the second; uniform collapse ln K on both; one-prototype collapse 0 on both."),
)

CHART_TITLES = {("knn_acc", "linear_acc"): "accuracy (held-out)",
                ("center_pull",): "center pull ⟨mean pull, s/‖s‖⟩",
                ("teacher_entropy", "teacher_sample_entropy"): "DINO teacher entropy: mean output vs per sample",
                ("center_norm_pre_bn", "center_norm_post_bn"): "‖s‖ before and after BatchNorm"}

# Live is what a newcomer meets: a knob change starts (or steers) a run whose features move at once; off, the run
# trains first and the page shows its replay (the ▶ slider, the curves and the export come either way at the end).
LIVE = ui.Param("live", "Train live", bool, True, "view", group="view",
                help="Watch the model train, pause, step, and change knobs while it runs: a changed knob acts on the "
                     "running model from its next epoch. Off: train first, then show the replay.")

form = ui.ToyForm("pg_", defaults={"seeds": SEEDS_DEFAULT}, view=(SHOW, X_AXIS, LIVE))


def share_link(query: dict) -> str:
    base = st.context.url or f"/{PAGE}"
    return f"{base}?{urlencode(query)}"


def pull_verdict(config, run) -> str:
    """One line: what the paper predicts for this method's center pull and what this run shows."""
    sign, why = method_class(config.method).pull_prediction(config.method_config)
    seen = pull.reading(run.metrics["center_pull"], run.metrics["residual_pull"])
    agree = pull.agrees(sign, seen["seen"])
    verdict = {True: "as the paper predicts", False: "**not** as the paper predicts",
               None: "the paper predicts no sign here"}[agree]
    seeds = ", ".join(f"{v:+.4f}" for v in seen["per_seed"])
    return (f"**Paper** ({sign or 'no sign'}): {why} **This run**: mean center pull {seen['mean']:+.4f} over the "
            f"epochs (per seed {seeds}; mean residual pull {seen['residual']:.3f}) → {seen['seen']}, {verdict}.")


def live_session(config):
    """This browser's live training: kept while only knobs that may change mid-run change (those go to the
    running model from its next epoch), a new one for anything else. None after a one-line error."""
    live, seen = st.session_state.get("pg_live_run"), st.session_state.get("pg_live_seen")
    if live is not None and seen is not None:
        diff = movable_differences(seen, config) if not live.done else ({} if seen == config else None)
        if diff is not None:
            try:
                for knob, value in diff.items():
                    live.control.change(knob, value)
            except ValueError as err:
                st.error(f"Cannot change that now: {err}")
                return None
            st.session_state.pg_live_seen = config
            return live
    live = live_toy(config, playing=True, epochs_per_second=ui.live_speed("pg_"), idle_hold_s=ui.LIVE_IDLE_HOLD_S)
    st.session_state.pg_live_seen = config
    return ui.keep_live("pg_live_run", live)


def write_live_url(live, values, extras) -> None:
    """The link of a live run: its starting knobs and every change made so far (at=EPOCH:KNOB=VALUE;...), so
    that opening it trains the same run."""
    applied = list(live.control.applied)
    if not applied:
        return
    start, query = live.config, form.query(values) | extras
    knobs = start.method_config
    for ch in applied:
        query[ch.knob] = ui.encode(getattr(knobs, ch.knob) if hasattr(knobs, ch.knob) else getattr(start, ch.knob))
    query["at"] = changes_text(tuple(start.changes) + tuple(applied))
    ui.write_url(query, URL_STATE)


def live_panel(live, show: int, shared: bool = False) -> None:
    """The live view of seed `show`: its features and the ‖s‖ curve as they train, every change marked.
    shared: the run of a lesson link, which every browser on that link watches (no controls)."""
    config = live.config
    labels = make_toy(config.dataset, config.data_seed, config.n_train, config.n_test).y_train.numpy()

    def payload(frames, epochs, metrics) -> dict:
        events = [(ch.epoch, change_caption(ch, config.method)) for ch in (*config.changes, *live.control.applied)]
        if not epochs:
            return live_payload(live.id, labels, config.dim, config.epochs, [], live_curve([], []), events,
                                status="Starting…")
        final = metrics["center_norm"][-1]
        status = (f"{'Training' if live.control.playing else 'Paused'} · epoch {epochs[-1]} of {config.epochs} · "
                  f"{int((final > COLLAPSE_AT).sum())} of {len(final)} seeds above ‖s‖ {COLLAPSE_AT} now. "
                  + ("Drag the sphere to turn it. " if config.dim > 2 else "")
                  + ("Everyone on this link watches this one run; its replay and curves follow when it ends."
                     if shared else "Change a knob in the sidebar: it acts from the next epoch, and the link keeps it."))
        return live_payload(live.id, labels, config.dim, config.epochs, live_frames(frames, events),
                            live_curve(epochs, metrics["center_norm"]), events, live.control.epochs_per_second,
                            status)

    ui.live_panel(live, "pg_", payload, seed_index=show, shared=shared)


def page() -> None:
    lesson_early = ui.parse_lock(st.query_params.to_dict(), ())[1]
    st.set_page_config(page_title="Method playground · Collapse Lab", layout="wide",
                       initial_sidebar_state="collapsed" if lesson_early else "auto")
    errors = ui.sync_url(form.load, URL_STATE)
    locked, lesson, lock_errors = ui.parse_lock(st.query_params.to_dict(),
                                                [p.name for p in form.params(form.current_method())])
    header(lesson, errors + lock_errors)
    values, config = setting(locked, lesson)
    run = shared_run(config, values) if lesson else own_run(config, values, locked)
    show_run(run, config, values, lesson)
    metric_charts(run, config, values["x"])
    if not lesson:
        share_expander(config, values, locked)


def header(lesson: bool, messages: list[str]) -> None:
    st.title("Method playground")
    if not lesson:
        st.markdown(
            "Pick an SSL method and a toy dataset (3 classes; two points of one class are two views of one "
            "image, as in the paper's Figs. 3 and 4). Change a knob and watch the features on the circle (D = 2) "
            "or the sphere (D = 3): "
            "the green **center** `s` grows towards the circle when the method collapses, the grey "
            "**residuals** `r = z − s` shrink. Every setting lives in the page's URL: copy it to share the view."
        )
    for message in messages:
        st.error(message)


def url_extras(locked: set, lesson: bool) -> dict:
    return ({"lock": ",".join(sorted(locked))} if locked else {}) | ({"lesson": "1"} if lesson else {})


def setting(locked: set, lesson: bool):
    """The sidebar's widgets -> (their values, the ToyConfig); the URL follows them. Stops on a bad setting."""
    if not lesson:
        st.sidebar.header("Setting")
    values = form.render(st.sidebar, locked=locked, hidden=lesson)
    extras = url_extras(locked, lesson)
    try:
        config = form.config(values)
    except ValueError as err:
        st.error(f"Invalid setting: {err}")
        ui.write_url(form.query(values) | extras, URL_STATE)
        st.stop()
    ui.write_url(form.query(values) | extras, URL_STATE)
    if lesson:
        st.caption(form.summary(values, [n for n in values if n not in ("show", "x", "live")]))
    return values, config


def shared_run(config, values):
    """A lesson link: the class watches one run train (`ui.shared_live`), then its replay."""
    live = ui.shared_live(config, lambda: live_toy(config, playing=True, idle_hold_s=ui.LIVE_IDLE_HOLD_S,
                                                   epochs_per_second=ui.LIVE_SPEEDS[ui.LIVE_SPEED_DEFAULT]))
    if not live.done:
        live_panel(live, values["show"], shared=True)
        st.stop()
    if live.error:
        st.error(f"Training failed: {live.error}")
        st.stop()
    return live.run


def own_run(config, values, locked: set):
    """This browser's run: live (the default) until it ends, else trained first (shared with any browser that
    asks for the same setting)."""
    if values["live"]:
        live = live_session(config)
        if live is None:
            st.stop()
        write_live_url(live, values, url_extras(locked, False))
        if live.run is None or not live.done:
            live_panel(live, values["show"])
            st.stop()  # the replay, the curves and the export once the run has ended
        return live.run
    try:
        return ui.train_cached([config], f"Training {config.method} on {config.dataset}, {config.seeds} seed(s)")[0]
    except (RuntimeError, ValueError) as err:  # e.g. a linear algebra failure on extreme settings
        st.error(f"Training failed: {(str(err).splitlines() or [type(err).__name__])[0]}")
        st.stop()


def show_run(run, config, values, lesson: bool) -> None:
    """The replay beside the run's final readings, its verdict, the GIF and the talk export."""
    show = values["show"]
    if run.diverged:
        st.warning(f"{run.diverged}. The pictures show the epochs before it; try a smaller learning rate.")
    anim_col, info_col = st.columns([3, 2], gap="large")
    with anim_col:
        figure = ui.memo(("pg_anim", config, show), lambda: toy_animation(run, seed_index=show, height=540))
        st.plotly_chart(figure, key="pg_animation")
    with info_col:
        final_readings(run, config)
        note = method_class(config.method).setting_note(config.method_config, config.dim)
        if note:
            st.info(note, icon=":material/straighten:")
        st.caption(f"{config.steps_per_epoch} optimizer steps per epoch, {run.steps:,} per seed; "
                   f"trained in {run.train_seconds:.1f} s (all seeds together).")
        exports(run, config, show, lesson)
        st.markdown(
            """
    **What you see.** Each dot is a training point's feature `z` on the unit circle (sphere at D = 3),
    coloured by class. The **green** arrow is the center `s`, the mean of all features; grey lines are
    residuals `r = z − s` for a few points per class. Press ▶ Play or drag the epoch slider.
    """
        )
        if config.dim > 3:
            st.info(f"D = {config.dim}: the animation shows the first 3 coordinates, renormalised onto the sphere.")
        st.markdown(
            "**Why ‖s‖ matters.** At higher D a collapsed model can keep a good kNN score: the features may all "
            "crowd into a small cap around `s` and still be ordered by class inside it, so the accuracy looks "
            "fine while `‖s‖` is near 1 and the representation has lost nearly all of its spread."
        )


def final_readings(run, config) -> None:
    final = {k: v[-1] for k, v in run.metrics.items()}
    first = run.metrics["center_norm"][0].mean().item()
    s_final = final["center_norm"].mean().item()
    cells = st.columns(2) + st.columns(2)
    cells[0].metric(f"Final ‖s‖ (mean of {config.seeds})", f"{s_final:.3f}",
                    delta=f"{s_final - first:+.3f} since epoch 0", delta_color="inverse",
                    help="Center norm of the training points' features: 1 = collapse.")
    cells[1].metric("kNN accuracy", f"{final['knn_acc'].mean().item():.3f}", help="Held-out points; chance 1/3.")
    cells[2].metric("Linear accuracy", f"{final['linear_acc'].mean().item():.3f}")
    cells[3].metric("z_std", f"{final['z_std'].mean().item():.3f}",
                    help=f"Healthy ≈ 1/√D = {1 / config.dim ** 0.5:.3f}, collapsed 0.")
    collapsed = (final["center_norm"] > COLLAPSE_AT).sum().item()
    if collapsed:
        st.markdown(f":red[**Collapsed**] in {collapsed} of {config.seeds} seed(s): final ‖s‖ > {COLLAPSE_AT}.")
    else:
        st.markdown(f":green[**Not collapsed**]: final ‖s‖ ≤ {COLLAPSE_AT} in every seed.")


def exports(run, config, show: int, lesson: bool) -> None:
    name = f"{config.method}_{config.dataset}_D{config.dim}_seed{config.seed + show}"
    st.download_button("Download this animation as a GIF", key="pg_gif", file_name=f"{name}.gif",
                       data=partial(toy_gif_bytes, run, seed_index=show, title=f"{config.method} on {config.dataset}"),
                       mime="image/gif", on_click="ignore", icon=":material/download:")
    if not lesson:  # a lesson link shows the class the run, nothing to set
        ui.talk_export("pg_talk", name, lambda fmt, size, fps, duration: video.toy_export(
            run, fmt, size, fps, duration, seed_index=show, title=f"{config.method} on {config.dataset}"), 400)


def metric_charts(run, config, x_axis: str) -> None:
    st.subheader("Metrics over training")
    st.caption(f"Mean over {config.seeds} seed(s), shaded from the lowest to the highest seed; dotted lines are "
               "reference values.")
    charts = [(m, c) for m, c in CHARTS if all(k in run.metrics for k in ([m] if isinstance(m, str) else m))]
    for row in range(0, len(charts), 3):
        for col, (metric, caption) in zip(st.columns(3), charts[row:row + 3]):
            names = [metric] if isinstance(metric, str) else list(metric)
            title = CHART_TITLES.get(tuple(names)) or vocab.label(names[0])
            fig = ui.memo(("pg_band", config, tuple(names), x_axis),
                          lambda names=names, title=title: metric_band_figure({config.method: run}, names, x=x_axis,
                                                                              height=290, title=title))
            col.plotly_chart(fig, key=f"pg_chart_{'_'.join(names)}")
            if metric == "loss":
                caption = f"Collapse value of the {config.method} loss: {method_class(config.method).collapse_loss}."
            if caption:
                col.caption(caption)
            if metric == "center_pull":
                col.caption(pull_verdict(config, run))


def share_expander(config, values, locked: set) -> None:
    with st.expander("Share / make a lesson link"):
        st.markdown(
            """
The page's address always holds the whole setting, so copying it from the browser shares exactly this
view. Keys: `method`, `dataset`, each knob of the method by name (e.g. `predictor=false`, `lam=-1`),
`seeds`, `epochs`, `lr`, `batch_size`, `dim`, `seed`, `sgd_momentum`, `weight_decay`, `hidden`, and the
view: `show` (which seed the animation shows, 0-based), `x` (`epoch` or `step`) and `live` (`false`: train first,
then show the replay). Keys left out take their defaults; a bad value is reported and replaced by its default.

For a lesson, fix what the class should not touch:
- `lock=lr,predictor` hides those controls and shows their values as text (`lock=all` locks all);
- `lesson=1` (or `hide=all`) hides every control and the sidebar: the class gets the animation with its
  ▶ Play button and the curves, nothing to change.
"""
        )
        names = [p.name for p in form.params(config.method)]
        labels = {p.name: p.label for p in form.params(config.method)}
        lock_pick = st.multiselect("Lock these controls", names, default=[n for n in names if n in locked],
                                   format_func=lambda n: f"{labels[n]} ({n})", key="pg_share_lock")
        lesson_pick = st.toggle("Lesson view: hide every control", key="pg_share_lesson")
        query = form.query(values) | ({"lock": ",".join(lock_pick)} if lock_pick and not lesson_pick else {}) \
            | ({"lesson": "1"} if lesson_pick else {})
        st.code(share_link(query), language=None, wrap_lines=True)


if __name__ == "__main__":
    page()
