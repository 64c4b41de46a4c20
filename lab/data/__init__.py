"""Datasets: toy data for the circle/sphere demos (and, later, the ImageNet-100 loader)."""
from lab.data.b1 import B1Data, make_b1_data

__all__ = ["B1Data", "make_b1_data"]
