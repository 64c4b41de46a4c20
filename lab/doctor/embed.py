"""Embedding a checkpoint for the doctor (`lab.doctor.check`, `python -m lab doctor RUN --data DIR`): a model is
rebuilt from its weights and run over a data split, and its features become the rows the doctor reads.

What loads:

- A checkpoint of the lab's engine: a run folder (`python -m lab.engine.train --out RUN`) or its checkpoint.pt.
  The encoder (ResNet-18 + projector) is rebuilt from the checkpoint's config: its method, knobs and scale (the
  engine picks the scale from its --data folder, `lab.engine.recipes.data_scale`; here the backbone's conv1
  says the same without that folder having to be there), and loaded strictly. The data is the run's own
  (its absolute --data path) unless `data` names another folder.
- A ResNet-18 or ResNet-50 backbone state dict in torchvision's key layout (`conv1.weight`, `bn1.*`,
  `layer1.0.conv1.weight`, `layer1.0.downsample.0.weight`, ...; `fc.*` ignored): bare, or under "state_dict"
  (solo-learn's Lightning checkpoints) or "model", with the longest of `PREFIXES` stripped that makes the
  keys match (solo-learn and lightly: "backbone."), also lightly's `nn.Sequential(*resnet.children())` form
  ("backbone.0.weight" for conv1, "backbone.4.0.conv1.weight" for layer1.0.conv1). The arch is Bottleneck
  (resnet50) where `layer1.0.conv3.weight` exists, else resnet18; stem, width and input channels are read off
  conv1.weight (7×7: torchvision's stem; 3×3: the lab's small stem, of stride 2). Such a file needs `data`.

Files are read with `torch.load(weights_only=True)`: tensors and plain containers only, plus the few numpy
types of the engine's saved numpy RNG state (`_NUMPY_STATE`), none of which runs code. A file that needs any
other Python object built is refused.

The transform is the engine's kNN transform (`lab.engine.metrics.KNN_FEATURES`) at the data's scale
(`lab.engine.recipes.SCALES`): Fashion-MNIST at its 28 px with its own mean and std; an ImageFolder short-side
resized to 256 and center cropped, resized to 224, with ImageNet's mean and std; a lab run on its own kind of
data at the run's image_size and load_size. A grayscale image given to a model of 3 input channels has its one
channel repeated (after normalising); an RGB image given to a 1-channel model becomes the luma (`LUMA`) of its
normalised channels.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lab.core.seeds import numpy_generator
from lab.data.augment import eval_transform
from lab.data.folder import decode, load_fashion_mnist, scan
from lab.data import fmnist
from lab.doctor.load import PAIR_KEYS, Z_KEYS, Embeddings, _first_line, _read_torch, embeddings
from lab.engine.model import ResNetEncoder
from lab.engine.recipes import SCALES, data_scale, recipe
from lab.engine.resnet import resnet18, resnet50
from lab.engine.runfiles import CHECKPOINT

ARCHS = {"resnet18": resnet18, "resnet50": resnet50}
FEATURES = ("backbone", "projector")
SPLITS = ("test", "train")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")  # .ckpt: Lightning's (solo-learn's) checkpoints
PREFIXES = ("", "backbone.", "model.", "module.", "encoder.", "module.backbone.", "model.backbone.",
            "encoder.backbone.")
NESTED = ("state_dict", "model")  # where a checkpoint file keeps its state dict, if not at the top
BOTTLENECK_KEY = "layer1.0.conv3.weight"  # only Bottleneck ResNets (50, 101, 152) have a third conv per block
# lightly's backbone = nn.Sequential(*list(resnet.children())[:-1]): torchvision's children by index (2 is the
# ReLU, 3 the max-pool, 8 the average pool: no weights)
SEQUENTIAL = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
STEM_KERNELS = {7: "imagenet", 3: "small"}
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's convert("L")
BATCH = 256
THUMB = 64  # ImageFolder images are kept for thumbnails at this side (Fashion-MNIST's at their 28 px)
# np.random.get_state() in the engine's checkpoint: a uint32 ndarray (numpy 2 names _reconstruct under _core,
# numpy 1 under core). Rebuilding an ndarray from bytes runs no code of the file's choosing.
_NUMPY_STATE = [np.ndarray, np.dtype, np.dtypes.UInt32DType, np._core.multiarray._reconstruct,
                (np._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DataSplit:
    """One split of a data folder. where: its path; labels: (n,) int64 class indices; channels: of its images
    (1 or 3); scale: its `lab.engine.recipes.SCALES` key (the transform); read(index (B,), size) -> uint8
    (B, channels, S, S), S = size for an ImageFolder (short side resized, center cropped), 28 for Fashion-MNIST."""

    where: str
    labels: np.ndarray
    channels: int
    scale: str
    read: Callable[[np.ndarray, int], torch.Tensor]
    classes: tuple[str, ...] = ()


def embed(path: str | Path, data: str | Path | None = None, *, arch: str | None = None, features: str | None = None,
          limit: int | None = None, split: str | None = None, labels: Any = None, progress: Progress | None = None,
          seed: int = 0, batch_size: int = BATCH, device: str | torch.device | None = None) -> Embeddings:
    """The features of the checkpoint at `path` (a run folder, its checkpoint.pt, or a backbone state dict file)
    on a split of `data` -> `Embeddings` with z (N, F), the dataset's labels (N,) (or `labels`, given), images
    (N, H, W) or (N, T, T, 3) uint8 (what was embedded: Fashion-MNIST at 28 px, an ImageFolder at `THUMB` px),
    and a source naming the checkpoint and the data.

    features: "projector" (lab runs only, their default) the projector's output before its output BatchNorm:
    what the loss acts on, where collapse happens and the engine reads ‖s‖; "backbone" (a bare state dict's
    only choice) the backbone's pooled features, what kNN reads and what a model is kept for. Backbone features
    come after a ReLU: every value ≥ 0, so their ‖s‖ reads high even when healthy (`lab.doctor.diagnose`).
    split: "test" (default: Fashion-MNIST's official test split, an ImageFolder's val/ or test/) or "train".
    limit: embed a seeded sample of that many images (`sample_index`), else the whole split. progress(done,
    total) is called after each batch (counted in batches). Eval mode, no gradients, batches of `batch_size`, on
    `device` (default: CUDA when present, else CPU). Bad input: one-line ValueError."""
    split = split or "test"
    _check_options(arch, features or "backbone", limit, split, batch_size)
    file, found = read_checkpoint(path)
    features = features or ("projector" if is_run(found) else "backbone")
    if is_run(found):
        net, what, run_data, run_sizes = run_network(found, str(file), arch, features)
        if data is None and not (run_data and Path(run_data).is_dir()):
            raise ValueError(f"{file}: the run's data folder {run_data} is not there; pass data (--data DIR)")
        data = run_data if data is None else data
    else:
        net, what = state_dict_network(found, str(file), arch, features)
        run_sizes = None
        if data is None:
            raise ValueError(f"{file}: a backbone state dict needs data to embed (--data DIR: a folder of "
                             f"Fashion-MNIST's idx files, e.g. {fmnist.DEBIAN_DIR}, or an ImageFolder)")
    images = open_split(data, split)
    size, prepare = _transform(images, net, run_sizes)
    index = sample_index(len(images.labels), limit, seed)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    z, thumbs = _run(net, images, index, size, prepare, batch_size, device, progress)
    source = (f"{file} ({what}) on {images.where}: {len(index):,} of {len(images.labels):,} images, {features} "
              "features")
    emb = embeddings(z, images.labels[index] if labels is None else labels, None, source)
    return dataclasses.replace(emb, images=thumbs, class_names=images.classes or None)


def _check_options(arch, features, limit, split, batch_size) -> None:
    if arch is not None and arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    if features not in FEATURES:
        raise ValueError(f"features must be one of {', '.join(FEATURES)}, got {features!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    for name, value, least in (("limit", limit, 2), ("batch_size", batch_size, 1)):  # the doctor needs 2 rows
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                  or value < least):
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


def sample_index(n: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """Which of n images to embed: all (limit None or >= n), else a seeded sample of `limit`, sorted. (N,) int64.
    A sample rather than the first N: an ImageFolder lists its images class by class."""
    if limit is None or limit >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(numpy_generator(seed).choice(n, size=limit, replace=False)).astype(np.int64)


# ----------------------------------------------------------------------------------------- reading a file

def read_checkpoint(path: str | Path) -> tuple[Path, Any]:
    """(the file read, its contents): path itself, or a run folder's checkpoint.pt; weights_only, as above."""
    path = Path(path)
    file = path / CHECKPOINT if path.is_dir() else path
    if path.is_dir() and not file.is_file():
        raise ValueError(f"{path}: a folder without {CHECKPOINT}; expected a run folder of python -m "
                         "lab.engine.train (its --out), a checkpoint file or an embeddings file")
    if not file.is_file():
        raise ValueError(f"{file}: no such file")
    with torch.serialization.safe_globals(_NUMPY_STATE):
        return file, _read_torch(file)


