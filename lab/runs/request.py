"""A launch request: what the Runs page's launch form collects, as typed, and how it becomes runs.

One run (`launch`) or a paper preset's whole sweep (`launch_preset`), with the method, its knobs and the
trainer's arguments turned into the engine's train args (an argv list: nothing goes through a shell).
Nothing is checked when a request is made; `launch` checks every field first and raises a one-line
ValueError before anything starts. The defaults are the form's starting values.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lab.runs.core import RunInfo, launch, launch_preset, validate_name
from lab.runs.slurm import SlurmSpec


@dataclass(frozen=True)
class LaunchRequest:
    """name: the run's name; with a preset, its runs' prefix (<name>-<run>; empty: <preset>-<run>).
    preset: a paper preset's name (or `lab.engine.ALL`): its runs' own methods and knobs, so `method` and
    `knobs` are not used. knobs: KEY=VALUE items, comma or line separated, on top of the method's recipe.
    data: the ImageFolder root. batch_size: the global batch. extra: more trainer arguments, split as a
    shell would split them. slurm: the batch job's resources, a SlurmSpec or its fields as a form collects
    them (checked in `launch`, after the fields above), or None to run on this machine."""

    name: str = ""
    preset: str | None = None
    method: str = "simsiam"
    knobs: str = ""
    data: str = ""
    gpus: int = 1
    epochs: int = 200
    batch_size: int = 256
    image_size: int = 224
    extra: str = ""
    slurm: SlurmSpec | Mapping[str, Any] | None = None

    def run_name(self) -> str | None:
        """The checked name; None where a preset's runs take the preset's name as their prefix."""
        name = self.name.strip()
        return validate_name(name) if name or not self.preset else None

    def train_argv(self) -> list[str]:
        """The engine's train args. ValueError in one line."""
        if not self.data.strip():
            raise ValueError("data folder is empty; give an ImageFolder root with train/ (and val/)")
        path = Path(self.data.strip()).expanduser()
        if not path.is_dir():
            raise ValueError(f"data folder {str(path)!r} does not exist")
        argv = ["--data", str(path)]
        if self.method and not self.preset:
            argv += ["--method", self.method]
            for item in self.knobs.replace(",", "\n").splitlines():
                if item.strip():
                    argv += ["--set", item.strip()]
        argv += ["--epochs", str(self.epochs), "--batch-size", str(self.batch_size), "--image-size",
                 str(self.image_size)]
        try:
            argv += shlex.split(self.extra)  # split into arguments like a shell would, but never run by one
        except ValueError as e:
            raise ValueError(f"extra arguments: {e}") from None
        return argv

    def slurm_spec(self) -> SlurmSpec | None:
        """The batch job's resources, checked. ValueError in one line."""
        if self.slurm is None or isinstance(self.slurm, SlurmSpec):
            return self.slurm
        return SlurmSpec(**self.slurm)

    def launch(self, root: str | Path | None = None) -> list[RunInfo]:
        """Start the run, or every run of the preset (one local queue, or one SLURM job each). The fields are
        checked in the form's order (name, train args, SLURM), so the first error is the topmost field's."""
        name, argv, slurm = self.run_name(), self.train_argv(), self.slurm_spec()
        if self.preset:
            return launch_preset(self.preset, argv, gpus=self.gpus, root=root, slurm=slurm, prefix=name)
        return [launch(name, argv, gpus=self.gpus, root=root, slurm=slurm)]
