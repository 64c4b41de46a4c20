"""Real images, live: pick a method and its knobs, train the engine's Fashion-MNIST model in the background and
watch its held-out features on the sphere (`lab.train.real_live`), a knob turned mid-run marked everywhere.

URL: `live=METHOD` starts the run on opening, each method knob under its own name (`stop_grad=false`), `seed`,
`steps`, `at=STEP:KNOB=VALUE;...` (changes after STEP steps); `lesson=1`: every browser on the link watches one
shared run, without controls. Widgets -> `lab` calls -> rendering; no torch here.
"""
from __future__ import annotations

import dataclasses
import json
from functools import partial
from urllib.parse import urlencode
from pathlib import Path
from typing import Any

import streamlit as st

from lab.data import fmnist
from lab.methods import METHOD_NAMES, method_class
from lab.render import real_live as render
from lab.train.changes import changes_text
from lab.train.real_live import RealLiveConfig, held_out, knob_defaults, live_real, warm_up
from views import ui

P = "rl_"
URL_STATE = "rl_url"
SURVEY = Path(__file__).resolve().parents[1] / "assets" / "fmnist" / "live_stopgrad.json"
# Steps a second: the model trains ~3 a second on one core here; slower speeds are for a class to follow.
SPEEDS = {"1 step/s": 1.0, "2 steps/s": 2.0, "5 steps/s": 5.0, "as fast as it trains": None}
SPEED_DEFAULT = "as fast as it trains"
LESSON_CHANGE = "50:stop_grad=false"
FIELDS = {f.name: f for f in dataclasses.fields(RealLiveConfig)}
TRAIN = ("seed", "steps")  # the run's own settings on the page; the rest stay at the stated defaults


def _train_param(name: str) -> ui.Param:
    f = FIELDS[name]
    return ui.Param(name, f.metadata["label"], int, f.default, f"train:{name}", help=f.metadata["help"],
                    limits=f.metadata["range"], group="training")


METHOD = ui.Param("live", "Method", str, "simsiam", "method", METHOD_NAMES, widget="selectbox",
                  format=lambda m: method_class(m).label)
AT = ui.Param("at", "Knob changes at set steps", str, "", "train:changes", placeholder=f"e.g. {LESSON_CHANGE}",
              help="STEP:KNOB=VALUE, several joined by ';': after STEP steps the knob takes VALUE, from the next "
                   "step. A knob you turn while the run trains is added here by the link.")


def knob_params(method: str) -> list[ui.Param]:
    """The method's knobs a live run can turn, starting at the Fashion-MNIST recipe's values."""
    defaults = knob_defaults(method)
    out = []
    for p in ui.method_params(method):
        knob = p.target[5:]
        if knob in defaults:
            stops = tuple(sorted(set(p.stops) | {defaults[knob]})) if p.stops else None
            out.append(dataclasses.replace(p, default=defaults[knob], stops=stops))
    return out


def params(method: str) -> list[ui.Param]:
    return knob_params(method) + [_train_param(n) for n in TRAIN] + [AT]


def _key(p: ui.Param, method: str) -> str:
    return f"{P}{method}_{p.name}" if p.target.startswith("knob:") else f"{P}{p.name}"


def load_url(query: dict[str, str]) -> list[str]:
    """The widgets from a link; one line per bad value (the default is used). A `live` key asks for a start."""
    errors: list[str] = []
    method = query.get("live", METHOD.default)
    if method not in METHOD_NAMES:
        errors.append(f"URL parameter `live={method}`: takes one of {', '.join(METHOD_NAMES)}; using simsiam.")
        method = METHOD.default
    st.session_state[f"{P}method"] = method
    known = {p.name for p in params(method)} | {"live", "lesson"}
    errors += [f"Unknown URL parameter `{k}` for {method}; valid: {', '.join(sorted(known))}." for k in query
               if k not in known]
    for p in params(method):
        value, raw = p.default, query.get(p.name)
        if raw is not None:
            try:
                value = _checked(p, ui.decode(p, raw), method)
            except ValueError as err:
                errors.append(f"URL parameter `{p.name}={raw}`: {err}; using the default {p.show(p.default)}.")
        st.session_state[_key(p, method)] = value
    if "live" in query and not errors:
        st.session_state[f"{P}start"] = True
    return errors


