"""One sample of ``radiff-scale annotate``: a window's image, masks, background, header and provenance.

Everything a sample needs to be reproduced is in it: the input file and window, every
option, the background method and the photutils version (segmentation results can
change between photutils releases).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict
from typing import Any

import numpy as np
from astropy.wcs import FITSFixedWarning

from radiff_scale.data.annotate_config import TOOL, AnnotateConfig
from radiff_scale.data.annotate_fill import background_image, noise_seed
from radiff_scale.data.annotate_image import InputImage
from radiff_scale.data.annotate_objects import FoundObject
from radiff_scale.data.annotate_windows import crop
from radiff_scale.data.sc_format import AnnotatedObject, Sample


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


def photutils_version() -> str:
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
                                  noise_seed(config.seed, name))
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
            "photutils": photutils_version(),
        },
    }
    for key, meta_key in (("TELESCOP", "telescope"), ("SURVEY", "survey")):
        value = image.header.get(key)
        if isinstance(value, str) and value.strip():
            meta[meta_key] = value.strip()
    return Sample(name, img, objs, _header_for(image, row0, col0, rms_level), background, meta)
