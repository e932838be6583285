"""Numbers the whole project shares, defined once."""

from __future__ import annotations

#: Side of a generated tile and of a training cutout, in pixels (the paper's 128x128).
TILE = 128

#: Largest side, in pixels, of a cutout (simulated or annotated) and of a model's images: a
#: cutout is held whole in memory many times over (an 8192^2 float64 FFT alone is 1 GiB); maps
#: are made tile by tile by radiff-scale make-map instead.
MAX_CUTOUT = 8192
