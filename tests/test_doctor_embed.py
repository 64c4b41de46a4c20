"""Checkpoints embedded for the doctor (`lab.doctor.embed`, issue 22): torchvision-layout, solo-learn-, lightly-
and `module.`-prefixed ResNet-18/50 state dicts and the lab engine's own run folders, embedded on real
Fashion-MNIST and on a JPEG/PNG ImageFolder, each equal to the model run by hand on the same images with the
engine's evaluation transform. Bad input: one line naming what was expected and what was found."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from lab.data import fmnist
from lab.data.augment import IMAGENET_MEAN, IMAGENET_STD
from lab.data.fake import write_fake_imagefolder
from lab.data.folder import decode
from lab.doctor import SIGNATURES, Embeddings, check, embed, is_checkpoint
from lab.doctor.embed import THUMB, expected_keys, read_checkpoint, sample_index
from lab.engine.config import TrainConfig
from lab.engine.model import build_model, method_params
from lab.engine.resnet import resnet18, resnet50
from lab.engine.train import train
from waits import HANG_S
from test_doctor import RAN, Payload  # a pickle that runs code when loaded, and what it ran

REAL = fmnist.DEBIAN_DIR
needs_real = pytest.mark.skipif(not fmnist.is_fashion_mnist(REAL),
                                reason=f"needs Debian's dataset-fashion-mnist at {REAL} (scripts/test.sh installs it)")
# float32 convolutions summed in another order (batches of 256 against one pass): a few ulps of features ~1
ATOL, RTOL = 1e-5, 1e-4


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """model with BatchNorm statistics and affine parameters drawn away from 0 and 1, so that eval mode's
    normalisation shows in the features (a fresh BatchNorm in eval mode is nearly the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
    return model.eval()


def fmnist_input(x: torch.Tensor, channels: int = 1) -> torch.Tensor:
    """The engine's Fashion-MNIST evaluation input, by hand: uint8 (B, 1, 28, 28) -> normalised, channels repeated."""
    y = (x.float() / 255 - fmnist.MEAN) / fmnist.STD
    return y.expand(-1, channels, -1, -1)


@pytest.fixture(scope="module")
def test_split():
    if not fmnist.is_fashion_mnist(REAL):
        pytest.skip(f"needs Debian's dataset-fashion-mnist at {REAL}")
    return fmnist.load_split(REAL, "val")


@pytest.fixture(scope="module")
def r18():
    """A Fashion-MNIST-shaped lab ResNet-18 (small stem, width 16, one channel), BatchNorm statistics randomised."""
    torch.manual_seed(0)
    return randomized(resnet18(stem="small", width=16, in_channels=1))


def with_fc(model: torch.nn.Module) -> dict:
    """model's state dict as torchvision's resnet would save it: with its classifier fc (to be ignored)."""
    return {**model.state_dict(), "fc.weight": torch.randn(10, model.features), "fc.bias": torch.zeros(10)}


def assert_parity(emb, model, test_split, n, channels=1):
    x, y = test_split
    index = sample_index(len(y), n)
    with torch.no_grad():
        direct = model.eval()(fmnist_input(x[index], channels)).numpy()
    assert emb.z.shape == direct.shape == (n, model.features)
    np.testing.assert_allclose(emb.z, direct, atol=ATOL, rtol=RTOL)
    assert np.array_equal(emb.labels, y[index].numpy())
    assert emb.images.shape == (n, 28, 28) and emb.images.dtype == np.uint8
    assert np.array_equal(emb.images, x[index, 0].numpy())


# ----------------------------------------------------------------------------------------- state dicts

def test_torchvision_keys_match_the_labs_resnets():
    """torchvision's resnet18/resnet50 state dicts hold 122/320 keys, fc.weight and fc.bias among them."""
    assert len(expected_keys("resnet18")) == 120 and len(expected_keys("resnet50")) == 318
    assert {"conv1.weight", "bn1.num_batches_tracked", "layer1.0.downsample.0.weight"} <= expected_keys("resnet50")
    assert "layer2.0.downsample.1.running_var" in expected_keys("resnet18")
    assert sum(p.numel() for p in resnet50().parameters()) == 25_557_032 - 2048 * 1000 - 1000  # torchvision's, no fc


@needs_real
def test_a_torchvision_resnet18_state_dict_embeds_fashion_mnist_as_the_model_does(r18, test_split, tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(with_fc(r18), path)
    assert is_checkpoint(path)
    calls = []
    emb = embed(path, REAL, limit=500, device="cpu", progress=lambda done, total: calls.append((done, total)))
    assert_parity(emb, r18, test_split, 500)
    assert calls == [(1, 2), (2, 2)]  # batches of 256
    assert "resnet18, small stem, width 16, 1-channel input" in emb.source and "500 of 10,000" in emb.source


@needs_real
def test_an_rgb_imagenet_stem_model_gets_the_grayscale_channel_repeated(test_split, tmp_path):
    torch.manual_seed(1)
    model = randomized(resnet18(stem="imagenet", width=8, in_channels=3))
    torch.save(with_fc(model), tmp_path / "rgb.pt")
    emb = embed(tmp_path / "rgb.pt", REAL, limit=100, device="cpu")
    assert_parity(emb, model, test_split, 100, channels=3)


def solo_learn(state):
    return {"state_dict": {**{f"backbone.{k}": v for k, v in state.items()},
                           "projector.0.weight": torch.randn(32, 128), "projector.0.bias": torch.zeros(32),
                           "classifier.weight": torch.randn(10, 128)}, "epoch": 3, "global_step": 30}


LAYOUTS = {  # name: how a trainer saves the backbone's weights, from torchvision-named ones
    "solo-learn": solo_learn,
    "module.": lambda s: {f"module.{k}": v for k, v in s.items()},
    "module.backbone. + projector": lambda s: {**{f"module.backbone.{k}": v for k, v in s.items()},
                                               "module.projector.0.weight": torch.randn(32, 128)},
    "lightly Sequential": lambda s: {"backbone." + {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5",
                                                    "layer3": "6", "layer4": "7"}[k.split(".")[0]]
                                     + k[k.index("."):]: v for k, v in s.items() if not k.startswith("fc.")},
}


@needs_real
@pytest.mark.parametrize("layout", LAYOUTS)
def test_prefixed_state_dicts_load_with_other_keys_ignored(r18, test_split, tmp_path, layout):
    path = tmp_path / "trained.ckpt"
    torch.save(LAYOUTS[layout](with_fc(r18)), path)
    assert is_checkpoint(path)
    emb = embed(path, REAL, limit=64, device="cpu")
    assert_parity(emb, r18, test_split, 64)


@needs_real
def test_a_bottleneck_state_dict_is_read_as_resnet50(test_split, tmp_path):
    torch.manual_seed(2)
    model = randomized(resnet50(stem="small", width=4, in_channels=1))
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in with_fc(model).items()}}, tmp_path / "r50.pt")
    emb = embed(tmp_path / "r50.pt", REAL, limit=64, device="cpu")
    assert "resnet50, small stem, width 4" in emb.source and emb.z.shape == (64, 128)
    assert_parity(emb, model, test_split, 64)
    with pytest.raises(ValueError, match="arch resnet18 does not fit the keys: it has layer1.0.conv3.weight"):
        embed(tmp_path / "r50.pt", REAL, arch="resnet18", limit=8, device="cpu")


