"""Live training: one run trained in a background thread while a page watches and steers it.

A trainer that supports it (`lab.train.toy`, `lab.train.b1`) calls `LiveControl.publish` after every epoch
and then `wait_turn`, which paces it, holds it while paused and hands it the knob changes asked for since.
The page (whose script thread must never block on training: Streamlit's threads have no script context)
calls play, pause, step, stop, change and reads `latest` / `frames_since`. Nothing here calls Streamlit.
"""
from __future__ import annotations

import atexit
import collections
import threading
import time
import uuid
import weakref
from typing import Any, Callable, Sequence

import torch

from lab.train.changes import Change

IDLE_STOP_TIMES = 120  # a run held this many idle_hold_s in a row stops


class FairTurn:
    """A lock handed over first come, first served (a plain threading.Lock lets the thread that releases it take
    it straight back, which would starve the other runs of one trained as fast as it can)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._queue: collections.deque = collections.deque()
        self._busy = False

    def acquire(self) -> None:
        me = object()
        with self._cond:
            self._queue.append(me)
            self._cond.wait_for(lambda: not self._busy and self._queue[0] is me)
            self._queue.popleft()
            self._busy = True

    def release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()


# One live run computes at a time in this process; the others wait their turn asleep. Why: a toy epoch is
# mostly Python (tiny tensors), so every training thread competes for the one GIL with the server's event loop
# and script threads. Ten live sessions on 2 busy cores kept the event loop waiting in Thread.start for each
# new script thread (py-spy) and no session got a frame for over a minute; with one trainer at a time the
# runs share the same compute and the server keeps its turn.
WORK_TURN = FairTurn()

# check(change, changes applied so far) -> the change with its value parsed; a one-line ValueError if bad.
Check = Callable[[Change, Sequence[Change]], Change]


class LiveControl:
    """Steers one training from another thread (the live page) and shows its latest state.

    The trainer calls `publish` after every epoch (the recorded epochs so far, shared lists that only grow)
    and then `wait_turn`, which blocks while paused (unless a step was asked for), keeps the pace, and hands
    back the knob changes asked for since (None: stop). The page calls `play`, `pause`, `step`, `stop`,
    `set_speed`, `change` and reads `latest`. Every method takes the lock briefly; none calls Streamlit.
    """

    def __init__(self, config, playing: bool = True, epochs_per_second: float | None = None,
                 check: Check | None = None, idle_hold_s: float | None = None):
        self.config, self._check = config, check
        self._cond = threading.Condition()
        self.playing, self.steps_left, self.stopped = playing, 0, False
        self.epochs_per_second = epochs_per_second  # None: as fast as it trains
        self._pending: list[tuple[str, Any]] = []
        self.applied: list[Change] = []
        self.epoch = -1  # the last epoch published
        self._views: tuple[list, list, list] = ([], [], [])
        self._last_turn = time.perf_counter()
        # A page reads the run several times a second while a tab shows it (a hidden tab: once a second). A run
        # nobody has read for idle_hold_s holds until someone does (and stops after IDLE_STOP_TIMES of that): on a
        # 2-core server a closed tab's run would otherwise train on at the cost of every open one. None: never
        # held (a notebook, a test).
        self.idle_hold_s, self._last_read = idle_hold_s, time.monotonic()
        self.held = False  # the trainer is waiting for someone to read the run
        self.waiting = False  # the trainer is waiting for its next turn (paused, held): nothing more trains now
        self._working = False  # the trainer holds WORK_TURN

    # -- the trainer's side
    def publish(self, epochs: list, snaps: list, logs: list) -> None:
        with self._cond:
            self._views = (epochs, snaps, logs)
            self.epoch = epochs[-1]
            self._cond.notify_all()

    def wait_turn(self, epoch: int) -> list[Change] | None:
        """After `epoch` is published: wait while paused, held or ahead of the pace, then for WORK_TURN (held
        until the next call or `end_work_turn`) -> the changes asked for since, or None: stop."""
        self.end_work_turn()
        with self._cond:
            while not self.stopped:
                self.held = self._unwatched()
                if not self.held and (self.playing or self.steps_left):
                    break
                self.waiting = True
                self._cond.wait(0.25)
            self.held = self.waiting = False
            if self.stopped:
                return None
            if not self.playing:
                self.steps_left -= 1
            pace = self.epochs_per_second
            todo, self._pending = self._pending, []
        if pace:
            wait = 1.0 / pace - (time.perf_counter() - self._last_turn)
            if wait > 0:
                time.sleep(wait)
        self._last_turn = time.perf_counter()
        self._take_work_turn()
        changes = [Change(epoch, knob, value) for knob, value in todo]
        with self._cond:
            self.applied.extend(changes)
        return changes

    def _take_work_turn(self) -> None:
        WORK_TURN.acquire()
        self._working = True

    def end_work_turn(self) -> None:
        if self._working:
            self._working = False
            WORK_TURN.release()

    def _unwatched(self) -> bool:
        if self.idle_hold_s is None or not self.playing:
            return False
        idle = time.monotonic() - self._last_read
        if idle > IDLE_STOP_TIMES * self.idle_hold_s:
            self.stopped = True  # nobody came back (a lesson link's run the class has left): free the thread
        return idle > self.idle_hold_s

    # -- the page's side
    def wait_first(self, timeout: float) -> bool:
        """Wait at most `timeout` s for the first epoch to be published (the untrained model's features, a few
        ms after the start): a page that started a run shows that frame in the same rerun instead of a
        placeholder and one fragment tick later. True if it came."""
        with self._cond:
            return self._cond.wait_for(lambda: self.epoch >= 0 or self.stopped, timeout) and self.epoch >= 0

    def play(self) -> None:
        with self._cond:
            self.playing = True
            self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            self.playing = False

    def step(self, epochs: int = 1) -> None:
        with self._cond:
            self.playing, self.steps_left = False, self.steps_left + epochs
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self.stopped = True
            self._cond.notify_all()

    def set_speed(self, epochs_per_second: float | None) -> None:
        with self._cond:
            self.epochs_per_second = epochs_per_second

    def change(self, knob: str, value: Any) -> Change:
        """Ask for a knob change from the next epoch on; checked now by the trainer's `check` (one-line
        ValueError naming the value and the valid range), applied by the trainer at its next turn."""
        if self._check is None:
            raise ValueError(f"{knob!r} cannot change mid-run here: this run takes no knob changes")
        with self._cond:
            applied, epoch = list(self.applied), self.epoch
        checked = self._check(Change(max(epoch, 0), knob, value), applied)
        with self._cond:
            self._pending.append((checked.knob, checked.value))
            self._cond.notify_all()
        return checked

    def _complete(self) -> int:
        """How many epochs have all their entries: the trainer appends to the three lists while a page reads."""
        return min(len(v) for v in self._views)

    def latest(self) -> tuple[list[int], torch.Tensor | None, dict[str, torch.Tensor]]:
        """(epochs so far, the newest features (K, N, D), each metric's values so far (T, K))."""
        with self._cond:
            self._last_read = time.monotonic()
            epochs, snaps, logs = self._views
            n = self._complete()
            epochs, z, logs = list(epochs[:n]), (snaps[n - 1] if n else None), list(logs[:n])
        metrics = {k: torch.stack([m[k] for m in logs]) for k in (logs[0] if logs else {})}
        return epochs, z, metrics

    def frames_since(self, epoch: int, seed_index: int = 0, most: int = 24) -> list[tuple[int, torch.Tensor]]:
        """(epoch, features (N, D) of one seed) of the last `most` recorded epochs after `epoch`, oldest
        first: what a live view has not been sent yet."""
        with self._cond:
            self._last_read = time.monotonic()
            epochs, snaps, _ = self._views
            n = self._complete()
            first = n
            while first > 0 and epochs[first - 1] > epoch and n - first < most:
                first -= 1
            return [(epochs[i], snaps[i][min(seed_index, snaps[i].shape[0] - 1)]) for i in range(first, n)]


class LiveTraining:
    """One setting trained in a background thread under a `LiveControl`: `train(config, control)` runs the
    whole training (publishing every epoch, waiting its turn) and returns the run. `run` once it has ended
    (finished or stopped), `error` (one line) if it failed. threads: torch's threads in the training thread (1:
    a toy's tensors are tiny, and more would only contend with the server)."""

    def __init__(self, config, train: Callable[[Any, LiveControl], Any], playing: bool = True,
                 epochs_per_second: float | None = None, check: Check | None = None,
                 idle_hold_s: float | None = None, threads: int = 1):
        self.control = LiveControl(config, playing, epochs_per_second, check, idle_hold_s)
        self.config, self.run, self.error = config, None, None
        self.id = uuid.uuid4().hex[:12]  # names this run to a live view, which starts afresh on a new one
        self._train_fn, self._threads = train, threads
        self.thread = threading.Thread(target=self._train, name="lab-live", daemon=True)
        _LIVE.add(self)
        self.thread.start()

    def _train(self) -> None:
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(self._threads)
            self.run = self._train_fn(self.config, self.control)
        except Exception as e:  # shown on the page as one line; the thread must not die silently
            self.error = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
        finally:
            self.control.end_work_turn()
            torch.set_num_threads(threads)
            self.control.stop()

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def stop_token(self) -> "StopToken":
        return StopToken(self.control)


class StopToken:
    """Stops a run when the last reference to it goes. A page keeps one in its browser session's state beside
    the run: Streamlit drops a session's state a while after its tab closed (server.disconnectedSessionTTL),
    and a run left paused there would otherwise wait in its thread, model and frames held, for ever."""

    def __init__(self, control: LiveControl):
        weakref.finalize(self, control.stop)


_LIVE: "weakref.WeakSet[LiveTraining]" = weakref.WeakSet()


@atexit.register
def stop_live_trainings(timeout: float = 5.0) -> None:
    """Stop every live training and wait for its thread: a torch thread still running while the interpreter
    shuts down aborts the process ("terminate called without an active exception")."""
    for live in list(_LIVE):
        live.control.stop()
    for live in list(_LIVE):
        live.thread.join(timeout)
