"""Streamlit glue shared by the toy pages (Method playground, Compare). No science here.

- `ToyForm`: the widgets of one toy setting, generated from the method's Config dataclass (bool → toggle,
  int/float → a slider over sensible stops, or a number box), plus the training knobs; the same
  setting read from and written to the page's URL query parameters, with one-line errors for bad values.
- `train_cached`: train settings once per server (an LRU store shared by sessions) with a progress bar.

URL scheme (one key per setting, values as text): `method`, `dataset`, each knob of the method under its
own name (`predictor=false`, `lam=-1`, `momentum=0.99`, ...), the training knobs `seeds`, `epochs`, `lr`,
`batch_size`, `dim`, `seed`, `sgd_momentum` (the optimizer's, to keep BYOL's `momentum` for the EMA),
`weight_decay`, `hidden`, and view settings the page adds. A form with a `url_prefix` (Compare's `a.`,
`b.`) reads and writes its keys with that prefix.
"""
from __future__ import annotations

import hmac
import ipaddress
import math
import os
import threading
from collections import OrderedDict
from functools import partial
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import streamlit as st

from lab.core.checks import field_kind, parse_text
from lab.data.toy import DATASET_LABELS, DATASETS
from lab.methods import METHOD_NAMES, method_class, method_config
from lab.render import live, video
from lab.train.toy import ToyConfig, ToyRun, train_toys

METHOD_LABELS = {name: method_class(name).label for name in METHOD_NAMES}

# The training knobs: (URL key = ToyConfig field, the page's own [low, high] or None); label, help and
# slider stops come from the field's metadata (lab.train.toy.ToyConfig). A field without stops is a number box.
TRAIN_SPECS = (("seeds", (1, 5)), ("epochs", (1, 2000)), ("lr", None), ("batch_size", None), ("dim", None),
               ("seed", None))
ADVANCED_SPECS = (("sgd_momentum", None), ("weight_decay", None), ("hidden", None))
RESERVED = ("lock", "lesson", "hide")


@dataclass(frozen=True)
class Param:
    """One setting: its URL key (`name`), widget, default and where it goes (`target`)."""

    name: str
    label: str
    kind: type
    default: Any
    target: str  # "method" | "dataset" | "knob:<field>" | "train:<field>" | "view"
    stops: tuple | None = None  # select_slider stops (or selectbox/radio options); None: a number box
    limits: tuple | None = None  # the page's own [low, high], beyond the config's checks
    help: str | None = None
    group: str = "setting"  # "setting" | "training" | "advanced" | "view"
    widget: str = "auto"  # "auto" | "selectbox" | "radio"
    format: Callable[[Any], str] | None = field(default=None, compare=False)
    # The options as a function of the values drawn before this one (e.g. which seed to show: < seeds).
    options_from: Callable[[Mapping[str, Any]], tuple] | None = field(default=None, compare=False)
    placeholder: str | None = None  # a text box's example

    def show(self, value: Any) -> str:
        return self.format(value) if self.format else fmt(value)


# Knob changes in the middle of the run (`lab.train.changes`): the URL's `at`, e.g. at=120:stop_grad=false
CHANGES = Param("at", "Knob changes mid-run", str, "", "train:changes", group="advanced",
                placeholder="e.g. 120:stop_grad=false; 200:lr=0.01",
                help="EPOCH:KNOB=VALUE, several joined by ';': after EPOCH epochs the knob takes VALUE, from the "
                     "next step, without a reset. Each change is marked on the curves and named in the animation.")


# ---------------------------------------------------------------- values as text


def _as_text(value: Any, words: tuple[str, str, str]) -> str:
    true, false, infinity = words
    if isinstance(value, bool):
        return true if value else false
    if isinstance(value, float):
        return infinity if math.isinf(value) and value > 0 else f"{value:.6g}"
    return str(value)


def fmt(value: Any) -> str:
    """A value as a person reads it: on/off, ∞."""
    return _as_text(value, ("on", "off", "∞"))


def encode(value: Any) -> str:
    """A value as URL text (`lab.core.checks.parse_text` reads it back): true/false, inf."""
    return _as_text(value, ("true", "false", "inf"))