def is_checkpoint(path: str | Path) -> bool:
    """Whether `path` is a checkpoint to embed rather than an embeddings file (`lab.doctor.load`): a folder
    (a run folder; `read_checkpoint` says what one lacks), or a .pt/.pth/.ckpt file holding a dict whose state
    dict (`state_dict_of`) has conv weights (4-D tensors) and no embeddings key. A .pt file that cannot be read
    safely raises that one-line ValueError, as the embeddings reader would."""
    path = Path(path)
    if path.is_dir():
        return True
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES or not path.is_file():
        return False
    return state_dict_of(read_checkpoint(path)[1]) is not None


def state_dict_of(found: Any) -> Mapping | None:
    """The state dict in a file's contents: the dict itself or its "state_dict" or "model", whichever first
    holds a 4-D tensor; None when none does, or the dict holds embeddings (`lab.doctor.load.Z_KEYS`, z1/z2)."""
    if not isinstance(found, Mapping) or any(key in found for key in (*Z_KEYS, *PAIR_KEYS)):
        return None
    for state in (found, *(found.get(key) for key in NESTED)):
        if isinstance(state, Mapping) and any(isinstance(v, torch.Tensor) and v.dim() == 4 for v in state.values()):
            return state
    return None


def is_run(found: Any) -> bool:
    """Whether a file's contents are the lab engine's checkpoint (`lab.engine.save.save_checkpoint`)."""
    return (isinstance(found, Mapping) and isinstance(found.get("config"), Mapping)
            and isinstance(found.get("model"), Mapping) and "method" in found["config"])


