"""The server-wide store of toy runs and figures (`views.ui`): a setting asked for by several browsers at once
is trained once, the others wait for it; a failed maker does not leave the waiters stuck."""
import threading
import time

import pytest

from views import ui
from lab.train.toy import ToyConfig
from waits import HANG_S


@pytest.fixture(autouse=True)
def fresh_store():
    ui._store().clear()
    yield
    ui._store().clear()


def test_identical_requests_that_arrive_together_train_once(monkeypatch):
    calls, real = [], ui.train_toys

    def slow_train(configs, progress=None):
        calls.append(list(configs))
        time.sleep(0.3)  # long enough that every thread asks while the first one trains
        return real(configs, progress)

    monkeypatch.setattr(ui, "train_toys", slow_train)
    config = ToyConfig(method="invariance", epochs=3, seeds=1)
    results = [None] * 6

    def ask(i):
        results[i] = ui.train_cached([config])[0]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_S)
    assert len(calls) == 1 and calls[0] == [config]
    assert all(r is results[0] for r in results)  # one run, shared
    assert ui.train_cached([config])[0] is results[0] and len(calls) == 1  # later: from the store


def test_a_waiter_makes_the_value_itself_when_the_maker_fails():
    started, release = threading.Event(), threading.Event()
    made = []

    def failing():
        started.set()
        release.wait(HANG_S)
        raise RuntimeError("boom")

    def first():
        with pytest.raises(RuntimeError):
            ui.memo("k", failing)

    t = threading.Thread(target=first)
    t.start()
    started.wait(HANG_S)
    waiter = threading.Thread(target=lambda: made.append(ui.memo("k", lambda: "mine")))
    waiter.start()
    time.sleep(0.1)
    release.set()
    t.join(HANG_S), waiter.join(HANG_S)
    assert made == ["mine"] and ui.memo("k", lambda: "other") == "mine"


def test_the_store_is_capped():
    for i in range(ui.STORE_SIZE + 10):
        ui.memo(("fig", i), lambda i=i: i)
    assert len(ui._store()) == ui.STORE_SIZE and ("fig", 0) not in ui._store()
