"""Alias of `lab.data.cache` (the engine's old name, still named by run folders, SLURM scripts and notebooks)."""
import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("lab.data.cache", run_name="__main__", alter_sys=True)
else:
    import lab.data.cache

    sys.modules[__name__] = lab.data.cache