# ----------------------------------------------------------------------------------------- the network

def run_network(found: Mapping, source: str, arch: str | None = None,
                features: str = "backbone") -> tuple[nn.Module, str, str | None, tuple[str, int, int]]:
    """The lab engine checkpoint `found`'s encoder, loaded strictly, as the network of `features`:
    (module (B, C, H, W) -> (B, F), what it is in words, the run's data folder, (scale, load_size, image_size))."""
    cfg = found["config"]
    if arch not in (None, "resnet18"):
        raise ValueError(f"{source}: arch {arch} does not fit: the lab's engine trains ResNet-18")
    state = {k.removeprefix("encoder."): v for k, v in found["model"].items() if k.startswith("encoder.")}
    conv1 = state.get("backbone.conv1.weight")
    if not isinstance(conv1, torch.Tensor) or conv1.dim() != 4:
        raise ValueError(f"{source}: its model holds no encoder.backbone.conv1.weight; expected a checkpoint of "
                         "the lab's engine (python -m lab.engine.train)")
    scale = _run_scale(conv1, source)
    try:
        rec = recipe(cfg["method"], scale, cfg.get("set") or {})
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    with torch.random.fork_rng(devices=[]):  # the weights are replaced: leave the caller's random state alone
        encoder = ResNetEncoder(rec)
    _load(encoder, state, source, f"the {cfg['method']} encoder at the {scale} scale")
    # The projector read before its output BatchNorm, which removes the mean the lab reads (the engine's
    # center_norm_pre_bn; `lab.engine.metrics.READ_AT`).
    head = list(encoder.projector)[:-1] if rec.proj_out_bn else list(encoder.projector)
    net = encoder.backbone if features == "backbone" else nn.Sequential(encoder.backbone, *head)
    data = (found.get("identity") or {}).get("data") or cfg.get("data")
    return (net, f"{cfg['method']} run, {scale} scale", data,
            (scale, cfg.get("load_size") or 0, cfg.get("image_size") or 0))


