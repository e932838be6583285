"""Build a tile bank: N pre-sampled (mask, tile) pairs for maps made with ``--tiles bank:PATH``.

    radiff-scale make-tile-bank --model demo --n 2048 --out bank.npz
    python -m jobs.make_tile_bank --model OUT/bundle --n 512 --out bank.npz

The same command as ``radiff-scale make-tile-bank`` (radiff_scale/cli/tile_bank.py). It
runs in-process (no Ray): real single-object masks from the shipped mask bank, one tile
each, sampled in batches with the null background. See docs/tile-bank.md for when a bank
is the right tool and what it costs in realism.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from radiff_scale.cli import job_main


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("make-tile-bank", "make_tile_bank", argv)


if __name__ == "__main__":
    sys.exit(main())
