"""The validate job: PyBDSF on a finished map run, matched against its truth and scored.

    ray job submit --working-dir . -- python -m jobs.validate /shared/sdc-like --workers 16
    radiff-scale validate OUT [--out-json PATH] [--workers N] [--quiet]

Needs the validate extra (pip install -e ".[validate]"). The job itself is
radiff_scale/pipelines/validate_job.py (docs/validation.md); this file is only the entry
point ``ray job submit`` runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from radiff_scale.cli import job_main


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("validate", "validate", argv)


if __name__ == "__main__":
    sys.exit(main())
