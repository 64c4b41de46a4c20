"""The pages of the lab's navigation, in menu order; each URL path is the one the lab has always had."""
from __future__ import annotations

import streamlit as st

from views import check, circle, claims, compare, playground, real, runs, sweep

# name -> (the page, its title, its URL path, its icon)
PAGES = {
    "circle": (circle.page, "Collapse on the circle", "Collapse_on_the_circle", ":material/radio_button_unchecked:"),
    "playground": (playground.page, "Method playground", "Method_playground", ":material/tune:"),
    "compare": (compare.page, "Compare", "Compare", ":material/compare:"),
    "sweep": (sweep.page, "Sweep", "Sweep", ":material/grid_on:"),
    "claims": (claims.page, "Claims", "Claims", ":material/fact_check:"),
    "real": (real.page, "Real images", "Real_images", ":material/image:"),
    "runs": (runs.page, "Runs", "Runs", ":material/monitoring:"),
    "check": (check.page, "Check a model", "Check_a_model", ":material/stethoscope:"),
}


def lab_pages() -> dict[str, st.Page]:
    """Every page but Home, as `st.Page`s (made per script run, as Streamlit expects)."""
    return {name: st.Page(target, title=title, url_path=url, icon=icon)
            for name, (target, title, url, icon) in PAGES.items()}