def _checked(p: ui.Param, value: Any, method: str) -> Any:
    if p.limits and not p.limits[0] <= value <= p.limits[1]:
        raise ValueError(f"{p.name} must be in [{p.limits[0]}, {p.limits[1]}], got {ui.fmt(value)}")
    if p.target.startswith("knob:"):
        RealLiveConfig(method=method, params=((p.target[5:], value),))
    return value


def config_of(values: dict[str, Any]) -> RealLiveConfig:
    """ValueError (one line) for a bad combination, e.g. a change at a step past the budget."""
    method = values["live"]
    knobs = tuple((p.target[5:], values[p.name]) for p in knob_params(method) if values[p.name] != p.default)
    return RealLiveConfig(method=method, params=knobs, seed=values["seed"], steps=values["steps"],
                          changes=values["at"])


def widgets(box) -> dict[str, Any]:
    method = box.selectbox(METHOD.label, METHOD_NAMES, key=f"{P}method", format_func=METHOD.format)
    values: dict[str, Any] = {"live": method}
    cols = box.columns(2)
    for i, p in enumerate(params(method)):
        key, target = _key(p, method), (cols[i % 2] if p.name != "at" else box)
        st.session_state.setdefault(key, p.default)
        if p.kind is bool:
            values[p.name] = target.toggle(p.label, key=key, help=p.help)
        elif p.stops:
            if st.session_state[key] not in p.stops:
                st.session_state[key] = p.default
            values[p.name] = target.select_slider(p.label, p.stops, key=key, help=p.help, format_func=p.show)
        elif p.kind is str:
            values[p.name] = target.text_input(p.label, key=key, help=p.help, placeholder=p.placeholder).strip()
        else:
            lo, hi = p.limits or (0, None)
            values[p.name] = target.number_input(p.label, min_value=lo, max_value=hi, step=1, key=key, help=p.help)
    return values


def stored_values() -> dict[str, Any]:
    """The setting as the link loaded it (`load_url`), without drawing a widget."""
    method = st.session_state.get(f"{P}method", METHOD.default)
    return {"live": method} | {p.name: st.session_state.get(_key(p, method), p.default) for p in params(method)}


def link_query(live) -> dict[str, str]:
    """The link of a run: its starting knobs and every change so far, so that opening it trains the same run."""
    c = live.config
    query = {"live": c.method} | {k: ui.encode(v) for k, v in c.params} | {"seed": str(c.seed), "steps": str(c.steps)}
    changes = tuple(c.changes) + tuple(live.control.applied)
    if changes:
        query["at"] = changes_text(changes)
    return query


def steer(live, values: dict[str, Any]) -> None:
    """Knobs turned while the run trains go to it from its next step (one line if a knob cannot change)."""
    seen = st.session_state.get(f"{P}seen")
    st.session_state[f"{P}seen"] = values
    if seen is None or live.done or seen.get("live") != values["live"]:
        return
    for p in knob_params(values["live"]):  # every one of them can change on the running model
        knob = p.target[5:]
        if seen.get(p.name) != values[p.name]:
            try:
                live.control.change(knob, values[p.name])
            except ValueError as err:
                st.error(f"Cannot change that now: {str(err).splitlines()[0]}")


@st.cache_data(show_spinner=False, max_entries=8)
def thumbs(seed: int, n: int, data: str) -> list[str]:
    return render.thumbnails(held_out(RealLiveConfig(seed=seed, held_out=n, data=data))[0])


def labels_of(c: RealLiveConfig):
    return held_out(c)[1]


