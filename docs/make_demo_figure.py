"""Redraw docs/img/demo-zoom.png from a demo map: a corner of map.fits as it is and with its truth outlines.

    radiff-scale demo --out demo-map && python docs/make_demo_figure.py demo-map docs/img/demo-zoom.png

numpy, astropy, scipy and Pillow only. The stretch is asinh in units of the map's own noise
(-3 to 300 sigma), so faint objects and the structure inside bright ones are both visible.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from astropy.io import fits
from PIL import Image
from scipy import ndimage

from radiff_scale.data.stretch import background_stats

#: Outline colours by class id (1 spurious, 2 compact, 3 extended), as in the quick-look.
COLOURS = {1: (230, 40, 40), 2: (40, 200, 60), 3: (60, 110, 255)}


def display(image: np.ndarray) -> np.ndarray:
    centre, rms = background_stats(image)
    s = np.nan_to_num((image - centre) / rms)
    v = (np.arcsinh(np.clip(s, -3, 300) / 2.0) - np.arcsinh(-1.5)) / (np.arcsinh(150.0) - np.arcsinh(-1.5))
    grey = (np.clip(v, 0, 1) * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def outlined(rgb: np.ndarray, classes: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    for class_id, colour in COLOURS.items():
        inside = classes == class_id
        edge = inside & ~ndimage.binary_erosion(inside)
        out[edge] = colour
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a demo output folder (map.fits, labels.fits)")
    parser.add_argument("png", type=Path)
    parser.add_argument("--size", type=int, default=768, help="side of the corner shown, in pixels")
    args = parser.parse_args()
    image = fits.getdata(args.run / "map.fits")[: args.size, : args.size].astype(np.float64)
    classes = fits.getdata(args.run / "labels.fits", extname="CLASS")[: args.size, : args.size]
    rgb = display(image)
    gap = np.full((args.size, 8, 3), 255, np.uint8)
    # FITS rows run south to north: flip so north is up.
    Image.fromarray(np.concatenate([rgb, gap, outlined(rgb, classes)], axis=1)[::-1]).save(args.png)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
