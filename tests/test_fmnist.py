"""Fashion-MNIST through the engine: Debian's real idx files, the reader's one-line errors, the small-image
backbone and recipes, and where ‖s‖ is read (before the projector's output BatchNorm, which erases it)."""
from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch
from torch import nn

from lab.data import fmnist
from lab.engine.metrics import ViewRecorder, effective_rank_of_covariance
from lab.engine.model import build_model
from lab.engine.recipes import RECIPES, SCALES, data_scale, recipe
from lab.engine.train import EPOCH_KEYS, TrainConfig, read_metrics, train
from lab.methods import METHOD_NAMES
from lab.core.metrics import effective_rank

REAL = fmnist.DEBIAN_DIR
needs_real = pytest.mark.skipif(not fmnist.is_fashion_mnist(REAL),
                                reason=f"needs Debian's dataset-fashion-mnist at {REAL} (scripts/test.sh installs it)")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The first 20 training and 5 test images of every class of the real files (200 + 50 images)."""
    if not fmnist.is_fashion_mnist(REAL):
        pytest.skip(f"needs Debian's dataset-fashion-mnist at {REAL}")
    return fmnist.write_subset(REAL, tmp_path_factory.mktemp("fmnist"), {"train": 20, "val": 5})


@needs_real
def test_debians_files_read_as_the_dataset_says():
    x, y = fmnist.load_split(REAL, "train")
    assert x.shape == (60_000, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.equal(torch.bincount(y), torch.full((10,), 6000))
    f = x.float() / 255
    assert float(f.mean()) == pytest.approx(fmnist.MEAN, abs=1e-4) and float(f.std()) == pytest.approx(fmnist.STD,
                                                                                                        abs=1e-4)
    xv, yv = fmnist.load_split(REAL, "val")
    assert xv.shape == (10_000, 1, 28, 28) and torch.equal(torch.bincount(yv), torch.full((10,), 1000))


def _write(root, images: np.ndarray, labels: np.ndarray, split="train", gz=False):
    root.mkdir(parents=True, exist_ok=True)
    for stem, array in zip(fmnist.FILES[split], (images, labels)):
        fmnist.write_idx(root / (stem + (".gz" if gz else "")), array)
    return root


@pytest.mark.parametrize("gz", [False, True])
def test_written_idx_files_read_back_exactly(tmp_path, gz):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), rng.integers(0, 10, 7, dtype=np.uint8)
    _write(tmp_path, images, labels, gz=gz)
    x, y = fmnist.load_split(tmp_path, "train")
    assert np.array_equal(x[:, 0].numpy(), images) and np.array_equal(y.numpy(), labels)
    assert fmnist.is_fashion_mnist(tmp_path) and not fmnist.has_split(tmp_path, "val")


def _corrupt(root, case: str):
    images, labels = np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 2, 3], np.uint8)
    _write(root, images, labels)
    img, lab = root / fmnist.FILES["train"][0], root / fmnist.FILES["train"][1]
    if case == "truncated":
        img.write_bytes(img.read_bytes()[:-100])
        return img.name, "truncated"
    if case == "missing labels":
        lab.unlink()
        return lab.name, "missing"
    if case == "fewer labels":
        fmnist.write_idx(lab, labels[:3])
        return lab.name, "3 labels for 4 images"
    if case == "label out of range":
        fmnist.write_idx(lab, np.array([0, 1, 2, 10], np.uint8))
        return lab.name, "label 10 outside 0..9"
    if case == "not idx":
        img.write_bytes(b"\x89PNG" + bytes(3200))
        return img.name, "not an idx file"
    if case == "bad gzip":
        img.unlink()
        (root / (img.name + ".gz")).write_bytes(gzip.compress(b"x" * 100)[:20])
        return img.name, "cannot be read"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["truncated", "missing labels", "fewer labels", "label out of range", "not idx",
                                  "bad gzip"])
def test_a_bad_file_is_one_line_naming_it(tmp_path, case):
    name, words = _corrupt(tmp_path, case)
    with pytest.raises(fmnist.FashionMNISTError) as err:
        fmnist.load_split(tmp_path, "train")
    message = str(err.value)
    assert "\n" not in message and name in message and words in message, message


def test_the_engine_fails_in_one_line_on_a_bad_folder(tmp_path):
    _corrupt(tmp_path, "truncated")
    _write(tmp_path, np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.uint8), split="val")
    with pytest.raises(ValueError, match="truncated"):
        train(TrainConfig(data=str(tmp_path), method="simsiam", out=str(tmp_path / "run"), device="cpu",
                          workers=0, batch_size=2, epochs=1, progress=False))
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------- model and recipes

def test_small_resnet_shapes_and_the_scaling_rule():
    model = build_model("simsiam", scale="fmnist")
    h, y = model.encoder(torch.zeros(1, 3, 1, 28, 28))
    assert h.shape == (1, 3, 128) and y.shape == (1, 3, 512)
    backbone = model.encoder.backbone
    assert isinstance(backbone.maxpool, nn.Identity) and backbone.conv1.kernel_size == (3, 3)
    assert sum(p.numel() for p in backbone.parameters()) == 699_888  # width 16, 1 channel
    ratio = SCALES["fmnist"].width / 64
    for method in METHOD_NAMES:
        big, small = RECIPES[method], recipe(method, "fmnist")
        assert small.proj_dims == tuple(max(8, round(d * ratio)) for d in big.proj_dims)
        for knob in ("predictor_hidden", "n_prototypes"):
            if knob in big.method_params:
                assert small.method_params[knob] == max(8, round(big.method_params[knob] * ratio))
        assert small.warmup_epochs / small.epochs == pytest.approx(big.warmup_epochs / big.epochs)
        assert small.optimizer == big.optimizer and small.lr == big.lr and "Fashion-MNIST" in small.source
    assert recipe("dino", "fmnist").method_params["teacher_momentum"] == 0.996


def test_the_scale_follows_the_data_folder(small, tmp_path):
    assert data_scale(small) == "fmnist" and data_scale(tmp_path) == "imagenet" and data_scale(None) == "imagenet"
    cfg = TrainConfig(data=str(small), method="byol").resolved()
    assert (cfg.image_size, cfg.load_size, cfg.epochs, cfg.batch_size) == (28, 28, 10, 256)
    with pytest.raises(ValueError, match="load_size must be 28"):
        TrainConfig(data=str(small), method="byol", load_size=32).resolved()


# ----------------------------------------------------------------------------------------- readings

class _Collapsed(nn.Module):
    """An encoder whose projector sends every input to (nearly) one point before its output BatchNorm:
    the point (0.6, 0.8, 0, ...) · 5 plus a 1e-3 part that depends on the input."""

    def __init__(self, dim=16):
        super().__init__()
        self.projector = nn.Sequential(nn.Linear(3, dim), nn.BatchNorm1d(dim, affine=False))
        with torch.no_grad():
            self.projector[0].weight.normal_(0, 1e-3, generator=torch.Generator().manual_seed(0))
            self.projector[0].bias.zero_()
            self.projector[0].bias[:2] = torch.tensor([3.0, 4.0])

    def forward(self, x):
        return x[None], self.projector(x)[None]


def _unit_mean_norm(parts: list[torch.Tensor]) -> float:
    z = torch.cat([torch.nn.functional.normalize(p.double(), dim=1) for p in parts])
    return float(z.mean(0).norm())


def test_pre_bn_reads_the_collapse_that_the_output_batchnorm_erases():
    enc = _Collapsed()
    rec = ViewRecorder(enc, torch.device("cpu"), out_bn=enc.projector[-1])
    batches = [torch.randn(64, 3, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    pre, post = [], []
    for x in batches:  # the plain reading: the same layers called by hand, in train mode like the loss
        with torch.no_grad():
            p = enc.projector[0](x)
            pre.append(p)
            post.append(nn.functional.batch_norm(p, None, None, training=True, eps=enc.projector[1].eps))
    rec.active = True
    for x in batches:
        enc(x)
    v = rec.epoch_values()
    assert v["center_norm_pre_bn"] == pytest.approx(_unit_mean_norm(pre), abs=1e-6)
    assert v["center_norm_post_bn"] == pytest.approx(_unit_mean_norm(post), abs=1e-6)
    # Apart: one point before the BN, and after it every batch has zero mean per dimension.
    assert v["center_norm_pre_bn"] > 0.9999 and v["center_norm_post_bn"] < 0.15
    assert v["center_norm"] == v["center_norm_pre_bn"]
    # Without the pre-BN hook (how the engine read it before) the same views look healthy.
    blind = ViewRecorder(enc, torch.device("cpu"))
    blind.active, rec.active = True, False
    for x in batches:
        enc(x)
    assert blind.epoch_values()["center_norm"] == pytest.approx(v["center_norm_post_bn"], abs=1e-6)


def test_effective_rank_of_the_epochs_covariance_equals_the_svd_of_all_views():
    z = torch.nn.functional.normalize(torch.randn(500, 6, dtype=torch.float64) @ torch.diag(
        torch.tensor([3.0, 2, 1, 0.5, 0.1, 0.01], dtype=torch.float64)) + 0.3, dim=1)
    mean = z.mean(0)
    cov = z.T @ z / len(z) - torch.outer(mean, mean)
    assert effective_rank_of_covariance(cov) == pytest.approx(float(effective_rank(z[None])[0]), rel=1e-9)


# ----------------------------------------------------------------------------------------- a real run

TINY = dict(batch_size=32, device="cpu", workers=0, epochs=2, max_steps_per_epoch=3, knn_every=1,
            log_every_steps=1, progress=False)


def test_simsiam_on_fashion_mnist_reads_epoch_zero_and_both_sides_of_the_bn(small, tmp_path):
    result = train(TrainConfig(data=str(small), method="simsiam", out=str(tmp_path), **TINY))
    assert result["status"] == "finished"
    epochs = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1, 2] and epochs[0]["step"] == 0
    for row in epochs:
        assert set(EPOCH_KEYS) <= set(row), set(EPOCH_KEYS) - set(row)
        assert row["center_norm"] == row["center_norm_pre_bn"] != row["center_norm_post_bn"]
        assert 1.0 <= row["effective_rank"] <= row["effective_rank_max"] == 512
        assert 0.0 <= row["knn_acc"] <= 1.0  # kNN on the official test split, 50 images here
    assert epochs[0]["untrained_batches"] == 3


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_trains_on_fashion_mnist(small, tmp_path, method):
    result = train(TrainConfig(data=str(small), method=method, out=str(tmp_path),
                               **{**TINY, "epochs": 1, "max_steps_per_epoch": 2, "knn_every": 0}))
    assert result["status"] == "finished"
    last = result["last"]
    assert math.isfinite(last["loss"]) and 0.0 <= last["center_norm"] <= 1.0
    assert 0.0 <= last["center_norm_post_bn"] <= 1.0 and last["effective_rank"] >= 1.0
