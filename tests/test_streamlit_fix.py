"""views.streamlit_fix, on AppSession's own `_create_scriptrunner` and `request_rerun` paths with recording
stand-ins for what they call, and an asyncio loop as the session's event loop with the old runner's events
queued on it first, as Streamlit queues them (the module says what each fix is for):
1. a fragment rerun that would replace a runner the session still holds waits until the session lets it go;
2. a fragment timer's tick is skipped while an earlier run's output still waits to be sent.
The server-level check is tests/test_load_class.py's ten live movers."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.runtime.app_session import AppSession, AppSessionState
from streamlit.runtime.forward_msg_queue import ForwardMsgQueue
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData

from views import streamlit_fix


@pytest.fixture
def calls(monkeypatch):
    """AppSession._create_scriptrunner and request_rerun replaced by recorders, then the fixes installed over
    them: {"created": [(session, rerun data)], "requested": [(session, client state)]}, in order."""
    out = {"created": [], "requested": []}
    monkeypatch.setattr(AppSession, "_create_scriptrunner", lambda self, data: out["created"].append((self, data)))
    monkeypatch.setattr(AppSession, "request_rerun", lambda self, state: out["requested"].append((self, state)))
    monkeypatch.delattr(AppSession, streamlit_fix._MARK, raising=False)
    assert streamlit_fix.install()
    assert streamlit_fix.install(), "installing twice (app.py runs on every rerun) keeps one wrapper"
    return out


class Runner:
    def __init__(self, takes: bool):
        self.takes, self.asked = takes, []

    def request_rerun(self, data) -> bool:
        self.asked.append(data)
        return self.takes


def session(loop, state, runner, queued=()):
    queue = ForwardMsgQueue()
    for kind in queued:
        msg = ForwardMsg()
        if kind == "script_finished":
            msg.script_finished = ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
        else:
            msg.new_session.name = "page"
        queue.enqueue(msg)
    return SimpleNamespace(_event_loop=loop, _state=state, _scriptrunner=runner, _browser_queue=queue)


@pytest.fixture
def loop():
    """The session's event loop; `drain(loop)` runs what is queued on it, retries included."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def drain(loop, seconds: float = 0.05) -> None:
    loop.run_until_complete(asyncio.sleep(seconds))


def test_the_fixes_are_installed_on_this_streamlit():
    assert streamlit_fix.install() and getattr(AppSession, streamlit_fix._MARK)


@pytest.mark.parametrize("events", [
    ("finished", "shutdown"),  # its SCRIPT_STARTED handled already: the session counts it running
    ("started", "finished", "shutdown"),  # a busy loop has not even handled its start: the session reads idle
], ids=["running", "start-not-yet-handled"])
def test_a_fragment_rerun_waits_until_the_old_runner_is_let_go(calls, loop, events):
    order = []
    state = AppSessionState.APP_IS_RUNNING if events[0] == "finished" else AppSessionState.APP_NOT_RUNNING
    s = session(loop, state, Runner(takes=False))  # its script has ended: it refuses

    def event(name):  # what AppSession does with each of the old runner's events
        order.append(name)
        if name == "shutdown":
            s._scriptrunner = None

    for name in events:  # queued by the old runner, the last one from its thread's `finally`
        loop.call_later(0.01, event, name)
    AppSession._create_scriptrunner(s, RerunData(fragment_id="frag"))
    assert calls["created"] == [], "no new runner while the old one's events wait"
    drain(loop)
    order.extend("created" for _ in calls["created"])
    assert order == [*events, "created"], order
    assert calls["created"][0][1].fragment_id == "frag"


def test_a_runner_started_meanwhile_takes_the_fragment_rerun(calls, loop):
    s = session(loop, AppSessionState.APP_IS_RUNNING, Runner(takes=False))
    AppSession._create_scriptrunner(s, RerunData(fragment_id="frag"))
    s._state, s._scriptrunner = AppSessionState.APP_IS_RUNNING, Runner(takes=True)  # a full rerun started
    drain(loop)
    assert calls["created"] == [] and [d.fragment_id for d in s._scriptrunner.asked] == ["frag"]


def test_a_lost_last_event_holds_the_rerun_only_so_long(calls, loop, monkeypatch):
    monkeypatch.setattr(streamlit_fix, "GIVE_UP_S", 0.02)
    s = session(loop, AppSessionState.APP_IS_RUNNING, Runner(takes=False))  # never let go
    AppSession._create_scriptrunner(s, RerunData(fragment_id="frag"))
    drain(loop)
    assert [c[1].fragment_id for c in calls["created"]] == ["frag"]


@pytest.mark.parametrize("state, runner, data", [
    (AppSessionState.APP_IS_RUNNING, Runner(False), RerunData()),  # a full rerun (fastReruns has dropped the runner)
    (AppSessionState.APP_NOT_RUNNING, None, RerunData(fragment_id="frag")),  # the old runner is let go
], ids=["full-rerun", "no-runner"])
def test_other_runs_start_at_once(calls, loop, state, runner, data):
    AppSession._create_scriptrunner(session(loop, state, runner), data)
    assert [c[1] for c in calls["created"]] == [data]


def test_a_session_shutting_down_starts_no_runner(calls, loop):
    s = session(loop, AppSessionState.APP_IS_RUNNING, Runner(takes=False))
    AppSession._create_scriptrunner(s, RerunData(fragment_id="frag"))
    s._state = AppSessionState.SHUTDOWN_REQUESTED
    drain(loop)
    assert calls["created"] == []


def client_state(fragment: str = "", auto: bool = False) -> ClientState:
    state = ClientState()
    state.fragment_id, state.is_auto_rerun = fragment, auto
    return state


@pytest.mark.parametrize("queued, state, passed", [
    (("new_session", "script_finished"), client_state("frag", auto=True), False),  # a timer tick, output waiting
    (("new_session",), client_state("frag", auto=True), True),  # a run still under way: its runner takes it
    ((), client_state("frag", auto=True), True),  # everything sent
    (("new_session", "script_finished"), client_state("frag"), True),  # a fragment's own button, not its timer
    (("new_session", "script_finished"), client_state(), True),  # a knob: a full rerun
    (("new_session", "script_finished"), None, True),  # st.rerun
], ids=["tick-backlogged", "tick-run-under-way", "tick-sent", "fragment-widget", "full-rerun", "no-client-state"])
def test_a_timer_tick_waits_for_the_earlier_output_to_leave(calls, loop, queued, state, passed):
    s = session(loop, AppSessionState.APP_NOT_RUNNING, None, queued)
    AppSession.request_rerun(s, state)
    assert [c[1] for c in calls["requested"]] == ([state] if passed else [])
