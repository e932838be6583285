"""Object positions given by the user (a catalogue file, a table, or arrays), checked and resolved to pixels.

What :func:`radiff_scale.api.make_map` takes as ``positions``: RA/Dec (deg) or 0-based
pixel x/y, optionally a class (name, alias or id) and k (peak S/N) per row. Rows become
:class:`~radiff_scale.compose.given.GivenObjects` in the map's pixels; the
conventions (id = row + 1, mask-centroid placement, what a missing class or k means)
are in :mod:`radiff_scale.api`. Catalogue files (Parquet, CSV, FITS tables and
whitespace text, SDC1's truth catalogue format) are read into plain columns by
:mod:`radiff_scale.compose.catalogue_readers`; finding the position, class and k columns
among them, by tolerant names, is done here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radiff_scale.classes import OBJECT_CLASSES, class_from_id, class_from_name
from radiff_scale.compose.catalogue_readers import read_catalogue_columns
from radiff_scale.compose.column_names import (
    CLASS_NAMES, DEC_NAMES, FLUX_NAMES, K_NAMES, MAJOR_NAMES, MINOR_NAMES, PA_NAMES, RA_NAMES, X_NAMES, Y_NAMES,
    auto_class_column, find_column, listing, mapped_class,
)
from radiff_scale.errors import RadiffError

if TYPE_CHECKING:
    import pyarrow as pa

    from radiff_scale.compose.given import GivenObjects
    from radiff_scale.compose.wcs import MapGeometry

def _class_id(value: Any, where: str) -> int:
    """Our class id for a name (aliases accepted) or an id; -1 for an empty cell (draw it)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, int) and value == -1):
        return -1  # -1: "not given", as Positions stores it
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        text = value.strip()
        if not text or text.lower() in ("nan", "none", "null", "--"):
            return -1
        try:
            cls = class_from_id(int(text)) if re.fullmatch(r"[+-]?\d+", text) else class_from_name(text)
        except RadiffError as exc:
            raise RadiffError(f"{where}: {exc}") from None
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise RadiffError(f"{where}: class {value!r} is neither a class name nor an id") from None
        if not number.is_integer():
            raise RadiffError(f"{where}: class id {value!r} is not a whole number")
        try:
            cls = class_from_id(int(number))
        except RadiffError as exc:
            raise RadiffError(f"{where}: {exc}") from None
    if cls not in OBJECT_CLASSES:
        known = ", ".join(f"{c.label} ({int(c)})" for c in OBJECT_CLASSES)
        raise RadiffError(f"{where}: class {cls.label!r} is not an object class (one of {known})")
    return int(cls)


