import os
import sys
from pathlib import Path

import pytest
import torch

import lab

# `lab` is installed (scripts/install.sh: pip install -e .), and this folder's helpers (notebook_runner,
# test_browser) are found by pytest's rootdir-relative imports: no sys.path patching here.
ROOT = Path(__file__).resolve().parents[1]
assert Path(lab.__file__).resolve().is_relative_to(ROOT), f"tests import another lab: {lab.__file__}"

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def subprocess_env() -> dict:
    return dict(os.environ)  # `lab` is installed: a subprocess finds it without PYTHONPATH


@pytest.fixture
def kernel_name(tmp_path_factory, monkeypatch) -> str:
    """'python3', made to start this venv's interpreter: if the installed spec does not, a spec
    pointing at sys.executable is written to a temp dir that JUPYTER_PATH puts first."""
    from notebook_runner import spec_runs_this_python

    if not spec_runs_this_python("python3"):
        from ipykernel.kernelspec import install

        prefix = tmp_path_factory.mktemp("kernel")
        install(kernel_name="python3", prefix=str(prefix))
        monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        assert spec_runs_this_python("python3")
    return "python3"


# Modules whose tests start real processes, servers, browsers or clusters, or train for long: marked
# `slow`, so `pytest -m "not slow"` is the quick subset (docs/testing.md).
SLOW_MODULES = ("test_browser", "test_browser_toy", "test_browser_runs", "test_runs", "test_runs_slurm",
                "test_app_runs", "test_notebook", "test_notebooks_toy", "test_imagenet_ddp", "test_imagenet_train",
                "test_toy_cli", "test_bench_toy", "test_claims", "test_doctor_fmnist", "test_browser_check",
                "test_notebook_doctor")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rpartition(".")[2] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