def decode(p: Param, text: str) -> Any:
    """URL text -> the param's type (`lab.core.checks.parse_text`); ValueError naming the param and what it takes."""
    if p.kind is str and p.stops and text.strip() not in p.stops:
        raise ValueError(f"{p.name} takes one of {', '.join(map(str, p.stops))}")
    value = parse_text(p.name, p.kind, text)
    if p.kind is float and (math.isnan(value) or value == -math.inf):
        raise ValueError(f"{p.name} takes a finite number, got {text.strip()!r}")
    return value


# ---------------------------------------------------------------- the form


def method_params(method: str) -> list[Param]:
    """The method's knobs as Params, from its Config dataclass: label, help and slider stops come from each
    field's metadata (`lab.core.checks.knob`); knobs of the ImageNet recipes' schedules are left out."""
    out = []
    train_keys = {spec[0] for spec in TRAIN_SPECS + ADVANCED_SPECS}
    for f in method_class(method).toy_knobs():
        meta = f.metadata
        kind = field_kind(f)
        stops = None if kind is bool or meta.get("stops") is None else tuple(sorted(set(meta["stops"]) | {f.default}))
        url = f.name if f.name not in train_keys and f.name not in RESERVED else f"{method}_{f.name}"
        out.append(Param(url, meta.get("label", f.name.replace("_", " ").capitalize()), kind, f.default,
                         f"knob:{f.name}", stops, help=meta.get("help")))
    return out


def _train_param(spec, group: str, defaults: Mapping[str, Any]) -> Param:
    name, limits = spec
    f = ToyConfig.__dataclass_fields__[name]
    default = defaults.get(name, f.default)
    formatter = {"dim": lambda d: {2: "2 · circle", 3: "3 · sphere"}.get(d, str(d))}.get(name)
    stops = f.metadata.get("stops")
    if stops is not None:
        stops = tuple(sorted(set(stops) | {default}))
    return Param(name, f.metadata.get("label", name), type(f.default), default, f"train:{name}", stops, limits,
                 f.metadata.get("help"), group, format=formatter)