def _floats(values: Any, what: str, source: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        for row, value in enumerate(np.asarray(values, dtype=object).ravel().tolist()):
            try:
                float(value)
            except (TypeError, ValueError):
                raise RadiffError(f"{source} row {row}: {what} is {value!r}, not a number") from None
        raise RadiffError(f"{source}: {what} must be numbers") from None
    if array.ndim != 1:
        raise RadiffError(f"{source}: {what} must be one value per object, got shape {array.shape}")
    return array


@dataclass(frozen=True)
class Positions:
    """Where each object goes (one row per object, in id order), with optional class and k.

    Give either ``x``/``y`` (0-based pixels of the map to make: x = column, y = row) or
    ``ra``/``dec`` (degrees, converted through the map's WCS). ``classes``: names
    (``compact``, aliases such as ``galaxy``) or ids (1 spurious, 2 compact, 3
    extended), None/empty/NaN/-1 for "draw it"; stored as ids, -1 where drawn. ``k``:
    the peak signal-to-noise against the local noise, None/NaN for "draw it". ``flux``: Jy
    per object (integrated, or the peak in Jy/beam with ``placement.flux_mode: peak``),
    finite and > 0; it wins over ``k``. ``major``/``minor``/``pa``: the object's intrinsic
    FWHM size in arcsec and PA in degrees east of north (the map convolves it with its
    beam; major 0 is a point source, drawn as the beam; NaN major keeps the mask's own
    shape; minor defaults to major, PA to 0). ``source`` says where the rows came from
    (errors name it; it goes into the manifest).
    """

    x: np.ndarray | None = None
    y: np.ndarray | None = None
    ra: np.ndarray | None = None
    dec: np.ndarray | None = None
    classes: np.ndarray | Sequence[Any] | None = None
    k: np.ndarray | Sequence[float] | None = None
    source: str = "positions"
    flux: np.ndarray | Sequence[float] | None = None
    major: np.ndarray | Sequence[float] | None = None
    minor: np.ndarray | Sequence[float] | None = None
    pa: np.ndarray | Sequence[float] | None = None
    #: Column names the values came from (error messages name them); set by the catalogue readers.
    columns: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        pixel = self.x is not None or self.y is not None
        sky = self.ra is not None or self.dec is not None
        if pixel == sky:
            raise RadiffError(f"{self.source}: give either x and y (pixels) or ra and dec (degrees), "
                              f"not {'both' if pixel else 'neither'}")
        first, second = ("x", "y") if pixel else ("ra", "dec")
        for name in (first, second):
            if getattr(self, name) is None:
                raise RadiffError(f"{self.source}: {first}/{second} given without {name}")
        a = _floats(getattr(self, first), first, self.source)
        b = _floats(getattr(self, second), second, self.source)
        n = a.shape[0]
        if b.shape[0] != n:
            raise RadiffError(f"{self.source}: {first} has {n} values but {second} has {b.shape[0]}")
        for name, values in ((first, a), (second, b)):
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:  # a blank cell is a broken catalogue, not an object to report as unplaced
                raise RadiffError(f"{self.source} row {int(bad[0])}: {name} is {values[bad[0]]} "
                                  f"({bad.size} row(s) without a finite {name}; every object needs a position)")
        object.__setattr__(self, first, a)
        object.__setattr__(self, second, b)
        if self.classes is None:
            classes = np.full(n, -1, dtype=np.int64)
        else:
            values = list(self.classes.tolist() if isinstance(self.classes, np.ndarray) else self.classes)
            if len(values) != n:
                raise RadiffError(f"{self.source}: {len(values)} classes for {n} positions")
            classes = np.array([_class_id(v, f"{self.source} row {i}") for i, v in enumerate(values)], dtype=np.int64)
        object.__setattr__(self, "classes", classes)
        if self.k is None:
            k = np.full(n, np.nan)
        else:
            k = _floats([np.nan if v is None else v for v in (self.k.tolist() if isinstance(self.k, np.ndarray) else self.k)],
                        "k", self.source)
            if k.shape[0] != n:
                raise RadiffError(f"{self.source}: {k.shape[0]} k values for {n} positions")
            bad = np.flatnonzero(~np.isnan(k) & ~(np.isfinite(k) & (k >= 0)))
            if bad.size:
                raise RadiffError(f"{self.source} row {int(bad[0])}: k must be a finite number >= 0, got {k[bad[0]]}")
        object.__setattr__(self, "k", k)
        self._check_flux_and_shape(n)

    def _name(self, field_name: str) -> str:
        name = (self.columns or {}).get(field_name)
        return f"column {name!r}" if name else field_name

    def _column(self, field_name: str, n: int) -> np.ndarray:
        values = getattr(self, field_name)
        if values is None:
            return np.full(n, np.nan)
        array = _floats([np.nan if v is None else v for v in (values.tolist() if isinstance(values, np.ndarray)
                                                              else values)], self._name(field_name), self.source)
        if array.shape[0] != n:
            raise RadiffError(f"{self.source}: {array.shape[0]} {field_name} values for {n} positions")
        return array

    def _check_flux_and_shape(self, n: int) -> None:
        flux = self._column("flux", n)
        if self.flux is not None:
            bad = np.flatnonzero(~(np.isfinite(flux) & (flux > 0)))
            if bad.size:
                raise RadiffError(f"{self.source} row {int(bad[0])}: {self._name('flux')} is {flux[bad[0]]} "
                                  f"(fluxes must be finite and > 0 Jy; {bad.size} such row(s))")
        major, minor, pa = (self._column(name, n) for name in ("major", "minor", "pa"))
        if self.major is None and (self.minor is not None or self.pa is not None):
            raise RadiffError(f"{self.source}: a minor axis or PA without a major axis (sizes need the major axis)")
        for name, values in (("major", major), ("minor", minor)):
            bad = np.flatnonzero(values < 0)
            if bad.size:
                raise RadiffError(f"{self.source} row {int(bad[0])}: {self._name(name)} is {values[bad[0]]} "
                                  "(sizes must be >= 0 arcsec)")
        for name, values in (("minor", minor), ("pa", pa)):
            bad = np.flatnonzero(np.isfinite(major) & ~np.isfinite(values) & ~np.isnan(values))
            if bad.size:
                raise RadiffError(f"{self.source} row {int(bad[0])}: {self._name(name)} is {values[bad[0]]}")
        given = np.isfinite(major)
        minor = np.where(given & np.isnan(minor), major, minor)
        pa = np.where(given & np.isnan(pa), 0.0, pa)
        # A minor axis above the major one is the same ellipse turned by 90 degrees.
        swap = given & (minor > major)
        major, minor, pa = np.where(swap, minor, major), np.where(swap, major, minor), np.where(swap, pa + 90.0, pa)
        for name, values in (("flux", flux), ("major", major), ("minor", minor), ("pa", np.where(given, pa % 180.0, np.nan))):
            object.__setattr__(self, name, values)

    def __len__(self) -> int:
        return int((self.x if self.x is not None else self.ra).shape[0])

    def take(self, rows: Sequence[int] | np.ndarray) -> Positions:
        """These positions at ``rows`` only, in that order (e.g. the brightest 500 of a sky model)."""
        rows = np.asarray(rows, dtype=np.int64)
        picked = {name: (None if getattr(self, name) is None else np.asarray(getattr(self, name))[rows])
                  for name in ("x", "y", "ra", "dec", "classes", "k", "flux", "major", "minor", "pa")}
        if self.major is not None and not np.isfinite(self.major).any():
            picked.update(major=None, minor=None, pa=None)
        if self.flux is not None and not np.isfinite(self.flux).any():
            picked["flux"] = None
        return Positions(**picked, source=f"{self.source} ({rows.size} rows)", columns=self.columns)

    @property
    def coords(self) -> str:
        """``pixel`` or ``sky``."""
        return "pixel" if self.x is not None else "sky"

    @classmethod
    def from_table(cls, table: pa.Table | Mapping[str, Any], *, source: str = "table", **columns: str | None) -> Positions:
        """Positions from a pyarrow table or a mapping of column name -> values.

        Column names are matched tolerantly (see :func:`positions_from_catalogue`, whose
        keyword arguments ``columns`` takes: ``ra``, ``dec``, ``x``, ``y``, ``class_column``,
        ``k_column``, ``coords``, ``class_map``).
        """
        if hasattr(table, "column_names") and hasattr(table, "column"):
            data = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
        elif isinstance(table, Mapping):
            data = {str(name): np.asarray(values) for name, values in table.items()}
        else:
            raise RadiffError(f"{source}: positions must be a Positions, a pyarrow table, a mapping of columns "
                              f"or a catalogue path, got {type(table).__name__}")
        return _positions_from_columns(data, source, **columns)

    def resolve(self, geometry: MapGeometry) -> GivenObjects:
        """The objects in pixels of ``geometry``'s map (what the planner places)."""
        from radiff_scale.compose.given import GivenObjects

        if self.coords == "pixel":
            rows, cols = self.y, self.x
        else:
            # Our WCS has no distortion terms, so the direct transform is exact; a point off the
            # projection (e.g. the far hemisphere of SIN) comes back as NaN and is reported per object.
            with np.errstate(invalid="ignore"):
                cols, rows = geometry.wcs().wcs_world2pix(self.ra, self.dec, 0)
        scale = geometry.pixel_scale_arcsec
        return GivenObjects(rows=rows, cols=cols, class_ids=self.classes, k=self.k, flux_jy=self.flux,
                            major_px=self.major / scale, minor_px=self.minor / scale, pa_deg=self.pa)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the given objects."""
        return {"source": self.source, "rows": len(self), "coords": self.coords,
                "classes_given": int(np.count_nonzero(self.classes >= 0)),
                "k_given": int(np.count_nonzero(~np.isnan(self.k))),
                "fluxes_given": int(np.count_nonzero(np.isfinite(self.flux))),
                "shapes_given": int(np.count_nonzero(np.isfinite(self.major))),
                "columns": dict(self.columns or {})}


def positions_from_catalogue(
    path: str | Path,
    *,
    coords: str = "auto",
    ra: str | None = None,
    dec: str | None = None,
    x: str | None = None,
    y: str | None = None,
    class_column: str | None = "auto",
    class_map: Mapping[Any, Any] | None = None,
    k_column: str | None = "auto",
    flux_column: str | None = "auto",
    shape_columns: tuple[str, str, str] | None | str = "auto",
) -> Positions:
    """Read object positions from a FITS table, CSV, Parquet or whitespace text catalogue.

    Columns are found by name, ignoring case and punctuation (RA, ra, RA_deg, RAJ2000,
    "RA (centroid)"; Dec alike; x/y): name them with ``ra=``/``dec=``/``x=``/``y=`` when
    the guess is wrong. ``coords``: ``sky`` (RA/Dec), ``pixel`` (x/y) or ``auto`` (RA/Dec
    when present: a catalogue's pixel columns usually belong to some other image).

    Classes: ``class_column="auto"`` reads a column of class *names* (e.g. our own
    catalogue's ``class_name``); a column of integer codes is only read when named
    (``class_column="CLASS"``), because catalogues code classes differently (SDC1's CLASS
    1..3 are SS-AGN, FS-AGN, SFG, not our ids) -- translate with ``class_map`` (e.g.
    ``{1: "extended", 2: "compact", 3: "compact"}``). ``None`` draws every class.
    ``k_column`` likewise (auto: a column named k, snr or peak_snr; None draws every k).
    ``flux_column`` (auto: flux, flux_jy, S_int, total_flux, ...; Jy) and ``shape_columns``
    (auto: BMAJ/BMIN/PA, src_major_arcsec/...; or a (major, minor, pa) triple of names;
    arcsec and degrees) give each object its flux and size; None ignores them.

    Text catalogues: whitespace-separated numbers; column names from the first non-numeric
    line, or from SDC1-style ``COLUMNn: NAME [unit] ...`` lines when present.
    """
    path = Path(path)
    data = read_catalogue_columns(path)
    return _positions_from_columns(data, str(path), coords=coords, ra=ra, dec=dec, x=x, y=y,
                                   class_column=class_column, class_map=class_map, k_column=k_column,
                                   flux_column=flux_column, shape_columns=shape_columns)


def _positions_from_columns(
    data: Mapping[str, np.ndarray],
    source: str,
    *,
    coords: str = "auto",
    ra: str | None = None,
    dec: str | None = None,
    x: str | None = None,
    y: str | None = None,
    class_column: str | None = "auto",
    class_map: Mapping[Any, Any] | None = None,
    k_column: str | None = "auto",
    flux_column: str | None = "auto",
    shape_columns: tuple[str, str, str] | None | str = "auto",
) -> Positions:
    if coords not in ("auto", "sky", "pixel"):
        raise RadiffError(f"coords must be 'auto', 'sky' or 'pixel', got {coords!r}")
    if (ra or dec) and coords == "pixel" or (x or y) and coords == "sky":
        raise RadiffError(f"{source}: coords={coords!r} contradicts the columns named")
    if ra or dec:
        coords = "sky"
    elif (x or y) and coords == "auto":
        coords = "pixel"
    sky = (find_column(data, ra, RA_NAMES, "RA", source), find_column(data, dec, DEC_NAMES, "Dec", source))
    pix = (find_column(data, x, X_NAMES, "x", source), find_column(data, y, Y_NAMES, "y", source))
    if coords == "auto":
        coords = "sky" if all(sky) else "pixel" if all(pix) else ""
    if not coords:
        half = next((pair for pair in (sky, pix) if any(pair)), None)
        detail = f" (found only {next(n for n in half if n)!r})" if half else ""
        raise RadiffError(f"{source}: no RA/Dec or x/y columns{detail} (columns: {listing(data)})")
    names = sky if coords == "sky" else pix
    if not all(names):
        wanted = ("RA", "Dec") if coords == "sky" else ("x", "y")
        missing = wanted[names.index(None)]
        raise RadiffError(f"{source}: no {missing} column (columns: {listing(data)})")
    first, second = (_floats(data[n], f"column {n!r}", source) for n in names)

    classes = None
    if class_column is not None:
        if class_column == "auto":
            name = auto_class_column(data)
        else:
            name = find_column(data, class_column, CLASS_NAMES, "class", source)
        if name is not None:
            classes = list(data[name].tolist())
        if class_map is not None:
            if name is None:
                raise RadiffError(f"{source}: class_map given but no class column (name it with class_column=)")
            classes = [mapped_class(v, class_map, f"{source} row {i}, column {name!r}") for i, v in enumerate(classes)]
    elif class_map is not None:
        raise RadiffError("class_map needs a class column (class_column=None draws every class)")
    k = None
    used: dict[str, str] = dict(zip(("ra", "dec") if coords == "sky" else ("x", "y"), names))
    if k_column is not None:
        name = find_column(data, None if k_column == "auto" else k_column, K_NAMES, "k", source)
        if name is not None:
            k = _floats(data[name], f"column {name!r}", source)
            used["k"] = name
    extra: dict[str, np.ndarray] = {}
    if flux_column is not None:
        name = find_column(data, None if flux_column == "auto" else flux_column, FLUX_NAMES, "flux", source)
        if name is not None:
            extra["flux"], used["flux"] = _floats(data[name], f"column {name!r}", source), name
    if shape_columns is not None:
        wanted = (None, None, None) if shape_columns == "auto" else tuple(shape_columns)
        if len(wanted) != 3:
            raise RadiffError("shape_columns must be 'auto', None or (major, minor, pa) column names")
        for field_name, explicit, candidates in zip(("major", "minor", "pa"), wanted,
                                                    (MAJOR_NAMES, MINOR_NAMES, PA_NAMES)):
            name = find_column(data, explicit, candidates, field_name, source)
            if name is not None:
                extra[field_name], used[field_name] = _floats(data[name], f"column {name!r}", source), name
    if coords == "sky":
        return Positions(ra=first, dec=second, classes=classes, k=k, source=source, columns=used, **extra)
    return Positions(x=first, y=second, classes=classes, k=k, source=source, columns=used, **extra)


def as_positions(positions: Positions | pa.Table | Mapping[str, Any] | str | Path) -> Positions:
    """Whatever :func:`make_map` accepts as ``positions``, as :class:`Positions`."""
    if isinstance(positions, Positions):
        return positions
    if isinstance(positions, (str, Path)):
        return positions_from_catalogue(positions)
    return Positions.from_table(positions)
