"""The ImageNet model side: ResNet-18, every method at ImageNet scale, recipes, schedules, SGD/LARS, kNN,
presets, and the losses' collectives under DDP (2 gloo processes against 1 process on the whole batch)."""
from __future__ import annotations

import math
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn import functional as F

from lab.engine import dist as idist
from lab.engine.model import build_model, enable_autocast, method_params
from lab.engine.optim import LARS, build_optimizer, is_vector_like, set_lr
from lab.engine.presets import PRESETS, preset_runs
from lab.engine.recipes import RECIPES
from lab.engine.resnet import resnet18
from lab.core.metrics import knn_accuracy
from lab.core.schedules import cosine_to_one, linear_warmup, warmup_cosine
from lab.methods import METHOD_NAMES, build_method
from lab.methods.barlow import barlow_loss, batch_standardize, global_batch_standardize
from lab.methods.dino import teacher_batch_mean
from lab.methods.simclr import info_nce, info_nce_global
from lab.methods.simplified import simplified_loss
from lab.methods.swav import sinkhorn, swav_loss


def _views(n: int = 4, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, n, 3, size, size, generator=g), torch.randn(1, n, 3, size, size, generator=g)


# ---------------------------------------------------------------- backbone


def test_resnet18_has_the_reference_parameter_count_and_512_features():
    net = resnet18()
    assert sum(p.numel() for p in net.parameters()) == 11_176_512
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 512)
    # torchvision's init: He normal (fan_out) convs, BN γ = 1; zero-init of each block's last γ only on request
    conv = net.layer3[0].conv1.weight
    assert abs(conv.std().item() - math.sqrt(2 / (conv.shape[0] * 9))) < 0.1 * math.sqrt(2 / (conv.shape[0] * 9))
    assert torch.all(net.layer1[0].bn2.weight == 1)
    assert torch.all(resnet18(zero_init_residual=True).layer1[0].bn2.weight == 0)


