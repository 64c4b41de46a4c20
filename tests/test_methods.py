"""The SSL methods registry: every method (parametrised over METHOD_NAMES), every knob, the pure losses."""
import copy
import dataclasses
import math

import pytest
import torch

from lab.core import geometry as geo
from lab.core.checks import field_kind
from lab.engine.recipes import RECIPES
from lab.methods import METHOD_NAMES, REGISTRY, build_method, method_class, method_config
from lab.methods.barlow import barlow_loss, batch_standardize
from lab.methods.base import negative_cosine, squared_distance
from lab.methods.dino import dino_loss
from lab.methods.simclr import info_nce
from lab.methods.simplified import simplified_loss
from lab.methods import swav as swav_module
from lab.methods.swav import sinkhorn, swav_loss
from lab.methods.triplet import triplet_loss
from lab.train.toy import ToyConfig, toy_config, train_toy

SEEDS = [0, 1, 2]
IN_DIM = 2


def views(k=3, n=32, d=IN_DIM, seed=0):
    """Two correlated views (K, N, d): the second a small perturbation of the first."""
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(k, n, d, generator=g)
    return x1, x1 + 0.3 * torch.randn(k, n, d, generator=g)


def build(name, params=None, seeds=SEEDS, dim=2, hidden=16):
    return build_method(name, params, seeds, IN_DIM, dim, hidden)


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def loss_and_grads(model, x1, x2):
    model.zero_grad(set_to_none=True)
    loss, logs = model.loss(x1, x2)
    loss.sum().backward()
    return loss.detach(), grads(model)


def sgd_steps(model, n_steps=3, lr=0.1, seed=0):
    opt = torch.optim.SGD(model.param_groups(lr), lr=lr, momentum=0.9, weight_decay=1e-4)
    for i in range(n_steps):
        x1, x2 = views(k=model.k, seed=seed + i)
        loss, _ = model.loss(x1, x2)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        model.after_step((i + 1) / n_steps)


# ---------------------------------------------------------------- every method: shapes, finiteness, seeds


def test_registry_lists_every_method():
    assert set(METHOD_NAMES) == set(REGISTRY)
    assert {"invariance", "simplified", "simsiam", "byol", "dino", "swav", "barlow", "simclr",
            "triplet"} <= set(METHOD_NAMES)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_loss_is_finite_per_seed_and_every_trainable_param_gets_a_finite_grad(name):
    model = build(name)
    x1, x2 = views()
    loss, logs = model.loss(x1, x2)
    assert loss.shape == (3,)
    assert torch.isfinite(loss).all()
    for key, value in logs.items():
        assert value.shape == (3,), key
    loss.sum().backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for n, p in trainable:
        assert p.grad is not None, f"{name}: no gradient reaches {n}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {n}"
    assert any(p.grad.abs().sum() > 0 for _, p in trainable)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("name", METHOD_NAMES)
def test_embed_gives_unit_vectors(name, dim):
    model = build(name, dim=dim)
    x = torch.randn(3, 40, IN_DIM, generator=torch.Generator().manual_seed(1))
    z = model.embed(x)
    assert z.shape == (3, 40, dim)
    assert torch.allclose(z.norm(dim=-1), torch.ones(3, 40), atol=1e-5)
    assert not z.requires_grad


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_extra_metrics_are_per_seed(name):
    model = build(name)
    for key, value in model.extra_metrics(views()[0]).items():
        assert value.shape == (3,), key
        assert torch.isfinite(value).all(), key


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_seeds_are_independent(name):
    # Fresh models each time: some losses update state (DINO's center), so both calls must start equal.
    x1, x2 = views()
    loss_a, grads_a = loss_and_grads(build(name), x1, x2)
    y1, y2 = x1.clone(), x2.clone()
    y1[1] = torch.randn(y1[1].shape, generator=torch.Generator().manual_seed(7)) * 3
    y2[1] = y1[1].flip(0)
    loss_b, grads_b = loss_and_grads(build(name), y1, y2)
    assert loss_b[1] != loss_a[1]  # seed 1 did see new inputs
    assert torch.allclose(loss_a[[0, 2]], loss_b[[0, 2]], atol=1e-6)
    assert grads_a.keys() == grads_b.keys()
    for key in grads_a:
        assert grads_a[key].shape[0] == 3, f"{key} has no leading seed dimension"
        assert torch.allclose(grads_a[key][[0, 2]], grads_b[key][[0, 2]], atol=1e-6), key
        # (seed 1's grads may legitimately coincide for some parameters, e.g. when a ReLU is dead)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_a_seed_does_not_depend_on_its_neighbours(name):
    a, b = build(name, seeds=[0, 1]), build(name, seeds=[0, 9])
    for (key, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa[0], pb[0]), key
    assert any(not torch.equal(pa[1], pb[1]) for pa, pb in zip(a.parameters(), b.parameters()))


