"""SSL methods, one module each, found by name: `build_method("simsiam", {"predictor": False}, seeds, ...)`."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from lab.core.checks import field_kind, parse_text
from lab.methods import (  # noqa: F401
    barlow,
    byol,
    dino,
    invariance,
    simclr,
    simplified,
    simsiam,
    swav,
    triplet,
)
from lab.methods.base import REGISTRY, Method, config_fields

METHOD_NAMES = ("invariance", "simplified", "simsiam", "byol", "dino", "swav", "barlow", "simclr", "triplet")
assert set(METHOD_NAMES) == set(REGISTRY), "every method module must register, and be listed here"


def method_class(name: str) -> type[Method]:
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHOD_NAMES)}")
    return REGISTRY[name]


def method_config(name: str, params: Mapping[str, Any] | None = None):
    """The method's config with `params` applied; strings are parsed by field type. Unknown keys fail."""
    cls = method_class(name).Config
    fields = config_fields(cls)
    values = {}
    for key, value in (params or {}).items():
        if key not in fields:
            valid = ", ".join(fields) or "none"
            raise ValueError(f"unknown parameter {key!r} for {name}; valid: {valid}")
        values[key] = parse_text(key, field_kind(fields[key]), value) if isinstance(value, str) else value
    return cls(**values)


def pull_prediction(name: str, params: Mapping[str, Any] | None = None) -> tuple[str | None, str]:
    """What the paper predicts for the center pull of method `name` with knobs `params` (`Method.pull_prediction`)."""
    return method_class(name).pull_prediction(method_config(name, params))


def build_method(name: str, params: Mapping[str, Any] | None, seeds: Sequence[int], in_dim: int, dim: int,
                 hidden: int = 64, encoder=None) -> Method:
    return method_class(name)(method_config(name, params), list(seeds), in_dim, dim, hidden, encoder=encoder)


__all__ = ["METHOD_NAMES", "REGISTRY", "Method", "build_method", "method_class", "method_config", "pull_prediction"]