class ParamForm:
    """Widgets of a list of Params: one session-state key each (`{prefix}{name}`), one URL key each
    (`{url_prefix}{name}`); loaded from the URL with one-line errors, drawn, written back."""

    def __init__(self, prefix: str, params: Sequence[Param] = (), url_prefix: str = ""):
        self.prefix, self.url_prefix, self._params = prefix, url_prefix, list(params)

    def params(self, method: str | None = None) -> list[Param]:
        return self._params

    def key(self, p: Param, method: str = "") -> str:
        return f"{self.prefix}{p.name}"

    def load(self, query: Mapping[str, str]) -> list[str]:
        """Set every widget from the URL (absent keys: defaults); one-line errors for bad values."""
        errors: list[str] = []
        self.extra_stops.clear()
        for p in self.params():
            self._load_one(p, query.get(f"{self.url_prefix}{p.name}"), "", errors)
        return errors

    def widget(self, box, name: str, values: dict | None = None) -> Any:
        """Draw the param `name` into `box`; returns its value."""
        p = next(p for p in self.params() if p.name == name)
        return self._render_one(box, p, "", set(), False, {} if values is None else values)

    def query(self, values: Mapping[str, Any]) -> dict[str, str]:
        return {f"{self.url_prefix}{p.name}": encode(values[p.name]) for p in self.params() if p.name in values}

    # -------------------------------------------------------------- state
    @property
    def memory(self) -> dict:
        return st.session_state.setdefault(f"{self.prefix}memory", {})

    @property
    def extra_stops(self) -> dict:
        """Values loaded from a URL that are not slider stops: added to that slider's stops."""
        return st.session_state.setdefault(f"{self.prefix}extra_stops", {})

    def _set(self, key: str, value: Any) -> None:
        st.session_state[key] = value
        self.memory[key] = value

    def _load_one(self, p: Param, raw: str | None, method: str, errors: list[str]) -> Any:
        value = p.default
        if raw is not None:
            try:
                value = self._validate(p, decode(p, raw), method)
            except ValueError as err:
                errors.append(f"URL parameter `{self.url_prefix}{p.name}={raw}`: {err}; "
                              f"using the default {p.show(p.default)}.")
                value = p.default
        key = self.key(p, method)
        self._set(key, value)
        if p.stops and p.kind is not str and value not in p.stops:
            self.extra_stops[key] = value
        return value

    def _validate(self, p: Param, value: Any, method: str) -> Any:
        if p.kind is str and p.stops and value not in p.stops:
            raise ValueError(f"{p.name} takes one of {', '.join(map(str, p.stops))}")
        if p.limits and not (p.limits[0] <= value <= p.limits[1]):
            raise ValueError(f"{p.name} must be in [{p.limits[0]}, {p.limits[1]}] here, got {fmt(value)}")
        if p.target.startswith("knob:"):
            method_config(method, {p.target[5:]: value})
        elif p.target.startswith("train:"):
            ToyConfig(method=method, **{p.target[6:]: value})
        elif p.target == "view" and p.stops and not p.limits and value not in p.stops:
            raise ValueError(f"{p.name} takes one of {', '.join(map(fmt, p.stops))}")
        return value

    def _render_one(self, box, p: Param, method: str, locked: set, hidden: bool, values: dict) -> Any:
        key = self.key(p, method)
        if key not in st.session_state:
            st.session_state[key] = self.memory.get(key, p.default)
        if hidden or p.name in locked or "all" in locked:
            value = self.memory.get(key, st.session_state[key])
            if not hidden:
                box.markdown(f"🔒 {p.label}: **{p.show(value)}**", help="Fixed by this link.")
            values[p.name] = value
            return value
        kw = dict(key=key, help=p.help)
        if p.kind is bool:
            value = box.toggle(p.label, **kw)
        elif p.widget == "selectbox":
            value = box.selectbox(p.label, p.stops, format_func=p.show, **kw)
        elif p.widget == "radio":
            stops = p.options_from(values) if p.options_from else p.stops
            if st.session_state[key] not in stops:
                st.session_state[key] = stops[0]
            value = box.radio(p.label, stops, format_func=p.show, horizontal=True, **kw)
        elif p.stops:
            stops = p.stops
            extra = self.extra_stops.get(key)
            if extra is not None:
                stops = tuple(sorted(set(stops) | {extra}))
            if st.session_state[key] not in stops:  # e.g. a value typed into an earlier version of the page
                st.session_state[key] = p.default
            value = box.select_slider(p.label, stops, format_func=p.show, **kw)
        elif p.kind is str:
            value = box.text_input(p.label, placeholder=p.placeholder, **kw).strip()
        elif p.kind is int:
            value = box.number_input(p.label, min_value=0, step=1, **kw)
        else:
            value = box.number_input(p.label, step=0.01, format="%g", **kw)
        self.memory[key] = value
        values[p.name] = value
        return value


