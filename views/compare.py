"""Compare: the paper's toy figures (Fig. 3, Fig. 4) over five seeds, and any two settings side by side.

Widgets -> ToyConfig -> lab.train.toy.train_toys (settings with one method config share one stacked
program) -> lab.render.toy -> st.*; no math here. The page's URL holds its state: `fig`, `epochs` (the
figure suites), and the two settings under `a.` and `b.` (e.g. `a.method=simsiam&b.predictor=false`).
"""
from functools import partial

import streamlit as st

from lab.core import vocab
from views import ui
from lab.claims import TOY_RESULTS, read_toy_results, shipped_curves
from lab.core.experiments import experiment
from lab.render import video
from lab.render.toy import metric_band_figure, side_by_side_gif, toy_animation
from lab.train.toy import ToyConfig

URL_STATE = "cmp_url"
SUITE_SEEDS = 5
SUITE_DATASETS = ("blobs", "moons")

# The paper's toy figures, from the registry of its experiments: each variant is (method, knobs); everything
# else is the trainer's default.
FIGURES = {e.key.removeprefix("fig"): (f"{e.figure} · {e.title}",
                                       {v.label: (v.method, tuple(v.knobs_at("toy").items())) for v in e.variants_at("toy")},
                                       f"Paper {e.source.removeprefix('paper ')}: {e.statement}")
           for e in map(experiment, ("fig3", "fig4"))}

COMPARE_METRICS = tuple((m, vocab.label(m)) for m in ("center_norm", "knn_acc", "linear_acc", "z_std"))

view_form = ui.ParamForm("cmp_", [
    ui.Param("fig", "Figure", str, "3", "view", tuple(FIGURES), widget="radio", format=lambda f: FIGURES[f][0]),
    ui.Param("epochs", "Epochs", int, ToyConfig.__dataclass_fields__["epochs"].default, "view",
             (25, 50, 100, 150, 200, 250, 300, 400, 500), limits=(1, 2000),
             help="Training epochs of every run in the figure (5 seeds each)."),
])

form_a = ui.ToyForm("cmp_a_", url_prefix="a.", defaults={"seeds": 3}, advanced=False, method="simsiam")

form_b = ui.ToyForm("cmp_b_", url_prefix="b.", defaults={"seeds": 3}, advanced=False, method="simplified")


@st.cache_data(show_spinner=False, max_entries=2)
def _shipped(path: str, mtime: float) -> dict | None:
    return read_toy_results(path)


def shipped_results() -> dict | None:
    try:
        mtime = TOY_RESULTS.stat().st_mtime
    except OSError:
        return None
    return _shipped(str(TOY_RESULTS), mtime)


def shipped_suite(configs: dict) -> dict | None:
    """{(label, dataset): ToyCurves} from the shipped claims' runs where every setting of the suite is there
    at these epochs and five seeds; else None (the page trains)."""
    data = shipped_results()
    if data is None or data.get("seeds") != SUITE_SEEDS:
        return None
    out = {key: shipped_curves(data, c.method, c.dataset, c.params, c.epochs) for key, c in configs.items()}
    return out if all(v is not None for v in out.values()) else None


def load_all(query) -> list[str]:
    known = {f"{f.url_prefix}{p.name}" for f in (form_a, form_b) for p in f.params(f.current_method())}
    known |= {"a.method", "b.method", "fig", "epochs"}
    loose = [k for k in query if not k.startswith(("a.", "b.")) and k not in known]
    errors = [f"Unknown URL parameter `{k}`; valid: fig, epochs, a.<setting>, b.<setting>." for k in loose]
    return errors + view_form.load(query) + form_a.load(query) + form_b.load(query)


def page() -> None:
    errors = ui.sync_url(load_all, URL_STATE)
    st.title("Compare")
    for message in errors:
        st.error(message)
    fig_id, epochs = figure_suite()
    values, configs, columns = setting_forms()
    ui.write_url(view_form.query({"fig": fig_id, "epochs": epochs}) | form_a.query(values["A"]) | form_b.query(values["B"]),
                 URL_STATE)
    pair = None
    if len(configs) == 2:
        try:
            pair = ui.train_cached([configs["A"], configs["B"]], "Training settings A and B")
        except (RuntimeError, ValueError) as err:  # e.g. a linear algebra failure on extreme settings
            st.error(f"Training failed: {(str(err).splitlines() or [type(err).__name__])[0]}")
    if pair:
        show_pair(pair, values, configs, columns)


# ---------------------------------------------------------------- the paper's figures


