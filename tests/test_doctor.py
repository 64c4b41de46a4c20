"""The collapse doctor (`lab.doctor`, issue 22): any embedding file read, its readings streamed and equal to the
lab's in-memory ones, and each kind of collapse named on synthetic embeddings made by its mechanism, with the
number that decided it in the reason. Bad input: one line naming the bad value."""
from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest
import torch

from lab.core import collapse, geometry, metrics
from lab.doctor import (COMPLETE, DIMENSIONAL, HEALTHY, PROTOTYPE, PROTOTYPE_POINTS_MAX, Embeddings, check, diagnose,
                        load_embeddings, rank_bound)
from lab.doctor import load as doctor_load
from lab.doctor.readings import POINT_COSINE, readings
from waits import HANG_S

D = 64


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def gaussian(n=5_000, d=D, seed=0) -> np.ndarray:
    """Uniform on the sphere once normalised: healthy."""
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def one_point(n=5_000, d=D, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (unit(rng.standard_normal((1, d))) + 1e-3 * rng.standard_normal((n, d))).astype(np.float32)


def point_and_outliers(norm=1_000.0, n=5_000, d=D, seed=2) -> np.ndarray:
    """98 % at one point, 2 % far away in random directions with `norm` × the others' norm."""
    z = one_point(n, d, seed).astype(np.float64)
    far = n // 50
    z[:far] = norm * unit(np.random.default_rng(seed + 100).standard_normal((far, d)))
    return z.astype(np.float32)


def subspace(rank=2, n=2_000, d=512, seed=3) -> np.ndarray:
    """Gaussian rows in a random `rank`-dimensional subspace of R^d: spread, within `rank` directions."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, rank)))[0]
    return (rng.standard_normal((n, rank)) @ basis.T).astype(np.float32)


def prototypes(k=5, n=5_000, d=D, seed=4) -> tuple[np.ndarray, np.ndarray]:
    """k well-separated points (random directions: cosines ~ ±1/√D) with noise 1e-3, and each row's point."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, k, n)
    return (unit(rng.standard_normal((k, d)))[which] + 1e-3 * rng.standard_normal((n, d))).astype(np.float32), which


def reference(z: np.ndarray) -> dict[str, float]:
    """The lab's in-memory readings of the same rows (`lab.core`), on the sphere."""
    u = geometry.normalize(torch.from_numpy(np.asarray(z, dtype=np.float64))).unsqueeze(0)
    return {"effective_rank": float(metrics.effective_rank(u)[0]), "center_norm": float(geometry.center_norm(u)[0]),
            "center_share": float(geometry.center_share(u, 0.9)[0]), "std_normalized": float(geometry.z_std(u)[0]),
            "median_cosine": float(geometry.center_cosines(u)[0].quantile(0.5)),
            "spectrum": torch.linalg.svdvals(u[0] - u[0].mean(0)).numpy()}


# ---- each kind named, by its deciding number ----

def test_healthy_rows_uniform_on_the_sphere():
    report = check(gaussian())
    r = report.readings
    assert report.signature == HEALTHY, report.why
    assert r["center_norm"] < 0.05 and r["center_share"] == 0 and r["effective_rank"] > 60 and r["points"] is None
    assert abs(r["std_normalized"] - r["std_healthy"]) < 0.01 * r["std_healthy"]
    assert f"{r['center_norm']:.4g}" in report.why and f"effective rank {r['effective_rank']:.4g}" in report.why


def test_one_point_is_complete_collapse():
    report = check(one_point())
    r = report.readings
    assert report.signature == COMPLETE and r["center_norm"] > 0.999 and r["points"] == 1
    assert f"‖s‖ center norm {r['center_norm']:.4g} ≥ 0.9" in report.why


def test_far_outliers_cannot_hide_one_point():
    report = check(point_and_outliers())
    r = report.readings
    assert report.signature == COMPLETE and r["center_share"] >= 0.9 and r["points"] == 1
    assert f"share within 26° of s {r['center_share']:.4g} ≥ 0.9" in report.why
    # On the sphere the outliers' norms weigh nothing: 1,000× or 1× reads the same; the effective rank to the
    # float32 products of the scatter (lab.doctor.readings: the two arrays' rows differ in their float32 rounding,
    # so their sums round differently, ~1e-7 relative; 1e-6 as against the SVD below).
    same = check(point_and_outliers(norm=1.0)).readings
    for key in ("center_norm", "center_share", "effective_rank", "median_cosine"):
        assert r[key] == pytest.approx(same[key], rel=1e-6 if key == "effective_rank" else 1e-9), key
    # The 2 % far rows spread in every direction, and the centered spectrum reads them: a rank of ~50 of 64
    # beside one point. The share, not the rank, decides.
    assert r["effective_rank"] > 10


def test_a_rank_2_subspace_is_dimensional_collapse():
    report = check(subspace())
    r = report.readings
    assert report.signature == DIMENSIONAL, report.why
    assert r["effective_rank"] == pytest.approx(2.0, abs=0.02) and r["effective_rank_bound"] == 3
    assert r["center_norm"] < 0.1 and (r["points"] is None or r["points"] > PROTOTYPE_POINTS_MAX)  # ~60 caps
    assert f"effective rank {r['effective_rank']:.4g} < 3" in report.why


def test_an_arc_that_passes_the_complete_test_is_a_curve_not_points():
    """A uniform arc of 100° in a plane of R^64: ‖s‖ sin(50°)/(50° in radians) = 0.88 < 0.9, and 90 % of it needs
    at least 18 caps of 5.1°: spread along one direction, not sitting on points."""
    rng = np.random.default_rng(6)
    plane = np.linalg.qr(rng.standard_normal((D, 2)))[0]
    angle = np.radians(rng.uniform(-50, 50, 4_000))
    report = check(np.stack([np.cos(angle), np.sin(angle)], 1) @ plane.T)
    r = report.readings
    assert r["center_norm"] == pytest.approx(math.sin(math.radians(50)) / math.radians(50), abs=0.01)
    assert report.signature == DIMENSIONAL and (r["points"] is None or r["points"] >= 18), report.why


@pytest.mark.parametrize("k", [5, 3])
def test_a_few_points_apart_are_prototype_collapse_not_merely_dimensional(k):
    z, _ = prototypes(k)
    report = check(z)
    r = report.readings
    assert report.signature == PROTOTYPE, report.why
    assert r["points"] == k and r["center_norm"] < 0.9 and r["center_share"] < 0.9
    assert f"sit on {k} points" in report.why
    if k == 3:  # 3 points span 2 directions: the rank sign holds too, and the points decide
        assert r["effective_rank"] < rank_bound(r)
        assert [s["kind"] for s in collapse.collapse_signs((collapse.CENTER, collapse.CONCENTRATED), r)] == []


def test_with_labels_the_rank_bound_is_c_minus_1_and_knn_is_read():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 10, 2_000)
    four = subspace(rank=4, n=2_000, d=D)
    assert check(four).signature == HEALTHY  # 4 directions pass the bound of 3 without labels
    report = check(four, labels=y)
    assert report.signature == DIMENSIONAL and report.readings["effective_rank_bound"] == 9
    assert "C = 10 classes" in report.why
    centers = unit(rng.standard_normal((10, D)))
    clustered = check(centers[y] + 0.05 * rng.standard_normal((2_000, D)), labels=y)
    assert clustered.signature == HEALTHY, clustered.why
    assert clustered.readings["n_classes"] == 10 and clustered.readings["knn_acc"] > 0.95
    assert clustered.readings["knn_sample"] == 2_000