class ToyForm(ParamForm):
    """The widgets of one toy setting; `prefix` makes widget keys unique (`pg_` → `pg_lr`,
    `pg_simsiam_predictor`), `url_prefix` the URL keys (`a.` → `a.lr`).

    Widget keys: {prefix}method, {prefix}dataset, {prefix}{method}_{knob}, {prefix}{url key} for training
    and view params. Values live in session state under those keys; `{prefix}memory` keeps every value
    last shown (a knob of a method not on screen, a locked control), since Streamlit drops the state
    of widgets that are not drawn.
    """

    def __init__(self, prefix: str, url_prefix: str = "", defaults: Mapping[str, Any] | None = None,
                 view: Sequence[Param] = (), advanced: bool = True, method: str = "simsiam",
                 dataset: str = "blobs"):
        self.prefix, self.url_prefix = prefix, url_prefix
        self.defaults = dict(defaults or {})
        self.method_param = Param("method", "Method", str, self.defaults.get("method", method), "method",
                                  METHOD_NAMES, widget="selectbox", format=lambda m: METHOD_LABELS.get(m, m))
        self.dataset_param = Param("dataset", "Dataset", str, self.defaults.get("dataset", dataset), "dataset",
                                   tuple(DATASETS), widget="selectbox",
                                   format=lambda d: DATASET_LABELS.get(d, d))
        self.train = [_train_param(s, "training", self.defaults) for s in TRAIN_SPECS]
        self.advanced = [_train_param(s, "advanced", self.defaults) for s in ADVANCED_SPECS] + [CHANGES] \
            if advanced else []
        self.view = list(view)

    def key(self, p: Param, method: str) -> str:
        if p.target in ("method", "dataset"):
            return f"{self.prefix}{p.target}"
        if p.target.startswith("knob:"):
            return f"{self.prefix}{method}_{p.target[5:]}"
        return f"{self.prefix}{p.name}"

    def current_method(self) -> str:
        key = self.key(self.method_param, "")
        return st.session_state.get(key, self.memory.get(key, self.method_param.default))

    def params(self, method: str) -> list[Param]:
        return [self.method_param, self.dataset_param] + method_params(method) + self.train + self.advanced + self.view

    # -------------------------------------------------------------- URL -> state
    def load(self, query: Mapping[str, str]) -> list[str]:
        """Set every widget from the URL (absent keys: defaults). Returns one-line errors for bad values;
        a bad value falls back to the default."""
        q = {k[len(self.url_prefix):]: v for k, v in query.items() if k.startswith(self.url_prefix)}
        errors: list[str] = []
        self.extra_stops.clear()
        method = self._load_one(self.method_param, q.get("method"), "", errors)
        ps = self.params(method)
        known = {p.name for p in ps}
        for name in q:
            if name not in known and (self.url_prefix or name not in RESERVED):
                valid = ", ".join(sorted(known))
                errors.append(f"Unknown URL parameter `{self.url_prefix}{name}` for {method}; valid: {valid}.")
        loaded = {"method": method}
        for p in ps[1:]:
            loaded[p.name] = self._load_one(p, q.get(p.name), method, errors)
            if p.options_from and loaded[p.name] not in p.options_from(loaded):
                options = p.options_from(loaded)
                errors.append(f"URL parameter `{self.url_prefix}{p.name}={q.get(p.name)}`: {p.name} takes one of "
                              f"{', '.join(map(fmt, options))} here; using {p.show(options[0])}.")
                loaded[p.name] = options[0]
                self._set(self.key(p, method), options[0])
        return errors

    # -------------------------------------------------------------- widgets
    def render(self, box, locked: Iterable[str] = (), hidden: bool = False, groups: Sequence[str] | None = None,
               method: str | None = None) -> dict[str, Any]:
        """Draw the widgets into `box` (the sidebar, a column). locked: URL keys shown as text, not widgets
        ("all" locks all); hidden: draw nothing. Returns {URL key: value} for every param."""
        locked = set(locked)
        values: dict[str, Any] = {}
        method = self._render_one(box, self.method_param, "", locked, hidden, values) if method is None else method
        values["method"] = method
        heads = {"training": "Training", "advanced": None, "view": "View"}
        adv = None
        for p in self.params(method)[1:]:
            if groups is not None and p.group not in groups:
                values[p.name] = self.memory.get(self.key(p, method), p.default)
                continue
            target = box
            if p.group == "advanced":
                if adv is None and not hidden:
                    adv = box.expander("Optimizer details")
                target = adv
            elif p.group in heads and heads[p.group] and not hidden:
                box.markdown(f"**{heads.pop(p.group)}**")
            self._render_one(target, p, method, locked, hidden, values)
        return values

    # -------------------------------------------------------------- state -> config, URL
    def config(self, values: Mapping[str, Any]) -> ToyConfig:
        """ValueError (one line, from ToyConfig) if the combination is invalid."""
        method = values["method"]
        knobs = {p.target[5:]: values[p.name] for p in method_params(method)}
        train = {p.target[6:]: values[p.name] for p in self.train + self.advanced}
        return ToyConfig(method=method, dataset=values["dataset"], params=tuple(knobs.items()), **train)

    def query(self, values: Mapping[str, Any]) -> dict[str, str]:
        """{URL key: text} of the whole setting (every param, so a link survives changed defaults)."""
        names = [p.name for p in self.params(values["method"])]
        return {f"{self.url_prefix}{n}": encode(values[n]) for n in names if n in values}

    def summary(self, values: Mapping[str, Any], names: Iterable[str] | None = None) -> str:
        """One line: 'SimSiam on moons · Predictor off · Learning rate 0.03 · …' (all or the given params)."""
        ps = {p.name: p for p in self.params(values["method"])}
        head = f"{METHOD_LABELS.get(values['method'], values['method'])} on {values['dataset']}"
        rest = [f"{ps[n].label} {ps[n].show(values[n])}" for n in (names or ps) if n in ps
                and n not in ("method", "dataset")]
        return " · ".join([head] + rest)


