"""Claims: the paper's claims that toy data can check, judged seed by seed, with numbers and a verdict.

The shipped results (`assets/toy_claims.json`, `python -m lab claims --out ...`) show at once; the sidebar
re-runs them on request. Widgets -> lab.claims -> lab.render.claims -> st.*; no science here.
"""
from pathlib import Path

import streamlit as st

from lab.claims import (CLAIMS, COLLAPSED, CONTROLS, TOY_RESULTS, VERDICT_RULE, read_claim_sweep, read_toy_results,
                        run_claims, toy_results_json)
from lab.render.claims import READ_ON, claim_seeds_figure, control_text, sweep_strip_figure, variant_rows

VERDICT_STYLE = {"held": st.success, "did not hold": st.error, "mixed": st.warning, "untestable": st.info}
SWEPT = {c.key: c.rule.sweep for c in CLAIMS if c.rule.sweep}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@st.cache_data(show_spinner=False, max_entries=4)
def shipped(path: str, mtime: float) -> dict | None:
    return read_toy_results(path)


@st.cache_resource(show_spinner=False, max_entries=8)
def rerun(keys: tuple[str, ...], seeds: int, epochs: int | None) -> dict:
    bar = st.progress(0.0, text="Training the settings the claims need…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Training the settings the claims need… {done}/{total} epochs")

    results = run_claims(list(keys), seeds=seeds, epochs=epochs, progress=progress)
    bar.empty()
    return toy_results_json(results, seeds, epochs)


def show_results(data: dict, keys: list[str]) -> None:
    for r in (r for r in data["results"] if r["claim"] in keys):
        counts = ", ".join(f"{ds} {d['held']} of {d['n']} seeds"
                           + (f" ({len(d['untestable'])} untestable)" if d.get("untestable") else "")
                           for ds, d in r["datasets"].items())
        ours = " *(a check of ours, not the paper's)*" if not r.get("from_paper", True) else ""
        VERDICT_STYLE.get(r["verdict"], st.info)(
            f"**{r['verdict']}** ({counts}) — {r['statement']} *({r['source']})*{ours}")
        for ds, d in r["datasets"].items():
            st.markdown(f"**{ds}** — " + control_text(d.get("control", CONTROLS.get(r["claim"])),
                                                       d.get("control_health")))
        st.caption(f"Rule: {r['rule']}. Dots: each seed's final value, green where the claim held in that "
                   f"seed, red where it did not, grey where its control collapsed (untestable); bars: the mean. "
                   f"‖s‖ is the {READ_ON}.")
        st.plotly_chart(claim_seeds_figure(r, threshold=data.get("threshold", COLLAPSED)), key=f"claims_{r['claim']}")
        declared = SWEPT.get(r["claim"])
        if declared:
            sweeps = {ds: read_claim_sweep(r["claim"], ds) for ds in r["datasets"]}
            if all(sweeps.values()):
                st.caption(f"The same knob over its range (`{declared[0]}`), so that no chosen value decides the "
                           f"claim: {next(iter(sweeps.values()))['seeds']} seeds at each value, dots red above "
                           f"{COLLAPSED}; shipped by `python -m lab claims --sweeps assets/sweeps`.")
                for col, (ds, sweep) in zip(st.columns(len(sweeps)), sweeps.items()):
                    col.plotly_chart(sweep_strip_figure(sweep, log=declared[1]), key=f"claims_sweep_{r['claim']}_{ds}")
        with st.expander("Numbers per data set"):
            for ds, d in r["datasets"].items():
                st.markdown(f"**{ds}**: {d['verdict']}, held in {d['held']} of {d['n']} testable seeds")
                st.table(variant_rows(d, data.get("threshold", COLLAPSED)))


def page() -> None:
    st.title("The paper's claims on toy data")
    st.markdown(
        f"""
    Each claim is run on **blobs** and **moons** over several seeds. Every setting is the method's defaults
    plus the one knob the claim is about; nothing is tuned to make a claim pass (the toy settings' reasons are
    in docs/toy-settings.md). A setting counts as collapsed in a seed when its final `‖s‖` is above **{COLLAPSED}**.
    Verdicts count seeds: {VERDICT_RULE}. Some claims come from ImageNet-100 experiments and may not carry over
    to a 3-class toy: the page says so, with the numbers.
    """
    )
    labels = {c.key: f"{c.statement} ({c.source})" for c in CLAIMS}
    with st.sidebar:
        st.header("Re-run")
        chosen = st.multiselect("Claims", list(labels), default=list(labels), format_func=labels.get,
                                key="claims_keys")
        seeds = st.slider("Seeds", 1, 10, 5, key="claims_seeds", help="The shipped results use five.")
        quick = st.toggle("Quick look (50 epochs instead of the default 250)", key="claims_quick",
                          help="Short runs have not finished collapsing or spreading: verdicts may differ.")
        run_now = st.button("Re-run the claims", type="primary", key="claims_run",
                            help="About a minute with five seeds on a 2-core machine.")
    if not chosen:
        st.info("Pick at least one claim in the sidebar.")
        st.stop()
    if run_now:
        st.session_state.claims_fresh = (tuple(chosen), seeds, 50 if quick else None)
    fresh = st.session_state.get("claims_fresh")
    if fresh:
        data = rerun(*fresh)
        st.info(f"Results of this session's run: {fresh[1]} seeds, "
                f"{fresh[2] or 'default'} epochs ({data['made']}). Clear it to see the shipped results again.")
        if st.button("Show the shipped results", key="claims_clear"):
            st.session_state.claims_fresh = None
            st.rerun()
        show_results(data, [k for k in chosen if k in fresh[0]])
        return
    data = shipped(str(TOY_RESULTS), _mtime(TOY_RESULTS))
    if data is None:
        st.warning("No shipped results with seed counts (`python -m lab claims --out assets/toy_claims.json` "
                   "writes them). Press **Re-run the claims** in the sidebar.")
        return
    st.caption(f"Shipped results: {data['seeds']} seeds, {data.get('epochs') or 'default'} epochs, made "
               f"{data['made']} on {data['machine']} at commit {data['commit']}.")
    show_results(data, chosen)


if __name__ == "__main__":
    page()
