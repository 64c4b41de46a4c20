"""The doctor's pictures: the projection to 3 dimensions (`lab.doctor.project`), the figures and the HTML report
(`lab.render.doctor`), and the references (`lab.doctor.references`)."""
import base64
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from lab import doctor
from lab.doctor.project import project
from lab.doctor.references import lab_references, uniform_reference
from lab.render import doctor as draw


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def emb(z, labels=None):
    return doctor.embeddings(np.asarray(z, dtype=np.float32), labels)


@pytest.mark.parametrize("dim", [2, 3])
def test_small_dimensions_are_drawn_exactly(dim):
    z = np.random.default_rng(0).standard_normal((300, dim)) * 3
    p = project(emb(z))
    assert p.exact and p.share == 1.0
    np.testing.assert_allclose(p.points[:, :dim], unit(z[p.index]), atol=1e-6)
    assert np.all(p.points[:, dim:] == 0)
    np.testing.assert_allclose(p.inside, 1.0, atol=1e-6)


def test_rows_in_three_directions_keep_their_angles():
    # Rows spanning 3 directions of D = 64: the 3 principal directions hold all of them, so the drawing is a
    # rotation of the rows: every pair keeps its cosine.
    rng = np.random.default_rng(1)
    z = rng.standard_normal((500, 3)) @ np.linalg.qr(rng.standard_normal((64, 3)))[0].T
    p = project(emb(z))
    assert not p.exact and p.share == pytest.approx(1.0, abs=1e-9)
    u = unit(z[p.index])
    np.testing.assert_allclose(p.points @ p.points.T, u @ u.T, atol=1e-6)


def test_collapsed_rows_gather_on_the_first_axis_along_s():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((2000, 128)) * 0.05 + rng.standard_normal(128)
    p = project(emb(z))
    assert p.center_norm > 0.99 and p.share > 0.99
    # The first direction is s/‖s‖ up to the spread, pointing the way s does (the sign rule).
    assert p.center[0] == pytest.approx(p.center_norm, rel=1e-3)
    assert np.median(p.points[:, 0]) > 0.99


def test_healthy_rows_read_a_small_share_and_one_point_reads_one_axis():
    healthy = project(emb(np.random.default_rng(3).standard_normal((2000, 256))))
    assert healthy.share < 3 / 256 * 2  # 3 of 256 evenly spread directions hold 3/256, the sample's noise more
    point = project(emb(np.ones((50, 16))))  # one direction only: no round-off directions made up
    np.testing.assert_allclose(point.points, np.tile([1.0, 0, 0], (50, 1)), atol=1e-9)


def test_projection_samples_seeded_and_skips_rows_without_direction():
    z = np.random.default_rng(4).standard_normal((5000, 8))
    z[:100] = np.nan
    a, b = project(emb(z), sample=700, seed=5), project(emb(z), sample=700, seed=5)
    np.testing.assert_array_equal(a.index, b.index)
    assert len(a.index) < 700 or a.index.min() >= 100
    assert np.all(a.index >= 100) and np.isfinite(a.points).all()


def test_sphere_figure_colours_classes_and_carries_row_numbers():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 4, 800)
    p = project(emb(rng.standard_normal((800, 32)), labels))
    fig = draw.sphere_figure(p, "model", center_norm=0.123, class_names=["a", "b", "c", "d"])
    names = [t.name for t in fig.data if t.type == "scatter3d"]
    assert names[:4] == ["a", "b", "c", "d"] and names[4] == "class centroids" and "‖s‖ = 0.123" in names[5]
    centroids = fig.data[5]
    for i, c in enumerate(range(4)):  # each class's centroid of the drawn rows, in the same 3 directions
        u = np.asarray(p.shown)[p.labels == c].mean(axis=0)
        np.testing.assert_allclose([centroids.x[i], centroids.y[i], centroids.z[i]], u, atol=1e-12)
    rows = np.concatenate([np.asarray(t.customdata)[:, 0] for t in fig.data[1:5]])
    assert sorted(rows.astype(int).tolist()) == sorted(p.index.tolist())
    assert f"holding {p.share:.0%}" in fig.layout.title.text
    many = project(emb(rng.standard_normal((800, 32)), rng.integers(0, 50, 800)))
    assert len([t for t in draw.sphere_figure(many).data if t.type == "scatter3d"]) == 2  # one scale, s


def test_spectrum_figure_is_log_and_leaves_out_zeros():
    r = {"spectrum": [4.0, 2.0, 1.0, 0.0], "effective_rank": 2.6}
    fig = draw.spectrum_figure([("model", r), ("reference: x", r)])
    assert fig.layout.yaxis.type == "log"
    np.testing.assert_allclose(fig.data[0].y, [4 / 7, 2 / 7, 1 / 7])
    assert fig.data[1].line.dash == "dot"