# DINO's loss is a cross-entropy to a moving target: centering raises the teacher's entropy from the
# near-collapsed random start (the mean teacher entropy rises towards ln K over training), so with the
# defaults the loss rises (blobs, D = 3: about 1.9 -> 2.3 over 250 epochs, never below its epoch-0 value).
# What must fall is the student's loss against a fixed teacher: teacher frozen, no centering.
FALL_PARAMS = {"dino": (("teacher_momentum", 1.0), ("centering", False))}


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_loss_falls_on_toy_data(name):
    # 2 seeds × 30 epochs × 6 steps with the current defaults. The epoch-0 value is the loss of the
    # untrained model on one batch; the last is the mean over the last epoch's batches.
    run = train_toy(ToyConfig(method=name, dataset="blobs", seeds=2, epochs=30, params=FALL_PARAMS.get(name, ())))
    loss = run.metrics["loss"]  # (T, K)
    assert run.diverged is None
    assert torch.isfinite(loss).all()
    assert run.epochs[0] == 0 and run.epochs[-1] == 30
    assert loss[-1].mean() < loss[0].mean(), f"{name}: loss {loss[0].tolist()} -> {loss[-1].tolist()}"


def test_dino_loss_with_the_defaults_stays_below_its_uniform_value():
    run = train_toy(ToyConfig(method="dino", dataset="blobs", seeds=2, epochs=30))
    loss, n_protos = run.metrics["loss"], run.config.method_config.n_prototypes
    assert run.diverged is None and torch.isfinite(loss).all()
    assert torch.all(loss[-1] < math.log(n_protos) - 0.5)  # ln K: every teacher output uniform


# ---------------------------------------------------------------- knobs: simsiam


def test_simsiam_without_predictor_has_no_predictor_parameters():
    with_p, without = build("simsiam"), build("simsiam", {"predictor": False})
    assert any(n.startswith("predictor") for n, _ in with_p.named_parameters())
    assert not any(n.startswith("predictor") for n, _ in without.named_parameters())
    assert sum(p.numel() for p in without.parameters()) < sum(p.numel() for p in with_p.parameters())
    assert len(without.param_groups(0.1)) == 1
    # the encoder is the same: the knob only removes the head
    for (n, p), q in zip(without.encoder.named_parameters(), with_p.encoder.parameters()):
        assert torch.equal(p, q), n


def test_simsiam_stop_grad_off_lets_gradients_flow_through_the_target_branch():
    x1, x2 = views()
    # Without a predictor the loss is symmetric: both branches give the same gradient, so
    # turning stop-gradient off exactly doubles every encoder gradient.
    _, g_sg = loss_and_grads(build("simsiam", {"predictor": False}), x1, x2)
    _, g_no = loss_and_grads(build("simsiam", {"predictor": False, "stop_grad": False}), x1, x2)
    for key in g_sg:
        assert torch.allclose(g_no[key], 2 * g_sg[key], rtol=1e-4, atol=1e-7), key
    # With the predictor: the encoder gradient changes, the predictor's does not (it is not on the target side).
    l_sg, g_sg = loss_and_grads(build("simsiam"), x1, x2)
    l_no, g_no = loss_and_grads(build("simsiam", {"stop_grad": False}), x1, x2)
    assert torch.allclose(l_sg, l_no)
    enc = [k for k in g_sg if k.startswith("encoder")]
    assert all(not torch.allclose(g_sg[k], g_no[k]) for k in enc if g_sg[k].abs().sum() > 0)
    for key in (k for k in g_sg if k.startswith("predictor")):
        assert torch.allclose(g_sg[key], g_no[key], atol=1e-7), key


