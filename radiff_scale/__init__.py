"""radiff_scale: controllable diffusion models for radio-astronomy cutouts, scaled to large maps.

The library never needs a Ray cluster; only ``actors/`` and ``jobs/`` know about Ray.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("radiff-scale")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