def test_channels_last_forward_equals_contiguous_forward():
    torch.manual_seed(0)
    net, x = resnet18(), torch.randn(4, 3, 64, 64)  # at 32 px layer4 is 1×1 and BN on 4 values amplifies rounding
    ref = net(x)
    net_cl = net.to(memory_format=torch.channels_last)
    out = net_cl(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- methods at ImageNet scale


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_builds_trains_one_step_with_imagenet_heads(method):
    model = build_model(method, seed=1)
    rec = RECIPES[method]
    x1, x2 = _views()
    h, y = model.encoder(x1)
    assert h.shape == (1, 4, 512) and y.shape == (1, 4, rec.dim)
    loss, logs = model.loss(x1, x2)
    assert loss.shape == (1,) and torch.isfinite(loss).all()
    loss.sum().backward()
    assert model.encoder.backbone.conv1.weight.grad.abs().sum() > 0
    opt = build_optimizer(rec, model.param_groups(rec.lr), rec.lr, rec.weight_decay, rec.momentum)
    before = model.encoder.backbone.conv1.weight.detach().clone()
    opt.step()
    model.after_step(0.5)
    assert not torch.equal(before, model.encoder.backbone.conv1.weight)
    # the 4-D input form gives the same features
    assert torch.allclose(model.encoder(x1[0])[0], model.encoder(x1)[0])


BF16_UNIT_ROUNDOFF = 2.0 ** -8  # bf16 keeps 8 significant bits: rounding to it moves a value by at most 2^-8 of it


def _bf16_bound(layers: int, conditioning: float = 1.0) -> float:
    """How far a bf16 forward may drift from float32, relative to the output's norm, on any CPU.

    Each conv or linear layer rounds its input, its weights and its output to bf16 (at most u = 2^-8 each,
    relative) and accumulates in float32 (every x86 path: oneDNN with or without AVX-512-BF16/AMX), so it adds
    at most ~3u of relative error, with random signs: over L layers the errors add like a random walk, ~3u√L;
    4u√L leaves room for the summing order a CPU picks. A BatchNorm over the batch divides by the spread
    around the batch mean, so it multiplies the relative error by ‖a‖ / ‖a − mean(a)‖ of its input (its
    `conditioning`, read from the float32 pass). A bound on the format, not on one CPU's result."""
    return 4 * BF16_UNIT_ROUNDOFF * math.sqrt(layers) * conditioning


# Three projectors span the cases: no BatchNorm (DINO, with a teacher), one (BYOL, with an EMA target), three
# (SimSiam's BN-ended projector). A bf16 pass costs ~10 s here (no native bf16 on many x86 CPUs).
@pytest.mark.parametrize("method", ["dino", "byol", "simsiam"])
def test_autocast_runs_the_encoders_in_bf16_and_hands_float32_to_the_heads(method):
    model = build_model(method)
    encoder = model.encoder
    weights = lambda m: [x for x in m.modules() if isinstance(x, (nn.Conv2d, nn.Linear))]
    bns = [m for m in encoder.projector.modules() if isinstance(m, nn.BatchNorm1d)]
    conditioning = []
    hooks = [bn.register_forward_hook(lambda m, i, o: conditioning.append(
        (i[0].norm() / (i[0] - i[0].mean(0)).norm()).item())) for bn in bns]
    g = torch.Generator().manual_seed(0)
    # 16 images: BatchNorm1d's batch statistics over 4 would amplify rounding more than the arithmetic below
    x1, x2 = torch.randn(1, 16, 3, 64, 64, generator=g), torch.randn(1, 16, 3, 64, 64, generator=g)
    h32, y32 = encoder(x1)
    for hook in hooks:
        hook.remove()
    enable_autocast(model)
    encoders = [m for m in model.modules() if type(m).__name__ == "ResNetEncoder"]
    assert all(m.autocast_dtype == torch.bfloat16 for m in encoders)
    assert len(encoders) == (2 if method in ("byol", "dino") else 1)  # + the EMA target / teacher
    computed = {}

    def record(module, inputs, output) -> None:  # a hook that returned a value would replace the output
        computed[module] = output.dtype

    hooks = [m.register_forward_hook(record) for m in weights(encoder)]
    h, y = encoder(x1)
    for hook in hooks:
        hook.remove()
    assert set(computed.values()) == {torch.bfloat16} and len(computed) == len(weights(encoder))
    assert h.dtype == y.dtype == torch.float32
    rel = lambda a, ref: ((a - ref).norm() / ref.norm()).item()
    assert 0 < rel(h, h32) <= _bf16_bound(len(weights(encoder.backbone)))
    assert 0 < rel(y, y32) <= _bf16_bound(len(weights(encoder)), math.prod(conditioning))
    loss, _ = model.loss(x1, x2)
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()


def test_heads_get_the_recipe_sizes():
    assert build_model("dino").head.last.weight.shape == (1, 256, 4096)
    assert build_model("swav").prototypes.shape == (1, 128, 3000)
    byol = build_model("byol")
    assert byol.predictor[0].weight.shape == (1, 256, 8192)
    simsiam = build_model("simsiam")
    assert simsiam.predictor[0].weight.shape == (1, 2048, 512)
    assert isinstance(simsiam.encoder.projector[-1], nn.BatchNorm1d)  # SimSiam's projector ends with BN
    assert not isinstance(build_model("barlow").encoder.projector[-1], nn.BatchNorm1d)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in build_model("simclr").encoder.projector)
    # no seed BN left: every BN is a torch module that SyncBatchNorm can convert
    assert not any(type(m).__name__ == "SeedBatchNorm" for m in byol.modules())


def test_build_model_is_deterministic_in_the_seed_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b, c = build_model("simsiam", seed=3), build_model("simsiam", seed=3), build_model("simsiam", seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.encoder.backbone.conv1.weight, b.encoder.backbone.conv1.weight)
    assert not torch.equal(a.encoder.backbone.conv1.weight, c.encoder.backbone.conv1.weight)


# ---------------------------------------------------------------- recipes and knobs


