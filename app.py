"""Collapse Lab: `streamlit run app.py`. The navigation: Home and the lab's pages (`views/`), each a function."""
import streamlit as st

from views import home, nav, streamlit_fix

streamlit_fix.install()  # before any page: a fragment's timer must not cut off a page's rerun (the module says how)
st.set_page_config(page_title="Collapse Lab", layout="wide")
links = nav.lab_pages()


def home_page() -> None:
    home.page(links)


st.navigation([st.Page(home_page, title="Home", icon=":material/home:", default=True), *links.values()]).run()
