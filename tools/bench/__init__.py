"""`python -m tools.bench.ui|classroom|gpu_check` (also `python -m lab.bench ui|class` from a checkout)."""