def test_every_method_has_a_recipe_that_names_its_source():
    assert set(RECIPES) == set(METHOD_NAMES)
    for name, rec in RECIPES.items():
        assert rec.source and rec.batch_size > 0 and rec.epochs == 400 and rec.optimizer in ("sgd", "lars")
        method_params(name)  # every recipe knob exists on the method
    for name in ("simsiam", "byol", "dino", "swav", "barlow", "simclr"):
        assert f"imagenet-100/{name}.yaml" in RECIPES[name].source
    for name in ("simplified", "invariance", "triplet"):
        assert "no solo-learn recipe" in RECIPES[name].source
    s, b, d = RECIPES["simsiam"], RECIPES["byol"], RECIPES["dino"]
    assert (s.optimizer, s.lr, s.weight_decay, s.proj_dims) == ("sgd", 0.5, 1e-5, (2048, 2048, 2048))
    assert (b.optimizer, b.lr, b.proj_dims, b.method_params["momentum"]) == ("lars", 0.5, (4096, 256), 0.99)
    assert (d.lr, d.method_params["n_prototypes"], d.method_params["teacher_momentum"]) == (0.3, 4096, 0.9995)
    assert RECIPES["swav"].method_params["n_prototypes"] == 3000
    assert RECIPES["barlow"].method_params["lam"] == 0.0051
    assert RECIPES["simclr"].method_params["temperature"] == 0.2


def test_resolved_params_are_the_recipe_overridden_by_the_user():
    p = method_params("dino", {"centering": "false", "teacher_momentum": "0.99"})
    assert p["n_prototypes"] == 4096 and p["centering"] is False and p["teacher_momentum"] == 0.99
    assert method_params("simsiam")["predictor_hidden"] == 512
    with pytest.raises(ValueError) as e:
        method_params("byol", {"bogus": 1})
    assert "bogus" in str(e.value) and "momentum" in str(e.value) and "predictor_hidden" in str(e.value)
    with pytest.raises(ValueError, match="simsiam"):
        method_params("nope")


# ---------------------------------------------------------------- schedules


def test_warmup_cosine_endpoints():
    assert warmup_cosine(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10, 1.0, final=0.2) == pytest.approx(0.6)
    assert warmup_cosine(100, 100, 10, 1.0, final=0.2) == pytest.approx(0.2)
    assert warmup_cosine(0, 100, 0, 2.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(0, 10, 20, 1.0)


def test_cosine_to_one_and_linear_warmup():
    assert [cosine_to_one(p, 0.99) for p in (0, 0.5, 1)] == pytest.approx([0.99, 0.995, 1.0])
    assert [linear_warmup(p, 0.04, 0.07, 0.125) for p in (0, 0.0625, 0.125, 1)] == pytest.approx(
        [0.04, 0.055, 0.07, 0.07])
    assert linear_warmup(0.5, 0.04, 0.07, 0.0) == 0.04


def _toy(method, params=None):
    return build_method(method, params, [0], 2, 3)


def test_byol_momentum_schedule_on_imagenet_and_constant_in_the_toy_default():
    toy = _toy("byol")
    assert [toy.target_momentum(p) for p in (0, 0.5, 1)] == [0.99, 0.99, 0.99]
    model = build_model("byol")
    assert [model.target_momentum(p) for p in (0, 0.5, 1)] == pytest.approx([0.99, 0.995, 1.0])
    # at progress 1 the target no longer moves; in the toy default it follows the online encoder
    for m in (model, toy):
        with torch.no_grad():
            for p in m.encoder.parameters():
                p.add_(1.0)
    before = [t.clone() for t in model.target.parameters()]
    model.after_step(1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.target.parameters()))
    before = [t.clone() for t in toy.target.parameters()]
    toy.after_step(1.0)
    assert not all(torch.equal(a, b) for a, b in zip(before, toy.target.parameters()))


def test_dino_teacher_schedules():
    toy = _toy("dino")
    for p in (0, 0.5, 1):
        toy.after_step(p)
        assert toy.teacher_temp == 0.04 and toy.teacher_ema(p) == 0.996
    model = build_model("dino")
    temps = []
    for p in (0, 0.0625, 0.5, 1):
        model.after_step(p)
        temps.append(model.teacher_temp)
    assert temps == pytest.approx([0.04, 0.055, 0.07, 0.07])
    assert [model.teacher_ema(p) for p in (0, 0.5, 1)] == pytest.approx([0.9995, 0.99975, 1.0])


# ---------------------------------------------------------------- optimizers


def _tiny_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))


