"""Per-purpose, per-object random streams.

Every random draw in a map run comes from a generator seeded by (run seed, object or
chunk id, purpose) and nothing else, so results never depend on worker count, batch
position or timing. ``purpose`` keeps streams for different jobs (placement, k,
tile noise) independent even for the same object.
"""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(run_seed: int, index: int, purpose: str = "") -> int:
    """A 63-bit seed that depends only on (run_seed, index, purpose)."""
    if run_seed < 0 or index < 0:
        raise ValueError("seeds and indices must be non-negative")
    seq = np.random.SeedSequence([int(run_seed), int(index), zlib.crc32(purpose.encode())])
    return int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def derive_rng(run_seed: int, index: int, purpose: str = "") -> np.random.Generator:
    """A numpy generator for (run_seed, index, purpose); see :func:`derive_seed`."""
    return np.random.default_rng(derive_seed(run_seed, index, purpose))