def sync_url(forms_load: Callable[[Mapping[str, str]], list[str]], state_key: str) -> list[str]:
    """Load the page from its URL when the URL is new to this session (first visit, a pasted or
    clicked link); not after our own writes. Returns the load's errors (shown once)."""
    query = {k: st.query_params[k] for k in st.query_params}
    if st.session_state.get(state_key) == query or _key(query) in _written(state_key):
        # Our own write, or an older one of ours that a request sent before the browser had the newest (a
        # fragment rerunning ten times a second can): loading it would undo what the page did since.
        return []
    errors = forms_load(query)
    st.session_state[state_key] = query
    return errors


URL_HISTORY = 64  # our own recent writes, by page


def _key(query: Mapping[str, str]) -> tuple:
    return tuple(sorted(query.items()))


def _written(state_key: str) -> list:
    return st.session_state.setdefault(f"{state_key}_written", [])


def write_url(query: Mapping[str, str], state_key: str) -> None:
    """Replace the URL's query with `query` (no rerun), remembering it as our own."""
    query = dict(query)
    current = {k: st.query_params[k] for k in st.query_params}
    if current != query:
        st.query_params.from_dict(query)
    st.session_state[state_key] = query
    written = _written(state_key)
    if _key(query) not in written:
        written.append(_key(query))
        del written[:-URL_HISTORY]


def parse_lock(query: Mapping[str, str], known: Iterable[str]) -> tuple[set[str], bool, list[str]]:
    """lock=a,b (or all), lesson=1 / hide=all -> (locked URL keys, lesson view, errors)."""
    errors = []
    known = set(known)
    locked = {x.strip() for x in query.get("lock", "").split(",") if x.strip()}
    bad = sorted(locked - known - {"all"})
    if bad:
        errors.append(f"URL parameter `lock`: unknown control(s) {', '.join(bad)}; valid: all, "
                      f"{', '.join(sorted(known))}.")
        locked -= set(bad)
    lesson = query.get("lesson", "").strip().lower() in ("1", "true", "yes", "on")
    hide = query.get("hide", "").strip().lower()
    if hide == "all":
        lesson = True
    elif hide:
        errors.append(f"URL parameter `hide={hide}`: takes all (the same as lesson=1).")
    return locked, lesson, errors


# ---------------------------------------------------------------- training, cached per server

_LOCK = threading.Lock()
STORE_SIZE = 64
# Keys some session is making right now -> an Event set when it is done (stored, or failed). A second
# session asking for the same key waits for it instead of making its own copy: a class opening one lesson
# link at once trains that setting once.
_MAKING: dict[Any, threading.Event] = {}
WAIT_S = 600.0  # a maker that takes longer than this is not waited for: the waiter makes its own
_MISSING = object()


@st.cache_resource(show_spinner=False)
def _store() -> OrderedDict:
    """Runs and figures by key, shared by every session of this server (least recently used dropped)."""
    return OrderedDict()


def _put(key: Any, value: Any) -> None:
    store = _store()
    with _LOCK:
        store[key] = value
        store.move_to_end(key)
        while len(store) > STORE_SIZE:
            store.popitem(last=False)


def _claim(keys: Sequence[Any]) -> tuple[dict, list, dict]:
    """Under the lock: (what is stored, the keys this caller must make — now marked as being made —, and
    {key: Event} of those another caller is making)."""
    store = _store()
    found, mine, others = {}, [], {}
    with _LOCK:
        for key in dict.fromkeys(keys):
            if key in store:
                store.move_to_end(key)
                found[key] = store[key]
            elif key in _MAKING:
                others[key] = _MAKING[key]
            else:
                _MAKING[key] = threading.Event()
                mine.append(key)
    return found, mine, others


