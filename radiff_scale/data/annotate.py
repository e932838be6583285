"""Turn real FITS radio images into a labelled Survey-Collection dataset (``radiff-scale annotate``).

The training job needs cutouts with one mask per object and a background image; real
survey images come without masks. This module segments them the way a radio source
finder does (PyBDSF-like double threshold on a robust rms, then grouping of nearby
islands into one radio galaxy), labels each object with a documented, deterministic
rule, and writes the result with :func:`~radiff_scale.data.sc_format.write_sample`.
Everything statistical is delegated to photutils/astropy (background, rms, segmentation,
peaks), and ``docs/annotate.md`` explains each choice.

Pipeline per input file: read and check (:func:`load_image`), estimate background and rms
(:func:`estimate_background`), find objects on the whole image (:func:`find_objects`),
choose the crop windows (:func:`choose_windows`), then build and write one sample per
window that holds at least one object (:func:`build_sample`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import sys
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy import ndimage

from radiff_scale.beam import Beam, correlated_noise
from radiff_scale.classes import SourceClass
from radiff_scale.compose.wcs import _read_beam, celestial_wcs, read_map_unit, unit_scale
from radiff_scale.data.sc_format import ANNOTATIONS_DIR, AnnotatedObject, Sample, read_fits_image, write_sample
from radiff_scale.errors import RadiffError

TOOL = "radiff-scale annotate"
#: File name endings accepted as FITS inputs (lower-cased comparison).
FITS_SUFFIXES = (".fits.gz", ".fits", ".fit", ".fit.gz", ".fts")
#: Written at the dataset root; its presence (with ``tool`` = TOOL) marks a folder we may overwrite.
SUMMARY_FILE = "annotate.json"
#: Images at most this factor larger than ``--cutout`` give one cutout centred on their objects;
#: larger ones are tiled. 1.5 keeps 160x160 FIRST cutouts single and tiles 1000x1000 maps.
SINGLE_WINDOW_FACTOR = 1.5
#: Fraction of the beam area (pixels) an island must cover (``npixels`` of detect_sources).
#: 0.5 keeps a point source just above the seed threshold (its 3-sigma island is ~0.5 beam)
#: and rejects single-pixel noise spikes; never below 3 pixels.
NPIXELS_BEAM_FRACTION = 0.5
MIN_NPIXELS = 3
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class AnnotateConfig:
    """Every option of ``radiff-scale annotate``; all of it is recorded in each sample's provenance."""

    island_sigma: float = 3.0
    seed_sigma: float = 5.0
    cutout: int = 128
    overlap: int = 32
    group_gap: float = 1.5
    deblend: bool = False
    compact_beams: float = 3.0
    beam: tuple[float, ...] | None = None  # BMAJ[, BMIN[, BPA]] arcsec/arcsec/deg, for files without beam keywords
    pixel_scale: float | None = None  # arcsec, for files without a celestial WCS / CDELT
    include_names: str | None = None
    exclude_names: str | None = None
    spurious_names: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.island_sigma <= self.seed_sigma:
            raise RadiffError(f"--island-sigma must be > 0 and <= --seed-sigma, got {self.island_sigma} and {self.seed_sigma}")
        if self.cutout < 8:
            raise RadiffError(f"--cutout must be >= 8 pixels, got {self.cutout}")
        if not 0 <= self.overlap < self.cutout:
            raise RadiffError(f"--overlap must be >= 0 and < --cutout ({self.cutout}), got {self.overlap}")
        if self.group_gap < 0 or self.compact_beams <= 0:
            raise RadiffError("--group-gap must be >= 0 and --compact-beams > 0")
        if self.pixel_scale is not None and not (self.pixel_scale > 0 and math.isfinite(self.pixel_scale)):
            raise RadiffError(f"--pixel-scale must be > 0 arcsec, got {self.pixel_scale}")
        if self.beam is not None:
            if not 1 <= len(self.beam) <= 3 or not all(math.isfinite(v) for v in self.beam) or min(self.beam[:2]) <= 0:
                raise RadiffError(f"--beam must be BMAJ[,BMIN[,BPA]] with axes > 0 arcsec, got {self.beam}")

    def default_beam(self) -> Beam | None:
        """The ``--beam`` option as a Beam (BMIN defaults to BMAJ, BPA to 0)."""
        if self.beam is None:
            return None
        bmaj = self.beam[0]
        bmin = self.beam[1] if len(self.beam) > 1 else bmaj
        bpa = self.beam[2] if len(self.beam) > 2 else 0.0
        return Beam(bmaj, bmin, bpa)


