"""Knob changes in the middle of a toy run: "turn stop-gradient off at epoch 120 and watch it collapse".

A change is (epoch, knob, value): after `epoch` epochs of training the knob takes `value`, from the next
step on, without a reset (`Method.change_knobs`; the optimizer's lr, SGD momentum and weight decay too).
Epoch 0 changes act before the first step. Text form, for links and the CLI (`--at`):
"120:stop_grad=false;200:lr=0.01". A run's changes are part of its config, so a link holds them and a
cached run is the same run.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NamedTuple, Sequence

from lab.core.checks import check_range, field_kind, parse_text
from lab.methods import method_class, method_config

# Training fields a run can change mid-way; the other ToyConfig fields shape the data or the model.
TRAIN_KNOBS = ("lr", "sgd_momentum", "weight_decay")


class Change(NamedTuple):
    epoch: int
    knob: str
    value: Any

    def text(self) -> str:
        value = str(self.value).lower() if isinstance(self.value, bool) else f"{self.value:g}" \
            if isinstance(self.value, float) else str(self.value)
        return f"{self.epoch}:{self.knob}={value}"


def _fields(method: str, train_fields: Mapping[str, dataclasses.Field]) -> dict[str, dataclasses.Field]:
    out = {name: train_fields[name] for name in TRAIN_KNOBS}
    out.update((f.name, f) for f in method_class(method).movable_knobs())
    return out


def parse_changes(items: str | Sequence[str] | Sequence[Change] | None, method: str, params: Mapping[str, Any],
                  epochs: int, train_fields: Mapping[str, dataclasses.Field]) -> tuple[Change, ...]:
    """Changes from text ("E:knob=value", several joined by ';' or given as a list) or Change tuples, checked:
    the epoch in [0, epochs), a knob that can change mid-run, a value in the knob's range (the whole setting
    after the change is checked as the method's config). Sorted by epoch, order kept within one. One-line
    ValueErrors name the bad part and what is valid."""
    if not items:
        return ()
    if isinstance(items, str):
        items = [part for part in items.replace(",", ";").split(";") if part.strip()]
    fields = _fields(method, train_fields)
    out, current = [], dict(params)
    for item in items:
        change = item if isinstance(item, Change) else _parse_one(str(item), fields)
        epoch, knob, value = change
        if knob not in fields:
            raise ValueError(f"{knob!r} cannot change mid-run for {method}; knobs that can: {', '.join(fields)}")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < epochs:
            raise ValueError(f"change {change.text()!r}: the epoch must be in [0, {epochs - 1}] (the run has "
                             f"{epochs} epochs), got {epoch!r}")
        value = parse_text(knob, field_kind(fields[knob]), value) if isinstance(value, str) else value
        bounds = fields[knob].metadata.get("range")
        if bounds is not None and field_kind(fields[knob]) is not bool:
            check_range(knob, value, bounds[0], bounds[1], low_open=bool(fields[knob].metadata.get("low_open")))
        if knob not in TRAIN_KNOBS:
            current[knob] = value
            method_config(method, current)  # the setting after the change is a valid one
        out.append(Change(epoch, knob, value))
    return tuple(sorted(out, key=lambda c: c.epoch))


def change_check(method: str, params: Mapping[str, Any], length: int,
                 train_fields: Mapping[str, dataclasses.Field]):
    """A live run's check (`lab.train.live.LiveControl`): a change is parsed against the method's knobs as they
    are now (`params` with the changes applied so far), in a run of `length` epochs or steps."""
    def check(change: Change, applied: Sequence[Change]) -> Change:
        now = {**dict(params), **{ch.knob: ch.value for ch in applied}}
        (checked,) = parse_changes([change], method, now, max(length, change.epoch + 1), train_fields)
        return checked
    return check


def _parse_one(text: str, fields: Mapping[str, dataclasses.Field]) -> Change:
    head, sep, rest = text.strip().partition(":")
    knob, eq, value = rest.partition("=")
    if not sep or not eq or not knob.strip():
        raise ValueError(f"a change reads EPOCH:KNOB=VALUE (e.g. 120:stop_grad=false), got {text.strip()!r}")
    try:
        epoch = int(head)
    except ValueError:
        raise ValueError(f"change {text.strip()!r}: the epoch must be a whole number, got {head!r}") from None
    return Change(epoch, knob.strip(), value.strip())


def changes_text(changes: Sequence[Change]) -> str:
    """The text form of changes (the URL's `at`, the CLI's --at values joined)."""
    return ";".join(c.text() for c in changes)


def change_caption(change: Change, method: str, unit: str = "epoch") -> str:
    """'stop-gradient off at epoch 120': a change in words, for a curve's marker and an animation frame
    (unit: what the change's count counts, "step" for a live Real images run)."""
    cls = method_class(method)
    f = next((f for f in dataclasses.fields(cls.Config) if f.name == change.knob), None)
    label = (f.metadata.get("label") if f is not None else None) or change.knob.replace("_", " ")
    if isinstance(change.value, bool):
        return f"{label} {'on' if change.value else 'off'} at {unit} {change.epoch}"
    return f"{label} → {change.value:g} at {unit} {change.epoch}"


def movable_differences(old, new) -> dict[str, Any] | None:
    """The knobs in which toy setting `new` differs from `old` where every one of them can change on the
    running model (method knobs that do not shape its layers; lr, SGD momentum, weight decay): {knob: new
    value}, {} when they are equal; None when anything else differs (another method, data set, seed count,
    epochs, a structural knob, the scheduled changes): then the setting needs a new run."""
    fields = _fields(old.method, type(old).__dataclass_fields__) if old.method == new.method else {}
    if not fields:
        return None
    out = {}
    for f in dataclasses.fields(old):
        a, b = getattr(old, f.name), getattr(new, f.name)
        if f.name == "params":
            pa, pb = dict(a), dict(b)
            for knob in set(pa) | set(pb):
                va = pa.get(knob, getattr(old.method_config, knob))
                vb = pb.get(knob, getattr(new.method_config, knob))
                if va != vb:
                    if knob not in fields:
                        return None
                    out[knob] = vb
        elif a != b:
            if f.name not in TRAIN_KNOBS:
                return None
            out[f.name] = b
    return out
