"""DS9 region file of the truth catalogue, to overlay the truth on the map in DS9/CARTA.

One ICRS ellipse per object at its (RA, Dec), coloured by class, labelled with its id: the
map's own frame (its header says RADESYS = 'ICRS').

Conversions (catalogue -> DS9):
- DS9 ellipse radii are *semi*-axes; the catalogue's major/minor are FWHM (full
  widths), so the radii are major/2 and minor/2: the ellipse drawn is the half-maximum
  contour of the object's equivalent Gaussian.
- DS9 measures the angle of the first radius counter-clockwise from the +x axis (west on
  a north-up, east-left map); the catalogue's PA is east of north. North (+y) is at 90
  degrees from +x, and east of north turns the same way, so ``angle = PA + 90``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa

from radiff_scale.atomic import write_bytes_atomic
from radiff_scale.classes import CLASS_COLOURS, class_from_id

HEADER = (
    "# Region file format: DS9 version 4.1\n"
    'global color=green dashlist=8 3 width=1 font="helvetica 10 normal roman" '
    "select=1 highlite=1 dash=0 fixed=0 edit=1 move=1 delete=1 include=1 source=1\n"
    "icrs\n"
)


def ds9_angle(pa_deg: float) -> float:
    """DS9 ellipse angle (deg, CCW from +x) for a position angle east of north."""
    return (pa_deg + 90.0) % 360.0


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def region_lines(table: pa.Table) -> list[str]:
    """The region lines (no header), one per object; objects without sky position get a comment."""
    names = ("id", "class", "ra", "dec", "major_arcsec", "minor_arcsec", "pa_deg")
    cols = {name: table.column(name).to_pylist() for name in names}
    lines = []
    for oid, cls, ra, dec, major, minor, pa_deg in zip(*cols.values()):
        if not (math.isfinite(ra) and math.isfinite(dec)):
            lines.append(f"# object {oid}: no sky position (map has no WCS), not drawn")
            continue
        source_class = class_from_id(cls)
        lines.append(
            f'ellipse({ra:.8f},{dec:.8f},{major / 2:.4f}",{minor / 2:.4f}",{ds9_angle(pa_deg):.3f}) '
            f"# color={_hex(CLASS_COLOURS[source_class])} text={{{oid}}} tag={{{source_class.label}}}"
        )
    return lines


def write_ds9_regions(table: pa.Table, path: str | Path) -> Path:
    """Write the DS9 region file for a catalogue table (temporary name, renamed when complete)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = HEADER + "".join(line + "\n" for line in region_lines(table))
    return write_bytes_atomic(path, text.encode("utf-8"))