def parse_beam(text: str) -> tuple[float, ...]:
    """``BMAJ[,BMIN[,BPA]]`` as floats (the CLI's ``--beam``)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise RadiffError(f"--beam {text!r}: expected BMAJ[,BMIN[,BPA]] in arcsec/deg, e.g. 5.4 or 6.4,5.4,30") from None
    if not 1 <= len(values) <= 3:
        raise RadiffError(f"--beam {text!r}: expected one to three comma-separated numbers")
    return values


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def is_fits_name(name: str) -> bool:
    return name.lower().endswith(FITS_SUFFIXES)


def strip_fits_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in FITS_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def sample_name(file_name: str) -> str:
    """A sample name allowed by sc_format (letters, digits, '.', '_', '-') from an input file name."""
    name = _UNSAFE_CHARS.sub("_", strip_fits_suffix(file_name))
    return name if name and not name.startswith((".", "-")) else f"_{name}"


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files and folders (sorted, non-recursive FITS files) as a list of files, duplicates dropped."""
    out: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_fits_name(p.name))
            if not found:
                raise RadiffError(f"{path}: folder holds no FITS file (.fits, .fits.gz, .fit)")
        elif path.is_file():
            found = [path]
        else:
            raise RadiffError(f"{path}: no such file or folder")
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                out.append(p)
    if not out:
        raise RadiffError("no input files given")
    return out


