"""Sweep: a phase diagram of one method over two knobs (or one knob and the seed), up to 8 × 8 cells.

Widgets -> lab.train.sweep.run_sweep (cells stacked into as few programs as the maths allows) ->
lab.render.sweep.sweep_heatmap / lab.render.toy.toy_animation -> st.*; no math here. Cells appear as
their program finishes; a click on a cell (or the "Replay cell" picker) replays its animation. The last
sweep stays in the session (not in the server-wide store: a grid holds every cell's features), so reruns
are instant.
"""
import streamlit as st

from lab.core import vocab
from views import ui
from lab.data.toy import DATASET_LABELS, DATASETS
from lab.methods import METHOD_NAMES
from lab.render.sweep import cell_label, metric_title, sweep_heatmap
from lab.render.toy import toy_animation
from lab.train.sweep import (MAX_SEEDS, MAX_VALUES, SEED_AXIS, default_axis, make_axis, plan_sweep, programs_needed,
                             run_sweep, stacks, sweep_knobs)
from lab.train.toy import ToyConfig

SEED = "seed"  # the y picker's entry for "one knob and the seed"
METRICS = ("center_norm", "knn_acc", "linear_acc", "z_std", "effective_rank", "alignment", "uniformity", "loss")
EPOCH_STOPS = ToyConfig.__dataclass_fields__["epochs"].metadata["stops"]
LAST = "sw_last"  # session state: the last sweep shown


def knob_label(method: str, knob: str) -> str:
    if knob == SEED:
        return "seed (one knob, the seeds side by side)"
    f = sweep_knobs(method)[knob]
    label = f.metadata.get("label", knob)
    return f"{label} ({knob})" + ("" if stacks(method, knob) else " · one program per value")


def axis_widgets(column, method: str, knob: str, name: str):
    """LO, HI, N and log for a numeric knob (a switch takes both its values) -> an Axis."""
    start = default_axis(method, knob)
    if len(start.values) == 2 and isinstance(start.values[0], bool):
        column.caption(f"{knob}: off and on")
        return start
    key = f"sw_{name}_{method}_{knob}"
    lo = column.number_input(f"{name} from", value=float(start.values[0]), format="%.6g", key=f"{key}_lo")
    hi = column.number_input(f"{name} to", value=float(start.values[-1]), format="%.6g", key=f"{key}_hi")
    n = column.slider(f"{name} values", 1, MAX_VALUES, len(start.values), key=f"{key}_n")
    log = column.toggle(f"{name} log-spaced", value=start.log, key=f"{key}_log")
    return make_axis(method, knob, lo, hi, n, log)


def clicked_cell(state) -> tuple[int, int, int] | None:
    """(iy, ix, seed index or -1) of the square a click selected on the heatmap (its widget state), or None."""
    try:
        point = state["selection"]["points"][0]
        if "customdata" in point:
            return tuple(int(v) for v in point["customdata"][:3])
        return int(round(point["y"])), int(round(point["x"])), -1
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def draw_live(placeholder, sweep, metric: str, tick: list) -> None:
    tick[0] += 1
    placeholder.plotly_chart(sweep_heatmap(sweep, metric), key=f"sw_live_{tick[0]}")


def train(request: tuple, metric: str, placeholder):
    """Run the sweep of `request` with a progress bar, redrawing the heatmap as each program finishes."""
    method, dataset, x, y, seeds, epochs = request
    bar = st.progress(0.0, text="Sweep…")
    shown, tick = [-1], [0]

    def progress(done: int, total: int) -> None:
        pct = int(100 * done / max(total, 1))
        if pct != shown[0]:
            shown[0] = pct
            bar.progress(pct / 100, text=f"Sweep… epoch {done} of {total} (all programs)")

    sweep = run_sweep(method, x, y, seeds, dataset, {"epochs": epochs}, progress=progress,
                      on_cells=lambda s, cells: draw_live(placeholder, s, metric, tick))
    bar.empty()
    return sweep


def page() -> None:
    st.set_page_config(page_title="Sweep · Collapse Lab", layout="wide")
    st.title("Sweep")
    st.markdown(
        "A phase diagram: one method over a grid of two knobs (or one knob and the seed), up to "
        f"{MAX_VALUES} × {MAX_VALUES}. Each cell is a full toy run (as on the Method playground) and is coloured "
        "by its final reading, averaged over its seeds; its text counts the seeds whose final ‖s‖ ended above "
        f"{vocab.COLLAPSE_THRESHOLD:g} (collapse). Cells that differ only in the learning rate, SGD momentum, "
        "weight decay, SimSiam's predictor lr scale or BYOL's EMA momentum train together as one stacked "
        "program; any other knob trains one program per value. Click a cell to replay its animation."
    )
    request, run_clicked = grid_sidebar()
    last = st.session_state.get(LAST)
    names = list(last[1].metric_names()) if last else list(METRICS)
    metric = st.selectbox("Colour by", [m for m in METRICS if m in names] + [m for m in names if m not in METRICS],
                          format_func=metric_title, key="sw_metric")
    placeholder = st.empty()
    if run_clicked and (last is None or last[0] != request):  # else this very sweep is on screen already
        last = train_and_keep(request, metric, placeholder)
    if last is None:
        placeholder.info("Pick a method and two knobs in the sidebar, then press **Run sweep**.")
        return
    shown_request, sweep = last
    if shown_request != request:
        st.caption("Showing the last sweep; the sidebar has changed since. Press **Run sweep** for the new one.")
    heatmap(sweep, metric, placeholder)
    replay(sweep)


