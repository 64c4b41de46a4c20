"""Claims: the paper's claims that toy data can check, run over seeds, with numbers and a verdict.

Widgets -> lab.claims.run_claims -> st.*; no science here.
"""


import streamlit as st

from lab.claims import CLAIMS, COLLAPSED, run_claims


@st.cache_resource(show_spinner=False, max_entries=8)
def cached_claims(keys: tuple[str, ...], seeds: int, epochs: int | None):
    bar = st.progress(0.0, text="Training the settings the claims need…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Training the settings the claims need… {done}/{total} epochs")

    results = run_claims(list(keys), seeds=seeds, epochs=epochs, progress=progress)
    bar.empty()
    return results


def page() -> None:
    VERDICT_STYLE = {"held": st.success, "did not hold": st.error, "mixed": st.warning}
    st.title("The paper's claims on toy data")
    st.markdown(
        f"""
    Each claim below is run on **blobs** and **moons** over several seeds. Every setting is the method's
    defaults plus the one knob the claim is about; nothing is tuned to make a claim pass. A setting counts
    as collapsed when its mean final `‖s‖` is above **{COLLAPSED}**. A claim **held** when it holds on both
    datasets, **did not hold** when on neither, and is **mixed** otherwise. Some claims come from
    ImageNet-100 experiments and may not carry over to a 3-class toy: the page says so, with the numbers.
    """
    )
    labels = {c.key: f"{c.statement} ({c.source})" for c in CLAIMS}
    with st.sidebar:
        chosen = st.multiselect("Claims", list(labels), default=list(labels), format_func=labels.get,
                                key="claims_keys")
        seeds = st.slider("Seeds", 1, 5, 5, key="claims_seeds",
                          help="The paper averages five runs; fewer answer faster.")
        quick = st.toggle("Quick look (50 epochs instead of the default 250)", key="claims_quick",
                          help="Short runs have not finished collapsing or spreading: verdicts may differ.")
    if not chosen:
        st.info("Pick at least one claim in the sidebar.")
        st.stop()
    if not st.button("Run the claims", type="primary", key="claims_run") and not st.session_state.get("claims_ran"):
        st.caption("Training every setting takes about a minute with five seeds on a 2-core machine.")
        st.stop()
    st.session_state.claims_ran = True
    results = cached_claims(tuple(chosen), seeds, 50 if quick else None)
    for r in results:
        VERDICT_STYLE[r.verdict](f"**{r.verdict}** — {r.claim.statement} *({r.claim.source})*")
        cols = st.columns(len(r.per_dataset))
        for col, (ds, (ok, test)) in zip(cols, r.per_dataset.items()):
            col.markdown(f"**{ds}**: {'held' if ok else 'did not hold'}  \n<small>test: {test}</small>",
                         unsafe_allow_html=True)
            col.table([{"setting": label, "final ‖s‖": f"{n.center_norm:.2f} ± {n.center_norm_std:.2f}",
                        "kNN": f"{n.knn_acc:.2f} ± {n.knn_acc_std:.2f}",
                        "note": n.diverged or ""} for label, n in r.numbers[ds].items()])


if __name__ == "__main__":
    page()