def _run_scale(conv1: torch.Tensor, source: str) -> str:
    """The scale whose backbone has this conv1 (out channels = width, in channels, kernel = stem)."""
    shape = tuple(conv1.shape[:3])
    for name, s in SCALES.items():
        if shape == (s.width, s.in_channels, 7 if s.stem == "imagenet" else 3):
            return name
    raise ValueError(f"{source}: encoder.backbone.conv1.weight of shape {tuple(conv1.shape)} fits none of the "
                     f"engine's scales ({', '.join(SCALES)})")


def state_dict_network(found: Any, source: str, arch: str | None = None,
                       features: str = "backbone") -> tuple[nn.Module, str]:
    """The backbone of a torchvision-layout state dict file's contents: (module, what it is in words)."""
    if features != "backbone":
        raise ValueError(f"{source}: features {features!r} needs a checkpoint of the lab's engine, which holds its "
                         "projector; a backbone state dict gives backbone features only")
    state = state_dict_of(found)
    if state is None:
        keys = ", ".join(map(str, list(found)[:4])) if isinstance(found, Mapping) else type(found).__name__
        raise ValueError(f"{source}: holds no state dict with conv weights (4-D tensors), bare or under "
                         f"{' or '.join(map(repr, NESTED))} (found {keys}); expected a ResNet checkpoint")
    return backbone_from_state(state, arch, source)


@functools.cache
def expected_keys(arch: str) -> frozenset[str]:
    """The state dict keys of `arch` (torchvision's names, no fc), built on the meta device: no memory, no init."""
    with torch.device("meta"):
        return frozenset(ARCHS[arch]().state_dict())


def _candidates(state: Mapping) -> list[tuple[str, bool, dict]]:
    """(prefix, by index, {key without the prefix: tensor}) for each of `PREFIXES` that some key starts with,
    fc.* left out; where keys start with a child's index, also the same renamed by `SEQUENTIAL` (by index)."""
    out = []
    for prefix in PREFIXES:
        found = {k[len(prefix):]: v for k, v in state.items()
                 if isinstance(k, str) and k.startswith(prefix) and isinstance(v, torch.Tensor)}
        found = {k: v for k, v in found.items() if not k.startswith("fc.")}
        if found:
            out.append((prefix, False, found))
        parts = [(k.partition("."), v) for k, v in found.items()]
        if any(head in SEQUENTIAL for (head, _, _), _ in parts):
            out.append((prefix, True, {f"{SEQUENTIAL[head]}.{rest}": v for (head, _, rest), v in parts
                                       if head in SEQUENTIAL}))
    return out


def _mismatch(found: Mapping) -> tuple[str, list[str], list[str]]:
    """(arch the keys say, expected keys missing (num_batches_tracked may be), keys not expected)."""
    arch = "resnet50" if BOTTLENECK_KEY in found else "resnet18"
    expected = expected_keys(arch)
    missing = sorted(k for k in expected - found.keys() if not k.endswith("num_batches_tracked"))
    return arch, missing, sorted(found.keys() - expected)