def test_readings_table_puts_references_beside_the_model():
    rng = np.random.default_rng(7)
    model = doctor.check(rng.standard_normal((600, 16)).astype(np.float32), labels=rng.integers(0, 3, 600))
    ref = uniform_reference(16, 600)
    rows = draw.readings_rows([("model", model.readings), ("uniform", ref)])
    by = {r["reading"]: r for r in rows}
    assert by["kNN accuracy (5-fold)"]["uniform"] == "—"  # the reference has no labels
    assert by["effective rank (on the sphere)"]["model"].endswith("of 16")
    assert by["effective rank (on the sphere)"]["collapse"] == "< 2"  # max(2, C − 1) for 3 classes
    assert list(rows[0]) == ["reading", "model", "uniform", "collapse"]


def test_uniform_reference_reads_healthy_at_its_dimension():
    r = uniform_reference(256, 50_000)
    assert r["n"] == 10_000 and r["dim"] == 256
    assert r["center_norm"] < 5 / np.sqrt(10_000)  # ‖mean of N unit rows‖ ≈ 1/√N
    assert r["effective_rank"] > 0.9 * 256


def test_stored_lab_references_name_their_collapse():
    refs = {r["name"]: r for r in lab_references()}
    assert refs, "assets/doctor/references.json is missing"
    for r in refs.values():
        assert r["signature"] in doctor.SIGNATURES and r["readings"]["dim"] >= 2
    assert {r["signature"] for r in refs.values()} >= {doctor.HEALTHY, doctor.COMPLETE}


def test_thumbnails_are_png_of_the_rows_images():
    images = np.arange(5 * 28 * 28, dtype=np.uint32).reshape(5, 28, 28).astype(np.uint8)
    thumbs = draw.thumbnails(images, np.array([1, 3]), size=32)
    assert set(thumbs) == {1, 3}
    png = Image.open(io.BytesIO(base64.b64decode(thumbs[3].split(",", 1)[1])))
    assert png.size == (32, 32)
    np.testing.assert_array_equal(np.asarray(png.resize((28, 28), Image.NEAREST)), images[3])


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.open = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def test_html_report_is_standalone_with_every_part():
    rng = np.random.default_rng(8)
    rows, labels = rng.standard_normal((900, 24)).astype(np.float32), rng.integers(0, 3, 900)
    e = emb(rows, labels)
    report, p = doctor.check(e), project(e)
    images = rng.integers(0, 255, (900, 28, 28)).astype(np.uint8)
    html = draw.report_html([("A", report, p, draw.thumbnails(images, p.index)),
                             ("B", doctor.check(emb(rows[:, :3])), project(emb(rows[:, :3])), None)],
                            [("reference: uniform", uniform_reference(24, 900))], made="test")
    parser = Tags()
    parser.feed(html)
    assert parser.tags.count("table") == 1 and "script" in parser.tags
    assert not re.search(r"<script[^>]*\bsrc=", html)  # works offline: plotly.js is inside, no script is fetched
    assert len(re.findall(r"Plotly\.newPlot", html)) == 3  # two spheres, one spectrum
    assert html.count("gd.on('plotly_hover'") == 1  # hover images on the model that has images only
    assert f"A: {report.signature}" in html and report.why.split(":")[0] in html


def test_class_centroids_read_one_place_when_collapsed_and_apart_when_not():
    rng = np.random.default_rng(9)
    y = np.repeat(np.arange(4), 300)
    apart = np.eye(16)[y] * 5 + rng.standard_normal((1200, 16))  # each class around its own axis
    together = rng.standard_normal(16) * 5 + rng.standard_normal((1200, 16)) * 0.05
    a, t = doctor.check(apart.astype(np.float32), y).readings, doctor.check(together.astype(np.float32), y).readings
    # Centroids on 4 orthogonal axes: cosine 0 between them; each class's ‖m_c‖ ≈ 5/√(25 + 16) = 0.78 (its axis
    # over the rows' norm, the noise in 16 dimensions averaging out).
    assert abs(a["class_centroid_cosine"]) < 0.05 and a["class_center_norm"] == pytest.approx(0.78, abs=0.03)
    assert t["class_centroid_cosine"] > 0.999


def test_command_line_two_models_side_by_side_with_a_report(tmp_path, python, subprocess_env):
    import json
    import subprocess

    rng = np.random.default_rng(10)
    np.save(tmp_path / "spread.npy", rng.standard_normal((600, 16)).astype(np.float32))
    np.save(tmp_path / "point.npy", (rng.standard_normal((600, 16)) * 0.01 + 3).astype(np.float32))
    done = subprocess.run([python, "-m", "lab", "doctor", str(tmp_path / "spread.npy"), str(tmp_path / "point.npy"),
                           "--report", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, env=subprocess_env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("signature: ") == 2 and "signature: complete collapse" in done.stdout
    both = json.loads((tmp_path / "r.json").read_text())
    assert [d["signature"] for d in both] == [doctor.HEALTHY, doctor.COMPLETE]
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "A: spread.npy: healthy" in page and "B: point.npy: complete collapse" in page
    assert "reference: uniform on the sphere at this D" in page