def test_the_rule_order_on_readings():
    base = {"center_norm": 0.3, "center_share": 0.1, "effective_rank": 40.0, "dim": 64, "points": None,
            "effective_rank_bound": 3.0}
    assert diagnose(base)[0] == HEALTHY
    assert diagnose(dict(base, effective_rank=2.5))[0] == DIMENSIONAL
    assert diagnose(dict(base, effective_rank=2.5, points=4))[0] == PROTOTYPE
    assert diagnose(dict(base, effective_rank=1.0, points=1, center_share=0.95))[0] == COMPLETE
    assert diagnose(dict(base, points=12))[0] == PROTOTYPE
    assert diagnose(dict(base, points=13))[0] == HEALTHY  # more points than a few
    assert diagnose(dict(base, effective_rank=1.5, dim=3, effective_rank_bound=None))[0] == HEALTHY  # no room


# ---- streamed readings equal the lab's in-memory ones, whatever the chunk ----

# Rows of full numerical rank: the effective rank to 1e-6 relative (in fact ≤ 1e-7, the scatter's float32 sums).
# Rows exactly in a 2-D subspace, stored as float32: the SVD reads their storage round-off (σ ~ 1e-7), the scatter
# cannot resolve σ below √(D·ε)·σ_max and reads 0 (lab.doctor.readings' note): 1e-5.
@pytest.mark.parametrize("make, rank_rel", [(gaussian, 1e-6), (one_point, 1e-6), (point_and_outliers, 1e-6),
                                            (lambda: prototypes()[0], 1e-6), (lambda: subspace(n=1_000), 2e-5)],
                         ids=["healthy", "point", "outliers", "prototypes", "rank2"])
