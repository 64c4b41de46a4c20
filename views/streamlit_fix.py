"""One fix to Streamlit 1.67's server, installed by app.py: a fragment's timer must not cut off the page's rerun.

The race (found with `python -m lab.bench class`, traced in the server; docs/live.md, "Live movers that
stopped getting frames"): a knob moves, the page reruns in full and ends by registering the live view's
fragment timer (`auto_rerun`). The browser's old timer keeps asking for fragment reruns until that full run's
`new_session` reaches it. When one such request reaches the server after the full run's script thread has
finished but before the server's event loop has handled that run's last events, `AppSession.request_rerun`
finds the runner finished and starts a new one at once; the old runner's pending events (the rest of the
page, the new `auto_rerun`, its `script_finished`) then come from a "non-current ScriptRunner" and are
dropped. The browser has cleared its timers on `new_session`, never hears of the new one, and the live view
stops: its run holds after `LIVE_IDLE_HOLD_S` with nobody reading it. One knob move in ~15 did this with ten
live sessions on two cores.

The fix waits for those events: a fragment rerun that would start a new runner while the session still counts
the old run as running (its finish event not yet handled) is handed to the event loop, which runs it after
the events already queued (the old runner posted its finish before it refused the request), then dispatches
it as Streamlit would. Full reruns and fragment reruns that the running script takes are untouched.
"""
from __future__ import annotations

import logging

from streamlit.runtime.app_session import AppSession, AppSessionState

_LOG = logging.getLogger(__name__)
_MARK = "_collapse_lab_fragment_fix"


def _is_fragment_run(rerun_data) -> bool:
    return bool(rerun_data.fragment_id or rerun_data.fragment_id_queue)


def install() -> bool:
    """Wrap AppSession._create_scriptrunner once per process (app.py runs on every rerun). False, with one log
    line, where this Streamlit lacks what the fix relies on: the app then runs as Streamlit ships."""
    if getattr(AppSession, _MARK, False):
        return True
    create = getattr(AppSession, "_create_scriptrunner", None)
    if create is None or not hasattr(AppSessionState, "APP_IS_RUNNING"):
        _LOG.warning("Streamlit changed: the fragment-rerun fix (views/streamlit_fix.py) is not installed")
        return False

    def create_after_pending_events(self, initial_rerun_data) -> None:
        pending = (self._scriptrunner is not None and self._state == AppSessionState.APP_IS_RUNNING
                   and _is_fragment_run(initial_rerun_data))
        if not pending:
            create(self, initial_rerun_data)
            return
        self._event_loop.call_soon(dispatch_fragment, self, initial_rerun_data)

    def dispatch_fragment(self, rerun_data) -> None:
        # As AppSession.request_rerun does for a fragment: the current runner takes it if it can (a full run
        # started meanwhile runs the fragment too), else a new runner starts.
        if self._state == AppSessionState.SHUTDOWN_REQUESTED:
            return
        if self._scriptrunner is not None and self._scriptrunner.request_rerun(rerun_data):
            return
        create(self, rerun_data)

    AppSession._create_scriptrunner = create_after_pending_events
    setattr(AppSession, _MARK, True)
    return True
