"""Redraw docs/img/demo-zoom.png from a demo map: a corner of map.fits as it is and with its truth outlines.

    radiff-scale demo --out demo-map && python docs/make_demo_figure.py demo-map docs/img/demo-zoom.png

numpy, astropy, scipy and Pillow only. The stretch is linear in units of the map's own noise,
-3 to 8 sigma: demo objects peak at k sigma with k ~ Exponential(3) capped at 10 (the paper's
rule), so most are faint, and a wider stretch would hide them in the noise.
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
    v = (s + 3.0) / 11.0
    grey = (np.clip(v, 0, 1) * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def outlined(rgb: np.ndarray, classes: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    for class_id, colour in COLOURS.items():
        inside = classes == class_id
        edge = inside & ~ndimage.binary_erosion(inside)
        out[edge] = colour
    return out


def window(run: Path, size: int) -> tuple[int, int]:
    """The window centred on the extended object of largest k (the catalogue says where), inside the map."""
    import pyarrow.parquet as pq

    table = pq.read_table(run / "catalogue.parquet", columns=["class_name", "k", "x", "y"]).to_pylist()
    extended = [row for row in table if row["class_name"] == "extended"] or table
    best = max(extended, key=lambda row: row["k"])
    rows, cols = fits.getheader(run / "map.fits")["NAXIS2"], fits.getheader(run / "map.fits")["NAXIS1"]
    r0 = int(np.clip(round(best["y"]) - size // 2, 0, rows - size))
    c0 = int(np.clip(round(best["x"]) - size // 2, 0, cols - size))
    return r0, c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a demo output folder (map.fits, labels.fits)")
    parser.add_argument("png", type=Path)
    parser.add_argument("--size", type=int, default=768, help="side of the window shown, in pixels")
    args = parser.parse_args()
    r0, c0 = window(args.run, args.size)
    image = fits.getdata(args.run / "map.fits")[r0 : r0 + args.size, c0 : c0 + args.size].astype(np.float64)
    classes = fits.getdata(args.run / "labels.fits", extname="CLASS")[r0 : r0 + args.size, c0 : c0 + args.size]
    rgb = display(image)
    gap = np.full((args.size, 8, 3), 255, np.uint8)
    # FITS rows run south to north: flip so north is up.
    Image.fromarray(np.concatenate([rgb, gap, outlined(rgb, classes)], axis=1)[::-1]).save(args.png)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
