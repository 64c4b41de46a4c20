"""Alias of `lab.engine.train` (the engine's old name, still named by run folders, SLURM scripts and notebooks)."""
import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("lab.engine.train", run_name="__main__", alter_sys=True)
else:
    import lab.engine.train

    sys.modules[__name__] = lab.engine.train
