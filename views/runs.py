"""Runs: launch, watch and compare ImageNet-100 training runs (local, torchrun or SLURM).

Widgets -> lab.runs (launch, list, stop, resume, metrics) and lab.render.runs (figures) -> st.*.
The runs root is $LAB_RUNS_DIR (default ./runs). Live parts are fragments that rerun every few seconds
only while a run they show is queued or running.
"""
import shlex


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


def one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def active(info) -> bool:
    return info.status in view.ACTIVE


def train_argv(data: str, method: str | None, knobs: str, epochs: int, batch: int, image_size: int,
               extra: str) -> list[str]:
    """The form as train arguments (an argv list: nothing goes through a shell). ValueError one line."""
    if not data.strip():
        raise ValueError("data folder is empty; give an ImageFolder root with train/ (and val/)")
    path = Path(data.strip()).expanduser()
    if not path.is_dir():
        raise ValueError(f"data folder {str(path)!r} does not exist")
    argv = ["--data", str(path)]
    if method:
        argv += ["--method", method]
        for item in knobs.replace(",", "\n").splitlines():
            if item.strip():
                argv += ["--set", item.strip()]
    argv += ["--epochs", str(epochs), "--batch-size", str(batch), "--image-size", str(image_size)]
    try:
        argv += shlex.split(extra)  # split into arguments like a shell would, but never run by one
    except ValueError as e:
        raise ValueError(f"extra arguments: {e}") from None
    return argv


