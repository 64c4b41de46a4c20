"""The lab's pages, one module each with a `page()` function; `views.nav` lists them for `st.navigation`.

Pages are thin: widgets -> `lab` calls -> rendering, no torch and no science here. A page module also runs
by itself (`streamlit run views/circle.py`, and the AppTest tests), through its `__main__` guard.

Not a folder named `pages/`: beside one, Streamlit's older multipage discovery answers a direct link
(`/Method_playground?...`) with a "Page not found" dialog even under `st.navigation`.
"""
