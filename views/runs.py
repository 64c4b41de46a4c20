"""Runs: launch, watch and compare ImageNet-100 training runs (local, torchrun or SLURM).

Widgets -> lab.runs (launch, list, stop, resume, metrics) and lab.render.runs (figures) -> st.*.
The runs root is $LAB_RUNS_DIR (default ./runs). Live parts are fragments that rerun every few seconds
only while a run they show is queued or running.
"""
from dataclasses import dataclass
from pathlib import Path


import streamlit as st

from lab import runs as labruns
from views import ui
from lab.methods import METHOD_NAMES
from lab.render import runs as view
from views.ui import METHOD_LABELS


REFRESH_S = 2.0  # live charts: a CPU demo epoch takes a few seconds
NO_PRESET = "(none: one run)"
ALL_LABEL = "all (every preset, one queue)"


CHART_X = {"epoch": "epoch", "optimizer step": "step"}
FORM = labruns.LaunchRequest()  # the launch form's starting values


def one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def active(info) -> bool:
    return info.status in view.ACTIVE


def page() -> None:
    st.title("Runs")
    root = runs_root()
    st.markdown(
        "Train the paper's ImageNet-100 experiments and watch the center vector live: `‖s‖` creeping up "
        f"towards 1 is the early sign of collapse. Runs live in `{root}` (set `LAB_RUNS_DIR` to change it); "
        "they keep running when this app stops, and the page finds them again."
    )
    allowed, why_not = ui.page_controls_allowed()
    if not allowed:
        st.warning(why_not, icon=":material/lock:")
    if allowed and not labruns.cuda_available():
        demo_offer(root)
    if flash := st.session_state.pop("runs_flash", None):
        st.success(flash)
    if allowed:
        launch_form(root)

    infos = labruns.list_runs(root)
    if not infos:
        st.info("No runs yet." if not allowed else
                "No runs yet. Launch one above" + ("." if labruns.cuda_available() else ", or start the CPU demo run."))
        st.stop()
    any_active = any(map(active, infos))
    refreshing(runs_table, any_active)(root, any_active)
    chart = chart_options([r.name for r in infos])
    if not chart.shown:
        st.info("Pick runs to show in the sidebar.")
        st.stop()
    st.subheader("Live charts")
    by_name = {r.name: r for r in infos}
    shown_active = any(active(by_name[n]) for n in chart.shown)
    refreshing(live, shown_active)(root, chart, allowed, shown_active)
    paper_figures(infos)


def refreshing(fragment, on: bool):
    """`fragment` as a Streamlit fragment that reruns every REFRESH_S while `on` (a run it shows is active)."""
    return st.fragment(fragment, run_every=REFRESH_S if on else None)


def runs_root() -> Path:
    try:
        return labruns.runs_root()
    except OSError as e:  # e.g. LAB_RUNS_DIR on a read-only or missing mount
        st.error(f"Cannot use the runs folder: {one_line(e)}. Set LAB_RUNS_DIR to a writable folder.")
        st.stop()


# ---------------------------------------------------------------- starting runs


def demo_offer(root: Path) -> None:
    """No GPU here: a button that starts a short CPU run."""
    with st.container(border=True):
        left, right = st.columns([4, 1])
        real = labruns.real_demo_available()
        left.markdown(
            "**No GPU here.** Try the whole loop on the CPU: SimSiam on real Fashion-MNIST images, a small "
            "ResNet-18 (two to three minutes), its charts growing every few seconds."
            if real else
            "**No GPU here.** Try the whole loop on the CPU: a tiny ResNet-18 run on generated images. For real "
            f"images: `{labruns.real_demo_hint()}`, then reload."
        )
        if right.button("CPU demo run", type="primary", key="runs_demo"):
            try:
                launch_demo(root)
            except (ValueError, KeyError, OSError, RuntimeError) as e:
                st.error(f"Could not start the demo: {one_line(e)}")


