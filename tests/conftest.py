import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, Path(__file__).resolve().parent):  # lab/, and helpers such as notebook_runner
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


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