def test_lars_step_changes_weights_and_leaves_biases_and_norms_out_of_weight_decay():
    net = _tiny_net()
    opt = build_optimizer("lars", [{"params": list(net.parameters()), "lr": 0.5}], 0.5, 0.1, 0.9)
    assert isinstance(opt, LARS)
    weights = [g for g in opt.param_groups if g["lars"]]
    vectors = [g for g in opt.param_groups if not g["lars"]]
    assert all(g["weight_decay"] == 0.1 for g in weights) and all(g["weight_decay"] == 0 for g in vectors)
    assert all(p.dim() == 2 for g in weights for p in g["params"])
    assert all(is_vector_like(p) for g in vectors for p in g["params"])
    # zero gradients: only weight decay moves anything, and it must not touch biases and BN parameters
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in net.named_parameters():
        assert (not torch.equal(before[n], p)) == (p.dim() == 2), n
    assert not torch.equal(before["0.weight"], net[0].weight)
    assert torch.equal(before["0.bias"], net[0].bias) and torch.equal(before["1.weight"], net[1].weight)


def test_lars_trust_ratio_matches_the_formula():
    w = nn.Parameter(torch.full((3, 4), 2.0))
    opt = LARS([{"params": [w]}], lr=1.0, momentum=0.0, weight_decay=0.0, eta=0.02, clip=True)
    w.grad = torch.full((3, 4), 0.5)
    opt.step()
    ratio = min(0.02 * w.detach().new_tensor(48.0).sqrt().item() / (0.5 * math.sqrt(12)), 1.0)
    assert torch.allclose(w, torch.full((3, 4), 2.0 - ratio * 0.5))


def test_sgd_groups_keep_their_lr_scale_and_fixed_lr():
    model = build_model("simsiam", {"predictor_lr_scale": 0.1})
    opt = build_optimizer("sgd", model.param_groups(0.5), 0.5, 1e-5, 0.9)
    assert isinstance(opt, torch.optim.SGD)
    set_lr(opt, 0.2)
    predictor = [g for g in opt.param_groups if g.get("fixed_lr")]
    others = [g for g in opt.param_groups if not g.get("fixed_lr")]
    assert predictor and all(g["lr"] == pytest.approx(0.05) for g in predictor)  # SimSiam's fixed predictor lr
    assert all(g["lr"] == pytest.approx(0.2) for g in others)
    opt = build_optimizer("sgd", build_model("simsiam", {"predictor_lr_scale": 0.1, "predictor_fixed_lr": False})
                          .param_groups(0.5), 0.5, 1e-5)
    set_lr(opt, 0.2)
    assert sorted({round(g["lr"], 6) for g in opt.param_groups}) == [0.02, 0.2]
    with pytest.raises(ValueError, match="sgd, lars"):
        build_optimizer("adam", [], 0.1, 0.0)


# ---------------------------------------------------------------- kNN


def plain_weighted_knn(train_x, train_y, test_x, test_y, n_classes, k=20, temperature=0.07) -> float:
    """The protocol written out once, without chunks or block tricks: cosine top-k, votes exp(sim/T)."""
    train, test = F.normalize(train_x, dim=1), F.normalize(test_x, dim=1)
    sim, idx = (test @ train.T).topk(k, dim=1)
    votes = torch.zeros(len(test), n_classes).scatter_add_(1, train_y[idx], (sim / temperature).exp())
    return (votes.argmax(1) == test_y).float().mean().item()


def engine_knn(train_x, train_y, test_x, test_y, n_classes, chunk=None) -> float:
    """`lab.core.metrics.knn_accuracy` as the engine calls it: (N, F) features as one seed, in chunks of queries."""
    acc = knn_accuracy(F.normalize(train_x, dim=1)[None], train_y, F.normalize(test_x, dim=1)[None], test_y,
                       n_classes=n_classes, chunk=chunk)
    return acc[0].item()


def test_engine_knn_equals_a_plain_weighted_vote_on_separable_and_on_random_labels():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(5, 32, generator=g) * 5
    train_y, test_y = torch.arange(500) % 5, torch.arange(200) % 5
    train_x = centers[train_y] + torch.randn(500, 32, generator=g)
    test_x = centers[test_y] + torch.randn(200, 32, generator=g)
    random_y = torch.randint(0, 5, (500,), generator=g)
    for labels, lo, hi in ((train_y, 0.98, 1.0), (random_y, 0.05, 0.4)):
        plain = plain_weighted_knn(train_x, labels, test_x, test_y, 5)
        assert lo < plain <= hi
        for chunk in (None, 64, 7, 1000):  # 200 = 3 · 64 + 8: a short last chunk
            assert engine_knn(train_x, labels, test_x, test_y, 5, chunk=chunk) == pytest.approx(plain, abs=1e-6)