def launch_demo(root: Path) -> None:
    with st.spinner("Starting the run…"):
        data = labruns.demo_data(root)
        name = next(f"demo-{i}" for i in range(1, 10_000) if not (root / f"demo-{i}").exists())
        info = labruns.launch(name, labruns.demo_train_args(data), root=root, device="cpu")
    what = "Fashion-MNIST" if labruns.demo_is_real(data) else "generated images"
    st.session_state.runs_shown = [info.name]
    st.session_state.runs_flash = f"Started {info.name}: a short CPU run of SimSiam on {what}."


def launch_form(root: Path) -> None:
    """The form's fields, top to bottom: what to run, the trainer's settings, SLURM; then Launch."""
    with st.expander("Launch a run", expanded=not labruns.list_runs(root)):
        name, preset, method = run_choice()
        knobs = knobs_field(preset, method)
        settings = trainer_settings()
        slurm = slurm_fields() if st.toggle("Submit to SLURM", key="runs_slurm") else None
        if st.button("Launch", type="primary", key="runs_launch"):
            try:
                request = labruns.LaunchRequest(name=name, preset=preset, method=method, knobs=knobs, **settings,
                                                slurm=slurm)
                started = request.launch(root)
            except (ValueError, KeyError, OSError, RuntimeError) as e:
                st.error(one_line(e))
            else:
                st.session_state.runs_shown = [r.name for r in started]
                st.session_state.runs_flash = "Started " + ", ".join(r.name for r in started)
                st.rerun()


def run_choice() -> tuple[str, str | None, str]:
    """-> (name or prefix, preset or None, method)."""
    c1, c2, c3 = st.columns(3)
    name = c1.text_input("Run name (a preset's: its prefix)", key="runs_name", placeholder="e.g. simsiam-nopred",
                         help="Letters, digits, '.', '_' and '-'. A preset names its runs <this>-<run>, "
                              "or <preset>-<run> when this is empty.")
    preset = c2.selectbox("Preset (the paper's sweeps)", [NO_PRESET, *labruns.PRESETS, labruns.ALL],
                          key="runs_preset", format_func=lambda p: ALL_LABEL if p == labruns.ALL else p,
                          help="A preset launches every run of one figure, with the paper's settings, one "
                               "after another; 'all' queues every preset, seed by seed.")
    preset = None if preset == NO_PRESET else preset
    method = c3.selectbox("Method", METHOD_NAMES, index=METHOD_NAMES.index(FORM.method), key="runs_method",
                          format_func=lambda m: METHOD_LABELS.get(m, m), disabled=bool(preset))
    return name, preset, method


def knobs_field(preset: str | None, method: str) -> str:
    """What a preset launches, or the method's knobs to set (-> the knobs text; empty with a preset)."""
    if preset == labruns.ALL:
        st.caption(f"Every preset as one queue, seed 0 of each first, then seed 1, ...: "
                   f"{len(labruns.preset_runs(preset, 'fmnist'))} runs on Fashion-MNIST (about 80 minutes on a "
                   f"2-core CPU), {len(labruns.preset_runs(preset))} on ImageNet-100. Each run's progress and ETA "
                   "are in the table below; the queue's own in the line above it.")
        return ""
    if preset:
        st.caption(f"{labruns.NOTES.get(preset, '')}. Runs: " + ", ".join(
            f"`{r['name']}` ({', '.join(f'{k}={v}' for k, v in r['set'].items()) or 'standard'})"
            for r in labruns.preset_runs(preset)))
        return ""
    defaults = labruns.method_params(method)
    knobs = st.text_input("Ablation and knobs (key=value, comma separated)", key="runs_knobs",
                          placeholder="e.g. predictor=false", help="On top of the method's ImageNet recipe.")
    st.caption("Knobs of this method (recipe values): " + ", ".join(f"`{k}={v}`" for k, v in defaults.items()))
    return knobs


