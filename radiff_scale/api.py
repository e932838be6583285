"""The Python API: make a map, optionally with objects exactly where your catalogue says.

    from radiff_scale import MapSpec, make_map, positions_from_catalogue

    positions = positions_from_catalogue("my_sources.csv")      # RA/Dec (or x/y) columns
    result = make_map(MapSpec(size=2048, tiles="bank:bank.npz"), "my_map", positions=positions)
    result.placed, result.unplaced, result.catalogue

This is the map job itself (radiff_scale/pipelines/map_job.py: one pipeline, the same
outputs, truth, manifest and ``resume`` as ``radiff-scale make-map``), reached from
Python; ``positions`` only changes where the planner puts the objects
(radiff_scale.mapjob.plan.plan_map with :class:`~radiff_scale.compose.given.GivenObjects`).

Conventions, so that a user can check the result against the input:

* Object ``i`` of the map is row ``i - 1`` of the positions (catalogue id = row + 1),
  whether it was placed or not; refused rows keep their id and are reported with a
  reason (outside the map, footprint crossing the margin, overlap above the spec's
  ``overlap_fraction``, a position not on the map's projection), never moved.
* A position is where the *mask centroid* of the object goes (unweighted mean pixel of
  its footprint, within half a pixel). Pixel coordinates are 0-based, x = column,
  y = row, pixel centres on whole numbers (FITS pixel = ours + 1). Sky positions go
  through the output map's WCS with origin 0. The truth catalogue's ``x``/``y`` are the
  *flux-weighted* centroid of what was painted; it equals the mask centroid for a flat
  object and lies within the footprint otherwise.
* A missing class (no column, or an empty/NaN cell) is drawn from the spec's class
  fractions, a missing ``k`` from the spec's k law, both from the run seed and the
  object id exactly as a random map would; given ones are used as given.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radiff_scale.compose.positions import (
    Positions,
    as_positions,
    positions_from_catalogue,
)
from radiff_scale.errors import RadiffError

if TYPE_CHECKING:
    import pyarrow as pa

    from radiff_scale.compose.planner import UnplacedObject
    from radiff_scale.compose.spec import MapSpec

__all__ = ["MapResult", "Positions", "make_map", "positions_from_catalogue"]


# ---- making the map --------------------------------------------------------------------------


@dataclass(frozen=True)
class MapResult:
    """A finished map run: where its files are and what was placed.

    ``outputs`` maps the manifest's output keys (``map``, ``labels``,
    ``catalogue_parquet``, ``catalogue_fits``, ``catalogue_csv``, ``regions``,
    ``quicklook``, ``manifest``) to paths. ``unplaced_objects`` holds the id (= input row
    + 1 for given positions) and the reason of every object that was not placed.
    """

    out: Path
    outputs: dict[str, Path]
    placed: int
    unplaced: int
    unplaced_objects: tuple[UnplacedObject, ...]
    manifest: dict[str, Any] = field(repr=False)

    @property
    def map(self) -> Path:
        return self.outputs["map"]

    @property
    def labels(self) -> Path:
        return self.outputs["labels"]

    @property
    def catalogue(self) -> Path:
        """The truth catalogue as Parquet (``outputs`` also has the FITS and CSV copies)."""
        return self.outputs["catalogue_parquet"]

    @classmethod
    def from_run(cls, out: str | Path) -> MapResult:
        """The result of the finished run in ``out`` (its manifest.json is written last)."""
        from radiff_scale.compose.planner import Refusal, UnplacedObject

        out = Path(out)
        try:
            manifest = json.loads((out / "manifest.json").read_text())
        except (OSError, ValueError):
            raise RadiffError(f"{out}: no readable manifest.json (not a finished radiff-scale run)") from None
        outputs = {key: out / name for key, name in manifest["outputs"].items()}
        outputs["manifest"] = out / "manifest.json"
        unplaced = json.loads((out / manifest["unplaced"]).read_text())
        return cls(
            out=out, outputs=outputs, placed=int(manifest["counts"]["objects_placed"]),
            unplaced=int(manifest["counts"]["objects_unplaced"]),
            unplaced_objects=tuple(UnplacedObject(int(u["id"]), Refusal(u["kind"]), str(u["reason"])) for u in unplaced),
            manifest=manifest,
        )


def make_map(
    spec: MapSpec | str | Path,
    out: str | Path,
    *,
    positions: Positions | pa.Table | Mapping[str, Any] | str | Path | None = None,
    workers: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    use_gpu: bool = False,
) -> MapResult:
    """Make the map of ``spec`` (a MapSpec or a YAML path) in ``out``, as ``radiff-scale make-map``.

    ``positions`` (a :class:`Positions`, a pyarrow table or mapping of columns, or a
    catalogue path) puts object ``i`` at row ``i - 1`` instead of at random; the spec's
    ``placement.n_objects``/``density_per_deg2`` are then ignored, its class fractions,
    k law, overlap fraction and margin still apply. ``workers`` overrides
    ``spec.workers`` (it never changes the bytes). ``resume`` finishes an interrupted run
    of the same spec and positions; ``overwrite`` replaces a previous run in ``out``.
    Starts a local Ray (or joins RAY_ADDRESS / an initialised Ray) and leaves it running.
    """
    from radiff_scale.compose.spec import MapSpec
    from radiff_scale.config import load_config
    from radiff_scale.pipelines.map_job import run_make_map  # Ray and torch: only when a map is made

    if isinstance(spec, (str, Path)):
        spec = load_config(MapSpec, spec, {})
    if not isinstance(spec, MapSpec):
        raise RadiffError(f"spec must be a MapSpec or a YAML path, got {type(spec).__name__}")
    if workers is not None:
        spec = dataclasses.replace(spec, workers=int(workers))
    given = None if positions is None else as_positions(positions)
    run_make_map(spec, out, resume=resume, overwrite=overwrite, progress=progress, use_gpu=use_gpu, positions=given)
    return MapResult.from_run(out)
