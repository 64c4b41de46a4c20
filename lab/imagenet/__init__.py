"""Old name of the real-image engine, kept as an alias for a while: run folders, SLURM scripts and notebooks
name `python -m lab.imagenet.train` (and `.cache`, `.fake`, `.subset`). The engine is `lab.engine`, its image
data code `lab.data`; `lab.imagenet.X` gives `lab.engine.X` (on first use, as the engine's own surface does)."""
import lab.engine as _engine


def __getattr__(name: str):
    return getattr(_engine, name)