def trainer_settings() -> dict:
    """-> the LaunchRequest fields data, gpus, epochs, batch_size, image_size and extra."""
    c1, c2, c3, c4, c5 = st.columns(5)
    data = c1.text_input("Data folder", key="runs_data", placeholder="/data/imagenet100",
                         help="ImageFolder root: train/<class>/*.jpg and val/<class>/*.jpg")
    gpus = c2.number_input("GPUs", 1, 64, FORM.gpus, key="runs_gpus", help="More than one: torchrun, one process per GPU.")
    epochs = c3.number_input("Epochs", 1, 100_000, FORM.epochs, key="runs_epochs")
    batch = c4.number_input("Batch size (global)", 2, 65_536, FORM.batch_size, key="runs_batch")
    image_size = c5.number_input("Image size (px)", 16, 1024, FORM.image_size, key="runs_image_size")
    extra = st.text_input("More trainer arguments", key="runs_extra",
                          placeholder="e.g. --workers 8 --cache /data/cache160 --collapse-threshold 0.95",
                          help="Any flag of python -m lab.engine.train.")
    return dict(data=data, gpus=int(gpus), epochs=int(epochs), batch_size=int(batch), image_size=int(image_size),
                extra=extra)


def slurm_fields() -> dict:
    """-> SlurmSpec's fields as entered, starting from `labruns.ONE_GPU_JOB`. The bounds are the form's own,
    narrower than SlurmSpec's LIMITS."""
    start = labruns.ONE_GPU_JOB
    s1, s2, s3, s4, s5, s6 = st.columns(6)
    return {"nodes": int(s1.number_input("Nodes", 1, 1024, start.nodes, key="runs_nodes")),
            "gpus_per_node": int(s2.number_input("GPUs per node", 0, 16, start.gpus_per_node, key="runs_gpn")),
            "cpus_per_task": int(s3.number_input("CPUs per task", 1, 256, start.cpus_per_task, key="runs_cpus")),
            "mem_gb": int(s4.number_input("Memory (GB)", 1, 4096, start.mem_gb, key="runs_mem")),
            "time_min": int(s5.number_input("Time (min)", 1, 60 * 24 * 14, start.time_min, key="runs_time")),
            "partition": s6.text_input("Partition", key="runs_partition", placeholder="default").strip() or None}


# ---------------------------------------------------------------- watching runs


def runs_table(root: Path, was_active: bool) -> None:
    now = labruns.list_runs(root)
    head, button = st.columns([6, 1], vertical_alignment="bottom")
    head.subheader("Runs")
    # Runs started elsewhere (the CLI, another browser) while nothing here was running: the timer is off.
    if button.button("Refresh", key="runs_refresh", icon=":material/refresh:", help="Read every run's files again."):
        st.rerun()  # the whole page: new runs join the charts' choices too
    queue = view.queue_progress(now)
    if queue:
        st.progress(queue[0], text=queue[1])
    st.dataframe(view.table_rows(now), hide_index=True, key="runs_table", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
        "‖s‖": st.column_config.NumberColumn("last ‖s‖", format="%.3f"),
        "collapse": st.column_config.TextColumn("collapse", help=view.COLLAPSE_COLUMN_HELP)})
    if was_active and not any(map(active, now)):
        st.rerun()  # the last run ended: redraw the page once, without the timer


@dataclass(frozen=True)
class ChartOptions:
    shown: list[str]
    x: str  # "epoch" or "step"
    smooth: float
    log_y: bool
    threshold: float


def chart_options(names: list[str]) -> ChartOptions:
    """The sidebar: which runs the charts show (at first the newest), and how."""
    if "runs_shown" in st.session_state:
        st.session_state.runs_shown = [n for n in st.session_state.runs_shown if n in names]
    else:
        st.session_state.runs_shown = names[:1]
    with st.sidebar:
        st.header("Charts")
        shown = st.multiselect("Show runs", names, key="runs_shown", help="Several runs are overlaid on one chart.")
        x_label = st.radio("x axis", list(CHART_X), horizontal=True, key="runs_x")
        smooth = st.slider("Smoothing", 0.0, 0.95, 0.0, 0.05, key="runs_smooth",
                           help="Exponential moving average of each curve (the raw values stay faint behind).")
        log_y = st.toggle("Log scale (y)", key="runs_log")
        threshold = st.slider("Collapse warning at ‖s‖ ≥", 0.01, 1.0, view.DEFAULT_THRESHOLD, 0.01,
                              key="runs_threshold",
                              help="A banner names every shown run whose ‖s‖ reached this: an early sign of collapse.")
    return ChartOptions(shown, CHART_X[x_label], smooth, log_y, threshold)


