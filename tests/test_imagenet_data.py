"""ImageNet data side (lab.engine: fake, folder, cache, augment, subset; lab.bench.imagenet_data) on tiny
real JPEG folders: shapes, order, shards, corrupt files, bad folders, the cache, augmentations, ImageNet-100."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lab.data.augment import IMAGENET_MEAN, IMAGENET_STD, SSLAugment, eval_transform
from lab.data.cache import build_cache
from lab.data.fake import class_name, write_fake_imagefolder
from lab.data.folder import DataError, epoch_batches, make_loader, read_meta, scan, try_decode
from lab.data.subset import build_subset, imagenet100_wnids
from waits import HANG_S

CLASSES, PER_CLASS, VAL, SIZE = 4, 12, 3, 32


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> Path:
    return write_fake_imagefolder(tmp_path_factory.mktemp("fake") / "data", classes=CLASSES, per_class=PER_CLASS,
                                  size=SIZE, val_per_class=VAL, seed=0)


def _epoch(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# ---------------------------------------------------------------- fake ImageFolder

def test_fake_writes_real_jpegs_per_class_and_split(fake):
    for split, count in (("train", PER_CLASS), ("val", VAL)):
        folders = sorted(p.name for p in (fake / split).iterdir())
        assert folders == [class_name(c) for c in range(CLASSES)]
        for name in folders:
            files = sorted((fake / split / name).iterdir())
            assert len(files) == count
            with Image.open(files[0]) as im:
                assert im.format == "JPEG" and im.size == (SIZE, SIZE) and im.mode == "RGB"
                im.load()


def test_fake_is_deterministic_and_classes_are_learnable(fake, tmp_path):
    again = write_fake_imagefolder(tmp_path / "again", classes=CLASSES, per_class=PER_CLASS, size=SIZE,
                                   val_per_class=VAL, seed=0)
    other = write_fake_imagefolder(tmp_path / "other", classes=CLASSES, per_class=2, size=SIZE, seed=1)
    rel = Path("train") / class_name(1) / "train_001_00000.jpg"
    assert (fake / rel).read_bytes() == (again / rel).read_bytes()
    assert (fake / rel).read_bytes() != (other / rel).read_bytes()
    # Nearest class centroid of the mean colour of saturated (object) pixels gets the held-out images
    # right: the classes carry signal; the grey background and position do not.
    def colour(path):
        px = np.asarray(Image.open(path), dtype=np.float32).reshape(-1, 3)
        return px[px.max(1) - px.min(1) > 80].mean(0)

    def pixels(split):
        samples, _ = scan(fake, split)
        return np.stack([colour(p) for p, _ in samples]), np.array([c for _, c in samples])
    xt, yt = pixels("train")
    xv, yv = pixels("val")
    centroids = np.stack([xt[yt == c].mean(0) for c in range(CLASSES)])
    pred = ((xv[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (pred == yv).mean() >= 0.9


def test_fake_cli_writes_and_rejects_bad_values(tmp_path, subprocess_env):
    cmd = [sys.executable, "-m", "lab.data.fake", "--out", str(tmp_path / "d"), "--classes", "2",
           "--per-class", "3", "--size", "16", "--val-per-class", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env, timeout=HANG_S)
    assert done.returncode == 0, done.stderr
    assert "6 train and 2 val" in done.stdout
    assert len(list((tmp_path / "d" / "train").rglob("*.jpg"))) == 6
    for bad in (["--classes", "0"], ["--size", "3"], ["--per-class", "x"], ["--seed", "-1"]):
        done = subprocess.run(cmd + bad, capture_output=True, text=True, env=subprocess_env, timeout=HANG_S)
        assert done.returncode == 2
        assert bad[0] in _one_line(done.stderr)
    with pytest.raises(ValueError, match="classes must be an integer in 1..1000, got 0"):
        write_fake_imagefolder(tmp_path / "e", classes=0)


# ---------------------------------------------------------------- JPEG loader

def test_scan_lists_sorted_classes_and_labels(fake):
    samples, classes = scan(fake, "train")
    assert classes == [class_name(c) for c in range(CLASSES)]
    assert len(samples) == CLASSES * PER_CLASS
    assert [label for _, label in samples] == sorted(label for _, label in samples)
    assert all(p.parent.name == classes[label] for p, label in samples)


def test_loader_shapes_dtypes_labels_and_pixels(fake):
    loader = make_loader(fake, "train", size=24, batch_size=8, workers=0, shuffle=False)
    samples, classes = scan(fake, "train")
    assert loader.classes == classes and loader.n_images == len(samples) and loader.n_corrupt == 0
    batches = _epoch(loader)
    assert len(batches) == len(loader) == len(samples) // 8
    for x, y in batches:
        assert x.shape == (8, 3, 24, 24) and x.dtype == torch.uint8 and not x.is_cuda
        assert y.shape == (8,) and y.dtype == torch.int64
    labels = torch.cat([y for _, y in batches])
    assert labels.tolist() == [label for _, label in samples]
    # A decoded image matches Pillow's own resize of the file (the loader adds no colour change).
    ref = np.asarray(Image.open(samples[0][0]).convert("RGB").resize((24, 24), Image.Resampling.BILINEAR))
    assert np.array_equal(batches[0][0][0].permute(1, 2, 0).numpy(), ref)


def test_loader_resizes_the_short_side_and_center_crops(tmp_path):
    img = np.zeros((40, 80, 3), dtype=np.uint8)  # wide: red | green | blue bands, 20 | 40 | 20 px
    img[:, :20, 0] = 255
    img[:, 20:60, 1] = 255
    img[:, 60:, 2] = 255
    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.fromarray(img).save(tmp_path / "train" / "a" / "wide.png")
    x, _ = next(iter(make_loader(tmp_path, "train", size=16, batch_size=1, workers=0)))
    assert x.shape == (1, 3, 16, 16)
    green = x[0].float()
    assert green[1].min() > 200 and green[0].max() < 50 and green[2].max() < 50, "only the central square"


def test_shuffle_is_deterministic_per_seed_and_epoch_and_workers_agree(fake):
    a = make_loader(fake, "train", size=SIZE, batch_size=8, workers=0, seed=3)
    first = _epoch(a)
    assert _same(first, _epoch(a)), "same epoch, same order"
    a.set_epoch(1)
    second = _epoch(a)
    assert not _same(first, second)
    assert sorted(torch.cat([y for _, y in first]).tolist()) == sorted(torch.cat([y for _, y in second]).tolist())
    a.set_epoch(0)
    assert _same(first, _epoch(a))
    b = make_loader(fake, "train", size=SIZE, batch_size=8, workers=2, seed=3)
    assert _same(first, _epoch(b)), "worker processes give the same batches"
    b.set_epoch(1)
    assert _same(second, _epoch(b)), "persistent workers follow set_epoch"
    b.set_epoch(0)
    for _ in zip(range(1), b):  # leave an epoch early: the next one still starts from its first batch
        pass
    assert _same(first, _epoch(b))
    c = make_loader(fake, "train", size=SIZE, batch_size=8, workers=0, seed=4)
    assert not _same(first, _epoch(c))


def _image_keys(loader) -> list[bytes]:
    return [img.numpy().tobytes() for x, _ in loader for img in x]


def test_two_ranks_get_disjoint_shards_that_cover_the_epoch(fake):
    everything = set(_image_keys(make_loader(fake, "train", size=16, batch_size=6, workers=0)))
    assert len(everything) == CLASSES * PER_CLASS
    for epoch in (0, 1):
        shards = []
        for rank in (0, 1):
            loader = make_loader(fake, "train", size=16, batch_size=6, workers=0, rank=rank, world_size=2, seed=5)
            loader.set_epoch(epoch)
            assert len(loader) == 4
            shards.append(_image_keys(loader))
        assert len(shards[0]) == len(shards[1]) == 24
        assert not set(shards[0]) & set(shards[1])
        assert set(shards[0]) | set(shards[1]) == everything


def test_epoch_batches_shard_rules():
    for n, ws, bs in ((100, 3, 7), (10, 4, 2), (9, 2, 4)):
        for drop_last in (True, False):
            shards = [epoch_batches(n, batch_size=bs, shuffle=True, drop_last=drop_last, seed=1, epoch=2,
                                    rank=r, world_size=ws) for r in range(ws)]
            assert len({len(s) for s in shards}) == 1, "every rank steps the same number of times"
            flat = [np.concatenate(s) for s in shards]
            if drop_last:
                assert all(len(b) == bs for s in shards for b in s)
                joined = np.concatenate(flat)
                assert len(set(joined.tolist())) == len(joined), "no index twice"
            else:
                assert set(np.concatenate(flat).tolist()) == set(range(n)), "every index once at least"
                assert len({len(f) for f in flat}) == 1


def test_corrupt_files_are_skipped_and_counted_batches_stay_whole(fake, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(fake / "train", data / "train")
    good = sorted((data / "train" / class_name(1)).iterdir())[0]
    truncated = data / "train" / class_name(1) / "aaa_truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    garbage = data / "train" / class_name(2) / "aaa_garbage.jpg"
    garbage.write_bytes(b"this is not a JPEG" * 10)
    assert try_decode(truncated, 16) is None and try_decode(garbage, 16) is None
    for workers in (0, 2):
        loader = make_loader(data, "train", size=16, batch_size=10, workers=workers, shuffle=False, drop_last=False)
        assert loader.n_images == CLASSES * PER_CLASS + 2
        batches = _epoch(loader)
        assert [len(y) for _, y in batches] == [10] * 5
        assert all(x.shape == (len(y), 3, 16, 16) for x, y in batches)
        assert loader.n_corrupt == 2
        _epoch(loader)
        assert loader.n_corrupt == 2, "counted once per file"


def test_missing_or_empty_folders_are_one_line_data_errors(tmp_path):
    cases = []
    cases.append((tmp_path / "nowhere", "nowhere"))
    (tmp_path / "nosplit").mkdir()
    cases.append((tmp_path / "nosplit", "nosplit/train"))
    (tmp_path / "noclass" / "train").mkdir(parents=True)
    (tmp_path / "noclass" / "train" / "stray.jpg").write_bytes(b"x")
    cases.append((tmp_path / "noclass", "no class folders"))
    (tmp_path / "noimg" / "train" / "a").mkdir(parents=True)
    (tmp_path / "noimg" / "train" / "a" / "notes.txt").write_text("x")
    cases.append((tmp_path / "noimg", "no images"))
    for root, needle in cases:
        with pytest.raises(DataError) as err:
            make_loader(root, "train", size=16, batch_size=2, workers=0)
        assert needle in str(err.value) and "\n" not in str(err.value)
        assert isinstance(err.value, ValueError)


def test_bad_loader_arguments_name_the_value(fake):
    with pytest.raises(ValueError, match="rank must be an integer in 0..1, got 2"):
        make_loader(fake, "train", size=16, batch_size=2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(fake, "train", size=16, batch_size=0)
    with pytest.raises(DataError, match="no full batch"):
        make_loader(fake, "val", size=16, batch_size=64, workers=0)


# ---------------------------------------------------------------- cache

def test_cache_gives_the_same_pixels_as_the_jpeg_loader(fake, tmp_path):
    out = build_cache(fake, "train", 24, tmp_path / "cache", workers=0)
    meta = read_meta(out)
    assert meta["n"] == CLASSES * PER_CLASS and meta["size"] == 24 and meta["n_corrupt"] == 0
    assert meta["classes"] == [class_name(c) for c in range(CLASSES)]
    assert (out / "images.u8").stat().st_size == meta["n"] * 3 * 24 * 24
    for kw in (dict(shuffle=False), dict(shuffle=True, seed=7), dict(shuffle=True, seed=7, rank=1, world_size=2)):
        jpeg = make_loader(fake, "train", size=24, batch_size=8, workers=0, **kw)
        cached = make_loader(fake, "train", size=24, batch_size=8, workers=0, cache=out, **kw)
        assert cached.n_images == jpeg.n_images and cached.classes == jpeg.classes and len(cached) == len(jpeg)
        for epoch in (0, 2):
            jpeg.set_epoch(epoch)
            cached.set_epoch(epoch)
            assert _same(_epoch(jpeg), _epoch(cached))
    # Leaving an epoch early stops the prefetch thread cleanly; the next epoch is whole.
    for _ in zip(range(2), cached):
        pass
    assert len(_epoch(cached)) == len(cached)


def test_cache_that_does_not_fit_the_request_is_a_data_error(fake, tmp_path):
    out = build_cache(fake, "val", 16, tmp_path / "cache", workers=0)
    with pytest.raises(DataError, match="16 px images, 24 px asked"):
        make_loader(fake, "val", size=24, batch_size=2, cache=out)
    with pytest.raises(DataError, match="split 'val', 'train' asked"):
        make_loader(fake, "train", size=16, batch_size=2, cache=out)
    other = write_fake_imagefolder(tmp_path / "other", classes=3, per_class=1, val_per_class=1, size=16)
    with pytest.raises(DataError, match="4 classes"):
        make_loader(other, "val", size=16, batch_size=2, cache=out)
    with pytest.raises(DataError, match="already exists"):
        build_cache(fake, "val", 16, out, workers=0)
    build_cache(other, "val", 16, out, workers=0, overwrite=True)
    assert read_meta(out)["n"] == 3
    (tmp_path / "half").mkdir()
    with pytest.raises(DataError, match="not a complete cache"):
        make_loader(fake, "val", size=16, batch_size=2, cache=tmp_path / "half")


def test_cache_skips_corrupt_files(fake, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(fake / "val", data / "val")
    (data / "val" / class_name(0) / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = build_cache(data, "val", 16, tmp_path / "cache", workers=0)
    assert read_meta(out)["n"] == CLASSES * VAL and read_meta(out)["n_corrupt"] == 1
    loader = make_loader(data, "val", size=16, batch_size=4, cache=out, drop_last=False, shuffle=False)
    assert loader.n_corrupt == 1 and sum(len(y) for _, y in loader) == CLASSES * VAL


def _stalled_build(data: Path, out: Path, env) -> tuple[subprocess.Popen, Path]:
    """Start the cache CLI and return once it is mid-build (its temporary images.u8 exists)."""
    proc = subprocess.Popen([sys.executable, "-m", "lab.data.cache", "--data", str(data), "--split", "train",
                             "--size", "16", "--out", str(out), "--workers", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tmp_dir = out.parent / f".{out.name}.tmp-{socket.gethostname()}-{proc.pid}"
    deadline = time.time() + HANG_S
    while not (tmp_dir / "images.u8").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, proc.communicate()
    return proc, tmp_dir


def test_interrupted_cache_build_leaves_no_valid_cache(fake, tmp_path, subprocess_env):
    data = tmp_path / "data"
    shutil.copytree(fake / "train", data / "train")
    # A FIFO named like a JPEG: opening it blocks until a writer appears, so the build stalls mid-way.
    fifo = data / "train" / class_name(CLASSES - 1) / "zzz_blocks.jpg"
    os.mkfifo(fifo)
    out = tmp_path / "cache"
    proc, tmp_dir = _stalled_build(data, out, subprocess_env)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=HANG_S) == 128 + signal.SIGTERM
    assert not tmp_dir.exists() and not out.exists(), "SIGTERM: the build cleans up after itself"
    proc, tmp_dir = _stalled_build(data, out, subprocess_env)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert tmp_dir.exists() and not out.exists()
    with pytest.raises(DataError, match="cache folder not found"):
        make_loader(data, "train", size=16, batch_size=4, cache=out)
    fifo.unlink()
    build_cache(data, "train", 16, out, workers=0)
    assert read_meta(out)["n"] == CLASSES * PER_CLASS
    assert not tmp_dir.exists(), "the killed build's temporary folder is cleaned up by the next build"


def test_cache_cli_one_line_errors(tmp_path, subprocess_env):
    cmd = [sys.executable, "-m", "lab.data.cache", "--data", str(tmp_path / "nowhere"), "--size", "16",
           "--out", str(tmp_path / "c")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env, timeout=HANG_S)
    assert done.returncode == 2 and "nowhere" in _one_line(done.stderr)
    done = subprocess.run(cmd[:-4] + ["--size", "2", "--out", "x"], capture_output=True, text=True,
                          env=subprocess_env, timeout=HANG_S)
    assert done.returncode == 2 and "--size" in _one_line(done.stderr)


# ---------------------------------------------------------------- augmentations

def test_ssl_augment_views_shapes_range_and_randomness():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    aug = SSLAugment(24, min_scale=0.2)
    torch.manual_seed(1)
    v1, v2 = aug(x)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    for v in (v1, v2):
        assert v.shape == (6, 3, 24, 24) and v.dtype == torch.float32 and torch.isfinite(v).all()
        assert (v >= (0 - mean) / std - 1e-5).all() and (v <= (1 - mean) / std + 1e-5).all()
    assert not torch.allclose(v1, v2)
    torch.manual_seed(1)
    w1, w2 = aug(x)
    assert torch.equal(v1, w1) and torch.equal(v2, w2), "the global seed makes it reproducible"
    w1, _ = aug(x)
    assert not torch.allclose(v1, w1)
    with pytest.raises(ValueError, match="uint8"):
        aug(x.float())
    with pytest.raises(ValueError, match="min_scale"):
        SSLAugment(24, min_scale=0.0)


def test_eval_transform_is_deterministic_and_normalised():
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    a, b = eval_transform(x, 16), eval_transform(x, 16)
    assert a.shape == (3, 3, 16, 16) and a.dtype == torch.float32 and torch.equal(a, b)
    same = eval_transform(x, 32)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(same, (x.float() / 255 - mean) / std, atol=1e-6)
    flat = torch.full((1, 3, 32, 32), 128, dtype=torch.uint8)
    assert torch.allclose(eval_transform(flat, 16), (torch.full((1, 3, 16, 16), 128 / 255) - mean) / std, atol=1e-5)


# ---------------------------------------------------------------- ImageNet-100

def test_imagenet100_list_has_the_cmc_wnids():
    wnids = imagenet100_wnids()
    assert len(wnids) == 100 and len(set(wnids)) == 100
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    assert wnids[0] == "n02869837" and wnids[-1] == "n02090622"  # CMC's file order
    assert {"n01558993", "n02123045", "n04589890"} <= set(wnids)


def test_subset_links_class_folders_and_names_a_missing_one(fake, tmp_path, subprocess_env):
    wnids = imagenet100_wnids()[:3]
    full = tmp_path / "imagenet"
    jpeg = next((fake / "train" / class_name(0)).iterdir())
    for split in ("train", "val"):
        for w in wnids + ["n99999999"]:  # a class outside the subset
            (full / split / w).mkdir(parents=True)
            shutil.copy(jpeg, full / split / w / f"{w}_1.JPEG")
    out = build_subset(full, tmp_path / "in3", wnids)
    samples, classes = scan(out, "val")
    assert classes == sorted(wnids) and len(samples) == 3
    assert (out / "train" / wnids[0]).is_symlink()
    assert (out / "train" / wnids[0]).resolve() == (full / "train" / wnids[0]).resolve()
    build_subset(full, tmp_path / "in3", wnids)  # again: the links are already right
    with pytest.raises(DataError, match=r"train/n\d{8}: class folder missing \(and 96 more\)"):
        build_subset(full, tmp_path / "in100")
    assert not (tmp_path / "in100").exists(), "nothing half built"
    shutil.rmtree(full / "val" / wnids[2])
    classes_file = tmp_path / "three.txt"
    classes_file.write_text("\n".join(wnids))
    done = subprocess.run([sys.executable, "-m", "lab.data.subset", "--imagenet", str(full), "--out",
                           str(tmp_path / "cli"), "--classes", str(classes_file)],
                          capture_output=True, text=True, env=subprocess_env, timeout=HANG_S)
    assert done.returncode == 2 and f"val/{wnids[2]}" in _one_line(done.stderr)


# ---------------------------------------------------------------- bench helpers

def test_bench_helpers_measure_something(tmp_path):
    from lab.bench.imagenet_data import augment_throughput, loading_throughput, make_bench_jpegs

    root = make_bench_jpegs(tmp_path / "bench", 12, width=80, height=60)
    with Image.open(next((root / "train").rglob("*.jpg"))) as im:
        assert im.size == (80, 60) and im.format == "JPEG"
    r = loading_throughput(root, "train", size=32, batch_size=4, workers=0, max_batches=3)
    assert r["images"] == 8 and r["images_per_s"] > 0 and r["seconds"] > 0
    cache = build_cache(root, "train", 32, tmp_path / "cache", workers=0)
    r = loading_throughput(root, "train", size=32, batch_size=4, workers=0, max_batches=3, cache=cache)
    assert r["images"] == 8 and r["source"] == "cache"
    r = augment_throughput(4, 16, "cpu", repeats=1)
    assert r["images_per_s"] > 0 and r["images"] == 4
