"""Random streams derived from a seed, by one rule, so that a seed names the same numbers wherever it is used.

A stream is a seed and keys saying what it is for (the weights, the batches, one augmentation group at one
step). `seed_stream` folds them into one integer, `seed · strides[0] + key₀ · strides[1] + … + key_last`,
each stride larger than anything the keys after it add, so distinct (seed, keys) give distinct integers.
The strides are the ones the shipped results were made with (assets/*.json: the same seed must give the
same run), which is why there are three of them rather than one:

- `STRIDE` (1,000,003) for the toy trainer's layers and batches (`lab.core.nn`, `lab.train.toy`) and the
  engine's augmentations, whose steps take `STEP_STRIDE` (4,099) inside it;
- `B1_STRIDE` (7,919) for the Appendix B.1 trainer's weights, sample order and noise (`lab.train.b1`,
  `lab.data.b1`);
- 1 (`OFFSET`) where a stream is the seed moved by a fixed amount: the engine's ranks, the B.1 null's noise.

numpy streams (the engine's image order, the fake image sets) take the keys as a `SeedSequence` entropy
list instead: numpy hashes them itself, and those are the numbers the shipped runs were made with.
"""
from __future__ import annotations

import random
from typing import Sequence

import numpy as np
import torch

STRIDE = 1_000_003
STEP_STRIDE = 4099
B1_STRIDE = 7919
OFFSET = 1
# A torch generator takes seeds below 2⁶⁴; the engine's step streams reach past 2⁶³ after ~2·10¹⁵ steps.
_MODULUS = 2**63 - 1

# Stream keys in use, declared here so that two uses of one seed never share a stream by accident.
TOY_WEIGHTS, TOY_HEADS, TOY_BATCHES = 1, 2, 3  # the encoder, the method's heads, the batch order and partners
B1_WEIGHTS, B1_ORDER, B1_NOISE = 1, 2, 11  # the projector, the sample order, a separate noise draw
# The toy trainer's positive probes: one fixed draw for every run, whatever its seed.
PROBE_SEED = 12345


def seed_stream(seed: int, *keys: int, strides: Sequence[int] = (STRIDE,)) -> int:
    """The integer seed of stream `keys` of `seed`: seed · strides[0] + keys[0] · strides[1] + … + keys[-1]
    (no keys: the seed itself), reduced modulo 2⁶³ − 1. Needs one stride per key."""
    if len(strides) < len(keys):
        raise ValueError(f"{len(keys)} keys need {len(keys)} strides, got {len(strides)}")
    weights = (*strides[:len(keys)], 1)
    return sum(int(v) * w for v, w in zip((seed, *keys), weights)) % _MODULUS


def generator(seed: int, *keys: int, strides: Sequence[int] = (STRIDE,)) -> torch.Generator:
    """A CPU torch generator on stream `keys` of `seed` (`seed_stream`)."""
    return torch.Generator().manual_seed(seed_stream(seed, *keys, strides=strides))


def numpy_generator(seed: int, *keys: int) -> np.random.Generator:
    """A numpy generator on stream `keys` of `seed`: numpy's own hash of the list [seed, *keys]."""
    return np.random.default_rng([seed, *keys])


def seed_globals(seed: int) -> None:
    """Seed the global generators of Python, numpy and torch (what a layer's default init and anything not
    handed a generator draws from)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
