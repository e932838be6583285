"""The map job: a synthetic radio map with its exact truth, from one MapSpec.

    ray job submit --working-dir . -- python -m jobs.make_map --config configs/sdc-like.yaml --out OUT
    radiff-scale make-map --config configs/sdc-like.yaml --out OUT [--resume]
    radiff-scale make-map ... --positions CATALOGUE    (objects at a catalogue's RA/Dec or x/y)
    radiff-scale demo --out OUT

From Python: ``radiff_scale.make_map``. The job itself is radiff_scale/pipelines/map_job.py
(stages in docs/architecture.md); this file is only the entry point ``ray job submit`` runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from radiff_scale.cli import job_main


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("make-map", "make_map", argv)


if __name__ == "__main__":
    sys.exit(main())