# ----------------------------------------------------------------------------------------- the lab's runs

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A two-step SimSiam run of the engine on the first 10 training and 5 test images of each class."""
    if not fmnist.is_fashion_mnist(REAL):
        pytest.skip(f"needs Debian's dataset-fashion-mnist at {REAL}")
    small = fmnist.write_subset(REAL, tmp_path_factory.mktemp("fmnist"), {"train": 10, "val": 5})
    out = tmp_path_factory.mktemp("run")
    result = train(TrainConfig(data=str(small), method="simsiam", out=str(out), batch_size=32, device="cpu",
                               workers=0, epochs=1, max_steps_per_epoch=2, knn_every=0, log_every_steps=1,
                               progress=False))
    assert result["status"] == "finished"
    return out, small


def trained_model(out):
    state = torch.load(out / "checkpoint.pt", weights_only=False)  # the test's own file
    cfg = state["config"]
    model = build_model(cfg["method"], method_params(cfg["method"], cfg["set"], "fmnist"), scale="fmnist")
    model.load_state_dict(state["model"])
    return model.eval()


def test_a_run_folder_embeds_its_own_test_images_with_the_checkpoints_model(run):
    out, small = run
    with pytest.raises(Exception, match="Weights only load failed"):  # the numpy RNG state in it
        torch.load(out / "checkpoint.pt", weights_only=True)
    assert is_checkpoint(out) and is_checkpoint(out / "checkpoint.pt")
    x, y = fmnist.load_split(small, "val")
    model = trained_model(out)
    pre_bn = []  # what enters the projector's output BatchNorm: where the loss acts and the engine reads ‖s‖
    out_bn = model.encoder.projector[-1]
    assert isinstance(out_bn, torch.nn.BatchNorm1d) and model.recipe.proj_out_bn
    out_bn.register_forward_hook(lambda module, inputs, output: pre_bn.append(inputs[0]))
    with torch.no_grad():
        h = model.encoder.backbone(fmnist_input(x))
        model.encoder.projector(h)
    emb = embed(out, device="cpu")  # a lab run's default: the projector before its output BN
    assert emb.z.shape == (50, 512) and np.array_equal(emb.labels, y.numpy())
    np.testing.assert_allclose(emb.z, pre_bn[0].numpy(), atol=ATOL, rtol=RTOL)
    assert np.array_equal(emb.images, x[:, 0].numpy()) and "simsiam run, fmnist scale" in emb.source
    assert emb.class_names == fmnist.CLASSES
    backbone = embed(out / "checkpoint.pt", features="backbone", device="cpu")
    np.testing.assert_allclose(backbone.z, h.numpy(), atol=ATOL, rtol=RTOL)
    report = check(out)
    assert report.signature in SIGNATURES and report.readings["n"] == 50 and report.readings["n_classes"] == 10


def test_a_run_whose_data_moved_asks_for_data(run, tmp_path):
    out, small = run
    state = torch.load(out / "checkpoint.pt", weights_only=False)  # the test's own file
    state["identity"]["data"] = state["config"]["data"] = str(tmp_path / "gone")
    (tmp_path / "moved").mkdir()
    torch.save(state, tmp_path / "moved" / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"the run's data folder .*gone is not there; pass data \(--data DIR\)"):
        embed(tmp_path / "moved", device="cpu")
    moved = embed(tmp_path / "moved", small, device="cpu")
    np.testing.assert_array_equal(moved.z, embed(out, device="cpu").z)


@needs_real
def test_a_run_embeds_other_data_given_and_the_train_split(run):
    out, small = run
    emb = embed(out, REAL, limit=40, split="train", features="backbone", device="cpu")
    x, y = fmnist.load_split(REAL, "train")
    index = sample_index(60_000, 40)
    assert np.array_equal(emb.labels, y[index].numpy()) and np.array_equal(emb.images, x[index, 0].numpy())
    with torch.no_grad():
        h = trained_model(out).encoder.backbone(fmnist_input(x[index]))
    np.testing.assert_allclose(emb.z, h.numpy(), atol=ATOL, rtol=RTOL)


# ----------------------------------------------------------------------------------------- ImageFolder

def test_an_imagefolder_is_embedded_at_224_with_imagenet_normalisation(tmp_path):
    root = write_fake_imagefolder(tmp_path / "data", classes=3, per_class=4, size=40, val_per_class=2, seed=0)
    torch.manual_seed(3)
    model = randomized(resnet18(stem="imagenet", width=8, in_channels=3))
    torch.save(with_fc(model), tmp_path / "r18.pt")
    emb = embed(tmp_path / "r18.pt", root, device="cpu")
    files = sorted((root / "val").rglob("*.jpg"))
    x = torch.from_numpy(np.stack([decode(f, 256) for f in files])).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True).clamp(0, 1)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        np.testing.assert_allclose(emb.z, model(x).numpy(), atol=ATOL, rtol=RTOL)
    assert emb.labels.tolist() == [0, 0, 1, 1, 2, 2] and emb.images.shape == (6, THUMB, THUMB, 3)
    assert embed(tmp_path / "r18.pt", root, split="train", device="cpu").labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_a_folder_of_class_folders_of_pngs_meets_a_one_channel_model(r18, tmp_path):
    rng = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog")):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)).save(tmp_path / "pets" / name / f"{i}.png")
    torch.save(r18.state_dict(), tmp_path / "gray.pt")
    emb = embed(tmp_path / "gray.pt", tmp_path / "pets", device="cpu")  # RGB to luma for a 1-channel conv1
    assert emb.z.shape == (6, 128) and emb.labels.tolist() == [0, 0, 0, 1, 1, 1] and np.isfinite(emb.z).all()
    assert emb.images.shape == (6, THUMB, THUMB, 3)


# ----------------------------------------------------------------------------------------- bad input



def _save(path, obj):
    torch.save(obj, path)
    return path


def _folder_of_text(folder):
    (folder / "notes").mkdir(parents=True)
    (folder / "notes" / "x.txt").write_text("not an image")
    return folder


def _r18_state():
    return resnet18(stem="small", width=8, in_channels=1).state_dict()


BAD = [  # (name, what is written and how it is read, words the one-line message must hold)
    ("unknown layout", lambda p: embed(_save(p / "t.pt", {"stem.conv.weight": torch.zeros(8, 3, 3, 3),
                                                          "head.weight": torch.zeros(2, 8)}), p),
     ["expected keys like conv1.weight", "layer1.0.conv1.weight", "found 2 keys: stem.conv.weight, head.weight",
      "missing", "unexpected (e.g. head.weight"]),
    ("partial", lambda p: embed(_save(p / "t.pt", {k: v for k, v in _r18_state().items()
                                                   if not k.startswith("layer4.1.")}), p),
     ["10 missing (e.g. layer4.1.bn1.bias", "and 0 unexpected"]),
    ("widths", lambda p: embed(_save(p / "t.pt", {**_r18_state(), "conv1.weight": torch.zeros(16, 1, 3, 3)}), p),
     ["do not fit", "size mismatch"]),
    ("no data", lambda p: embed(_save(p / "t.pt", _r18_state())), ["needs data", "--data"]),
    ("neither", lambda p: embed(_save(p / "t.pt", _r18_state()), _folder_of_text(p / "d")),
     ["d: neither Fashion-MNIST", "train-images-idx3-ubyte", "nor an ImageFolder", "d/val|test/<class>/*.jpg"]),
    ("no folder", lambda p: embed(_save(p / "t.pt", _r18_state()), p / "nope"), ["nope", "no such data folder"]),
    ("wrong arch", lambda p: embed(_save(p / "t.pt", _r18_state()), p, arch="resnet50"),
     ["arch resnet50 does not fit", "lacks layer1.0.conv3.weight", "resnet18"]),
    ("objects", lambda p: check(_save(p / "t.pt", {"state_dict": _r18_state(), "hyper_parameters": Payload()}),
                                data=p), ["refused for safety", "_record"]),
    ("projector", lambda p: embed(_save(p / "t.pt", _r18_state()), p, features="projector"),
     ["needs a checkpoint of the lab's engine"]),
    ("no checkpoint.pt", lambda p: check(p, data=p), ["without checkpoint.pt", "run folder"]),
    ("options on embeddings", lambda p: np.save(p / "z.npy", np.ones((4, 3))) or check(p / "z.npy", limit=3),
     ["z.npy: limit is for a checkpoint to embed"]),
    ("limit", lambda p: embed(_save(p / "t.pt", _r18_state()), p, limit=1), ["limit must be an integer >= 2"]),
    ("features", lambda p: embed(p / "t.pt", p, features="head"), ["features must be one of backbone, projector"]),
    ("split", lambda p: embed(p / "t.pt", p, split="val"), ["split must be one of test, train"]),
    ("images", lambda p: Embeddings(np.ones((4, 3)), images=np.zeros((3, 28, 28), np.uint8)),
     ["images of shape (3, 28, 28)", "uint8 (4, H, W) or (4, H, W, 3)"]),
]


@pytest.mark.parametrize("make, words", [(m, w) for _, m, w in BAD], ids=[n for n, _, _ in BAD])
def test_bad_input_is_one_line_naming_what_was_expected(tmp_path, make, words):
    with pytest.raises(ValueError) as e:
        make(tmp_path)
    message = str(e.value)
    assert "\n" not in message and all(w in message for w in words), message
    assert RAN == []


def test_a_file_of_embeddings_is_no_checkpoint(tmp_path):
    torch.save({"embeddings": torch.randn(10, 4), "conv": torch.zeros(2, 2, 2, 2)}, tmp_path / "e.pt")
    torch.save(torch.randn(10, 4), tmp_path / "t.pt")
    assert not is_checkpoint(tmp_path / "e.pt") and not is_checkpoint(tmp_path / "t.pt")
    assert check(tmp_path / "e.pt").readings["n"] == 10
    assert read_checkpoint(tmp_path / "t.pt")[1].shape == (10, 4)


# ----------------------------------------------------------------------------------------- command line

@needs_real
def test_cli_embeds_a_state_dict_and_prints_the_signature(python, subprocess_env, root, r18, tmp_path):
    torch.save(with_fc(r18), tmp_path / "state.pt")
    doctor = [python, "-m", "lab", "doctor", str(tmp_path / "state.pt"), "--data", str(REAL)]
    r = subprocess.run([*doctor, "--limit", "300"], cwd=root, env=subprocess_env, capture_output=True, text=True,
                       timeout=HANG_S)
    assert r.returncode == 0, r.stderr
    assert "300 rows × 128 dimensions" in r.stdout and "signature: " in r.stdout and "kNN accuracy" in r.stdout
    bad = subprocess.run([*doctor, "--arch", "resnet50"], cwd=root, env=subprocess_env, capture_output=True,
                         text=True, timeout=HANG_S)
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.count("\n") == 1, bad.stderr
    assert "arch resnet50 does not fit" in bad.stderr and "Traceback" not in bad.stderr