def figure_suite() -> tuple[str, int]:
    """A paper figure's variants on both datasets over five seeds: curves and a table. -> (figure, epochs)."""
    st.subheader("The paper's toy figures, five seeds")
    head, knob = st.columns([3, 1])
    with head:
        fig_id = view_form.widget(st, "fig")
    with knob:
        epochs = view_form.widget(st, "epochs")
    title, variants, claim = FIGURES[fig_id]
    st.markdown(claim + " Mean over 5 seeds, shaded from the lowest to the highest seed; the trainer's defaults "
                "(method knobs, learning rate, batch size, D) except the knob each variant names.")
    configs = {(label, ds): ToyConfig(method=m, dataset=ds, params=params, seeds=SUITE_SEEDS, epochs=epochs)
               for label, (m, params) in variants.items() for ds in SUITE_DATASETS}
    runs, source = suite_runs(configs, f"Training {title}: {len(variants)} variants × 2 datasets × {SUITE_SEEDS} seeds")
    for ds, col in zip(SUITE_DATASETS, st.columns(2, gap="large")):
        col.markdown(f"**{ds}**")
        by_label = {label: runs[(label, ds)] for label in variants}
        for metric, label in COMPARE_METRICS[:2]:
            fig = ui.memo(("cmp_suite", fig_id, epochs, ds, metric, source),
                          lambda by_label=by_label, metric=metric, label=label:
                          metric_band_figure(by_label, metric, height=300, title=label))
            col.plotly_chart(fig, key=f"cmp_fig{fig_id}_{ds}_{metric}")
        for label, run in by_label.items():
            if run.diverged:
                col.warning(f"{label}: {run.diverged}")
    st.markdown("**Final epoch, mean ± std over 5 seeds**")
    st.dataframe(final_rows(runs, variants), hide_index=True, key="cmp_table")
    return fig_id, epochs


def suite_runs(configs: dict, training: str) -> tuple[dict, str]:
    """The suite's runs, from the shipped results where they hold it (unless asked to train here), else trained
    with the spinner text `training`. -> ({(label, dataset): run}, "shipped" or "trained")."""
    runs = shipped_suite(configs)
    if runs is not None:
        data = shipped_results()
        st.caption(f"From the shipped results (`assets/toy_claims.json`, made {data['made']} on {data['machine']}, "
                   f"commit {data['commit']}): the same settings the Claims page judges.")
        if st.toggle("Train it here instead", key="cmp_train_here",
                     help="The same settings trained now on this machine (about 8 s with five seeds)."):
            runs = None
    if runs is None:
        return dict(zip(configs, ui.train_cached(list(configs.values()), training))), "trained"
    return runs, "shipped"


def final_rows(runs: dict, variants: dict) -> list[dict]:
    """Per variant, the final ‖s‖ and kNN accuracy on each dataset, mean ± std over the seeds."""
    rows = []
    for label in variants:
        row = {"variant": label}
        for ds in SUITE_DATASETS:
            m = runs[(label, ds)].metrics
            row[f"{ds} ‖s‖"] = f"{m['center_norm'][-1].mean():.2f} ± {m['center_norm'][-1].std():.2f}"
            row[f"{ds} kNN"] = f"{m['knn_acc'][-1].mean():.2f} ± {m['knn_acc'][-1].std():.2f}"
        rows.append(row)
    return rows


# ---------------------------------------------------------------- two settings side by side


def setting_forms() -> tuple[dict, dict, dict]:
    """Settings A and B, each in its column. -> (their values, the configs of the valid ones, the columns)."""
    st.subheader("Any two settings side by side")
    st.caption("Each column is one setting; the curves overlay them, the GIF puts them side by side (frames at the "
               "same fraction of training, so runs of different length end together).")
    values, configs = {}, {}
    columns = dict(zip("AB", st.columns(2, gap="large")))
    for side, form in (("A", form_a), ("B", form_b)):
        with columns[side]:
            st.markdown(f"**Setting {side}**")
            with st.expander(f"Setting {side}: method, dataset and knobs", expanded=True):
                inner = st.columns(2)
                values[side] = form.render(inner[0], groups=("setting",))
                values[side] |= form.render(inner[1], groups=("training",), method=values[side]["method"])
            try:
                configs[side] = form.config(values[side])
            except ValueError as err:
                st.error(f"Invalid setting {side}: {err}")
    return values, configs, columns


def show_pair(pair: list, values: dict, configs: dict, columns: dict) -> None:
    """Each setting's animation under its form, their curves overlaid, and both as one GIF or talk video."""
    labels = {side: f"{side}: {c.method} on {c.dataset}" for side, c in configs.items()}
    for side, run, form in zip("AB", pair, (form_a, form_b)):
        with columns[side]:
            if run.diverged:
                st.warning(f"{side}: {run.diverged}")
            st.caption(form.summary(values[side]))
            st.plotly_chart(ui.memo(("cmp_anim", configs[side]), lambda run=run: toy_animation(run, height=440)),
                            key=f"cmp_anim_{side}")
    both = {labels["A"]: pair[0], labels["B"]: pair[1]}
    for row in (COMPARE_METRICS[:2], COMPARE_METRICS[2:]):
        for col, (metric, label) in zip(st.columns(2), row):
            fig = ui.memo(("cmp_pair", configs["A"], configs["B"], metric),
                          lambda metric=metric, label=label: metric_band_figure(both, metric, height=300, title=label))
            col.plotly_chart(fig, key=f"cmp_pair_{metric}")
    stem = f"{configs['A'].method}_{configs['A'].dataset}_vs_{configs['B'].method}_{configs['B'].dataset}"
    st.download_button(
        "Download A and B side by side as one GIF", key="cmp_gif", file_name=f"{stem}.gif",
        data=partial(side_by_side_gif, pair[0], pair[1], titles=(labels["A"], labels["B"])),
        mime="image/gif", on_click="ignore", icon=":material/download:")
    ui.talk_export("cmp_talk", stem, partial(video.side_by_side_export, pair[0], pair[1],
                                          titles=(labels["A"], labels["B"])), 360, "Size (px per panel)")


if __name__ == "__main__":
    page()
