"""`python -m lab.bench class`: a class on one server, measured at the server through Streamlit's own websocket
protocol (what a browser sends and receives, without a browser), against `streamlit run app.py` on localhost.

Why not twenty browsers: on this 2-core machine twenty headless chromium pages spend ~5× more CPU than the
server while they load (measured: 8 pages to their title, 11.6 s of browser CPU against 2.3 s of server CPU),
so a browser-only load test times the browsers. Each client here is one browser session as the server sees
it: it asks for a page with a query string, keeps the widget states it set, and reruns a fragment when the
server asks it to (`auto_rerun`), as the frontend does. tests/test_load_class.py drives real browsers too.

(a) `clients` sessions open one lesson link within `window_s`: each one's time to its first live frame (a
    live-view message carrying an epoch), the live runs they watch (one, `views.ui.shared_live`), then the time
    to the replay and the final ‖s‖ each is shown.
(b) `movers` fresh sessions each switch "Train live" on for its own setting, wait for its first frame, then
    move one knob (a new link in the same session, as a slider's rerun does): the time to the first frame
    after the move (the change named on a frame of the running model, or the first frame of a new run).
The server's memory (RSS with children) is read at the start and after each part.
"""
from __future__ import annotations

import json
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

import psutil
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

from lab.core.clitools import OneLineParser
from tools.bench.ui import streamlit_server

PAGE = "Method_playground"
LESSON = "method=simsiam&dataset=moons&seeds=3&lesson=1"
SETTING = "method=simsiam&dataset=moons&seeds=3"
LIVE_TOGGLE = "pg_live"  # the sidebar's "Train live" (its widget id ends with the key; on by default)
# (a knob, its new value): learning rates go to the running model, the rest start a new run. Interleaved, so
# that the first few movers already cover every kind.
MOVES = (("lr", "0.03"), ("epochs", "200"), ("lr", "0.1"), ("batch_size", "50"), ("lr", "0.01"), ("seeds", "2"),
         ("lr", "0.2"), ("epochs", "300"), ("batch_size", "150"), ("seeds", "4"))


@dataclass
class Frame:
    at: float  # monotonic time it arrived
    run: str
    epoch: int
    caption: str


