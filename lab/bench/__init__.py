"""Benchmarks: `python -m lab.bench b1`. Each measures the lab's path against a plain one in the same process."""