# ---------------------------------------------------------------- presets


def test_presets_cover_the_papers_figures():
    assert set(PRESETS) == {"fig5-barlow", "fig6-swav-fixed", "fig7-byol-momentum", "b4-dino-centering",
                            "b5-simsiam-predictor", "b6-simsiam-predictor-lr", "baseline-invariance"}
    for name in PRESETS:
        runs = preset_runs(name)
        assert len(runs) >= (1 if name == "baseline-invariance" else 2) and len({r["name"] for r in runs}) == len(runs)
        for r in runs:
            assert r["epochs"] > 0
            method_params(r["method"], r["set"])  # every knob exists
    assert {r["set"].get("lam") for r in preset_runs("fig5-barlow")} == {None, 0.0}
    assert {r["set"].get("predictor_lr_scale") for r in preset_runs("b6-simsiam-predictor-lr")} == {0.01, 0.1, 1.0}
    b5 = {(r["set"].get("predictor", True), r["set"].get("proj_out_bn", True)) for r in preset_runs("b5-simsiam-predictor")}
    assert b5 == {(True, True), (False, True), (True, False), (False, False)}  # predictor × output BN
    with pytest.raises(ValueError, match="fig5-barlow"):
        preset_runs("fig99")


# ---------------------------------------------------------------- DDP: 2 processes == 1 process


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.randn(1, 8, 6, generator=g), "b": torch.randn(1, 8, 6, generator=g),
            "s1": torch.randn(1, 8, 5, generator=g), "s2": torch.randn(1, 8, 5, generator=g),
            "img": torch.randn(8, 4, 3, 3, generator=g), "img_w": torch.randn(8, 4, 3, 3, generator=g)}


def _results(d: dict) -> dict:
    """Losses, their input gradients and the collective statistics, on whatever batch this process holds."""
    out = {}
    a, b = d["a"].clone().requires_grad_(), d["b"].clone().requires_grad_()
    std = global_batch_standardize if idist.is_dist() else batch_standardize
    loss = barlow_loss(std(a), std(b), 0.0051).sum()
    loss.backward()
    out["barlow"], out["barlow_ga"] = loss.detach(), a.grad
    a, b = d["a"].clone().requires_grad_(), d["b"].clone().requires_grad_()
    loss = (info_nce_global if idist.is_dist() else info_nce)(a, b, 0.2).sum()
    loss.backward()
    out["simclr"], out["simclr_ga"], out["simclr_gb"] = loss.detach(), a.grad, b.grad
    a, b = d["a"].clone().requires_grad_(), d["b"].clone().requires_grad_()
    loss = simplified_loss(a, b, -1.0).sum()
    loss.backward()
    out["simplified"], out["simplified_ga"] = loss.detach(), a.grad
    q1, q2 = sinkhorn(d["s1"], 0.05, 3), sinkhorn(d["s2"], 0.05, 3)
    out["swav_q"], out["swav"] = q1, swav_loss(d["s1"], d["s2"], q1, q2, 0.1)
    out["dino_center"] = teacher_batch_mean(d["s1"], d["s2"])
    bn = idist.sync_batchnorm(nn.BatchNorm2d(4), "cpu")
    torch.manual_seed(0)
    nn.init.normal_(bn.weight)
    x = d["img"].clone().requires_grad_()
    y = bn(x)
    (y * d["img_w"]).sum().backward()
    out["bn"], out["bn_gx"], out["bn_running"] = y.detach(), x.grad, bn.running_var.clone()
    return out