def _release(keys: Sequence[Any]) -> None:
    with _LOCK:
        for key in keys:
            event = _MAKING.pop(key, None)
            if event is not None:
                event.set()


def _make_once(keys: Sequence[Any], make: Callable[[list], list], on_wait: Callable[[], None] | None = None) -> list:
    """The values of `keys`, each made at most once on this server at a time: stored ones are reused, those
    another session is making are waited for, the rest made here by make(missing keys) -> their values."""
    found, mine, others = _claim(keys)
    try:
        if mine:
            for key, value in zip(mine, make(mine)):
                _put(key, value)
                found[key] = value
    finally:
        _release(mine)
    if others and on_wait:
        on_wait()
    for key, event in others.items():
        event.wait(WAIT_S)
        with _LOCK:
            value = _store().get(key, _MISSING)
        found[key] = make([key])[0] if value is _MISSING else value  # the other maker failed, or was evicted
        if value is _MISSING:
            _put(key, found[key])
    return [found[key] if key in found else make([key])[0] for key in keys]


def memo(key: Any, make: Callable[[], Any]) -> Any:
    """The value stored under `key`, made once per server (a concurrent request for it waits)."""
    return _make_once([key], lambda keys: [make()])[0]


def shared_live(key: Any, start: Callable[[], Any]) -> Any:
    """One live training per key for every session of this server, started by the first session to ask: a class
    opening one lesson link watches one run train, each browser from the epoch it arrived at. Kept in the store
    (least recently used dropped; one that is dropped while it trains runs on to its end for whoever holds it)."""
    return memo(("live", key), start)


def train_cached(configs: Sequence[ToyConfig], label: str = "Training") -> list[ToyRun]:
    """Train the settings not trained yet on this server (stacked by `train_toys`), with a progress bar. A
    setting another browser is training right now is waited for, not trained twice."""
    bar = None

    def train(keys: list) -> list[ToyRun]:
        nonlocal bar
        bar = bar or st.progress(0.0, text=f"{label}…")
        shown = [-1]

        def tick(done: int, total: int) -> None:
            pct = int(100 * done / max(total, 1))
            if pct != shown[0]:  # one message per percent, not per epoch
                shown[0] = pct
                bar.progress(pct / 100, text=f"{label}… epoch {done} of {total}")

        return train_toys([key[1] for key in keys], tick)

    def waiting() -> None:
        nonlocal bar
        bar = bar or st.progress(0.0, text=f"{label}…")
        bar.progress(0.0, text=f"{label}: the same setting is training for another browser; waiting for it…")

    try:
        return _make_once([("run", c) for c in configs], train, waiting)
    finally:
        if bar is not None:
            bar.empty()


# ---------------------------------------------------------------- who may launch and stop runs

CONTROL_TOKEN_ENV = "LAB_CONTROL_TOKEN"


def _is_local(ip: str | None) -> bool:
    """Streamlit gives no address (None) for a browser on this machine, else the connection's peer address
    as text. Anything else is not a connection's (the headless AppTest's stand-in) and counts as local."""
    if not isinstance(ip, str):
        return True
    try:
        return ipaddress.ip_address(ip.split("%")[0]).is_loopback
    except ValueError:
        return False


def controls_allowed(ip: str | None, given_token: str | None, token: str | None) -> tuple[bool, str]:
    """Whether a browser at `ip` may use the Runs page's launch, stop and data-folder controls: from this
    machine always; from anywhere else only when the operator set a token (`LAB_CONTROL_TOKEN`) and the
    browser gave the same (`?token=...`). Returns (allowed, the one line the page shows when it is not)."""
    if _is_local(ip):
        return True, ""
    if token and given_token and hmac.compare_digest(token.encode(), given_token.encode()):
        return True, ""
    how = (f"the operator started the app with {CONTROL_TOKEN_ENV} set; open this page with ?token=<that value>"
           if token else f"the operator can start the app with {CONTROL_TOKEN_ENV}=<a secret> and share "
                         "?token=<the secret> with whoever may launch")
    return False, (f"Launch, stop, resume and data-folder controls are off: this page is reached from {ip}, not "
                   f"from the machine it runs on ({how}). Watching runs works as usual.")


