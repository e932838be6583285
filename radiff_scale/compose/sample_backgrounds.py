"""What each ``radiff-scale sample`` image sits on: its background, its flux scale and its header.

A tile comes out of the model in rms units of the background it was conditioned on, so
the background decides both the conditioning patch and the Jy/beam scale of the image;
and a background FITS map also decides the beam and pixel size the image claims, which
sets how far tiles must be resampled from the model's scale (:func:`tile_zoom`). All of
it is planned and checked before any actor starts. Kept out of radiff_scale.data because
it reads FITS maps through this package (compose -> data, never the other way).
See docs/sample.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radiff_scale.constants import TILE
from radiff_scale.data.sample_inputs import CARRIED_KEYS, MaskItem, carried_header
from radiff_scale.errors import FlatImageError, RadiffError
from radiff_scale.seeding import derive_rng

if TYPE_CHECKING:
    from radiff_scale.compose.background import FitsBackground
    from radiff_scale.data.stretch import Stretch

#: Noise level (Jy/beam) of the output images when there is no background: FIRST's typical rms.
DEFAULT_RMS_JY = 1.5e-4

#: FIRST's restoring beam (arcsec, circular) and pixel size (arcsec): the header when nothing else says.
FIRST_BEAM_ARCSEC = 5.4
FIRST_PIXEL_ARCSEC = 1.8

#: Purpose of the seed stream (radiff_scale.seeding) of the background windows of a FITS map.
WINDOW_PURPOSE = "sample-window"

#: Windows drawn per mask before a FITS background is declared unusable (blank or constant there).
WINDOW_TRIES = 32


@dataclass
class Background:
    """The background of one tile: its centre and rms (Jy/beam) and the image the model is conditioned on.

    ``patch`` is ``stretch.encode(image)``, kept from the check that the window can be
    normalised at all, so each window is encoded once, not again when its batch is sent.
    """

    centre: float
    rms: float
    record: dict[str, Any]
    image: np.ndarray | None = None  # Jy/beam window, or None (null background)
    patch: np.ndarray | None = None  # float32 [0, 1] conditioning patch, or None (null background)


def _fits_header_keys(path: Path) -> dict[str, Any]:
    """The beam and pixel keywords of a FITS map, as they are (CD matrix read as CDELT).

    Not :func:`radiff_scale.compose.wcs.read_map_header` (nor ``fits_header.read_beam``):
    that one needs a celestial WCS and a frequency, refuses a map without a beam or with
    non-square pixels and drops the sign of CDELT1, whereas a background here only lends
    what it has, and a missing keyword falls back to FIRST's.
    """
    from radiff_scale.compose.wcs import find_image_hdu, open_fits

    with open_fits(path) as hdul:
        header = hdul[find_image_hdu(hdul, path)].header
        found = {key: header.get(key) for key in CARRIED_KEYS}
        if found["CDELT1"] is None and found["CDELT2"] is None:  # a CD matrix instead
            found["CDELT1"], found["CDELT2"] = header.get("CD1_1"), header.get("CD2_2")
    return carried_header(found)


def _window_background(source: FitsBackground, path: Path, seed: int, i: int, stretch: Stretch) -> Background:
    """A seeded 128x128 window of the map for mask ``i``, redrawn where it cannot be normalised."""
    from radiff_scale.data.stretch import background_stats

    rows, cols = source.shape
    rng = derive_rng(seed, i, WINDOW_PURPOSE)
    for _ in range(WINDOW_TRIES):
        row0, col0 = int(rng.integers(0, rows - TILE + 1)), int(rng.integers(0, cols - TILE + 1))
        window = source.read(row0, row0 + TILE, col0, col0 + TILE)
        try:
            centre, rms = background_stats(window)
            patch = stretch.encode(window)
        except FlatImageError:
            continue  # a blank (NaN, read as 0) or constant window: draw another
        record = {"kind": "fits", "path": str(path), "row0": row0, "col0": col0, "centre_jy": centre, "rms_jy": rms}
        return Background(centre, rms, record, window, patch)
    raise RadiffError(f"--background {path}: no usable {TILE}x{TILE} window found for mask {i} "
                      f"in {WINDOW_TRIES} tries (the map is blank or constant almost everywhere)")


def _dataset_backgrounds(items: list[MaskItem], stretch: Stretch) -> list[Background]:
    """Each sample's own background; one without is refused rather than silently sampled on none."""
    from radiff_scale.data.stretch import background_stats

    out = []
    for it in items:
        name = it.source["sample"]
        if it.background is None:
            raise RadiffError(f"--background dataset: sample {name} has no background image")
        centre, rms = background_stats(it.background, source=f"background of sample {name}")
        patch = stretch.encode(it.background, source=f"background of sample {name}")
        out.append(Background(centre, rms, {"kind": "dataset", "sample": name, "centre_jy": centre, "rms_jy": rms},
                              it.background, patch))
    return out


