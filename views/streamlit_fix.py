"""Two fixes to Streamlit 1.67's server, installed by app.py, both about the live view's fragment timer.

1. A fragment's timer must not cut off the page's rerun. (Found with `python -m lab.bench class`, traced in the
   server; docs/live.md, "Live movers that stopped getting frames".) A knob moves, the page reruns in full and
   ends by registering the live view's fragment timer (`auto_rerun`). The browser's old timer keeps asking for
   fragment reruns until that full run's `new_session` reaches it. When one such request reaches the server
   after the full run's script thread has finished but before the server's event loop has handled that run's
   events, `AppSession.request_rerun` finds the runner stopping and starts a new one at once; the old runner's
   pending events (the page, the new `auto_rerun`, its `script_finished`; on a busy machine even its
   `new_session`) then come from a "non-current ScriptRunner" and are dropped. The browser has cleared its
   timers on `new_session`, never hears of the new one, and the live view stops. One knob move in ~15 did this
   with ten live sessions on two cores.

   The fix: a fragment rerun that would replace a runner the session still holds (its last event, SHUTDOWN, not
   yet handled) waits on the event loop until the session lets that runner go, then is dispatched as Streamlit
   would (the current runner takes it if it can, else a new one starts). Full reruns, and fragment reruns that
   a running script takes, are untouched.

2. A fragment's timer must not outrun the socket. Each fragment run queues its messages for the browser
   (`new_session`, the view's delta, `script_finished`); the server sends one message per turn of its event
   loop, and when the next run starts it drops the fragment's deltas still waiting. On two cores shared with two
   Fashion-MNIST trainings, ten live sessions asking ten times a second queued faster than the loop sent: every
   session's queue grew past a thousand lifecycle messages, each new run dropped the last run's frame before it
   left, and no browser got a frame for minutes (traced: `_browser_queue` lengths 800-1400 and growing). So a
   timer's tick is skipped while the output of an earlier run of that session still waits to be sent; the next
   tick asks again. Frames then come as fast as the socket takes them.
"""
from __future__ import annotations

import logging
import time

from streamlit.runtime.app_session import AppSession, AppSessionState

_LOG = logging.getLogger(__name__)
_MARK = "_collapse_lab_fragment_fix"
# How often a waiting fragment rerun looks again, and how long it waits at most for the old runner's last event
# (seconds). The runner posts it from its thread's `finally` right after refusing, so it comes within a few
# event-loop turns; the limit only keeps a lost event from holding the view forever.
RETRY_S, GIVE_UP_S = 0.005, 10.0


def _is_fragment_run(rerun_data) -> bool:
    return bool(rerun_data.fragment_id or rerun_data.fragment_id_queue)


def earlier_output_waiting(session) -> bool:
    """True while the session's queue for the browser still holds a finished run's messages (its
    `script_finished`): the browser has not been sent that run's output yet."""
    queue = getattr(session._browser_queue, "_queue", None)
    if queue is None:  # another Streamlit: anything still queued counts
        return len(session._browser_queue) > 0
    return any(msg.WhichOneof("type") == "script_finished" for msg in queue)


def install() -> bool:
    """Wrap AppSession._create_scriptrunner and request_rerun once per process (app.py runs on every rerun).
    False, with one log line, where this Streamlit lacks what the fixes rely on: the app then runs as shipped."""
    if getattr(AppSession, _MARK, False):
        return True
    create, request = getattr(AppSession, "_create_scriptrunner", None), getattr(AppSession, "request_rerun", None)
    if create is None or request is None or not hasattr(AppSessionState, "SHUTDOWN_REQUESTED"):
        _LOG.warning("Streamlit changed: the fragment-rerun fixes (views/streamlit_fix.py) are not installed")
        return False

    def create_after_old_runner(self, initial_rerun_data) -> None:
        old = self._scriptrunner
        if old is None or not _is_fragment_run(initial_rerun_data):
            create(self, initial_rerun_data)
            return
        self._event_loop.call_soon(dispatch_fragment, self, initial_rerun_data, old, time.monotonic() + GIVE_UP_S)

    def dispatch_fragment(self, rerun_data, old, give_up_at: float) -> None:
        if self._state == AppSessionState.SHUTDOWN_REQUESTED:
            return
        runner = self._scriptrunner
        if runner is not None and runner.request_rerun(rerun_data):
            return  # a run started meanwhile takes it (a full run runs the fragment too)
        if runner is old and time.monotonic() < give_up_at:
            self._event_loop.call_later(RETRY_S, dispatch_fragment, self, rerun_data, old, give_up_at)
            return
        create(self, rerun_data)

    def request_rerun_unless_backlogged(self, client_state) -> None:
        if (client_state is not None and client_state.is_auto_rerun and client_state.fragment_id
                and earlier_output_waiting(self)):
            return  # the timer's next tick asks again
        request(self, client_state)

    AppSession._create_scriptrunner = create_after_old_runner
    AppSession.request_rerun = request_rerun_unless_backlogged
    setattr(AppSession, _MARK, True)
    return True
