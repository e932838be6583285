"""Numbers the whole project shares, defined once."""

from __future__ import annotations

#: Side of a generated tile and of a training cutout, in pixels (the paper's 128x128).
TILE = 128