def _ddp_worker(rank: int, store: str, out_dir: str) -> None:
    """One gloo process of two: the loss collectives on its half of `_data()`, then a DDP model step."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        half = {k: (v[rank * 4:(rank + 1) * 4] if k.startswith("img") else v[:, rank * 4:(rank + 1) * 4])
                for k, v in _data().items()}
        torch.save(_results(half), os.path.join(out_dir, f"rank{rank}.pt"))
        x1, x2 = _views(n=8, size=40, seed=5)
        out = {m: _model_grads(m, x1[:, rank * 4:(rank + 1) * 4], x2[:, rank * 4:(rank + 1) * 4], True)
               for m in _STEP_METHODS}
        torch.save(out, os.path.join(out_dir, f"model{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks():
    """What the two processes computed: {"losses": [rank0, rank1], "model": [rank0, rank1]}."""
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_ddp_worker, args=(os.path.join(tmp, "store"), tmp), nprocs=2, join=True)
        return {"losses": [torch.load(os.path.join(tmp, f"rank{i}.pt")) for i in range(2)],
                "model": [torch.load(os.path.join(tmp, f"model{i}.pt")) for i in range(2)]}


def test_loss_collectives_on_two_processes_equal_one_process_on_the_whole_batch(two_ranks):
    whole = _results(_data())
    r = two_ranks["losses"]

    def close(x, y):
        return torch.allclose(x, y, atol=1e-5, rtol=1e-4)

    def cat(key, dim=1):
        return torch.cat([r[0][key], r[1][key]], dim=dim)

    # every rank computes the global objective; DDP averages gradients over ranks, so a rank's gradient
    # is world_size × its share of the 1-process gradient
    assert close(r[0]["barlow"], whole["barlow"]) and close(r[1]["barlow"], whole["barlow"])
    assert close(cat("barlow_ga") / 2, whole["barlow_ga"])
    assert close((r[0]["simclr"] + r[1]["simclr"]) / 2, whole["simclr"])
    assert close(cat("simclr_ga") / 2, whole["simclr_ga"]) and close(cat("simclr_gb") / 2, whole["simclr_gb"])
    assert close((r[0]["simplified"] + r[1]["simplified"]) / 2, whole["simplified"])
    assert close(cat("simplified_ga") / 2, whole["simplified_ga"])
    assert close(cat("swav_q"), whole["swav_q"])
    assert close((r[0]["swav"] + r[1]["swav"]) / 2, whole["swav"])
    assert close(r[0]["dino_center"], whole["dino_center"]) and close(r[1]["dino_center"], whole["dino_center"])
    assert close(cat("bn", 0), whole["bn"]) and close(r[0]["bn_running"], whole["bn_running"])
    assert close(cat("bn_gx", 0), whole["bn_gx"])  # here each rank's loss is its share of the whole sum
    # and the halves alone would not have matched: the collectives did the work
    alone = _results({k: (v[:4] if k.startswith("img") else v[:, :4]) for k, v in _data().items()})
    assert not close(alone["barlow"], whole["barlow"]) and not close(alone["dino_center"], whole["dino_center"])


_STEP_METHODS = ("barlow", "simsiam", "simclr")


def _model_grads(method: str, x1: torch.Tensor, x2: torch.Tensor, ddp: bool) -> dict:
    """Loss and gradients of one step of the ImageNet model, every BatchNorm over the global batch."""
    model = idist.sync_batchnorm(build_model(method, seed=0), "cpu")
    step = nn.parallel.DistributedDataParallel(model) if ddp else model
    loss, _ = step(x1, x2)
    loss.sum().backward()
    named = dict(model.named_parameters())
    keep = ("encoder.backbone.conv1.weight", "encoder.backbone.layer4.1.bn2.weight", "encoder.projector.0.weight")
    return {"loss": loss.detach(), **{k: named[k].grad.clone() for k in keep}}


def test_a_ddp_step_of_the_model_on_two_processes_equals_one_process_on_the_whole_batch(two_ranks):
    # sync_batchnorm + the losses' collectives + DDP's gradient average: the same gradients as one
    # process on the global batch (SimSiam/SimCLR losses are per-rank means, whose average is the global one)
    x1, x2 = _views(n=8, size=40, seed=5)
    whole = {m: _model_grads(m, x1, x2, False) for m in _STEP_METHODS}
    r = two_ranks["model"]
    for m in _STEP_METHODS:
        assert torch.allclose((r[0][m]["loss"] + r[1][m]["loss"]) / 2, whole[m]["loss"], rtol=1e-4, atol=1e-5), m
        for k, g in whole[m].items():
            if k != "loss":
                assert torch.allclose(r[0][m][k], r[1][m][k]), (m, k)  # DDP: the same gradient on every rank
                assert torch.allclose(r[0][m][k], g, rtol=1e-3, atol=1e-3 * g.abs().max().item()), (m, k)