def backbone_from_state(state: Mapping, arch: str | None = None, source: str = "state dict") -> tuple[nn.Module, str]:
    """A lab ResNet (`lab.engine.resnet.resnet18` / `resnet50`) holding a torchvision-layout backbone state dict
    (module docstring: prefixes, arch, stem, width, channels), loaded strictly, in eval mode:
    (module (B, C, H, W) -> (B, F), what it is in words). An unknown layout, or an arch the keys contradict:
    one-line ValueError naming expected and found keys."""
    ranked = sorted(_candidates(state), key=lambda c: (sum(map(len, _mismatch(c[2])[1:])), -len(c[0]), c[1]))
    if not ranked:
        raise ValueError(f"{source}: holds no tensors under string keys; expected a ResNet state dict")
    prefix, by_index, found = ranked[0]
    inferred, missing, unexpected = _mismatch(found)
    if missing or unexpected:
        raise ValueError(_layout_error(state, source, prefix, missing, unexpected))
    if arch is not None and arch != inferred:
        why = "has" if inferred == "resnet50" else "lacks"
        raise ValueError(f"{source}: arch {arch} does not fit the keys: it {why} {BOTTLENECK_KEY}, so it is a "
                         f"{inferred} ({'Bottleneck' if inferred == 'resnet50' else 'BasicBlock'} blocks)")
    conv1 = found["conv1.weight"]
    stem = STEM_KERNELS.get(conv1.shape[-1]) if conv1.dim() == 4 and conv1.shape[-1] == conv1.shape[-2] else None
    if stem is None:
        raise ValueError(f"{source}: conv1.weight of shape {tuple(conv1.shape)}; expected a 7×7 (torchvision's) or "
                         "3×3 (the lab's small) stem conv (width, channels, k, k)")
    width, channels = int(conv1.shape[0]), int(conv1.shape[1])
    with torch.random.fork_rng(devices=[]):
        model = ARCHS[inferred](False, stem, width, channels)
    found = {**{k: torch.zeros((), dtype=torch.long) for k in model.state_dict() if k.endswith("num_batches_tracked")},
             **found}  # BatchNorm's step counter: some exports drop it, and eval mode never reads it
    what = f"{inferred}, {stem} stem, width {width}, {channels}-channel input"
    _load(model, found, source, f"a {what}")
    return model.eval(), what + (f", keys under {prefix!r}" if prefix else "") + (
        ", nn.Sequential children by index" if by_index else "")


def _layout_error(state: Mapping, source: str, prefix: str, missing: list[str], unexpected: list[str]) -> str:
    keys = [str(k) for k in state]
    shown = ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")
    stripped = f" (with {prefix!r} stripped)" if prefix else ""
    missing_, unexpected_ = ((f"{len(k)} {what}" + (f" (e.g. {', '.join(k[:2])})" if k else ""))
                             for k, what in ((missing, "missing"), (unexpected, "unexpected")))
    return (f"{source}: not a ResNet-18/50 backbone in torchvision's key layout: expected keys like conv1.weight, "
            f"bn1.running_mean, layer1.0.conv1.weight, layer1.0.downsample.0.weight, under one of the prefixes "
            f"{', '.join(repr(p) for p in PREFIXES[1:])} or none; found {len(keys)} keys: {shown}; the closest"
            f"{stripped} has {missing_} and {unexpected_}")