def page_controls_allowed() -> tuple[bool, str]:
    """`controls_allowed` for the current browser; a token once given stays with the session."""
    given = st.query_params.get("token") or st.session_state.get("_control_token")
    allowed, why = controls_allowed(st.context.ip_address, given, os.environ.get(CONTROL_TOKEN_ENV) or None)
    if allowed and given:
        st.session_state["_control_token"] = given
    return allowed, why


# ---------------------------------------------------------------- export for talks


def talk_export(key: str, stem: str, make, size: int, size_label: str = "Size (px)") -> None:
    """The "Export for a talk" expander: format, size, fps or duration, and a download button that encodes only
    when clicked. make(fmt, size, fps, duration_s) -> bytes. A bad value: one line of st.error, no button."""
    with st.expander("Export for a talk"):
        cols = st.columns(3)
        fmt = cols[0].radio("Format", ["MP4", "GIF"], key=f"{key}_fmt", horizontal=True).lower()
        px = cols[1].number_input(size_label, value=size, step=40, key=f"{key}_size",
                                  help=f"{video.SIZE_RANGE[0]} … {video.SIZE_RANGE[1]} pixels a side")
        timing = cols[2].radio("Timing", ["fps", "duration"], key=f"{key}_timing", horizontal=True)
        if timing == "fps":
            fps, duration = st.number_input("Frames per second", value=12.0, step=1.0, key=f"{key}_fps",
                                            help=f"{video.FPS_RANGE[0]} … {video.FPS_RANGE[1]}"), None
        else:
            fps, duration = None, st.number_input("Duration (s)", value=10.0, step=1.0, key=f"{key}_duration",
                                                  help=f"{video.DURATION_RANGE[0]} … {video.DURATION_RANGE[1]} s; "
                                                       "the fps follows (frames dropped or repeated at the ends)")
        try:
            video.check_size(px)
            video.check_export_args(fmt, fps, duration)
        except ValueError as err:
            st.error(f"Cannot export: {str(err).splitlines()[0]}")
            return
        st.download_button(f"Download as {fmt.upper()}", key=f"{key}_download", file_name=video.file_name(stem, fmt),
                           data=partial(make, fmt, int(px), fps, duration), mime=video.MIME[fmt],
                           on_click="ignore", icon=":material/download:")



_LIVE_VIEW = st.components.v2.component("lab_live_view", js=live.SCRIPT.read_text(encoding="utf-8"),
                                        isolate_styles=False)


def live_view(payload: dict, key: str) -> None:
    """The canvas view of a run that is training (`lab.render.live`): mounted once under `key`, then each
    rerun hands it the epochs trained since the last one, which it plays at the run's pace."""
    _LIVE_VIEW(data=payload, key=key)


LIVE_SPEEDS = {"10 epochs/s": 10.0, "25 epochs/s": 25.0, "50 epochs/s": 50.0, "as fast as it trains": None}
LIVE_SPEED_DEFAULT = "25 epochs/s"
# The live view's refresh. A fragment reruns about 6 times a second at best here whatever this says
# (shorter asked for fewer); each rerun carries every epoch since the last, which the view plays at pace.
LIVE_TICK_S = 0.1
# A run many browsers watch (a lesson link): each reruns less often, so that twenty of them leave the server time
# to train; the view still plays every epoch at the run's pace from what each rerun brings.
SHARED_TICK_S = 0.5


# A run no page has read for this long holds (a closed or long-hidden tab; a hidden one still reads once a
# second), and resumes when one reads it again: the server's cores go to the runs someone watches.
LIVE_IDLE_HOLD_S = 5.0
# A new run publishes the untrained model's features within milliseconds: the rerun that started it waits this
# long at most for them, so that the first picture comes with that rerun, not one fragment tick later.
LIVE_FIRST_WAIT_S = 0.5


