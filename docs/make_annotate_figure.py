"""Redraw docs/img/annotate-first.png: 16 cutouts of an annotated dataset with their mask outlines.

    radiff-scale annotate ../shared/data/first --exclude-names configs/first-holdout.txt --out data/first-train
    python docs/make_annotate_figure.py data/first-train docs/img/annotate-first.png

Cutouts evenly spaced in name order, 4 x 4, each at twice its size; asinh stretch in units of
the cutout's own rms (-3 to 300 sigma), north up; outlines blue extended, green compact, red
spurious. numpy, scipy and Pillow only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from radiff_scale.data.sc_format import list_samples, read_sample
from radiff_scale.data.stretch import background_stats

COLOURS = {1: (230, 40, 40), 2: (40, 200, 60), 3: (60, 110, 255)}


def panel(image: np.ndarray, objects: list[tuple[int, np.ndarray]], zoom: int = 2) -> Image.Image:
    centre, rms = background_stats(image)
    s = np.nan_to_num((image - centre) / rms)
    v = (np.arcsinh(np.clip(s, -3, 300) / 3.0) - np.arcsinh(-1.0)) / (np.arcsinh(100.0) - np.arcsinh(-1.0))
    rgb = np.repeat((np.clip(v, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    rgb = rgb.repeat(zoom, axis=0).repeat(zoom, axis=1)
    for class_id, mask in objects:
        big = np.asarray(mask, bool).repeat(zoom, axis=0).repeat(zoom, axis=1)
        edge = ndimage.binary_dilation(big, iterations=1) & ~ndimage.binary_erosion(big, iterations=1)
        rgb[edge] = COLOURS[class_id]
    return Image.fromarray(rgb[::-1])  # FITS rows run south to north


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--n", type=int, default=16, help="cutouts (a square number)")
    args = parser.parse_args()
    paths = list_samples(args.dataset)
    picked = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, args.n)]
    side = int(round(args.n**0.5))
    panels = []
    for path in picked:
        sample = read_sample(path, args.dataset)
        tile = panel(sample.image, [(int(o.class_id), o.mask) for o in sample.objects])
        ImageDraw.Draw(tile).text((4, 2), sample.name[:30], fill=(255, 230, 0))
        panels.append(tile)
    w, h = panels[0].size
    gap = 6
    grid = Image.new("RGB", (side * w + (side - 1) * gap, side * h + (side - 1) * gap), (255, 255, 255))
    for i, tile in enumerate(panels):
        grid.paste(tile, ((i % side) * (w + gap), (i // side) * (h + gap)))
    grid.save(args.png)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
