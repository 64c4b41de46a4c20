"""Toy trainers. `b1`: the paper's B.1 collapse experiment (invariance loss on the circle/sphere)."""
from lab.train.b1 import PAPER_SETTINGS, B1Config, B1Run, paper_config, train_b1

__all__ = ["PAPER_SETTINGS", "B1Config", "B1Run", "paper_config", "train_b1"]