@dataclass
class Session:
    """One browser session, as the server sees it, on its own websocket and reader thread."""

    url: str
    query: str
    widgets: dict = field(default_factory=dict)  # widget id -> bool, sent with every rerun
    frames: list = field(default_factory=list)
    metrics: list = field(default_factory=list)  # the st.metric values of the last full run
    errors: list = field(default_factory=list)
    widget_ids: dict = field(default_factory=dict)  # user key -> widget id, from the elements seen
    page_hash: str = ""

    def start(self) -> "Session":
        self.started = time.monotonic()
        self._ws = connect(self.url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                           max_size=None)
        self._send_lock, self._closed = threading.Lock(), threading.Event()
        self._fragments: dict[str, float] = {}  # fragment id -> interval, while the server wants reruns
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._auto_rerun, daemon=True).start()
        self.rerun()
        return self

    def rerun(self, fragment: str = "") -> None:
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string, cs.page_name = self.query, PAGE
        # The page's hash once the server has named it: a rerun the server starts itself (st.rerun) reuses the
        # last client state, and one without it would run the app's default page.
        cs.page_script_hash = self.page_hash
        for wid, value in self.widgets.items():
            state = cs.widget_states.widgets.add()
            state.id, state.bool_value = wid, value
        if fragment:
            cs.fragment_id, cs.is_auto_rerun = fragment, True
        with self._send_lock:
            if not self._closed.is_set():
                self._ws.send(msg.SerializeToString())

    def close(self) -> None:
        self._closed.set()
        self._ws.close()

    def _read(self) -> None:
        try:
            for raw in self._ws:
                self._handle(raw)
        except Exception as err:  # the socket closed under it, or the server went away
            if not self._closed.is_set():
                self.errors.append(f"{type(err).__name__}: {err}")

    def _handle(self, raw: bytes) -> None:
        msg = ForwardMsg()
        msg.ParseFromString(raw)
        kind = msg.WhichOneof("type")
        if kind == "auto_rerun":
            with self._lock:
                self._fragments[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
        elif kind == "stop_auto_rerun":
            with self._lock:
                for fid in msg.stop_auto_rerun.fragment_ids or list(self._fragments):
                    self._fragments.pop(fid, None)
        elif kind == "new_session":
            with self._lock:
                if not msg.metadata.run.fragment_ids:
                    self._fragments.clear()  # a full run sets up its fragments afresh
                    self.metrics = []
        elif kind == "page_info_changed":  # the page wrote its URL (st.query_params): a browser's address follows
            self.query = msg.page_info_changed.query_string
        elif kind == "navigation":  # the page st.navigation picked for our page_name
            self.page_hash = msg.navigation.page_script_hash or self.page_hash
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            self._element(msg.delta.new_element)

    def _element(self, el) -> None:
        what = el.WhichOneof("type")
        if what == "bidi_component":
            data = json.loads(el.bidi_component.json or "{}")
            for f in data.get("frames", []):
                self.frames.append(Frame(time.monotonic(), data.get("run", ""), int(f[0]), f[3]))
        elif what == "metric":
            self.metrics.append(el.metric.body)
        elif what == "exception":
            self.errors.append(el.exception.message.splitlines()[0] if el.exception.message else "exception")
        elif what == "alert" and el.alert.format == Alert.ERROR:  # st.error: e.g. a knob change the page refused
            self.errors.append(f"st.error: {el.alert.body.splitlines()[0] if el.alert.body else ''}")
        elif what in ("checkbox",) and el.checkbox.id:
            self.widget_ids[el.checkbox.id.rsplit("-", 1)[-1]] = el.checkbox.id

    def _auto_rerun(self) -> None:
        due: dict[str, float] = {}
        while not self._closed.is_set():
            now = time.monotonic()
            with self._lock:
                fragments = dict(self._fragments)
            for fid, interval in fragments.items():
                if due.setdefault(fid, now + interval) <= now:
                    due[fid] = now + interval
                    self.rerun(fid)
            time.sleep(0.02)


def wait(cond, hang_s: float, what: str) -> None:
    """Poll `cond` until it holds; `hang_s` only catches a hang (the bench prints the times it measures)."""
    deadline = time.monotonic() + hang_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def rss_mb(pid: int) -> float:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def summary(seconds) -> str:
    s = sorted(seconds)
    return f"median {s[len(s) // 2]:.2f} s, max {s[-1]:.2f} s ({', '.join(f'{t:.2f}' for t in seconds)})"


def with_knob(query: str, knob: str, value: str) -> str:
    q = dict(urllib.parse.parse_qsl(query))
    q[knob] = value
    return urllib.parse.urlencode(q)


def open_lesson(url: str, clients: int, window_s: float, hang_s: float) -> dict:
    """Part (a): `clients` sessions on the lesson link, spread evenly over `window_s`."""
    sessions = []
    for i in range(clients):
        sessions.append(Session(url, LESSON).start())
        if i < clients - 1:
            time.sleep(window_s / max(clients - 1, 1))
    wait(lambda: all(s.frames or s.metrics or s.errors for s in sessions), hang_s, "every first frame")
    first = [(s.frames[0].at if s.frames else time.monotonic()) - s.started for s in sessions]
    wait(lambda: all(len(s.metrics) >= 4 or s.errors for s in sessions), hang_s, "every replay")
    replay = [time.monotonic() - s.started for s in sessions]  # upper bounds: polled every 20 ms after the last
    out = {"first_frame_s": first, "replay_by_s": max(replay), "runs": sorted({f.run for s in sessions for f in
                                                                               s.frames[:1]}),
           "final_s": sorted({s.metrics[0] for s in sessions if s.metrics}),
           "errors": [e for s in sessions for e in s.errors]}
    for s in sessions:
        s.close()
    return out


def move_knobs(url: str, movers: int, hang_s: float) -> dict:
    """Part (b): each session trains its own setting live, then moves one knob."""
    sessions = [Session(url, SETTING).start() for _ in range(movers)]
    wait(lambda: all(LIVE_TOGGLE in s.widget_ids or s.errors for s in sessions), hang_s, "the pages")
    for s in sessions:
        s.widgets[s.widget_ids[LIVE_TOGGLE]] = True
        s.rerun()
    wait(lambda: all(s.frames or s.errors for s in sessions), hang_s, "every live run's first frame")
    marks, started = [], []
    for s, (knob, value) in zip(sessions, MOVES):
        marks.append((len(s.frames), s.frames[-1].run))
        s.query = with_knob(s.query, knob, value)
        started.append(time.monotonic())
        s.rerun()

    def moved(s, mark) -> Frame | None:
        n, run = mark
        return next((f for f in s.frames[n:] if f.run != run or " at epoch " in f.caption), None)

    try:
        wait(lambda: all(moved(s, m) or s.errors for s, m in zip(sessions, marks)), hang_s, "every move's frame")
    except TimeoutError as err:
        stuck = [f"{k}={v}: {len(s.frames) - m[0]} frames since, last {s.frames[-1]}, {len(s.metrics)} metrics"
                 for s, m, (k, v) in zip(sessions, marks, MOVES) if not moved(s, m)]
        raise TimeoutError(f"{err}: {'; '.join(stuck)}") from None
    after = [(moved(s, m).at if moved(s, m) else time.monotonic()) - t for s, m, t in zip(sessions, marks, started)]
    kinds = ["new run" if (f := moved(s, m)) and f.run != m[1] else "same run" for s, m in zip(sessions, marks)]
    out = {"moves": list(MOVES[:movers]), "first_frame_s": after, "kinds": kinds,
           "errors": [e for s in sessions for e in s.errors]}
    for s in sessions:
        s.close()
    return out


def run_class(url: str, pid: int, clients: int = 20, movers: int = 10, window_s: float = 5.0,
              hang_s: float = 600.0) -> dict:
    if not 0 <= movers <= len(MOVES):
        raise ValueError(f"movers must be in [0, {len(MOVES)}], got {movers}")
    rss = {"start": rss_mb(pid)}
    lesson = open_lesson(url, clients, window_s, hang_s)
    rss["after (a)"] = rss_mb(pid)
    knobs = move_knobs(url, movers, hang_s) if movers else None  # 0: the lesson link only
    if movers:
        rss["after (b)"] = rss_mb(pid)
    return {"lesson": lesson, "knobs": knobs, "rss_mb": rss}


def bench_class(clients: int = 20, movers: int = 10, window_s: float = 5.0) -> dict:
    with streamlit_server() as (url, proc):
        out = run_class(url, proc.pid, clients, movers, window_s)
    a, b = out["lesson"], out["knobs"]
    print(f"(a) {clients} sessions opened {LESSON} within {window_s:g} s; first live frame: "
          f"{summary(a['first_frame_s'])} (target 5 s); live runs watched: {len(a['runs'])}; every replay by "
          f"{a['replay_by_s']:.1f} s; final ‖s‖ shown: {', '.join(a['final_s'])}")
    print(f"(b) {movers} sessions training live moved {', '.join(f'{k}={v}' for k, v in b['moves'])}: first frame "
          f"after the move: {summary(b['first_frame_s'])} (target 2 s); {b['kinds'].count('new run')} new runs, "
          f"{b['kinds'].count('same run')} changes to the running model")
    print("server RSS (MiB, with children): " + ", ".join(f"{k} {v:.0f}" for k, v in out["rss_mb"].items()))
    for e in a["errors"] + b["errors"]:
        print(f"error: {e}")
    return out


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m tools.bench.classroom", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20, help="sessions on the lesson link")
    parser.add_argument("--movers", type=int, default=10, help=f"of them, how many move a knob (1-{len(MOVES)})")
    args = parser.parse_args(argv)
    if args.clients < 1 or not 1 <= args.movers <= len(MOVES):
        parser.error(f"--clients >= 1 and --movers in [1, {len(MOVES)}], got {args.clients} and {args.movers}")
    bench_class(args.clients, args.movers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
