"""Home: what collapse is, one live demo, links to the pages (`links`: the pages by name, from `views.nav`)."""
from typing import Mapping

import streamlit as st

from lab.render.interactive import feature_animation
from lab.train.b1 import paper_config, train_b1

DEMO_SETTINGS = {
    "Mini-batch SGD (batch 50)": "mini_batch_sgd_centered_augmentation",
    "Batch SGD (batch 1,000)": "batch_sgd_centered_augmentation",
}
DEMO_EPOCHS = 100  # short: the demo must appear in about a second


@st.cache_resource(show_spinner="Training…", max_entries=4)
def demo_figure(setting: str, epochs: int):
    # cache_resource: a Plotly figure costs as much to pickle as to build, and the page never mutates it.
    run = train_b1([paper_config(setting, epochs=epochs)])[0]
    fig = feature_animation(run, max_frames=40, height=480)
    # Below the plot the legend collides with the epoch slider; beside the (square) circle there is room.
    fig.update_layout(legend=dict(orientation="v", x=1.0, xanchor="left", y=0.5, yanchor="middle"))
    return fig, run.metrics()


def page(links: Mapping[str, st.Page]) -> None:
    st.title("Collapse Lab")
    st.markdown(
        """
    Self-supervised learning trains an encoder so that two augmentations of one image get the same feature.
    The features are L2-normalised, so every feature lies on the unit circle (or sphere). The **center vector**
    `s` is the mean feature over the data. If `‖s‖ ≈ 0` the features are spread out; if `‖s‖ → 1`, every sample
    maps to one point: the representation has **collapsed**, and it tells no two images apart.

    Why does it happen? The paper's eq. 4 splits the invariance loss's pull on each feature into two parts:
    a **center term** `s`, the same for every sample, and a **residual term** `μ_z − s`, different for each.
    The center term grows as the features gather, the residuals shrink, and everything slides into one point,
    unless something in the method (negatives, a predictor with stop-gradient, centering, BatchNorm, …) keeps
    pushing `s` back to 0.
    """
    )

    st.subheader("Live demo: invariance loss only, features on the circle")
    left, right = st.columns([3, 2])
    with right:
        choice = st.radio("Optimizer", list(DEMO_SETTINGS), key="home_mode",
                          help="Paper Appendix B.1, centered augmentations, first 100 epochs.")
        fig, metrics = demo_figure(DEMO_SETTINGS[choice], DEMO_EPOCHS)
        st.metric("‖s‖ after 100 epochs (augmented points)", f"{metrics['center_norm_aug'][-1]:.3f}",
                  delta=f"{metrics['center_norm_aug'][-1] - metrics['center_norm_aug'][0]:+.3f} since epoch 0")
        st.markdown(
            "Press ▶ Play. Each coloured dot is one of 100 points (small dots: its 10 augmentations). "
            "**Green**, **blue** and **red** arrows are the centers of the dataset points, of one mini-batch "
            "and of the augmented points; **orange** and **purple** arrows are the center and residual "
            "terms of the pull on a few points."
        )
        st.page_link(links["circle"], label="Open the full lab: Collapse on the circle",
                     icon=":material/radio_button_unchecked:")
    with left:
        st.plotly_chart(fig, key="home_demo_chart")

    st.subheader("Pages")
    st.page_link(links["circle"], label="Collapse on the circle (paper Appendix B.1)",
                 icon=":material/radio_button_unchecked:")
    st.caption("Every knob of the B.1 toy: mini-batch vs batch SGD, centered vs shifted augmentations, learning "
               "rate, epochs, seed, circle or sphere; the center magnitudes per epoch or per step; a GIF to download.")
    st.page_link(links["playground"], label="Method playground: nine SSL methods and their knobs",
                 icon=":material/tune:")
    st.caption("SimSiam, BYOL, DINO, SwAV, Barlow Twins, SimCLR, triplet, the paper's simplified objective and "
               "invariance only, on toy data, several seeds at once; the whole setting lives in the link.")
    st.page_link(links["compare"], label="Compare: the paper's Figs. 3 and 4, or any two settings",
                 icon=":material/compare:")
    st.page_link(links["sweep"], label="Sweep: a knob (or two) over its whole range, seed by seed",
                 icon=":material/grid_on:")
    st.page_link(links["claims"], label="Claims: which of the paper's claims hold on toy data, seed by seed",
                 icon=":material/fact_check:")
    st.page_link(links["runs"], label="Runs: launch and watch real ImageNet-100 runs (or a CPU demo)",
                 icon=":material/monitoring:")
    st.caption("ResNet-18 with any method and ablation, here, under torchrun or on SLURM; live ‖s‖, kNN, loss and "
               "learning-rate charts from each run's metrics, and the paper's Figs. 5–7 and B.4–B.6 from its presets.")
    st.page_link(links["check"], label="Check a model: has your own SSL model collapsed, and how?",
                 icon=":material/stethoscope:")
    st.caption("Any embedding file (.npy, .npz, .pt, .safetensors), a run of this lab, or a ResNet backbone from "
               "torchvision, solo-learn or lightly: its collapse signature with the deciding numbers, beside "
               "references, on the sphere, and an HTML report to download.")
