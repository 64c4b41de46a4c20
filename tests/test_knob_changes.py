"""Knobs changed on a running model (`Method.change_knobs`) act from the next step exactly as if the model had
been built with them: the loss reads them from its config every step. Parametrised over the registry."""
import dataclasses

import pytest
import torch

from lab.core.checks import field_kind
from lab.methods import METHOD_NAMES, build_method, method_class

IN_DIM, SEEDS = 2, [0, 1, 2]


def views(n=32):
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(len(SEEDS), n, IN_DIM, generator=g)
    return x1, x1 + 0.3 * torch.randn(len(SEEDS), n, IN_DIM, generator=g)


def other_value(f: dataclasses.Field, value):
    """A valid value of the knob other than `value`."""
    if field_kind(f) is bool:
        return not value
    stops = [s for s in f.metadata.get("stops", ()) if s != value]
    if stops:
        return stops[len(stops) // 2]
    lo, hi = f.metadata.get("range", (0, 1))
    return type(value)(min(hi, max(lo, value * 2 if value else 1)))


def movable(name):
    cls = method_class(name)
    return [f for f in dataclasses.fields(cls.Config)
            if f.name not in cls.structural_knobs and f.metadata.get("scale") != "imagenet"]


CASES = [(m, f.name) for m in METHOD_NAMES for f in movable(m)]


@pytest.mark.parametrize("method, knob", CASES)
def test_a_knob_changed_mid_run_acts_as_if_built_with_it(method, knob):
    f = next(f for f in dataclasses.fields(method_class(method).Config) if f.name == knob)
    running = build_method(method, None, SEEDS, IN_DIM, 3, 16)
    new = other_value(f, getattr(running.cfg, knob))
    running.change_knobs({knob: new})
    assert getattr(running.cfg, knob) == new
    fresh = build_method(method, {knob: new}, SEEDS, IN_DIM, 3, 16)
    fresh.load_state_dict(running.state_dict(), strict=False)  # a predictor turned off is only unused
    x1, x2 = views()
    out = []
    for model in (running, fresh):
        torch.manual_seed(1)
        loss = model.loss(x1, x2)[0]
        loss.sum().backward()  # a switch like stop_grad shows in the gradient, not in the loss
        out.append((loss.detach(), [p.grad.clone() for p in model.encoder.parameters()]))
    (a, ga), (b, gb) = out
    assert torch.allclose(a, b, atol=1e-6), (method, knob, new, a, b)
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(ga, gb)), (method, knob, new)


@pytest.mark.parametrize("method", [m for m in METHOD_NAMES if method_class(m).structural_knobs])
def test_a_structural_knob_cannot_change_mid_run(method):
    cls = method_class(method)
    model = build_method(method, None, SEEDS, IN_DIM, 3, 16)
    knob = cls.structural_knobs[0]
    f = next(f for f in dataclasses.fields(cls.Config) if f.name == knob)
    with pytest.raises(ValueError, match=f"{knob} cannot change mid-run"):
        model.change_knobs({knob: other_value(f, getattr(model.cfg, knob))})


def test_a_predictor_can_be_turned_off_mid_run_but_not_on_where_there_is_none():
    model = build_method("simsiam", None, SEEDS, IN_DIM, 3, 16)
    model.change_knobs({"predictor": False})
    assert model.active_predictor is None and model.predictor is not None
    model.change_knobs({"predictor": True})
    assert model.active_predictor is model.predictor
    bare = build_method("simsiam", {"predictor": False}, SEEDS, IN_DIM, 3, 16)
    with pytest.raises(ValueError, match="cannot be turned on mid-run"):
        bare.change_knobs({"predictor": True})


def test_a_bad_value_names_the_range():
    model = build_method("barlow", None, SEEDS, IN_DIM, 3, 16)
    with pytest.raises(ValueError, match=r"lam.*100"):
        model.change_knobs({"lam": -1.0})