def page() -> None:
    st.title("Runs")

    try:
        root = labruns.runs_root()
    except OSError as e:  # e.g. LAB_RUNS_DIR on a read-only or missing mount
        st.error(f"Cannot use the runs folder: {one_line(e)}. Set LAB_RUNS_DIR to a writable folder.")
        st.stop()

    st.markdown(
        "Train the paper's ImageNet-100 experiments and watch the center vector live: `‖s‖` creeping up "
        f"towards 1 is the early sign of collapse. Runs live in `{root}` (set `LAB_RUNS_DIR` to change it); "
        "they keep running when this app stops, and the page finds them again."
    )

    def launch_demo() -> None:
        with st.spinner("Starting the run…"):
            data = labruns.demo_data(root)
            name = next(f"demo-{i}" for i in range(1, 10_000) if not (root / f"demo-{i}").exists())
            info = labruns.launch(name, labruns.demo_train_args(data), root=root, device="cpu")
        what = "Fashion-MNIST" if labruns.demo_is_real(data) else "generated images"
        st.session_state.runs_shown = [info.name]
        st.session_state.runs_flash = f"Started {info.name}: a short CPU run of SimSiam on {what}."

    allowed, why_not = ui.page_controls_allowed()
    if not allowed:
        st.warning(why_not, icon=":material/lock:")
    if allowed and not labruns.cuda_available():
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
                    launch_demo()
                except (ValueError, KeyError, OSError, RuntimeError) as e:
                    st.error(f"Could not start the demo: {one_line(e)}")

    if flash := st.session_state.pop("runs_flash", None):
        st.success(flash)

    def launch_form() -> None:
        with st.expander("Launch a run", expanded=not labruns.list_runs(root)):
            c1, c2, c3 = st.columns(3)
            name = c1.text_input("Run name (a preset's: its prefix)", key="runs_name", placeholder="e.g. simsiam-nopred",
                                 help="Letters, digits, '.', '_' and '-'. A preset names its runs <this>-<run>, "
                                      "or <preset>-<run> when this is empty.")
            preset = c2.selectbox("Preset (the paper's sweeps)", [NO_PRESET, *labruns.PRESETS, labruns.ALL],
                                  key="runs_preset", format_func=lambda p: ALL_LABEL if p == labruns.ALL else p,
                                  help="A preset launches every run of one figure, with the paper's settings, one "
                                       "after another; 'all' queues every preset, seed by seed.")
            preset = None if preset == NO_PRESET else preset
            method = c3.selectbox("Method", METHOD_NAMES, index=METHOD_NAMES.index("simsiam"), key="runs_method",
                                  format_func=lambda m: METHOD_LABELS.get(m, m), disabled=bool(preset))
            if preset == labruns.ALL:
                st.caption(f"Every preset as one queue, seed 0 of each first, then seed 1, ...: "
                           f"{len(labruns.preset_runs(preset, 'fmnist'))} runs on Fashion-MNIST (about 80 minutes on a "
                           f"2-core CPU), {len(labruns.preset_runs(preset))} on ImageNet-100. Each run's progress and ETA "
                           "are in the table below; the queue's own in the line above it.")
                knobs = ""
            elif preset:
                st.caption(f"{labruns.NOTES.get(preset, '')}. Runs: " + ", ".join(
                    f"`{r['name']}` ({', '.join(f'{k}={v}' for k, v in r['set'].items()) or 'standard'})"
                    for r in labruns.preset_runs(preset)))
                knobs = ""
            else:
                defaults = labruns.method_params(method)
                knobs = st.text_input("Ablation and knobs (key=value, comma separated)", key="runs_knobs",
                                      placeholder="e.g. predictor=false", help="On top of the method's ImageNet recipe.")
                st.caption("Knobs of this method (recipe values): " + ", ".join(f"`{k}={v}`" for k, v in defaults.items()))
            c1, c2, c3, c4, c5 = st.columns(5)
            data = c1.text_input("Data folder", key="runs_data", placeholder="/data/imagenet100",
                                 help="ImageFolder root: train/<class>/*.jpg and val/<class>/*.jpg")
            gpus = c2.number_input("GPUs", 1, 64, 1, key="runs_gpus", help="More than one: torchrun, one process per GPU.")
            epochs = c3.number_input("Epochs", 1, 100_000, 200, key="runs_epochs")
            batch = c4.number_input("Batch size (global)", 2, 65_536, 256, key="runs_batch")
            image_size = c5.number_input("Image size (px)", 16, 1024, 224, key="runs_image_size")
            extra = st.text_input("More trainer arguments", key="runs_extra",
                                  placeholder="e.g. --workers 8 --cache /data/cache160 --collapse-threshold 0.95",
                                  help="Any flag of python -m lab.engine.train.")
            slurm_on = st.toggle("Submit to SLURM", key="runs_slurm")
            slurm = None
            if slurm_on:
                s1, s2, s3, s4, s5, s6 = st.columns(6)
                nodes = s1.number_input("Nodes", 1, 1024, 1, key="runs_nodes")
                gpn = s2.number_input("GPUs per node", 0, 16, 1, key="runs_gpn")
                cpus = s3.number_input("CPUs per task", 1, 256, 8, key="runs_cpus")
                mem = s4.number_input("Memory (GB)", 1, 4096, 32, key="runs_mem")
                minutes = s5.number_input("Time (min)", 1, 60 * 24 * 14, 120, key="runs_time")
                partition = s6.text_input("Partition", key="runs_partition", placeholder="default")
            if st.button("Launch", type="primary", key="runs_launch"):
                try:
                    # A preset names its runs <prefix>-<run>; the prefix defaults to the preset's name.
                    run_name = labruns.validate_name(name.strip()) if name.strip() or not preset else None
                    argv = train_argv(data, None if preset else method, knobs, int(epochs), int(batch), int(image_size), extra)
                    if slurm_on:
                        slurm = labruns.SlurmSpec(nodes=int(nodes), gpus_per_node=int(gpn), cpus_per_task=int(cpus),
                                                  mem_gb=int(mem), time_min=int(minutes), partition=partition.strip() or None)
                    if preset:
                        started = labruns.launch_preset(preset, argv, gpus=int(gpus), root=root, slurm=slurm, prefix=run_name)
                    else:
                        started = [labruns.launch(run_name, argv, gpus=int(gpus), root=root, slurm=slurm)]
                except (ValueError, KeyError, OSError, RuntimeError) as e:
                    st.error(one_line(e))
                else:
                    st.session_state.runs_shown = [r.name for r in started]
                    st.session_state.runs_flash = "Started " + ", ".join(r.name for r in started)
                    st.rerun()

    if allowed:
        launch_form()

    infos = labruns.list_runs(root)

    if not infos:
        st.info("No runs yet." if not allowed else
                "No runs yet. Launch one above" + ("." if labruns.cuda_available() else ", or start the CPU demo run."))
        st.stop()

    @st.fragment(run_every=REFRESH_S if any(map(active, infos)) else None)
    def runs_table(was_active: bool) -> None:
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

    runs_table(any(map(active, infos)))

    names = [r.name for r in infos]

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

    if not shown:
        st.info("Pick runs to show in the sidebar.")
        st.stop()

    by_name = {r.name: r for r in infos}

    def per_run_panel(info) -> None:
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
            try:
                labruns.stop(info.name, root=root, wait=2.0)  # the live view shows the rest of the shutdown
            except (ValueError, KeyError, OSError, RuntimeError) as e:
                st.error(one_line(e))
            else:
                st.rerun(scope="app")
        if b2.button("Resume", key=f"runs_resume_{info.name}",
                     disabled=info.status not in ("stopped", "failed") or not allowed or not ours):
            try:
                labruns.resume(info.name, root=root)
            except (ValueError, KeyError, OSError, RuntimeError) as e:
                st.error(one_line(e))
            else:
                st.rerun(scope="app")
        b3.download_button("Metrics CSV", view.metrics_csv(rows), file_name=f"{info.name}-metrics.csv",
                           mime="text/csv", key=f"runs_csv_{info.name}", disabled=not rows, on_click="ignore")
        st.code("\n".join(labruns.log_tail(info.path, lines=20)) or "(no log yet)", language=None)

    @st.fragment(run_every=REFRESH_S if any(active(by_name[n]) for n in shown) else None)
    def live(shown: list[str], was_active: bool) -> None:
        current = {r.name: r for r in labruns.list_runs(root)}
        picked = [current[n] for n in shown if n in current]
        rows = {r.name: labruns.read_metrics(r.path) for r in picked}
        for message in view.collapse_warnings(rows, threshold):
            st.warning(message, icon=":material/warning:")
        x = CHART_X[x_label]
        cols = st.columns(2)
        for i, metric in enumerate(view.live_metrics(rows)):
            fig = view.metric_chart(rows, metric, x=x, smooth=smooth, log_y=log_y, threshold=threshold)
            cols[i % 2].plotly_chart(fig, key=f"runs_chart_{metric}")
        for info in picked:
            with st.expander(f"{info.name}: {info.status}, log and controls", expanded=len(picked) == 1):
                per_run_panel(info)
        if was_active and not any(map(active, picked)):
            st.rerun()  # every shown run ended: one full redraw turns the timer off

    st.subheader("Live charts")

    live(shown, any(active(by_name[n]) for n in shown))

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
