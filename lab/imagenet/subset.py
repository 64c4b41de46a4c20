"""Alias of `lab.data.subset` (the engine's old name, still named by run folders, SLURM scripts and notebooks)."""
import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("lab.data.subset", run_name="__main__", alter_sys=True)
else:
    import lab.data.subset

    sys.modules[__name__] = lab.data.subset
