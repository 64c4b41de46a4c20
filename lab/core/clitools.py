"""Shared command-line pieces."""
from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad input as one line on stderr with exit status 2, not its usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message}\n")