def read_name_list(path: str | os.PathLike[str]) -> list[str]:
    """Names of a list file: one per line, '#' starts a comment, blank lines ignored."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RadiffError(f"{p}: cannot read name list ({exc})") from None
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def _name_keys(path: Path) -> set[str]:
    """The names a list may use for an input: the file name, or the name without its FITS suffix."""
    return {path.name, strip_fits_suffix(path.name)}


def match_names(files: list[Path], list_path: str, option: str, required: bool) -> set[Path]:
    """Inputs named in a list file. Unmatched names warn; a list matching nothing fails when ``required``."""
    names = read_name_list(list_path)
    matched = {f for f in files if _name_keys(f) & set(names)}
    known = set().union(*(_name_keys(f) for f in files))
    unmatched = [n for n in names if n not in known]
    if required and not matched:
        raise RadiffError(f"{option} {list_path}: none of its {len(names)} names matches an input file")
    if unmatched:
        print(f"radiff-scale: warning: {option} {list_path}: {len(unmatched)} names match no input "
              f"(first: {unmatched[0]})", file=sys.stderr)
    return matched


def select_inputs(files: list[Path], config: AnnotateConfig) -> list[Path]:
    """Apply ``--include-names`` / ``--exclude-names`` (input order kept)."""
    if config.include_names:
        keep = match_names(files, config.include_names, "--include-names", required=True)
        files = [f for f in files if f in keep]
    if config.exclude_names:
        drop = match_names(files, config.exclude_names, "--exclude-names", required=True)
        files = [f for f in files if f not in drop]
    if not files:
        raise RadiffError("no input file left after --include-names/--exclude-names")
    return files


# ---------------------------------------------------------------------------------------------
# Reading one image
# ---------------------------------------------------------------------------------------------


@dataclass
class InputImage:
    """One checked input: Jy/beam data (NaNs kept), beam, pixel scale and, if any, celestial WCS."""

    path: Path
    data: np.ndarray
    header: fits.Header
    beam: Beam
    pixel_scale_arcsec: float
    wcs: WCS | None

    @property
    def fwhm_px(self) -> float:
        return self.beam.bmaj_arcsec / self.pixel_scale_arcsec

    @property
    def beam_area_px(self) -> float:
        return self.beam.area_pixels(self.pixel_scale_arcsec)


def _pixel_scale(header: fits.Header, path: Path, config: AnnotateConfig) -> tuple[float, WCS | None]:
    """Pixel scale (arcsec) and celestial WCS; CDELT alone, then ``--pixel-scale``, are the fallbacks."""
    wcs: WCS | None
    try:
        wcs = celestial_wcs(header, path)
        scales = np.abs(proj_plane_pixel_scales(wcs)) * 3600.0
        if not (np.all(np.isfinite(scales)) and np.all(scales > 0)):
            wcs = None
    except RadiffError:
        wcs = None
    if wcs is not None:
        return float(np.sqrt(scales[0] * scales[1])), wcs
    for key in ("CDELT2", "CDELT1"):
        value = header.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value) and value != 0 and abs(value) < 1:
            return abs(float(value)) * 3600.0, None
    if config.pixel_scale is not None:
        return float(config.pixel_scale), None
    raise RadiffError(f"{path}: no celestial WCS or CDELT keywords; give the pixel size with --pixel-scale ARCSEC")


def load_image(path: Path, config: AnnotateConfig) -> InputImage:
    """Read a 2-D image (degenerate axes squeezed), convert it to Jy/beam and check it is usable."""
    if not is_fits_name(path.name):
        raise RadiffError(f"{path}: not a FITS file name (.fits, .fits.gz, .fit)")
    data, header = read_fits_image(path)  # one-line RadiffError on non-FITS, truncated, cube, no image
    data = data * np.float32(unit_scale(read_map_unit(header), path))
    finite = np.isfinite(data)
    if not finite.any():
        raise RadiffError(f"{path}: every pixel is NaN or infinite")
    data[~finite] = np.nan  # infinities are as unusable as NaNs
    if float(np.nanmax(data)) == float(np.nanmin(data)):
        raise RadiffError(f"{path}: image is constant ({float(np.nanmax(data))!r}); nothing to segment")
    try:
        beam = _read_beam(header, path)
    except RadiffError:
        beam = config.default_beam()
        if beam is None:
            raise RadiffError(f"{path}: no restoring beam (BMAJ/BMIN keywords); give it with --beam BMAJ[,BMIN[,BPA]] (arcsec)") from None
    scale, wcs = _pixel_scale(header, path, config)
    return InputImage(path, data, header, beam, scale, wcs)


# ---------------------------------------------------------------------------------------------
# Background and rms
# ---------------------------------------------------------------------------------------------


def _background2d(data: np.ndarray, box: int) -> tuple[np.ndarray, np.ndarray]:
    """photutils Background2D (sigma-clipped median level, MAD-std rms), NaNs excluded via coverage_mask."""
    import inspect

    from photutils.background import Background2D, MADStdBackgroundRMS, MedianBackground
    from astropy.stats import SigmaClip

    # photutils 3 renamed bkgrms_estimator to bkg_rms_estimator; accept both (we require >=2).
    params = inspect.signature(Background2D.__init__).parameters
    rms_key = "bkg_rms_estimator" if "bkg_rms_estimator" in params else "bkgrms_estimator"
    nan = ~np.isfinite(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bkg = Background2D(
            data, box, coverage_mask=nan, fill_value=0.0, filter_size=(3, 3),
            sigma_clip=SigmaClip(sigma=3.0, maxiters=10), bkg_estimator=MedianBackground(),
            **{rms_key: MADStdBackgroundRMS()}, exclude_percentile=50.0,
        )
    return np.asarray(bkg.background, dtype=np.float64), np.asarray(bkg.background_rms, dtype=np.float64)


def estimate_background(data: np.ndarray, config: AnnotateConfig) -> tuple[np.ndarray, np.ndarray, str]:
    """Per-pixel background level and rms, and the method used.

    Cutouts (up to ``SINGLE_WINDOW_FACTOR`` x ``--cutout``) get one sigma-clipped median and
    MAD-std over the whole image: a 2-D background on four boxes of a 160x160 cutout
    dominated by one galaxy would follow the galaxy. Larger maps get photutils Background2D
    with ``--cutout // 2`` pixel boxes (~15-30 beams), because real maps' noise varies
    across the field (primary-beam correction, bright-source sidelobes).
    """
    from astropy.stats import sigma_clipped_stats

    if max(data.shape) <= SINGLE_WINDOW_FACTOR * config.cutout:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, median, std = sigma_clipped_stats(data, mask=~np.isfinite(data), sigma=3.0, maxiters=10, stdfunc="mad_std")
        if not (std > 0 and math.isfinite(std)):
            raise RadiffError("robust rms is zero: more than half of the pixels share one value")
        return np.full(data.shape, median), np.full(data.shape, std), "sigma_clipped_stats(mad_std)"
    box = max(16, config.cutout // 2)
    bkg, rms = _background2d(data, box)
    if not np.all(rms > 0):
        raise RadiffError("robust rms is zero in part of the map (a constant region)")
    return bkg, rms, f"Background2D(box={box}, MedianBackground, MADStdBackgroundRMS)"


# ---------------------------------------------------------------------------------------------
# Objects
# ---------------------------------------------------------------------------------------------


@dataclass
class FoundObject:
    """One object on the full image: its pixels and the measurements the class rule uses."""

    mask: np.ndarray  # bool, full image
    nislands: int
    npeaks: int
    peak_snr: float
    flux_jy: float
    area_beams: float
    class_id: SourceClass
    rule: str
    weight_centre: tuple[float, float]  # flux-weighted (row, col)


def _disk(radius: float) -> np.ndarray:
    r = max(0, int(math.floor(radius)))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy * yy + xx * xx) <= radius * radius + 1e-9


def detect_islands(snr: np.ndarray, nan: np.ndarray, image: InputImage, config: AnnotateConfig) -> np.ndarray:
    """Island labels (int, 0 = none): photutils detect_sources above island-sigma, kept if they hold a seed."""
    from photutils.segmentation import deblend_sources, detect_sources

    npixels = max(MIN_NPIXELS, int(NPIXELS_BEAM_FRACTION * image.beam_area_px))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NoDetectionsWarning: an empty image is counted, not warned about
        segm = detect_sources(snr, config.island_sigma, npixels, mask=nan)
        if segm is None:
            return np.zeros(snr.shape, dtype=np.int32)
        if config.deblend:
            segm = deblend_sources(snr, segm, npixels, progress_bar=False)
    labels = np.asarray(segm.data, dtype=np.int32)
    n = int(labels.max())
    peaks = ndimage.maximum(snr, labels, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, dtype=bool)
    keep[1:] = np.asarray(peaks) >= config.seed_sigma
    labels = np.where(keep[labels], labels, 0)
    # Renumber 1..n (0 stays 0 as the smallest value); deblended segments keep their own labels.
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32)


def group_islands(islands: np.ndarray, image: InputImage, config: AnnotateConfig) -> np.ndarray:
    """Object id per island (index = island label): islands within ``group_gap`` FWHM share one id.

    Each island is dilated by half the gap, so two islands touch once their gap is at most
    the full gap; the dilated map is relabelled and each island takes the label under it.
    The object's mask stays the union of its islands, not the dilated area. With
    ``--deblend`` no grouping is done (it would undo the deblending).
    """
    n = int(islands.max())
    if n == 0 or config.deblend or config.group_gap == 0:
        return np.arange(n + 1)
    radius = 0.5 * config.group_gap * image.fwhm_px
    grown = ndimage.binary_dilation(islands > 0, structure=_disk(radius))
    groups, _ = ndimage.label(grown, structure=np.ones((3, 3)))
    mapping = np.zeros(n + 1, dtype=np.int64)
    idx = np.arange(1, n + 1)
    # Every pixel of one island lies in one dilated component, so any pixel gives its group.
    first = ndimage.minimum(groups, islands, index=idx)
    mapping[1:] = np.asarray(first, dtype=np.int64)
    return mapping


def _count_peaks(snr: np.ndarray, nan: np.ndarray, image: InputImage, config: AnnotateConfig) -> np.ndarray:
    """(row, col) of local maxima above seed-sigma, at least one beam FWHM apart (photutils find_peaks)."""
    from photutils.detection import find_peaks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = find_peaks(np.where(nan, 0.0, snr), config.seed_sigma, footprint=_disk(image.fwhm_px), mask=nan)
    if table is None or len(table) == 0:
        return np.zeros((0, 2), dtype=int)
    return np.stack([np.asarray(table["y_peak"]), np.asarray(table["x_peak"])], axis=1).astype(int)


def classify(npix: int, nislands: int, npeaks: int, peak_snr: float, beam_area_px: float,
             config: AnnotateConfig, spurious: bool) -> tuple[SourceClass, str, float]:
    """The class rule (docs/annotate.md), the reason in words, and the area in beam areas.

    ``compact`` needs one island, one peak and an area of at most ``compact_beams`` beam
    areas *beyond* what an unresolved source of the same peak covers above island-sigma:
    for a Gaussian beam that is ln(peak_snr / island_sigma) beam areas, so a bright point
    source (whose 3-sigma island grows with its flux) stays compact.
    """
    area_beams = npix / beam_area_px
    if spurious:
        return SourceClass.SPURIOUS, "input listed in --spurious-names", area_beams
    point_area = max(0.0, math.log(peak_snr / config.island_sigma))
    excess = area_beams - point_area
    if nislands == 1 and npeaks <= 1 and excess <= config.compact_beams:
        return SourceClass.COMPACT, (
            f"1 island, 1 peak, area {area_beams:.2f} - point-source area {point_area:.2f} <= {config.compact_beams:g} beams"
        ), area_beams
    reasons = []
    if nislands > 1:
        reasons.append(f"{nislands} islands")
    if npeaks > 1:
        reasons.append(f"{npeaks} peaks")
    if excess > config.compact_beams:
        reasons.append(f"area {area_beams:.2f} - point-source area {point_area:.2f} > {config.compact_beams:g} beams")
    return SourceClass.EXTENDED, ", ".join(reasons), area_beams


def find_objects(image: InputImage, bkg: np.ndarray, rms: np.ndarray, config: AnnotateConfig,
                 spurious: bool) -> list[FoundObject]:
    """Objects of the whole image, in the order of their first pixel (row-major): deterministic."""
    nan = ~np.isfinite(image.data)
    snr = np.where(nan, 0.0, (np.nan_to_num(image.data) - bkg) / rms)
    islands = detect_islands(snr, nan, image, config)
    mapping = group_islands(islands, image, config)
    objects_map = mapping[islands]  # 0 stays 0
    peaks = _count_peaks(snr, nan, image, config)
    peak_obj = objects_map[peaks[:, 0], peaks[:, 1]] if len(peaks) else np.zeros(0, dtype=int)
    residual = np.where(nan, 0.0, np.nan_to_num(image.data) - bkg)
    found: list[FoundObject] = []
    ids = [int(v) for v in dict.fromkeys(objects_map.ravel()[np.flatnonzero(objects_map)])]  # first-pixel order
    for oid in ids:
        mask = objects_map == oid
        nislands = len(np.unique(islands[mask]))
        npeaks = max(1, int(np.count_nonzero(peak_obj == oid)))
        peak_snr = float(snr[mask].max())
        npix = int(mask.sum())
        flux = float(residual[mask].sum() / image.beam_area_px)
        cls, rule, area = classify(npix, nislands, npeaks, peak_snr, image.beam_area_px, config, spurious)
        w = np.clip(residual, 0.0, None) * mask
        rows, cols = np.nonzero(mask)
        total = float(w[rows, cols].sum())
        if total > 0:
            centre = (float((w[rows, cols] * rows).sum() / total), float((w[rows, cols] * cols).sum() / total))
        else:
            centre = (float(rows.mean()), float(cols.mean()))
        found.append(FoundObject(mask, nislands, npeaks, peak_snr, flux, area, cls, rule, centre))
    return found


# ---------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------


def tile_starts(length: int, size: int, overlap: int) -> list[int]:
    """Window starts covering ``length`` with windows of ``size`` overlapping by at least ``overlap``.

    Steps of ``size - overlap`` from 0; the last window is aligned to the far edge, so it
    may overlap its neighbour by more.
    """
    if length <= size:
        return [(length - size) // 2]
    step = size - overlap
    starts = list(range(0, length - size, step))
    if not starts or starts[-1] != length - size:
        starts.append(length - size)
    return starts


def _centred_start(centre: float, length: int, size: int) -> int:
    """Start of a window of ``size`` centred on ``centre``, clamped inside ``length`` (centred padding if smaller)."""
    if length <= size:
        return (length - size) // 2
    start = int(math.floor(centre - size / 2.0 + 0.5))
    return min(max(start, 0), length - size)


def choose_windows(shape: tuple[int, int], objects: list[FoundObject], config: AnnotateConfig) -> tuple[list[tuple[int, int]], bool]:
    """Crop windows (row0, col0) and whether the image is tiled.

    An image up to ``SINGLE_WINDOW_FACTOR`` x cutout gives one window containing the
    flux-weighted centre of all its objects (clamped inside the image); larger images
    are tiled with ``--overlap``.
    """
    rows, cols = shape
    size = config.cutout
    if max(rows, cols) <= SINGLE_WINDOW_FACTOR * size:
        if objects:
            weights = np.array([max(o.flux_jy, 0.0) for o in objects]) + 1e-30
            centres = np.array([o.weight_centre for o in objects])
            cy, cx = (weights[:, None] * centres).sum(axis=0) / weights.sum()
        else:
            cy, cx = rows / 2.0, cols / 2.0
        return [(_centred_start(cy, rows, size), _centred_start(cx, cols, size))], False
    return [(r, c) for r in tile_starts(rows, size, config.overlap) for c in tile_starts(cols, size, config.overlap)], True


def crop(array: np.ndarray, row0: int, col0: int, size: int, fill: Any) -> np.ndarray:
    """A size x size window starting at (row0, col0); parts outside the array are ``fill``."""
    out = np.full((size, size), fill, dtype=array.dtype)
    r0, c0 = max(row0, 0), max(col0, 0)
    r1, c1 = min(row0 + size, array.shape[0]), min(col0 + size, array.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = array[r0:r1, c0:c1]
    return out


# ---------------------------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------------------------


def _noise_seed(seed: int, name: str) -> list[int]:
    """Seed words for a cutout's noise: the run seed and a hash of the name (stable across runs/platforms)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return [int(seed) & 0xFFFFFFFF, *(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))]