def _load(module: nn.Module, state: Mapping, source: str, what: str) -> None:
    """load_state_dict(strict=True); torch's several-line error as one line: its first problem."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        problems = [line.strip() for line in str(e).splitlines()[1:] if line.strip()]
        detail = (problems[0] if problems else _first_line(e))[:300]
        raise ValueError(f"{source}: the weights do not fit {what} ({detail})") from None


# ----------------------------------------------------------------------------------------- the data

def open_split(data: str | Path, split: str = "test") -> DataSplit:
    """A split of `data`: a folder of Fashion-MNIST's idx files (`lab.data.fmnist`; test: its official test
    split) or an ImageFolder (`lab.data.folder.scan`: test reads DATA/val or DATA/test, train DATA/train; a
    folder of class folders is one split itself). Neither -> one-line ValueError."""
    root = Path(data)
    if not root.is_dir():
        raise ValueError(f"{root}: no such data folder; expected a folder of Fashion-MNIST's idx files or an "
                         "ImageFolder")
    if fmnist.is_fashion_mnist(root):
        images, labels = load_fashion_mnist(root, "val" if split == "test" else "train")
        return DataSplit(f"{root} ({split} split)", labels.numpy(), 1, data_scale(root),
                         lambda index, size: images.index_select(0, torch.from_numpy(index)), fmnist.CLASSES)
    names = ("val", "test") if split == "test" else ("train",)
    folder = next((root / name for name in names if (root / name).is_dir()), root)
    try:
        samples, classes = scan(folder.parent, folder.name)
    except ValueError:
        if folder != root:
            raise  # the split folder is there: scan's own line names what is wrong in it
        raise ValueError(f"{root}: neither Fashion-MNIST (its idx files {fmnist.FILES['train'][0]} and "
                         f"{fmnist.FILES['train'][1]}, plain or .gz) nor an ImageFolder ({root}/"
                         f"{'|'.join(names)}/<class>/*.jpg, or {root}/<class>/*.jpg)") from None
    paths = [path for path, _ in samples]
    labels = np.array([label for _, label in samples], dtype=np.int64)
    return DataSplit(str(folder), labels, 3, data_scale(root),
                     lambda index, size: _decode([paths[i] for i in index], size), tuple(classes))


def _decode(paths: list[Path], size: int) -> torch.Tensor:
    """Image files -> (B, 3, size, size) uint8, short side resized and center cropped (`lab.data.folder.decode`,
    the engine's)."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            out[i] = decode(path, size)
        except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
            raise ValueError(f"{path}: not a readable image ({type(e).__name__}: {_first_line(e)})") from None
    return torch.from_numpy(out).permute(0, 3, 1, 2)


def _transform(images: DataSplit, net: nn.Module, run_sizes: tuple[str, int, int] | None):
    """(load size, prepare: uint8 (B, C, S, S) -> float (B, C', H, H) as the network takes it): the data scale's
    kNN transform (module docstring), at a run's own sizes on data of its scale; channels matched to conv1's."""
    scale = SCALES[images.scale]
    # TrainConfig.resolved's defaults: the scale's sizes, else a load size of image_size · 256/224
    image_size = scale.image_size
    load_size = scale.load_size or int(round(image_size * 256 / 224))
    if run_sizes is not None and run_sizes[0] == images.scale:
        load_size, image_size = run_sizes[1] or load_size, run_sizes[2] or image_size
    wants = next(m for m in net.modules() if isinstance(m, nn.Conv2d)).in_channels
    if wants != images.channels and {wants, images.channels} != {1, 3}:
        raise ValueError(f"the model takes {wants}-channel images; {images.where} has {images.channels}-channel ones")
    luma = torch.tensor(LUMA).view(1, 3, 1, 1)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        x = eval_transform(x, image_size, scale.mean, scale.std)
        if wants == x.shape[1]:
            return x
        if x.shape[1] == 1:  # grayscale to a model of RGB input: the one channel repeated
            return x.expand(-1, wants, -1, -1)
        return (x * luma.to(x.device)).sum(1, keepdim=True)

    return load_size, prepare


@torch.no_grad()
def _run(net: nn.Module, images: DataSplit, index: np.ndarray, size: int, prepare, batch_size: int,
         device: torch.device, progress: Progress | None) -> tuple[np.ndarray, np.ndarray]:
    """(z (N, F) float32, images (N, H, W) or (N, T, T, 3) uint8) of the images at `index`, batch by batch."""
    net = net.to(device).eval()
    parts, thumbs = [], []
    batches = [index[i:i + batch_size] for i in range(0, len(index), batch_size)]
    for done, idx in enumerate(batches, 1):
        x = images.read(idx, size)
        thumbs.append(_thumbs(x))
        parts.append(net(prepare(x.to(device))).float().cpu())
        if progress is not None:
            progress(done, len(batches))
    return torch.cat(parts).numpy(), np.concatenate(thumbs)


def _thumbs(x: torch.Tensor) -> np.ndarray:
    """uint8 (B, 1, S, S) -> (B, S, S); (B, 3, S, S) -> (B, T, T, 3), T = min(S, THUMB)."""
    if x.shape[1] == 1:
        return x[:, 0].numpy().copy()
    if x.shape[-1] > THUMB:
        x = F.interpolate(x.float(), size=(THUMB, THUMB), mode="bilinear", align_corners=False, antialias=True)
        x = x.round_().clamp_(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()