def test_simsiam_stop_grad_blocks_the_target_exactly():
    # With stop-gradient on, the gradient equals that of the hand-written detached loss.
    model = build("simsiam")
    x1, x2 = views()
    _, g_model = loss_and_grads(model, x1, x2)
    model2 = build("simsiam")
    z1, z2 = model2.encoder(x1)[1], model2.encoder(x2)[1]
    manual = 0.5 * (negative_cosine(model2.predictor(z1), z2.detach())
                    + negative_cosine(model2.predictor(z2), z1.detach()))
    manual.sum().backward()
    for key, g in grads(model2).items():
        assert torch.allclose(g_model[key], g, atol=1e-6), key


@pytest.mark.parametrize("scale", [0.01, 0.5, 1.0, 3.0])
def test_simsiam_predictor_lr_scale_sets_the_predictor_group_lr(scale):
    model = build("simsiam", {"predictor_lr_scale": scale})
    groups = model.param_groups(0.2)
    assert len(groups) == 2
    pred_ids = {id(p) for p in model.predictor.parameters()}
    enc_ids = {id(p) for p in model.encoder.parameters()}
    by_lr = {}
    for g in groups:
        ids = {id(p) for p in g["params"]}
        by_lr["pred" if ids == pred_ids else "enc" if ids == enc_ids else "?"] = g["lr"]
    assert by_lr == {"enc": 0.2, "pred": pytest.approx(0.2 * scale)}
    # and the optimizer the trainer builds from those groups honours it
    opt = torch.optim.SGD(groups, lr=0.2)
    assert sorted(g["lr"] for g in opt.param_groups) == sorted([0.2, 0.2 * scale])


def test_simsiam_bad_values_fail():
    with pytest.raises(ValueError, match="predictor_lr_scale"):
        method_config("simsiam", {"predictor_lr_scale": 0.0})


# ---------------------------------------------------------------- knobs: byol


def _byol_target_shift(momentum):
    model = build("byol", {"momentum": momentum})
    before = copy.deepcopy(model.target.state_dict())
    sgd_steps(model, n_steps=1)
    moved = sum((p - before[n]).abs().sum() for n, p in model.target.state_dict().items())
    gap = sum((t - o).abs().sum() for t, o in zip(model.target.parameters(), model.encoder.parameters()))
    return float(moved.detach()), float(gap.detach())


def test_byol_momentum_sets_how_far_the_target_moves():
    moved_1, _ = _byol_target_shift(1.0)
    moved_99, gap_99 = _byol_target_shift(0.99)
    moved_9, _ = _byol_target_shift(0.9)
    moved_0, gap_0 = _byol_target_shift(0.0)
    assert moved_1 == 0.0  # momentum 1: the target never moves
    assert 0 < moved_99 < moved_9 < moved_0
    assert moved_9 == pytest.approx(10 * moved_99, rel=1e-3)  # (1 − m) of the way to the online net
    assert gap_0 == pytest.approx(0.0, abs=1e-6)  # momentum 0: the target is the online encoder
    assert gap_99 > 0


def test_byol_target_gets_no_gradient_and_predictor_knob_works():
    model = build("byol")
    model.loss(*views())[0].sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in model.target.parameters())
    assert model.predictor is not None
    no_pred = build("byol", {"predictor": False})
    assert not any(n.startswith("predictor") for n, _ in no_pred.named_parameters())


# ---------------------------------------------------------------- knobs: dino


def test_dino_centering_off_leaves_the_center_at_zero():
    off, on = build("dino", {"centering": False}), build("dino")
    sgd_steps(off), sgd_steps(on)
    assert torch.count_nonzero(off.center) == 0
    assert on.center.abs().sum() > 0
    assert on.center.shape == (3, 1, on.cfg.n_prototypes)


def test_dino_center_momentum_sets_the_center_step():
    x1, x2 = views()
    centers = {}
    for m in (0.9, 0.5, 1.0):
        model = build("dino", {"center_momentum": m})
        model.loss(x1, x2)
        centers[m] = model.center.clone()
        with torch.no_grad():
            t = torch.cat([model._teacher_logits(x1), model._teacher_logits(x2)], 1).mean(1, keepdim=True)
    assert torch.count_nonzero(centers[1.0]) == 0
    assert torch.allclose(centers[0.9], 0.1 * t, atol=1e-6)
    assert torch.allclose(centers[0.5], 0.5 * t, atol=1e-6)


@pytest.mark.parametrize("knob", ["temperature", "teacher_temperature"])
def test_dino_temperatures_change_the_loss(knob):
    x1, x2 = views()
    default = build("dino").loss(x1, x2)[0]
    other = build("dino", {knob: 0.5}).loss(x1, x2)[0]
    assert not torch.allclose(default, other)