def test_streamed_readings_equal_the_in_memory_ones(make, rank_rel):
    z = make()
    r, ref = check(z).readings, reference(z)
    assert r["effective_rank"] == pytest.approx(ref["effective_rank"], rel=rank_rel)
    assert r["center_norm"] == pytest.approx(ref["center_norm"], rel=1e-9, abs=1e-12)
    assert r["center_share"] == ref["center_share"]
    assert r["std_normalized"] == pytest.approx(ref["std_normalized"], rel=1e-9)
    assert abs(r["median_cosine"] - ref["median_cosine"]) <= 1e-3
    spectrum = np.asarray(r["spectrum"])
    assert len(spectrum) == r["effective_rank_max"] == z.shape[1] and np.all(np.diff(spectrum) <= 0)
    top = len(ref["spectrum"])
    assert np.allclose(spectrum[:top], ref["spectrum"], rtol=1e-6, atol=1e-6 * ref["spectrum"][0])


def test_chunk_size_changes_nothing():
    z, y = prototypes(k=4, n=700, d=16)
    z = np.concatenate([z, gaussian(300, 16)])  # some spread beside the points
    small = readings(Embeddings(z, labels=np.concatenate([y, np.zeros(300, int)])), chunk=7)
    large = readings(Embeddings(z, labels=np.concatenate([y, np.zeros(300, int)])), chunk=65_536)
    assert small.keys() == large.keys()
    # The scatter's products are float32 sums over a chunk (lab.doctor.readings): other chunks round them
    # otherwise, each entry within about √B·2^-24 (B = 1,000 rows here: 2e-6) of the sum of its terms'
    # magnitudes, ~1e-7 on the spectrum read from it: 1e-6, as against the SVD above. The rest is float64.
    assert small["effective_rank"] == pytest.approx(large["effective_rank"], rel=1e-6)
    assert np.allclose(small["spectrum"], large["spectrum"], rtol=1e-6, atol=1e-6 * large["spectrum"][0])
    for key, value in large.items():
        if key in ("effective_rank", "spectrum"):
            continue
        if value is None or isinstance(value, int):
            assert small[key] == value, key
        else:
            assert small[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_rows_without_a_direction_are_counted_and_left_out():
    z = gaussian(1_000, 16)
    bad = z.copy()
    bad[3], bad[10, 2], bad[20, 5], bad[30] = np.nan, np.inf, -np.inf, 0.0
    r, clean = check(bad).readings, check(np.delete(z, [3, 10, 20, 30], axis=0)).readings
    assert r["skipped_rows"] == 4 and r["n"] == 1_000
    for key in ("center_norm", "center_share", "effective_rank", "std_normalized"):
        assert r[key] == pytest.approx(clean[key], rel=1e-9), key


def test_huge_and_tiny_rows_keep_their_direction():
    z = gaussian(500, 8).astype(np.float64)
    scaled = z * np.where(np.arange(500) % 2, 1e200, 1e-200)[:, None]
    a, b = check(z).readings, check(scaled).readings
    assert b["skipped_rows"] == 0 and b["effective_rank"] == pytest.approx(a["effective_rank"], rel=1e-9)


def test_views_give_alignment_and_uniformity():
    z = gaussian(1_000, 16)
    r = check(z, views=z + 0.01 * gaussian(1_000, 16, seed=9)).readings
    assert 0 < r["alignment"] < 0.01 and r["pair_sample"] == 1_000
    assert r["uniformity"] < -2  # spread: log E exp(−2‖zi − zj‖²) ≈ −4 on the sphere
    collapsed = check(one_point(1_000, 16), views=one_point(1_000, 16, seed=8)).readings
    assert collapsed["uniformity"] > -0.01


# ---- files ----

def test_npy_is_memory_mapped_and_reads_as_the_array(tmp_path):
    z = gaussian(1_000, 16)
    np.save(tmp_path / "z.npy", z)
    emb = load_embeddings(tmp_path / "z.npy")
    assert isinstance(emb.z, np.memmap) and emb.source == str(tmp_path / "z.npy")
    assert check(tmp_path / "z.npy").readings == check(z).readings


def test_npz_with_labels_views_and_pairs(tmp_path):
    z, y = prototypes(k=3, n=500, d=16)
    v = z + 1e-4
    np.savez(tmp_path / "a.npz", embeddings=z, labels=y, views=v)
    emb = load_embeddings(tmp_path / "a.npz")
    assert np.array_equal(emb.z, z) and np.array_equal(emb.labels, y) and np.array_equal(emb.views, v)
    np.savez(tmp_path / "pairs.npz", z1=z, z2=v)
    pairs = load_embeddings(tmp_path / "pairs.npz", labels=y)
    assert np.array_equal(pairs.views, v) and np.array_equal(pairs.labels, y)
    np.savez(tmp_path / "first.npz", z)  # arr_0: the first array
    assert np.array_equal(load_embeddings(tmp_path / "first.npz").z, z)
    r = check(tmp_path / "a.npz").readings
    assert r["n_classes"] == 3 and r["knn_acc"] == 1.0 and "alignment" in r


def test_pt_tensor_and_dict_and_label_files(tmp_path):
    z, y = prototypes(k=3, n=300, d=16)
    assert check(torch.from_numpy(z)).readings == check(z).readings  # a tensor as it is
    torch.save(torch.from_numpy(z).half(), tmp_path / "t.pt")
    assert load_embeddings(tmp_path / "t.pt").z.dtype == np.float32
    torch.save({"features": torch.from_numpy(z), "labels": torch.from_numpy(y)}, tmp_path / "d.pt")
    emb = load_embeddings(tmp_path / "d.pt")
    assert np.array_equal(emb.z, z) and np.array_equal(emb.labels, y)
    (tmp_path / "y.txt").write_text("\n".join(f"class-{c}" for c in y) + "\n")
    np.save(tmp_path / "y.npy", y)
    torch.save(torch.from_numpy(y), tmp_path / "y.pt")
    for name in ("y.txt", "y.npy", "y.pt"):
        r = check(tmp_path / "t.pt", labels=tmp_path / name).readings
        assert r["n_classes"] == 3 and r["knn_acc"] == 1.0, name


RAN = []


def _record():
    RAN.append("unpickled")


class Payload:
    """Unpickling it calls _record: what a malicious file would run instead."""

    def __reduce__(self):
        return _record, ()


def test_a_pt_that_needs_unpickling_objects_is_refused(tmp_path):
    torch.save({"z": torch.zeros(4, 3), "extra": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="refused for safety") as e:
        load_embeddings(tmp_path / "evil.pt")
    assert "\n" not in str(e.value) and "_record" in str(e.value) and RAN == []


def _write(tmp_path, name, array):
    path = tmp_path / name
    np.save(path, array)
    return path


BAD = [  # (what is written, how it is read, words the one-line message must hold)
    ("1-D", lambda p: load_embeddings(_write(p, "a.npy", np.zeros(10))), ["(10,)", "2-D"]),
    ("3-D", lambda p: load_embeddings(_write(p, "a.npy", np.zeros((4, 5, 6)))), ["(4, 5, 6)", "3-D"]),
    ("D 1", lambda p: load_embeddings(_write(p, "a.npy", np.ones((10, 1)))), ["D = 1", "D >= 2"]),
    ("N 1", lambda p: load_embeddings(_write(p, "a.npy", np.ones((1, 8)))), ["N = 1", "N >= 2"]),
    ("labels", lambda p: load_embeddings(_write(p, "a.npy", np.ones((100, 8))), labels=np.zeros(99)),
     ["labels of shape (99,)", "(100,)"]),
    ("views", lambda p: check(np.ones((100, 8)), views=np.ones((100, 7))), ["views of shape (100, 7)", "(100, 8)"]),
    ("extension", lambda p: load_embeddings(p / "z.csv"), ["'.csv'", ".npy, .npz, .pt, .pth, .safetensors"]),
    ("missing", lambda p: load_embeddings(p / "nope.npy"), ["nope.npy", "no such file"]),
    ("labels extension", lambda p: load_embeddings(_write(p, "a.npy", np.ones((10, 8))), labels=p / "y.csv"),
     ["'.csv'", ".txt"]),
    ("objects", lambda p: load_embeddings(_write(p, "a.npy", np.array([{1: 2}], dtype=object))),
     ["refused for safety"]),
    ("all nan", lambda p: check(np.full((10, 4), np.nan)), ["0 of 10 rows"]),
    ("junk", lambda p: (p / "j.pt").write_bytes(b"not a tensor") and load_embeddings(p / "j.pt"),
     ["j.pt", "not a readable torch file"]),
    ("no rows key", lambda p: torch.save({"labels": torch.zeros(3)}, p / "k.pt") or load_embeddings(p / "k.pt"),
     ["labels", "embeddings, z, features"]),
]


@pytest.mark.parametrize("make, words", [(m, w) for _, m, w in BAD], ids=[n for n, _, _ in BAD])
def test_bad_input_is_one_line_naming_the_bad_value(tmp_path, make, words):
    with pytest.raises(ValueError) as e:
        make(tmp_path)
    message = str(e.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_safetensors_needs_its_package(tmp_path):
    path = tmp_path / "z.safetensors"
    path.write_bytes(b"\0" * 16)
    if doctor_load._read_safetensors is not None:
        pytest.skip("safetensors is installed here")
    with pytest.raises(ValueError, match=r"pip install safetensors") as e:
        load_embeddings(path)
    assert "\n" not in str(e.value)


def test_the_point_cap_is_the_stated_angle():
    assert math.degrees(math.acos(POINT_COSINE)) == pytest.approx(2.56, abs=0.01)


# ---- the command line ----

def run_cli(python, env, root, *args):
    return subprocess.run([python, "-m", "lab", "doctor", *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=HANG_S)


def test_cli_prints_the_readings_and_the_signature_and_writes_json(python, subprocess_env, root, tmp_path):
    z, y = prototypes(k=5, n=600, d=16)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "out" / "doctor.json"
    r = run_cli(python, subprocess_env, root, str(tmp_path / "z.npy"), "--labels", str(tmp_path / "y.npy"),
                "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "signature: prototype collapse" in r.stdout and "effective rank" in r.stdout
    data = json.loads(out.read_text())
    assert data["signature"] == PROTOTYPE and data["readings"]["points"] == 5 and data["readings"]["n"] == 600
    assert data["readings"]["n_classes"] == 5 and data["why"] in r.stdout


def test_cli_bad_file_is_one_line_and_exit_2(python, subprocess_env, root, tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    r = run_cli(python, subprocess_env, root, str(tmp_path / "bad.npy"))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "bad.npy" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_a_file_read_whole_that_would_not_fit_is_refused_with_the_way_out(tmp_path, monkeypatch, suffix):
    rows = np.random.default_rng(0).standard_normal((1000, 64)).astype(np.float32)  # 256 kB
    path = tmp_path / f"rows{suffix}"
    np.savez(path, z=rows) if suffix == ".npz" else torch.save(torch.from_numpy(rows), path)
    monkeypatch.setattr(doctor_load, "available_memory", lambda: 200_000)  # less than the rows need
    with pytest.raises(ValueError, match=r"to read whole .* memory available; save the rows as \.npy") as e:
        check(path)
    assert "\n" not in str(e.value)
    np.save(tmp_path / "rows.npy", rows)  # memory-mapped: read in chunks whatever the memory
    assert check(tmp_path / "rows.npy").readings["n"] == 1000