def background_image(image: np.ndarray, source_px: np.ndarray, bkg: np.ndarray, rms: np.ndarray,
                     beam: Beam, pixel_scale: float, seed: list[int]) -> np.ndarray:
    """The cutout with source pixels replaced by beam-correlated noise of the measured rms plus the background level.

    Noise is white Gaussian convolved with the beam (radiff_scale.beam.correlated_noise,
    analytic rescaling to unit rms), so the filled area has the same texture as the real
    noise around it. NaN pixels stay NaN.
    """
    kernel = beam.kernel(pixel_scale)
    halo = kernel.shape[0] // 2
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((image.shape[0] + 2 * halo, image.shape[1] + 2 * halo))
    noise = correlated_noise(white, kernel, 1.0).astype(np.float64)
    out = image.astype(np.float64)
    fill = source_px & np.isfinite(image)
    out[fill] = bkg[fill] + rms[fill] * noise[fill]
    return out.astype(np.float32)


def _header_for(image: InputImage, row0: int, col0: int, rms: float) -> dict[str, Any]:
    """FITS keywords of a cutout: beam (deg), unit, pixel scale, and the input's WCS shifted to the crop."""
    h: dict[str, Any] = {}
    if image.wcs is not None:
        w = image.wcs.deepcopy()
        w.wcs.crpix = [w.wcs.crpix[0] - col0, w.wcs.crpix[1] - row0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            for card in w.to_header().cards:
                if card.keyword and card.keyword not in ("COMMENT", "HISTORY"):
                    h[card.keyword] = card.value
    if image.wcs is None:
        h["CDELT1"] = -image.pixel_scale_arcsec / 3600.0
        h["CDELT2"] = image.pixel_scale_arcsec / 3600.0
    h["BMAJ"] = image.beam.bmaj_arcsec / 3600.0
    h["BMIN"] = image.beam.bmin_arcsec / 3600.0
    h["BPA"] = float(image.beam.bpa_deg)
    h["RMS"] = float(rms)
    for key in ("TELESCOP", "SURVEY", "RESTFRQ", "OBJECT"):
        value = image.header.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            h[key] = value.strip() if isinstance(value, str) else value
    h.pop("BUNIT", None)
    return {k: v for k, v in h.items() if not (isinstance(v, float) and not math.isfinite(v))}


def _photutils_version() -> str:
    import photutils

    return str(photutils.__version__)


def build_sample(name: str, image: InputImage, window: tuple[int, int], objects: list[FoundObject],
                 bkg: np.ndarray, rms: np.ndarray, source_px: np.ndarray, config: AnnotateConfig,
                 bkg_method: str) -> Sample | None:
    """The sample of one window, or None when no object reaches into it."""
    size = config.cutout
    row0, col0 = window
    objs: list[AnnotatedObject] = []
    for obj in objects:
        mask = crop(obj.mask, row0, col0, size, False)
        npix_in = int(mask.sum())
        if npix_in == 0:
            continue
        rows, cols = np.nonzero(mask)
        objs.append(AnnotatedObject(obj.class_id, mask, {
            "npix": int(obj.mask.sum()),
            "npix_in_cutout": npix_in,
            "truncated": npix_in < int(obj.mask.sum()),
            "nislands": obj.nislands,
            "npeaks": obj.npeaks,
            "peak_snr": round(obj.peak_snr, 4),
            "flux_jy": float(np.float32(obj.flux_jy)),
            "area_beams": round(obj.area_beams, 4),
            "bbox": [int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1],
            "rule": obj.rule,
        }))
    if not objs:
        return None
    img = crop(image.data, row0, col0, size, np.float32(np.nan))
    bkg_c = crop(bkg, row0, col0, size, 0.0)
    rms_c = crop(rms, row0, col0, size, 1.0)
    src_c = crop(source_px, row0, col0, size, False)
    inside = crop(np.ones(image.data.shape, dtype=bool), row0, col0, size, False)
    rms_level = float(np.median(rms_c[inside]))
    bkg_level = float(np.median(bkg_c[inside]))
    background = background_image(img, src_c, bkg_c, rms_c, image.beam, image.pixel_scale_arcsec,
                                  _noise_seed(config.seed, name))
    meta: dict[str, Any] = {
        "rms": rms_level,
        "bkg": bkg_level,
        "bmaj": image.beam.bmaj_arcsec,
        "bmin": image.beam.bmin_arcsec,
        "bpa": float(image.beam.bpa_deg),
        "pixel_scale_arcsec": image.pixel_scale_arcsec,
        "pixels_per_beam": image.fwhm_px,
        "provenance": {
            "file": image.path.name,
            "window": [int(row0), int(col0)],
            "parameters": asdict(config),
            "background_method": bkg_method,
            "tool": TOOL,
            "photutils": _photutils_version(),
        },
    }
    for key, meta_key in (("TELESCOP", "telescope"), ("SURVEY", "survey")):
        value = image.header.get(key)
        if isinstance(value, str) and value.strip():
            meta[meta_key] = value.strip()
    return Sample(name, img, objs, _header_for(image, row0, col0, rms_level), background, meta)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class AnnotateSummary:
    """Counts of one run, printed as one line and written to ``annotate.json``."""

    images_read: int = 0
    cutouts_written: int = 0
    windows_without_objects: int = 0
    objects_per_class: dict[str, int] = field(default_factory=lambda: {c.label: 0 for c in (SourceClass.COMPACT, SourceClass.EXTENDED, SourceClass.SPURIOUS)})
    images_without_objects: list[str] = field(default_factory=list)
    #: Each object once, on its whole input image (a tiled map's overlaps repeat objects in ``objects_per_class``).
    objects_found_per_class: dict[str, int] = field(default_factory=lambda: {c.label: 0 for c in (SourceClass.COMPACT, SourceClass.EXTENDED, SourceClass.SPURIOUS)})

    def describe(self) -> str:
        per_class = ", ".join(f"{k} {v}" for k, v in self.objects_per_class.items())
        return (f"annotate: {self.images_read} images read, {self.cutouts_written} cutouts written, objects: "
                f"{per_class}; {len(self.images_without_objects)} images without any object, "
                f"{self.windows_without_objects} empty windows skipped")


def _check_out(out: Path) -> None:
    """Refuse an existing non-empty folder unless an earlier annotate run wrote it."""
    if not out.exists():
        return
    if not out.is_dir():
        raise RadiffError(f"--out {out}: exists and is not a folder")
    if not any(out.iterdir()):
        return
    try:
        marker = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = None
    if not (isinstance(marker, dict) and marker.get("tool") == TOOL):
        raise RadiffError(f"--out {out}: folder is not empty and was not written by {TOOL}; choose another")


def _source_pixels(objects: list[FoundObject], shape: tuple[int, int], fwhm_px: float) -> np.ndarray:
    """Union of object masks dilated by one beam FWHM: what the background image replaces."""
    union = np.zeros(shape, dtype=bool)
    for obj in objects:
        union |= obj.mask
    return ndimage.binary_dilation(union, structure=_disk(fwhm_px)) if union.any() else union


def annotate_file(path: Path, name: str, config: AnnotateConfig, spurious: bool, root: Path,
                  summary: AnnotateSummary) -> None:
    """Annotate one input file and write its samples under ``root``, updating ``summary``."""
    image = load_image(path, config)
    try:
        bkg, rms, method = estimate_background(image.data, config)
    except RadiffError as exc:
        raise RadiffError(f"{path}: {exc}") from None
    objects = find_objects(image, bkg, rms, config, spurious)
    summary.images_read += 1
    for obj in objects:
        summary.objects_found_per_class[obj.class_id.label] += 1
    if not objects:
        summary.images_without_objects.append(path.name)
        return
    source_px = _source_pixels(objects, image.data.shape, image.fwhm_px)
    windows, tiled = choose_windows(image.data.shape, objects, config)
    for row0, col0 in windows:
        cut_name = f"{name}_r{row0}_c{col0}" if tiled else name
        sample = build_sample(cut_name, image, (row0, col0), objects, bkg, rms, source_px, config, method)
        if sample is None:
            summary.windows_without_objects += 1
            continue
        write_sample(root, sample)
        summary.cutouts_written += 1
        for obj in sample.objects:
            summary.objects_per_class[obj.class_id.label] += 1


def _unique_names(files: list[Path]) -> list[str]:
    names = [sample_name(f.name) for f in files]
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise RadiffError(f"two inputs give the same sample name {dup[0]!r}; rename one or annotate them separately")
    return names


def annotate(inputs: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str],
             config: AnnotateConfig = AnnotateConfig(), quiet: bool = False) -> AnnotateSummary:
    """Annotate every input and write the dataset to ``out`` (atomically: temp folder, then rename)."""
    from tqdm import tqdm

    out_path = Path(out)
    _check_out(out_path)
    files = select_inputs(expand_inputs(inputs), config)
    spurious = match_names(files, config.spurious_names, "--spurious-names", required=False) if config.spurious_names else set()
    names = _unique_names(files)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.parent / f".{out_path.name}.annotate-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / ANNOTATIONS_DIR).mkdir(parents=True)  # present even when no cutout is written: validate-dataset then says "empty"
    summary = AnnotateSummary()
    try:
        for path, name in tqdm(list(zip(files, names)), desc="annotate", unit="file", disable=True if quiet else None):
            annotate_file(path, name, config, path in spurious, tmp, summary)
        doc = {"tool": TOOL, "photutils": _photutils_version(), "parameters": asdict(config),
               "inputs": [f.name for f in files], **asdict(summary)}
        (tmp / SUMMARY_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _replace_folder(tmp, out_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _replace_folder(tmp: Path, out: Path) -> None:
    """Move the finished temp folder to ``out``; an earlier annotate dataset (or empty folder) is replaced."""
    if out.exists():
        old = out.parent / f".{out.name}.annotate-old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