def test_dino_teacher_entropy_metric_is_within_zero_and_ln_k():
    model = build("dino")
    m = model.extra_metrics(views()[0])
    assert torch.all(m["teacher_entropy"] >= 0)
    assert torch.all(m["teacher_entropy"] <= math.log(model.cfg.n_prototypes) + 1e-5)
    assert torch.allclose(m["teacher_entropy_max"], torch.full((3,), math.log(model.cfg.n_prototypes)))


# ---------------------------------------------------------------- knobs: swav


def test_swav_fixed_prototypes_do_not_change():
    fixed, learned = build("swav", {"fixed_prototypes": True}), build("swav")
    p_fixed, p_learned = fixed.prototypes.detach().clone(), learned.prototypes.detach().clone()
    assert torch.equal(p_fixed, p_learned)  # same start
    sgd_steps(fixed, n_steps=5), sgd_steps(learned, n_steps=5)
    assert torch.allclose(fixed.prototypes, p_fixed, atol=1e-6)
    assert not torch.allclose(learned.prototypes, p_learned, atol=1e-3)
    # both stay unit vectors (one per column)
    for model in (fixed, learned):
        assert torch.allclose(model.prototypes.norm(dim=1), torch.ones(3, model.cfg.n_prototypes), atol=1e-5)


def test_swav_n_prototypes():
    model = build("swav", {"n_prototypes": 5})
    assert model.prototypes.shape == (3, 2, 5)