def live(root: Path, chart: ChartOptions, allowed: bool, was_active: bool) -> None:
    """The shown runs' collapse warnings, charts, and each run's log and controls."""
    current = {r.name: r for r in labruns.list_runs(root)}
    picked = [current[n] for n in chart.shown if n in current]
    rows = {r.name: labruns.read_metrics(r.path) for r in picked}
    for message in view.collapse_warnings(rows, chart.threshold):
        st.warning(message, icon=":material/warning:")
    cols = st.columns(2)
    for i, metric in enumerate(view.live_metrics(rows)):
        fig = view.metric_chart(rows, metric, x=chart.x, smooth=chart.smooth, log_y=chart.log_y,
                                threshold=chart.threshold)
        cols[i % 2].plotly_chart(fig, key=f"runs_chart_{metric}")
    for info in picked:
        with st.expander(f"{info.name}: {info.status}, log and controls", expanded=len(picked) == 1):
            per_run_panel(root, info, allowed)
    if was_active and not any(map(active, picked)):
        st.rerun()  # every shown run ended: one full redraw turns the timer off


def per_run_panel(root: Path, info, allowed: bool) -> None:
    rows = labruns.read_metrics(info.path)
    head = f"**{info.name}** · {info.status} · {info.method or ''} · epoch {info.epoch}/{info.epochs or '?'}"
    if info.backend == "slurm" and info.job_id:
        head += f" · SLURM job {info.job_id}"
    st.markdown(head)
    if info.message:  # a failed run's message: the reason, then its last log lines (shown below anyway)
        (st.error if info.status == "failed" else st.caption)(info.message.splitlines()[0])
    b1, b2, b3 = st.columns(3)
    ours = info.backend != labruns.EXTERNAL  # the lab did not start an external run's processes
    if b1.button("Stop", key=f"runs_stop_{info.name}", disabled=not active(info) or not allowed or not ours):
        # the live view shows the rest of the shutdown
        run_control(lambda: labruns.stop(info.name, root=root, wait=2.0))
    if b2.button("Resume", key=f"runs_resume_{info.name}",
                 disabled=info.status not in ("stopped", "failed") or not allowed or not ours):
        run_control(lambda: labruns.resume(info.name, root=root))
    b3.download_button("Metrics CSV", view.metrics_csv(rows), file_name=f"{info.name}-metrics.csv",
                       mime="text/csv", key=f"runs_csv_{info.name}", disabled=not rows, on_click="ignore")
    st.code("\n".join(labruns.log_tail(info.path, lines=20)) or "(no log yet)", language=None)


def run_control(action) -> None:
    """A stop or resume: its error in one line, else the whole page again (the table, the timers)."""
    try:
        action()
    except (ValueError, KeyError, OSError, RuntimeError) as e:
        st.error(one_line(e))
    else:
        st.rerun(scope="app")


def paper_figures(infos) -> None:
    """The paper's figure of every preset that has runs here."""
    presets_seen = {}
    for info in infos:
        if info.preset in labruns.PRESETS:
            presets_seen.setdefault(info.preset, []).append(info)
    if presets_seen:
        st.subheader("The paper's figures from your runs")
        for preset_name, members in presets_seen.items():
            fig = view.paper_figure(preset_name, {r.name: labruns.read_metrics(r.path) for r in members})
            if fig is None:
                st.caption(f"{preset_name}: its runs have no finished epoch yet.")
            else:
                st.plotly_chart(fig, key=f"runs_paper_{preset_name}")
                st.caption(labruns.NOTES.get(preset_name, ""))


if __name__ == "__main__":
    page()
