"""Real masks -> synthetic images: one generated image per given mask, written as a dataset.

    radiff-scale sample --masks DATASET_OR_NPZ --out OUT [--background dataset|none|MAP.fits]
    ray job submit --working-dir . -- python -m jobs.sample --masks masks.npz --out OUT

The same command as ``radiff-scale sample`` (radiff_scale/cli/sample.py), as the module
``ray job submit`` runs; the driver is radiff_scale/pipelines/sample_job.py. Tile ``i``
depends only on (``--seed``, ``i``), its mask and its background, so the files are the
same bytes for any ``--workers``. See docs/sample.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from radiff_scale.cli import job_main


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("sample", "sample", argv)


if __name__ == "__main__":
    sys.exit(main())