def _scores(shift=0.0, b=64, p=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = geo.normalize(torch.randn(2, b, 2, generator=g) + torch.tensor([shift, 0.0]))
    protos = geo.normalize(torch.randn(2, p, 2, generator=g)).transpose(1, 2)
    return torch.bmm(z, protos)


def _column_spread(q):
    """Mass per prototype relative to an even split (1 = equipartition): (min, max) over prototypes."""
    c = q.sum(1) / q.shape[1] * q.shape[2]
    return float(c.min()), float(c.max())


def test_sinkhorn_zero_iterations_is_a_plain_softmax():
    s = _scores(shift=1.0)
    q = sinkhorn(s, 0.05, 0)
    assert torch.allclose(q, torch.softmax(s / 0.05, -1))
    assert torch.allclose(q.sum(-1), torch.ones(2, 64), atol=1e-5)
    lo, hi = _column_spread(q)
    assert hi - lo > 1.0  # far from an even split


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_sinkhorn_iterations_move_codes_towards_equipartition(shift):
    s = _scores(shift=shift)
    spreads = {it: _column_spread(sinkhorn(s, 0.05, it)) for it in (0, 3, 100)}
    for it in (3, 100):
        q = sinkhorn(s, 0.05, it)
        assert torch.allclose(q.sum(-1), torch.ones(2, 64), atol=1e-4)  # rows still sum to 1
        assert (q >= 0).all()
    width = {it: hi - lo for it, (lo, hi) in spreads.items()}
    assert width[100] < width[3] < width[0]
    lo, hi = spreads[100]
    assert lo > 0.98 and hi < 1.02  # converged: every prototype gets 1/P of the batch


def test_swav_model_codes_with_and_without_sinkhorn():
    x1, _ = views(n=64)
    for iters, equal in ((0, False), (100, True)):
        model = build("swav", {"sinkhorn_iters": iters})
        with torch.no_grad():
            s = torch.bmm(geo.normalize(model.encoder(x1)[1]), model.prototypes)
        q = sinkhorn(s, model.cfg.epsilon, iters)
        assert torch.allclose(q.sum(-1), torch.ones(3, 64), atol=1e-4)
        lo, hi = _column_spread(q)
        assert (hi - lo < 0.05) == equal, (iters, lo, hi)


def test_swav_loss_is_swapped_prediction():
    g = torch.Generator().manual_seed(0)
    s1, s2 = torch.randn(1, 10, 4, generator=g), torch.randn(1, 10, 4, generator=g)
    q1, q2 = torch.softmax(s1, -1), torch.softmax(s2, -1)
    expected = 0.5 * (-(q2 * torch.log_softmax(s1 / 0.1, -1)).sum(-1).mean()
                      - (q1 * torch.log_softmax(s2 / 0.1, -1)).sum(-1).mean())
    assert swav_loss(s1, s2, q1, q2, 0.1).item() == pytest.approx(expected.item(), rel=1e-5)


# ---------------------------------------------------------------- knobs: barlow


def test_barlow_lam_zero_is_the_diagonal_term_only():
    x1, x2 = views(n=64)
    model = build("barlow", {"lam": 0.0})
    loss = model.loss(x1, x2)[0]
    with torch.no_grad():
        a, b = batch_standardize(model.encoder(x1)[1]), batch_standardize(model.encoder(x2)[1])
    c = torch.bmm(a.transpose(1, 2), b) / a.shape[1]
    diag = torch.diagonal(c, dim1=1, dim2=2)
    assert torch.allclose(loss.detach(), (1 - diag).square().sum(-1), atol=1e-6)
    off = c.square().sum((1, 2)) - diag.square().sum(-1)
    with_lam = build("barlow", {"lam": 0.5, "lam_per_d": False}).loss(x1, x2)[0].detach()
    assert torch.allclose(with_lam, loss.detach() + 0.5 * off, atol=1e-5)
    assert torch.all(with_lam > loss)
    # Scaled with D (the toy's default): λ(D − 1) as at Barlow Twins' D = 8192.
    d = a.shape[-1]
    scaled = build("barlow", {"lam": 0.5}).loss(x1, x2)[0].detach()
    assert torch.allclose(scaled, loss.detach() + 0.5 * 8191 / (d - 1) * off, rtol=1e-5, atol=1e-4)


def test_barlow_says_which_lambda_is_in_effect():
    cls = method_class("barlow")
    on, off = cls.Config(), cls.Config(lam_per_d=False)
    assert "20.89" in cls.setting_note(on, 3) and "literal" in cls.setting_note(on, 3)
    assert "0.0051, as written" in cls.setting_note(off, 3) and "41.8" in cls.setting_note(off, 3)
    assert RECIPES["barlow"].method_params["lam_per_d"] is False  # the engine's D is the recipe's own


def test_barlow_batchnorm_off_changes_the_loss_and_metrics_show_the_bn_center():
    x1, x2 = views(n=64)
    on, off = build("barlow"), build("barlow", {"batchnorm": False})
    assert not torch.allclose(on.loss(x1, x2)[0], off.loss(x1, x2)[0])
    for model in (on, off):
        m = model.extra_metrics(x1)
        assert {"center_norm_pre_bn", "center_norm_post_bn"} <= set(m)
        assert torch.all((m["center_norm_pre_bn"] >= 0) & (m["center_norm_pre_bn"] <= 1 + 1e-6))
    # BN subtracts the batch mean, so the normalised features' center shrinks
    m = on.extra_metrics(x1 + 5.0)
    assert torch.all(m["center_norm_post_bn"] < m["center_norm_pre_bn"])


def test_barlow_lam_zero_is_allowed_but_negative_is_not():
    assert method_config("barlow", {"lam": 0.0}).lam == 0.0
    with pytest.raises(ValueError, match="lam"):
        method_config("barlow", {"lam": -0.1})


# ---------------------------------------------------------------- knobs: simclr, simplified, triplet


def test_simclr_temperature_changes_the_loss():
    x1, x2 = views()
    l02 = build("simclr").loss(x1, x2)[0]
    l1 = build("simclr", {"temperature": 1.0}).loss(x1, x2)[0]
    assert not torch.allclose(l02, l1)
    # at τ → large every sample is equally similar: the loss tends to ln(2B − 1)
    lbig = build("simclr", {"temperature": 10.0}).loss(x1, x2)[0]
    assert torch.allclose(lbig, torch.full((3,), math.log(2 * 32 - 1)), atol=0.1)


def test_simplified_lam_zero_is_half_the_invariance_loss():
    x1, x2 = views()
    inv = build("invariance").loss(x1, x2)[0]
    simp = build("simplified", {"lam": 0.0}).loss(x1, x2)[0]
    assert torch.allclose(simp, 0.5 * inv, atol=1e-6)


def test_simplified_lam_adds_the_center_norm():
    x1, x2 = views()
    model = build("simplified")
    loss = model.loss(x1, x2)[0]
    with torch.no_grad():
        z1, z2 = geo.normalize(model.encoder(x1)[1]), geo.normalize(model.encoder(x2)[1])
        s = geo.center_norm(torch.cat([z1, z2], 1))
        expected = 0.5 * (squared_distance(z1, z2) + s)  # λ = −1: invariance plus ‖s‖
    assert torch.allclose(loss.detach(), expected, atol=1e-6)


def test_triplet_finite_margin_applies_a_hinge():
    x1, x2 = views()
    inf = build("triplet").loss(x1, x2)[0]
    hinge = build("triplet", {"margin": 0.1}).loss(x1, x2)[0]
    assert torch.all(hinge >= 0)
    assert not torch.allclose(inf, hinge)
    # hand-built: the negative is far (gap −4), the positive is the anchor
    a = torch.tensor([[[1.0, 0.0]]])
    n = torch.tensor([[[-1.0, 0.0]]])
    assert triplet_loss(a, a, n, math.inf).item() == pytest.approx(-2.0)
    assert triplet_loss(a, a, n, 1.0).item() == 0.0
    assert triplet_loss(a, n, a, 1.0).item() == pytest.approx(5.0)  # gap +4, plus the margin
    with pytest.raises(ValueError, match="margin"):
        method_config("triplet", {"margin": 0.0})


# ---------------------------------------------------------------- pure losses on hand-built inputs


def _circle(n):
    angles = torch.arange(n) * 2 * math.pi / n
    return torch.stack([angles.cos(), angles.sin()], -1).unsqueeze(0)


def test_info_nce_prefers_aligned_well_separated_pairs():
    z = _circle(8)
    aligned = info_nce(z, z, 0.2)
    shuffled = info_nce(z, z.roll(3, dims=1), 0.2)
    collapsed = info_nce(z[:, :1].expand(-1, 8, -1), z[:, :1].expand(-1, 8, -1), 0.2)
    assert aligned.item() < shuffled.item()
    assert collapsed.item() == pytest.approx(math.log(2 * 8 - 1), rel=1e-5)  # the method's collapse value
    assert aligned.item() < collapsed.item()


def test_sinkhorn_rows_sum_to_one():
    s = _scores(shift=0.5)
    for iters in (0, 1, 3, 10):
        q = sinkhorn(s, 0.05, iters)
        assert q.shape == s.shape
        assert torch.allclose(q.sum(-1), torch.ones(2, 64), atol=1e-4), iters


def test_barlow_loss_of_identical_standardized_views_with_lam_zero_is_zero():
    y = torch.randn(2, 200, 4, generator=torch.Generator().manual_seed(0)) * 3 + 1
    a = batch_standardize(y)
    assert torch.allclose(a.mean(1), torch.zeros(2, 4), atol=1e-5)
    assert barlow_loss(a, a, 0.0).abs().max().item() < 1e-8
    # the off-diagonal term counts only with λ > 0
    assert torch.all(barlow_loss(a, a, 1.0) > barlow_loss(a, a, 0.0))
    # uncorrelated views: the diagonal term is near its collapse value D
    b = batch_standardize(torch.randn(2, 200, 4, generator=torch.Generator().manual_seed(1)))
    assert torch.all(barlow_loss(a, b, 0.0) > 2.0)


def test_dino_loss_is_minimal_when_the_student_matches_the_centered_teacher():
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(1, 16, 6, generator=g)
    center = torch.randn(1, 1, 6, generator=g)
    centered = teacher - center
    tau = 0.1
    best = dino_loss(centered, teacher, center, tau, tau)
    target = torch.softmax(centered / tau, -1)
    entropy = -(target * target.log()).sum(-1).mean()
    assert best.item() == pytest.approx(entropy.item(), rel=1e-4)  # CE = H(teacher) when KL = 0
    for i in range(5):
        other = centered + 0.3 * torch.randn(centered.shape, generator=g)
        assert dino_loss(other, teacher, center, tau, tau).item() > best.item()
    # centering matters: without subtracting the center the same student is no longer optimal
    assert dino_loss(centered, teacher, torch.zeros_like(center), tau, tau).item() > best.item() - 1e-6
    # and the gradient vanishes at the optimum
    s = centered.clone().requires_grad_(True)
    dino_loss(s, teacher, center, tau, tau).sum().backward()
    assert s.grad.abs().max().item() < 1e-5


def test_negative_cosine_and_squared_distance_collapse_values():
    z = torch.randn(2, 10, 3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(negative_cosine(z, 2 * z), torch.full((2,), -1.0))
    assert torch.allclose(squared_distance(z, 3 * z), torch.zeros(2), atol=1e-6)
    assert torch.allclose(simplified_loss(z, z, 0.0), torch.zeros(2), atol=1e-6)


# ---------------------------------------------------------------- bad input


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError) as e:
        method_class("mocov3")
    assert "mocov3" in str(e.value)
    assert all(n in str(e.value) for n in METHOD_NAMES)
    with pytest.raises(ValueError, match="simsiam"):
        build_method("nope", None, [0], 2, 2)
    with pytest.raises(ValueError, match="simsiam"):
        ToyConfig(method="nope")


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_unknown_parameter_lists_the_methods_knobs(name):
    with pytest.raises(ValueError) as e:
        method_config(name, {"foo": 1})
    msg = str(e.value)
    assert "foo" in msg
    import dataclasses
    for f in dataclasses.fields(method_class(name).Config):
        assert f.name in msg


def test_unknown_parameter_message_for_simsiam():
    with pytest.raises(ValueError, match="predictor"):
        method_config("simsiam", {"foo": 1})
    with pytest.raises(ValueError) as e:  # the toy trainer also lists its own settings
        toy_config("simsiam", "blobs", {"foo": "1"})
    assert "predictor" in str(e.value) and "lr" in str(e.value) and "batch_size" in str(e.value)


@pytest.mark.parametrize("name, params, needle", [
    ("simsiam", {"predictor": "maybe"}, "true or false"),
    ("simsiam", {"predictor_lr_scale": "fast"}, "predictor_lr_scale"),
    ("simsiam", {"predictor_lr_scale": "nan"}, "predictor_lr_scale"),
    ("byol", {"momentum": "1.5"}, "[0.0, 1.0]"),
    ("dino", {"temperature": "0"}, "(0.0, 10.0]"),
    ("dino", {"n_prototypes": "1"}, "n_prototypes"),
    ("swav", {"sinkhorn_iters": "-1"}, "sinkhorn_iters"),
    ("swav", {"n_prototypes": "3.5"}, "int"),
    ("simclr", {"temperature": "-1"}, "temperature"),
    ("simplified", {"lam": "inf"}, "lam"),
])
def test_bad_values_say_what_is_valid(name, params, needle):
    with pytest.raises(ValueError) as e:
        method_config(name, params)
    assert needle in str(e.value)


def test_strings_are_parsed_by_field_type():
    cfg = method_config("simsiam", {"predictor": "off", "stop_grad": "true", "predictor_lr_scale": "0.1"})
    assert cfg.predictor is False and cfg.stop_grad is True and cfg.predictor_lr_scale == 0.1
    assert method_config("swav", {"n_prototypes": "7"}).n_prototypes == 7


def test_triplet_margin_inf_parses_from_a_string():
    # The default margin is inf (the paper's limit); a URL or --set margin=inf must round-trip it.
    assert math.isinf(method_config("triplet", {"margin": "inf"}).margin)
    with pytest.raises(ValueError, match="margin"):
        method_config("triplet", {"margin": "nan"})


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_knob_carries_its_label_and_numeric_knobs_their_range(name):
    """A knob is one line in its method's module: label, help, stops and range travel in its metadata."""
    cls = method_class(name)
    assert cls.label, name
    for f in dataclasses.fields(cls.Config):
        assert f.metadata.get("label"), (name, f.name)
        if field_kind(f) in (int, float) and not (name == "triplet" and f.name == "margin"):  # (0, ∞]: own check
            low, high = f.metadata["range"]
            assert low <= f.default <= high, (name, f.name)
            with pytest.raises(ValueError, match=f.name):
                method_config(name, {f.name: high * 2 + 1})
        stops = f.metadata.get("stops")
        if stops:
            assert field_kind(f) is not bool and len(set(stops)) == len(stops), (name, f.name)


# ---------------------------------------------------------------- SwAV's queue and prototype freeze

def _swav(**knobs):
    return build_method("swav", {"n_prototypes": 8, **knobs}, [0, 1], 2, 3)


def test_swav_queue_fills_from_its_start_then_joins_sinkhorn():
    model = _swav(queue_size=12, queue_start=0.5)
    x1, x2 = torch.randn(2, 5, 2), torch.randn(2, 5, 2)
    model.after_step(0.25)
    model.loss(x1, x2)
    assert int(model.queue_filled[0]) == 0  # before queue_start nothing is queued
    model.after_step(0.5)
    for step in range(3):
        model.loss(x1 + step, x2 - step)
    assert int(model.queue_filled[0]) == 12 and model.queue.shape == (2, 2, 12, 3)
    # Full: the codes of a batch are Sinkhorn's over the batch and the queue, the batch's rows kept.
    z1 = torch.nn.functional.normalize(model.encoder(x1)[1], dim=-1)
    scores = torch.bmm(z1, model.prototypes).detach()
    plain = sinkhorn(torch.cat([scores, torch.bmm(model.queue[:, 0], model.prototypes.detach())], 1), 0.05, 3)[:, :5]
    assert torch.allclose(model._codes(scores, 0), plain)
    assert not torch.allclose(model._codes(scores, 0), sinkhorn(scores, 0.05, 3))


def test_swav_splits_its_queue_over_the_ranks(monkeypatch):
    """SwAV's main_swav.py keeps queue_length // world_size per rank, so the global Sinkhorn sees queue_length
    past features whatever the world size (issue 21: each rank once kept all of them, W × the queue)."""
    monkeypatch.setattr(swav_module, "world_size", lambda: 4)
    model = _swav(queue_size=12)
    assert model.queue.shape == (2, 2, 3, 3)
    x1, x2 = torch.randn(2, 5, 2), torch.randn(2, 5, 2)
    model.loss(x1, x2)
    assert int(model.queue_filled[0]) == 3  # this rank's share is full after one batch of 5
    with pytest.raises(ValueError, match="queue_size must be 0 or at least the world size 4, got 3"):
        _swav(queue_size=3)


def test_swav_prototypes_get_no_gradient_while_frozen():
    model = _swav(prototype_freeze=0.1)
    x1, x2 = torch.randn(2, 6, 2), torch.randn(2, 6, 2)
    model.loss(x1, x2)[0].sum().backward()
    assert model.prototypes.grad is None
    model.after_step(0.1)
    model.loss(x1, x2)[0].sum().backward()
    assert model.prototypes.grad is not None and model.prototypes.grad.abs().sum() > 0


def test_swav_progress_and_queue_survive_a_state_dict_round_trip():
    a = _swav(queue_size=4)
    a.after_step(0.3)
    a.loss(torch.randn(2, 5, 2), torch.randn(2, 5, 2))
    b = _swav(queue_size=4)
    b.load_state_dict(a.state_dict())
    assert float(b.progress[0]) == 0.3 and int(b.queue_filled[0]) == 4 and torch.equal(a.queue, b.queue)


def test_dino_last_layer_gets_no_gradient_while_frozen():
    """DINO's `freeze_last_layer`: the prototypes stay at their start for the first part of training, the rest of
    the student learns."""
    model = build_method("dino", {"n_prototypes": 8, "last_layer_freeze": 0.1}, [0], 2, 3)
    x1, x2 = torch.randn(1, 6, 2), torch.randn(1, 6, 2)
    model.loss(x1, x2)[0].sum().backward()
    assert model.head.last.weight.grad is None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    model.after_step(0.1)
    model.loss(x1, x2)[0].sum().backward()
    assert model.head.last.weight.grad is not None and model.head.last.weight.grad.abs().sum() > 0


def test_dino_resume_at_sets_the_teacher_temperature_schedule():
    knobs = {"teacher_temperature": 0.04, "teacher_temperature_final": 0.07, "teacher_temperature_warmup": 0.5}
    model = build_method("dino", knobs, [0], 2, 3)
    assert model.teacher_temp == pytest.approx(0.04)
    model.resume_at(0.25)
    assert model.teacher_temp == pytest.approx(0.055)  # halfway through the warmup


def test_dino_per_sample_teacher_entropy_tells_a_healthy_teacher_from_a_uniform_one():
    model = build_method("dino", {"n_prototypes": 8}, [0], 2, 3)
    x = torch.randn(1, 64, 2)
    m = model.extra_metrics(x)
    assert 0 <= m["teacher_sample_entropy"][0] <= m["teacher_entropy"][0] + 1e-6  # concavity of entropy
    with torch.no_grad():
        model.teacher["head"].last.weight.zero_()  # every logit equal: the uniform teacher
    m = model.extra_metrics(x)
    assert m["teacher_sample_entropy"][0] == pytest.approx(math.log(8), abs=1e-5)
    assert m["teacher_entropy"][0] == pytest.approx(math.log(8), abs=1e-5)