def panel(live, shared: bool = False) -> None:
    """The canvas view: the held-out features on the sphere and the curves as they train, changes marked."""
    c = live.config
    labels = labels_of(c)
    images = thumbs(c.seed, c.held_out, c.data)

    def payload(frames, steps, metrics) -> dict:
        changes = render.events((*c.changes, *live.control.applied), c.method)
        sent = st.session_state.get(f"{P}images_sent") == live.id
        st.session_state[f"{P}images_sent"] = live.id
        pics = None if sent else images
        if not steps:
            return render.real_payload(live.id, labels, c.steps, [], [], {}, changes, None, "Starting…", pics)
        m = {k: v[:, 0] for k, v in metrics.items()}
        packed = render.real_frames(frames, steps, metrics["s3"][:, 0].numpy(), m["center_norm"].numpy(), changes)
        ctl = live.control
        # "Paused" once the trainer waits: after Pause it finishes the step it is in first.
        state = "Training" if ctl.playing else "Paused" if ctl.waiting else "Pausing"
        status = (f"{state} · step {steps[-1]} of {c.steps} · "
                  f"‖s‖ {float(m['center_norm'][-1]):.3f} · kNN {float(m['knn_acc'][-1]):.3f} · effective rank "
                  f"{float(m['effective_rank'][-1]):.0f} · the 3 directions hold {float(m['share'][-1]):.0%} of the "
                  "rows' second moment. Drag the sphere to turn it; hover a point for its image."
                  + (" Everyone on this link watches this one run." if shared else ""))
        return render.real_payload(live.id, labels, c.steps, packed, steps,
                                   {k: v.numpy() for k, v in m.items()}, changes, live.control.epochs_per_second,
                                   status, pics)

    ui.live_panel(live, P, payload, shared=shared, unit="step", speeds=SPEEDS, speed_default=SPEED_DEFAULT)


def framing(c: RealLiveConfig, shipped: dict | None) -> None:
    """Budget, model and seed, and the shipped 3-seed verdicts beside: one live run is not a verdict."""
    st.caption(
        f"**One run, seed {c.seed}**: the engine's Fashion-MNIST model (ResNet-18, small-image stem, width 16, the "
        f"{method_class(c.method).label} recipe carried over as in the shipped runs), {c.steps} steps of batch "
        f"{c.batch_size} ({c.steps * c.batch_size / 60000:.0%} of one pass), a constant lr after "
        f"10 warmup steps, on one CPU core. After every step, {c.held_out} held-out test images are read at the "
        "projector's output **before its output BatchNorm** (train mode, as the loss sees a batch) and drawn in "
        "their top-3 directions (as *Check a model* draws an embedding). kNN: 5-fold within those images.")
    mine = [cl for cl in (shipped or {}).get("claims", []) if cl["key"].split("_")[0] == c.method]
    lines = [f"**{cl['verdict']}** in {cl['held']} of {cl['n']} seeds: {cl['statement']}" for cl in mine if cl["n"]]
    survey = _survey()
    if survey and c.method == "simsiam":
        lines.append(f"**Stop-gradient off at step {survey['change_at']}** (this page's lesson, {survey['steps']} "
                     f"steps): ‖s‖ rose in **{survey['held']} of {survey['n']} seeds** ("
                     + ", ".join(f"seed {r['seed']}: {r['before_change']:.2f} → {r['tail_off']:.2f}, control "
                                 f"{r['tail_control']:.2f}" for r in survey["seeds"]) + f"). Rule: {survey['rule']}."
                     + (f" *The paper (Fig. 4, §3.2): SimSiam without stop-gradient collapses; at this budget the lab "
                        f"sees ‖s‖ rise in {survey['held']} of {survey['n']} seeds.*"
                        if survey["held"] < survey["n"] else ""))
    if lines:
        st.info("**Shipped verdicts for this method** (3 seeds each, judged by a rule written before the runs; one "
                "live run is an illustration, not a verdict):  \n" + "  \n".join(lines))


@st.cache_data(show_spinner=False)
def _survey_file(path: str, mtime: float) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _survey() -> dict | None:
    try:
        return _survey_file(str(SURVEY), SURVEY.stat().st_mtime)
    except OSError:
        return None