def _fits_backgrounds(spec: str, items: list[MaskItem], seed: int, stretch: Stretch) -> list[Background]:
    """One window per mask; the map's beam and pixel keywords replace the masks' own in their headers."""
    from radiff_scale.compose.background import FitsBackground

    path = Path(spec)
    if not path.is_file():
        raise RadiffError(f"--background {spec}: expected 'dataset', 'none' or a FITS map (no such file)")
    source = FitsBackground(path)
    try:
        if source.shape[0] < TILE or source.shape[1] < TILE:
            raise RadiffError(f"--background {path}: map is {source.shape[0]}x{source.shape[1]}, smaller than a tile")
        header = _fits_header_keys(path)
        out = []
        for i, it in enumerate(items):
            out.append(_window_background(source, path, seed, i, stretch))
            it.header = {**it.header, **header}
    finally:
        source.close()
    return out


def plan_backgrounds(
    kind: str, items: list[MaskItem], seed: int, rms_jy: float, stretch: Stretch
) -> tuple[str, list[Background]]:
    """One Background per mask; returns the resolved kind (``none``, ``dataset`` or ``fits``).

    ``kind`` is ``--background``: ``auto`` is ``dataset`` only when every mask brings its
    own background, so that a run never mixes conditioned and unconditioned tiles.
    """
    from_dataset = items[0].source["kind"] == "dataset"
    if kind == "auto":
        kind = "dataset" if from_dataset and all(it.background is not None for it in items) else "none"
    if kind == "none":
        return "none", [Background(0.0, rms_jy, {"kind": "none", "centre_jy": 0.0, "rms_jy": rms_jy}) for _ in items]
    if kind == "dataset":
        if not from_dataset:
            raise RadiffError("--background dataset needs a dataset folder as --masks (an .npz has no backgrounds)")
        return "dataset", _dataset_backgrounds(items, stretch)
    return "fits", _fits_backgrounds(kind, items, seed, stretch)


def tile_header(item: MaskItem, background: Background) -> dict[str, Any]:
    """The output image's header: FIRST's beam and pixels, overridden by what the masks or map carry."""
    beam_deg = FIRST_BEAM_ARCSEC / 3600.0
    pixel_deg = FIRST_PIXEL_ARCSEC / 3600.0
    header: dict[str, Any] = {"BMAJ": beam_deg, "BMIN": beam_deg, "BPA": 0.0, "CDELT1": -pixel_deg, "CDELT2": pixel_deg}
    header.update(item.header)
    header["RMS"] = float(background.rms)
    header["ORIGIN"] = "radiff-scale sample"
    return header


def tile_zoom(headers: list[dict[str, Any]], card: dict[str, Any]) -> float:
    """The one zoom of the run: the output images' pixels per beam over the model's (tiles are
    sampled at the model's scale and resampled, radiff_scale/compose/resample.py). Masks of
    different pixels per beam in one run are a user error: each needs its own zoom."""
    from radiff_scale.beam import Beam
    from radiff_scale.compose.resample import pixels_per_beam, zoom_factor

    zooms = set()
    for h in headers:
        beam = Beam(float(h["BMAJ"]) * 3600.0, float(h["BMIN"]) * 3600.0, float(h.get("BPA", 0.0)))
        zooms.add(round(zoom_factor(pixels_per_beam(beam, abs(float(h["CDELT2"])) * 3600.0),
                                    card.get("pixels_per_beam")), 6))
    if len(zooms) > 1:
        raise RadiffError(f"the masks come with {len(zooms)} different pixels per beam; sample each beam separately")
    return zooms.pop() if zooms else 1.0