def keep_live(key: str, live) -> Any:
    """This session's live run under st.session_state[key] (the one there before is stopped), with a token that
    stops it when the session ends, its first frame waited for (LIVE_FIRST_WAIT_S at most). Returns live."""
    old = st.session_state.get(key)
    if old is not None and old is not live:
        old.control.stop()
    st.session_state[key], st.session_state[f"{key}_token"] = live, live.stop_token()
    live.control.wait_first(LIVE_FIRST_WAIT_S)
    return live


def live_speed(prefix: str, speeds: Mapping[str, float | None] = LIVE_SPEEDS, default: str = LIVE_SPEED_DEFAULT
               ) -> float | None:
    return speeds.get(st.session_state.get(f"{prefix}live_speed", default), speeds[default])


def live_panel(live, prefix: str, payload: Callable[[list, list, dict], dict], seed_index: int = 0,
               shared: bool = False, unit: str = "epoch", speeds: Mapping[str, float | None] = LIVE_SPEEDS,
               speed_default: str = LIVE_SPEED_DEFAULT) -> None:
    """▶/❚❚, one epoch, reset and speed (widget keys `{prefix}live_play` …), then the live view of `live`
    (a `lab.train.live.LiveTraining`), rerun every LIVE_TICK_S while the run plays and not at all once it is
    paused or done; at its end the whole page reruns (for the replay). payload(frames, epochs, metrics)
    builds the view's data (`lab.render.live.live_payload`) from the frames not yet sent to this browser.
    Reset drops st.session_state[f"{prefix}live"]. shared: a run other browsers watch too (`shared_live`):
    no controls (one student's pause would pause the class), reruns every SHARED_TICK_S. unit: what the run
    counts ("step" for a live Real images run); speeds: the speed slider's {label: units a second, None: as
    fast as it trains}."""
    ctl = live.control
    if shared:
        _live_fragment(live, prefix, payload, seed_index, SHARED_TICK_S)
        return
    cols = st.columns([1, 1, 1, 2], vertical_alignment="bottom")
    if cols[0].button("❚❚ Pause" if ctl.playing else "▶ Play", key=f"{prefix}live_play"):
        ctl.pause() if ctl.playing else ctl.play()
        st.rerun()
    if cols[1].button(f"+1 {unit}", key=f"{prefix}live_step", help=f"Pause, then train one more {unit}."):
        ctl.step()
    if cols[2].button("Reset", key=f"{prefix}live_reset", help="Start this setting again from epoch 0."):
        ctl.stop()
        st.session_state[f"{prefix}live"] = None
        st.rerun()
    if st.session_state.get(f"{prefix}live_speed") not in speeds:
        st.session_state[f"{prefix}live_speed"] = speed_default
    cols[3].select_slider("Speed", list(speeds), key=f"{prefix}live_speed")
    ctl.set_speed(live_speed(prefix, speeds, speed_default))
    _live_fragment(live, prefix, payload, seed_index, LIVE_TICK_S)


def _live_fragment(live, prefix: str, payload: Callable[[list, list, dict], dict], seed_index: int,
                   tick_s: float) -> None:
    ctl = live.control
    if live.error:
        st.error(f"Training failed: {live.error}")
        return

    @st.fragment(run_every=tick_s if ctl.playing or ctl.steps_left else None)
    def view() -> None:
        if live.done:
            st.rerun()  # the whole page: the finished run's replay, curves and export
        epochs, _, metrics = ctl.latest()
        sent = st.session_state.get(f"{prefix}live_sent")
        after = sent[1] if sent and sent[0] == live.id else -1
        # Nothing new (paused): the newest frame again, so that a view mounted afresh has one to show.
        frames = ctl.frames_since(after, seed_index) or ctl.frames_since(epochs[-1] - 1 if epochs else -1,
                                                                         seed_index, most=1)
        try:
            data = payload(frames, epochs, metrics)
        except Exception as err:  # never a traceback on the page: one line; the next rerun tries again
            st.error(f"Live view: {type(err).__name__}: {(str(err).splitlines() or [''])[0]}")
            return
        if epochs:
            st.session_state[f"{prefix}live_sent"] = (live.id, epochs[-1])
        live_view(data, key=f"{prefix}live_frame")

    view()