def grid_sidebar() -> tuple[tuple, bool]:
    """The grid's method, dataset, axes, seeds and epochs, checked -> (the request, whether Run was pressed)."""
    side = st.sidebar
    side.header("Grid")
    method = side.selectbox("Method", METHOD_NAMES, format_func=lambda m: ui.METHOD_LABELS.get(m, m), index=2,
                            key="sw_method")
    dataset = side.selectbox("Dataset", DATASETS, format_func=lambda d: DATASET_LABELS.get(d, d), key="sw_dataset")
    knobs = list(sweep_knobs(method))
    numeric_first = ["lr"] + [k for k in knobs if k != "lr"]
    x_knob = side.selectbox("x knob", numeric_first, format_func=lambda k: knob_label(method, k),
                            key=f"sw_x_{method}")
    y_default = "predictor_lr_scale" if "predictor_lr_scale" in knobs and x_knob != "predictor_lr_scale" else SEED
    y_options = [SEED] + [k for k in knobs if k != x_knob]
    y_knob = side.selectbox("y knob", y_options, index=y_options.index(y_default),
                            format_func=lambda k: knob_label(method, k), key=f"sw_y_{method}_{x_knob}")
    seeds = side.number_input("Seeds per cell", 1, MAX_SEEDS, 3 if y_knob == SEED else 1, key=f"sw_seeds_{y_knob == SEED}")
    epochs = side.select_slider("Epochs", EPOCH_STOPS, value=ToyConfig().epochs, key="sw_epochs")
    cx, cy = side.columns(2)
    try:
        x = axis_widgets(cx, method, x_knob, "x")
        y = SEED_AXIS if y_knob == SEED else axis_widgets(cy, method, y_knob, "y")
        plan_sweep(method, x, y, int(seeds), dataset, {"epochs": epochs})
    except ValueError as err:
        st.error(f"Invalid sweep: {err}")
        st.stop()
    n_cells = len(x.values) * len(y.values)
    side.caption(f"{n_cells} cells × {seeds} seed(s) in {programs_needed(method, x, y)} stacked program(s).")
    request = (method, dataset, x, y, int(seeds), int(epochs))
    return request, side.button("Run sweep", type="primary", key="sw_run", icon=":material/grid_on:")


def train_and_keep(request: tuple, metric: str, placeholder) -> tuple:
    """Train the sweep and keep it in this session only (a grid holds every cell's features) -> (request, sweep)."""
    try:
        sweep = train(request, metric, placeholder)
    except (RuntimeError, ValueError) as err:
        st.error(f"Sweep failed: {(str(err).splitlines() or [type(err).__name__])[0]}")
        st.stop()
    st.session_state[LAST] = (request, sweep)
    st.session_state.pop("sw_cell", None)
    st.session_state.pop("sw_seed", None)
    st.session_state["sw_picked"] = clicked_cell(st.session_state.get("sw_heatmap"))  # a click on the old grid
    return st.session_state[LAST]


def cells_of(sweep) -> list[tuple[int, int]]:
    return [(iy, ix) for iy in range(sweep.shape[0]) for ix in range(sweep.shape[1])]


def heatmap(sweep, metric: str, placeholder) -> None:
    """The grid, the picked cell outlined, and what it was trained as."""
    cells = cells_of(sweep)
    # A click on a square: read before drawing, so the outline follows at once. A click is taken once
    # (the chart keeps its selection across reruns, the picker may have moved on since).
    pick = clicked_cell(st.session_state.get("sw_heatmap"))
    if pick is None:
        st.session_state.pop("sw_picked", None)
    elif pick[:2] in cells and pick != st.session_state.get("sw_picked"):
        st.session_state["sw_picked"] = pick
        st.session_state["sw_cell"] = pick[:2]
        if 0 <= pick[2] < sweep.seeds and sweep.seeds > 1:  # one knob and the seed: a row is a seed
            st.session_state["sw_seed"] = pick[2]
    selected = st.session_state.get("sw_cell", cells[0])
    figure = sweep_heatmap(sweep, metric, selected=selected, selected_seed=st.session_state.get("sw_seed", 0))
    placeholder.plotly_chart(figure, key="sw_heatmap", on_select="rerun", selection_mode="points")
    ny, nx = sweep.shape
    st.caption(f"{sweep.method} on {sweep.dataset}: {ny * nx} cells × {sweep.seeds} seed(s), "
               f"{sweep.base.epochs} epochs, trained in {sweep.train_seconds:.1f} s as {sweep.programs} stacked "
               f"program(s). ‖s‖ is the center norm of the normalised projector output z of the training points.")
    diverged = sum(1 for row in sweep.runs for r in row if r is not None and r.diverged)
    if diverged:
        st.warning(f"{diverged} cell(s) had a seed diverge (× in the cell): those seeds read as missing.")


def replay(sweep) -> None:
    """One cell and seed: its final ‖s‖ and its animation."""
    st.subheader("Replay a cell")
    left, right = st.columns([1, 3])
    cell = left.selectbox("Replay cell", cells_of(sweep), format_func=lambda c: cell_label(sweep, *c), key="sw_cell")
    seed = left.selectbox("Seed", list(range(sweep.seeds)), format_func=lambda i: f"#{i + 1} (seed {sweep.base.seed + i})",
                          key="sw_seed") if sweep.seeds > 1 else 0
    run = sweep.runs[cell[0]][cell[1]]
    final = run.metrics["center_norm"][-1]
    left.metric("Final ‖s‖ of this seed", f"{final[seed].item():.3f}",
                help="Center norm of the normalised projector output: 1 = collapse.")
    if run.diverged:
        left.warning(run.diverged)
    with right:
        figure = ui.memo(("sw_anim", run.config, seed),
                         lambda: toy_animation(run, seed_index=seed, height=500, title=cell_label(sweep, *cell)))
        st.plotly_chart(figure, key="sw_animation")


if __name__ == "__main__":
    page()
