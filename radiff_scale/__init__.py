"""radiff_scale: controllable diffusion models for radio-astronomy cutouts, scaled to large maps.

Layers (docs/architecture.md): ``jobs/`` -> ``radiff_scale.cli`` -> ``radiff_scale.api`` ->
``radiff_scale.pipelines`` -> ``actors/`` (the only code that imports Ray) -> the library
core (everything else in this package), never upward. This module is the public facade.

The Python API (``from radiff_scale import make_map, MapSpec``) is resolved on first use:
``import radiff_scale`` stays instant (the CLI's ``--help`` and ``--version`` import it),
and torch and Ray are only imported when a map is actually made.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from radiff_scale.version import __version__

#: Public name -> module that defines it (imported lazily by __getattr__).
_API = {
    "make_map": "radiff_scale.api",
    "MapResult": "radiff_scale.api",
    "Positions": "radiff_scale.compose.positions",
    "positions_from_catalogue": "radiff_scale.compose.positions",
    "positions_from_sdc1": "radiff_scale.compose.sdc1_positions",
    "write_sdc1": "radiff_scale.compose.sdc1",
    "MapSpec": "radiff_scale.compose.spec",
    "SamplerSpec": "radiff_scale.diffusion.settings",
    "PlacementConfig": "radiff_scale.compose.planner",
    "RadiffError": "radiff_scale.errors",
}

__all__ = [
    "MapResult", "MapSpec", "PlacementConfig", "Positions", "RadiffError", "SamplerSpec", "__version__",
    "make_map", "positions_from_catalogue", "positions_from_sdc1", "write_sdc1",
]

if TYPE_CHECKING:
    from radiff_scale.api import MapResult, make_map
    from radiff_scale.compose.positions import Positions, positions_from_catalogue
    from radiff_scale.compose.planner import PlacementConfig
    from radiff_scale.compose.sdc1 import write_sdc1
    from radiff_scale.compose.sdc1_positions import positions_from_sdc1
    from radiff_scale.compose.spec import MapSpec
    from radiff_scale.diffusion.settings import SamplerSpec
    from radiff_scale.errors import RadiffError


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'radiff_scale' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
