"""Real images: a Fashion-MNIST model trained live (`views.real_live`), then the paper's ImageNet-100 claims on
Fashion-MNIST, from the shipped results of the engine's presets (`python -m lab claims --runs DIR --out
assets/fmnist/claims.json`), each beside its toy twin.

Shipped files -> lab.render charts -> st.*; no science here: the verdicts are `lab.claims`'.
"""
from __future__ import annotations

import json
import os

import streamlit as st

from lab.claims import ENGINE_RESULTS, TOY_RESULTS, engine_curves, read_engine_results
from lab.core.experiments import experiment
from lab.render.claims import control_text
from lab.render.runs import engine_claim_chart
from views import real_live

VERDICT_STYLE = {"held": st.success, "did not hold": st.error, "mixed": st.warning, "no runs": st.info,
                 "untestable": st.info}
MAKE = ("python -m lab.engine.train --preset all --run --data /usr/share/datasets/fashion-mnist --out "
        "runs/fmnist --workers 0 && python -m lab claims --runs runs/fmnist --out assets/fmnist/claims.json")


@st.cache_data(show_spinner=False, max_entries=4)
def _results(path: str, mtime: float) -> dict | None:  # mtime: a new file is read again
    return read_engine_results(path)


def _mtime(path) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


@st.cache_data(show_spinner=False, max_entries=4)
def toy_verdicts(path: str, mtime: float) -> dict[str, str]:
    """Toy claim key -> its shipped verdict in words (assets/toy_claims.json), where there is one."""
    try:
        data = json.loads(open(path, encoding="utf-8").read())
        made = data.get("made", "")
        return {r["claim"]: f"{r['verdict']} (toy: blobs and moons, {data.get('seeds')} seeds, {made})"
                for r in data["results"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _control(claim: dict) -> str | None:
    """The claim's control arm: as its results say, else as the registry declares it (older results)."""
    if "control" in claim:
        return claim["control"]
    return next((c.control for c in experiment(claim["experiment"]).engine_claims if c.key == claim["key"]), None)


def _seed_table(claim: dict) -> list[dict]:
    rows = []
    for seed, variants in claim["numbers"].items():
        held = claim["per_seed"].get(seed)
        state = ("untestable" if seed in claim.get("untestable", {}) else
                 "—" if held is None else "yes" if held else "no")
        for label, n in variants.items():
            start = n.get("start_center_norm")
            rows.append({"seed": seed, "claim held": state,
                         "variant": label,
                         "‖s‖ pre-BN (untrained → end)": (f"{start:.3f} → " if start is not None else "")
                         + f"{n['center_norm']:.3f}",
                         "‖s‖ post-BN": f"{n['center_norm_post_bn']:.3f}",
                         "eff. rank pre / post of D": f"{n['effective_rank']:.1f} / {n['effective_rank_post_bn']:.1f}"
                                                      f" of {n['effective_rank_max']:.0f}",
                         "kNN (untrained → end)": (f"{n['start_knn_acc']:.3f} → " if n.get("start_knn_acc") else "")
                         + (f"{n['knn_acc']:.3f}" if n["knn_acc"] is not None else "—")})
    return rows


def page() -> None:
    st.title("The paper's ImageNet claims on real images")
    results = _results(str(ENGINE_RESULTS), _mtime(ENGINE_RESULTS))
    real_live.section(results)
    st.subheader("The shipped verdicts")
    if results is None:
        st.info(f"No shipped results at {ENGINE_RESULTS}. Make them (about 80 minutes on a 2-core CPU): `{MAKE}`")
        return
    st.markdown(
        f"""
    The paper's six ImageNet-100 experiments and the invariance-only baseline, run by the lab's engine on
    **Fashion-MNIST** (ResNet-18 in its small-image form, width 16), with every method's ImageNet recipe carried
    over by a stated rule, **3 seeds** each. Each claim is judged **seed by seed** by a rule written down before
    the runs (`lab.core.experiments`); the verdict counts the seeds it held in. `‖s‖` is read **before the
    projector's output BatchNorm** (train mode, on the training views, as the loss sees them): that BatchNorm
    gives every dimension zero mean before the features go onto the sphere, so a projector at one point reads
    ≈ 1 before it and ≈ 0 after. Collapsed means final `‖s‖` above **{results['threshold']}**; the effective
    rank (of D directions) shows a dimensional collapse that ‖s‖ cannot, and DINO's per-sample teacher entropy
    a uniform one (ln K).

    Made {results['made']} on {results['machine']} at commit `{results['commit']}`.
    **Budget:** {results['budget']}.
    """
    )
    toy = toy_verdicts(str(TOY_RESULTS), _mtime(TOY_RESULTS))
    shown: set[str] = set()
    for claim in results["claims"]:
        count = (f"{claim['held']} of {claim['n']} seeds" if claim["n"] else
                 "no testable seed" if claim.get("untestable") else "no finished seed yet")
        if claim.get("untestable"):
            count += f", {len(claim['untestable'])} untestable"
        ours = " — *a check of ours, not the paper's*" if not claim["from_paper"] else ""
        VERDICT_STYLE.get(claim["verdict"], st.info)(
            f"**{claim['verdict']}** ({count}) — {claim['statement']} *({claim['figure']}, {claim['source']})*{ours}")
        left, right = st.columns([2, 1])
        left.markdown(f"**The paper:** {claim['paper']}  \n**Rule, per seed:** {claim['rule']}  \n"
                      + control_text(_control(claim), claim.get("health"))
                      + (f" *(Judged on {claim['health_from']}: they were made before the control rule.)*"
                         if claim.get("health_from") else ""))
        twin = claim.get("toy")
        right.markdown("**On the toy:** " + (toy.get(twin, f"claim `{twin}`: no shipped toy result")
                                             if twin else "no toy twin (an ImageNet-scale experiment only)"))
        if claim["verdict"] in ("did not hold", "mixed"):
            st.caption(f"Here the lab disagrees with the paper at this budget: the claim held in {claim['held']} of "
                       f"{claim['n']} seeds; the numbers are in the table below.")
        if claim["experiment"] not in shown:
            shown.add(claim["experiment"])
            panels, curves = engine_curves(results, claim["experiment"])
            if curves:
                e = experiment(claim["experiment"])
                st.plotly_chart(engine_claim_chart(panels, curves, f"{e.figure}: {e.title}"),
                                key=f"real_{claim['experiment']}")
        with st.expander("Per seed", expanded=claim["verdict"] != "held"):
            st.dataframe(_seed_table(claim), hide_index=True)
    if results.get("unfinished"):
        st.caption("Not judged (unfinished): " + ", ".join(results["unfinished"]))


if __name__ == "__main__":
    page()