def finished(live) -> None:
    """The run's curves, last readings and the export, once it has ended."""
    run = live.run
    if run.diverged:
        st.warning(f"{run.diverged}. The pictures show the steps before it.")
    left, right = st.columns([2, 3])
    with left:
        last = len(run.steps) - 1
        t = st.slider("Replay: step", 0, last, last, key=f"{P}replay", format="%d",
                      help="The held-out images at each step read, as the live view showed them.") if last else 0
        st.image(render.frame_png(run, t, 440), caption=f"step {run.steps[t]}: ‖s‖ "
                 f"{run.metrics['center_norm'][t]:.3f}, kNN {run.metrics['knn_acc'][t]:.3f}")
    right.plotly_chart(render.run_figure(run), key=f"{P}curves")
    m = {k: float(v[-1]) for k, v in run.metrics.items()}
    st.markdown(f"After {run.steps[-1]} steps: held-out ‖s‖ **{m['center_norm']:.3f}** (untrained "
                f"{run.metrics['center_norm'][0]:.3f}), kNN **{m['knn_acc']:.3f}** (untrained "
                f"{run.metrics['knn_acc'][0]:.3f}), effective rank {m['effective_rank']:.0f} of {run.dim}.")
    ui.talk_export(f"{P}export", f"fmnist_{run.config.method}_seed{run.config.seed}",
                   partial(render.export_run, run), 480)


@st.fragment
def section(shipped: dict | None) -> None:
    """The live part of the Real images page: a fragment, so that pressing Train live or turning a knob reruns
    this part only, not the shipped verdicts' seven charts below (the first frame came ~0.4 s later that way)."""
    st.subheader("Train one live")
    if not fmnist.is_fashion_mnist(fmnist.DEBIAN_DIR):
        st.info(f"Live training needs Fashion-MNIST at {fmnist.DEBIAN_DIR}: {fmnist.INSTALL_HINT}.")
        return
    warm_up()
    for err in ui.sync_url(load_url, URL_STATE):
        st.error(err)
    lesson = st.query_params.get("lesson", "").strip().lower() in ("1", "true", "yes", "on")
    if lesson:  # the link's setting, no controls: one student's knob would start a run of their own
        values, go_now = stored_values(), False
    else:
        with st.expander("Method and knobs", expanded=True):
            values = widgets(st)
            go_now = st.button("▶ Train live", key=f"{P}go", type="primary")
    try:
        config = config_of(values)
    except ValueError as err:
        st.error(f"Cannot train this setting: {str(err).splitlines()[0]}")
        return
    if lesson:
        live = ui.shared_live(("real", config), lambda: live_real(config, idle_hold_s=ui.LIVE_IDLE_HOLD_S))
        framing(config, shipped)
        _show(live, shared=True)
        return
    live = st.session_state.get(f"{P}live")  # ui.live_panel's Reset sets it to None
    if go_now or st.session_state.pop(f"{P}start", False):
        live = ui.keep_live(f"{P}live", live_real(config, steps_per_second=ui.live_speed(P, SPEEDS, SPEED_DEFAULT),
                                                         idle_hold_s=ui.LIVE_IDLE_HOLD_S))
        st.session_state[f"{P}seen"] = values
    if live is None:
        st.caption(f"Press **Train live**, or try the lesson: SimSiam with stop-gradient turned off after 50 steps "
                   f"(`?live=simsiam&at={LESSON_CHANGE}`).")
        # The view mounted now, empty: its script is loaded before the first run, whose first frame then comes
        # ~0.5 s sooner on a fresh page (`python -m lab.bench real`).
        ui.live_view(render.real_payload("", [], config.steps, [], [], {}, [], None,
                                         "Press ▶ Train live to start."), key=f"{P}live_frame")
        return
    steer(live, values)
    ui.write_url(link_query(live), URL_STATE)
    framing(live.config, shipped)
    base = (st.context.url or "/Real_images").split("?")[0]
    st.caption(f"**Link to this run:** `{base}?{urlencode(link_query(live))}`  \n**Lesson link** (every browser on "
               f"it watches one shared run, no controls): `{base}?{urlencode(link_query(live) | {'lesson': '1'})}`")
    _show(live)


def _show(live, shared: bool = False) -> None:
    if live.run is None or not live.done:
        panel(live, shared)
        return
    if live.error:
        st.error(f"Training failed: {live.error}")
        return
    finished(live)
