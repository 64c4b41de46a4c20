"""views.streamlit_fix: a fragment rerun that would replace a finished runner whose last events are still queued
waits for those events (the race that stopped a live view after a knob move; the module says how). Here on
AppSession's own `_create_scriptrunner` path with a recording stand-in for the runner it creates, an asyncio
loop as the session's event loop, and the old runner's finish event queued on it first, as Streamlit queues it.
The server-level check is tests/test_load_class.py's ten live movers."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from streamlit.runtime.app_session import AppSession, AppSessionState
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData

from views import streamlit_fix


@pytest.fixture
def created(monkeypatch):
    """AppSession._create_scriptrunner replaced by a recorder, then the fix installed over it: the list of
    (session, rerun data) it was asked to create, in order."""
    calls = []
    monkeypatch.setattr(AppSession, "_create_scriptrunner", lambda self, data: calls.append((self, data)))
    monkeypatch.delattr(AppSession, streamlit_fix._MARK, raising=False)
    assert streamlit_fix.install()
    assert streamlit_fix.install(), "installing twice (app.py runs on every rerun) keeps one wrapper"
    return calls


class Runner:
    def __init__(self, takes: bool):
        self.takes, self.asked = takes, []

    def request_rerun(self, data) -> bool:
        self.asked.append(data)
        return self.takes


def session(loop, state, runner):
    return SimpleNamespace(_event_loop=loop, _state=state, _scriptrunner=runner)


@pytest.fixture
def loop():
    """The session's event loop; `drain(loop)` runs what is queued on it, in order."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def drain(loop) -> None:
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_the_fix_is_installed_on_this_streamlit():
    assert streamlit_fix.install() and getattr(AppSession, streamlit_fix._MARK)


def test_a_fragment_rerun_waits_for_the_finished_runs_queued_events(created, loop):
    order = []
    s = session(loop, AppSessionState.APP_IS_RUNNING, Runner(takes=False))  # its script has ended: it refuses

    def finish_event():  # what AppSession does with the old runner's SCRIPT_STOPPED_WITH_SUCCESS
        order.append("finished")
        s._state = AppSessionState.APP_NOT_RUNNING

    loop.call_soon(finish_event)  # queued by the old runner before it refused the rerun
    AppSession._create_scriptrunner(s, RerunData(fragment_id="frag"))
    assert created == [], "no new runner while the old run's events wait"
    drain(loop)
    order.extend("created" for _ in created)
    assert order == ["finished", "created"], order
    assert created[0][1].fragment_id == "frag"


def test_a_runner_started_meanwhile_takes_the_fragment_rerun(created, loop):
    s = session(loop, AppSessionState.APP_IS_RUNNING, Runner(takes=False))
    AppSession._create_scriptrunner(s, RerunData(fragment_id="frag"))
    s._state, s._scriptrunner = AppSessionState.APP_IS_RUNNING, Runner(takes=True)  # a full rerun started
    drain(loop)
    assert created == [] and [d.fragment_id for d in s._scriptrunner.asked] == ["frag"]


@pytest.mark.parametrize("state, runner, data", [
    (AppSessionState.APP_IS_RUNNING, Runner(False), RerunData()),  # a full rerun (fastReruns has dropped the runner)
    (AppSessionState.APP_NOT_RUNNING, Runner(False), RerunData(fragment_id="frag")),  # the old run's events are in
    (AppSessionState.APP_IS_RUNNING, None, RerunData(fragment_id="frag")),  # no runner to wait for
], ids=["full-rerun", "events-handled", "no-runner"])
def test_other_runs_start_at_once(created, loop, state, runner, data):
    AppSession._create_scriptrunner(session(loop, state, runner), data)
    assert [c[1] for c in created] == [data]


def test_a_session_shutting_down_starts_no_runner(created, loop):
    s = session(loop, AppSessionState.APP_IS_RUNNING, Runner(takes=False))
    AppSession._create_scriptrunner(s, RerunData(fragment_id="frag"))
    s._state = AppSessionState.SHUTDOWN_REQUESTED
    drain(loop)
    assert created == []
