"""``python -m radiff_scale.cli``: the ``radiff-scale`` command."""

import sys

from radiff_scale.cli import main

sys.exit(main())
