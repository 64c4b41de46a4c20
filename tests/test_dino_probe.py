"""tools/dino_probe.py, the independent DINO that checks the lab's (issue 21): it runs on real Fashion-MNIST
images and its readings are what they say."""
from __future__ import annotations

import math

import pytest

from lab.data import fmnist
from tools import dino_probe


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    if not fmnist.is_fashion_mnist(fmnist.DEBIAN_DIR):
        pytest.skip(f"needs Debian's dataset-fashion-mnist at {fmnist.DEBIAN_DIR} (scripts/test.sh installs it)")
    return fmnist.write_subset(fmnist.DEBIAN_DIR, tmp_path_factory.mktemp("fmnist"), {"train": 8, "val": 2})


@pytest.mark.parametrize("extra", [[], ["--bn-head", "--joint-bn", "--local", "2", "--opt", "adamw"]])
def test_probe_steps_and_reads(small, tmp_path, extra):
    k = 32
    rows = dino_probe.main(["--data", str(small), "--out", str(tmp_path / "run"), "--steps", "3", "--every", "1",
                            "--batch", "16", "--prototypes", str(k), "--hidden", "32", "--bottleneck", "8",
                            "--total", "10", "--warmup", "2", *extra])
    assert [r["step"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert 0.0 <= r["s_y"] <= 1.0 + 1e-6 and 0.0 <= r["s_h"] <= 1.0 + 1e-6
        assert 0.0 <= r["H_t"] <= r["H_mean"] + 1e-6 <= math.log(k) + 2e-6  # a mean is no sharper than its parts
        assert math.isfinite(r["loss"])
    # Step 0: the student is the teacher and the cross-entropy of a target is at least its entropy (Gibbs).
    assert rows[0]["loss"] >= rows[0]["H_t"] - 0.01
