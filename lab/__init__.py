"""Collapse Lab: see why self-supervised learning does or does not collapse."""
__version__ = "0.1.0"
