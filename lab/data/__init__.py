"""Datasets: the toy sets and the B.1 cloud for the circle/sphere demos, Fashion-MNIST's idx files, and the
real-image side of the engine: image folders (`folder`), their pre-decoded cache (`cache`), a generated
ImageFolder (`fake`), the ImageNet-100 subset (`subset`) and the augmentations (`augment`)."""
from lab.data.b1 import B1Data, make_b1_data

__all__ = ["B1Data", "make_b1_data"]
