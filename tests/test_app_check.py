"""The "Check a model" page headless (AppTest): a path on this machine read and named, two models side by side,
and bad paths as one line. The upload and the report download: tests/test_browser_check.py."""
import numpy as np
import pytest

from apptest import open_page

PAGE = "views/check.py"


@pytest.fixture()
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CHECK_ROOTS", str(tmp_path))
    rng = np.random.default_rng(0)
    np.save(tmp_path / "healthy.npy", rng.standard_normal((1500, 32)).astype(np.float32))
    np.save(tmp_path / "point.npy", (rng.standard_normal((1500, 32)) * 0.01 + 1).astype(np.float32))
    return tmp_path


def ask_path(at, slot: str, path) -> None:
    at.radio(key=f"{slot}_how").set_value("A path on this machine").run()
    at.text_input(key=f"{slot}_path").set_value(str(path)).run()


def check(at):
    next(b for b in at.button if b.label == "Check").click().run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_a_path_is_read_named_and_drawn(root, files):
    at = open_page(root, PAGE)
    ask_path(at, "a", files / "point.npy")
    check(at)
    assert [e.value for e in at.error][0].startswith("**point.npy: complete collapse.**")
    assert len(at.get("plotly_chart")) == 2  # the sphere and the spectrum
    table = at.dataframe[0].value
    assert {"point.npy", "reference: uniform on the sphere at this D"} <= set(table.columns)
    assert at.get("download_button")


def test_two_models_side_by_side(root, files):
    at = open_page(root, PAGE)
    ask_path(at, "a", files / "healthy.npy")
    at.toggle(key="check_compare").set_value(True).run()
    ask_path(at, "b", files / "point.npy")
    check(at)
    assert at.success[0].value.startswith("**A: healthy.npy: healthy.**")
    assert at.error[0].value.startswith("**B: point.npy: complete collapse.**")
    assert len(at.get("plotly_chart")) == 3  # two spheres, one spectrum
    assert {"A: healthy.npy", "B: point.npy"} <= set(at.dataframe[0].value.columns)


@pytest.mark.parametrize("path, message", [("/etc/passwd", "is outside the folders this page may read"),
                                           ("missing.npy", "does not exist")])
def test_bad_paths_are_one_line(root, files, path, message):
    at = open_page(root, PAGE)
    ask_path(at, "a", path if path.startswith("/") else files / path)
    check(at)
    assert len(at.error) == 1 and message in at.error[0].value and "\n" not in at.error[0].value
