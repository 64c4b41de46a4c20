"""Opening a page headless (AppTest) to read what a finished run shows: the replay, the metrics, the export.

Live training is the toy pages' default (a newcomer sees the features move at once), and the replay comes when
the run ends. Tests that read the replay open the page with live off, so that no live run trains behind them:
the Method playground with `live=false` in its URL, Collapse on the circle with its "Train live" toggle off
before the first run. tests/test_live.py, tests/test_browser_live.py and the lesson tests cover live itself.
"""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from waits import HANG_S


def open_page(root, path: str, query: dict | None = None, live: bool = False) -> AppTest:
    at = AppTest.from_file(str(root / path), default_timeout=HANG_S)
    query = dict(query or {})
    if not live and path.endswith("playground.py") and "lesson" not in query:
        query.setdefault("live", "false")
    if not live and path.endswith("circle.py"):
        at.session_state["b1_live_on"] = False
    at.query_params.update(query)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at
