"""Matplotlib figures for notebooks and README assets."""
from __future__ import annotations
