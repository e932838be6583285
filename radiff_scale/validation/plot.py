"""validation.png: four small line plots of the report, drawn with Pillow.

matplotlib is not a dependency of the project (and the validate extra does not need it),
while Pillow is, so the figure is drawn directly: completeness vs truth S/N per class,
reliability vs detection S/N, the median flux ratio (with its 16-84% range) vs truth S/N
per class, and the histogram of match offsets in beams. The S/N axis is categorical, one
tick per bin of the report, so the plot shows exactly the numbers in validation.json.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from radiff_scale.atomic import replace_when_done
from radiff_scale.classes import CLASS_COLOURS, OBJECT_CLASSES

PANEL_W, PANEL_H = 640, 420
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 34, 58
SERIES_COLOURS = {"all": (20, 20, 20), **{c.label: CLASS_COLOURS[c] for c in OBJECT_CLASSES}}
Point = tuple[float, float]
FRACTION_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _bin_label(b: Mapping[str, Any]) -> str:
    lo, hi = b["snr_lo"], b["snr_hi"]
    if lo is None:
        return f"<{hi:g}"
    if hi is None:
        return f">={lo:g}"
    return f"{lo:g}-{hi:g}"


class Panel:
    """One plot: a frame at (x0, y0), y from ``ylo`` to ``yhi``, ``n`` categories on x."""

    def __init__(self, draw: ImageDraw.ImageDraw, x0: int, y0: int, title: str, ylo: float, yhi: float,
                 labels: Sequence[str], ylabel: str, ticks: Sequence[float]) -> None:
        self.draw, self.x0, self.y0, self.ylo, self.yhi, self.n = draw, x0, y0, ylo, yhi, max(1, len(labels))
        self.left, self.right = x0 + PAD_L, x0 + PANEL_W - PAD_R
        self.top, self.bottom = y0 + PAD_T, y0 + PANEL_H - PAD_B
        font, small = _font(15), _font(11)
        draw.text((x0 + PAD_L, y0 + 8), title, fill=(0, 0, 0), font=font)
        draw.rectangle((self.left, self.top, self.right, self.bottom), outline=(0, 0, 0))
        for v in ticks:
            y = self.py(v)
            draw.line((self.left, y, self.right, y), fill=(225, 225, 225))
            draw.text((x0 + 8, y - 6), f"{v:.2g}", fill=(0, 0, 0), font=small)
        for i, label in enumerate(labels):
            x = self.px(i)
            draw.line((x, self.bottom, x, self.bottom + 4), fill=(0, 0, 0))
            draw.text((x - 3 * len(label), self.bottom + 8 + 12 * (i % 2)), label, fill=(0, 0, 0), font=small)
        draw.text((self.left, self.bottom + 38), ylabel, fill=(80, 80, 80), font=small)

    def px(self, i: float) -> float:
        return self.left + (i + 0.5) * (self.right - self.left) / self.n

    def py(self, v: float) -> float:
        v = min(max(v, self.ylo), self.yhi)
        return self.bottom - (v - self.ylo) / (self.yhi - self.ylo) * (self.bottom - self.top)

    def line(self, values: Sequence[float | None], colour: tuple[int, int, int]) -> None:
        """A polyline through the non-null values (a null breaks it), with a dot at each point."""
        run: list[Point] = []
        for i, v in enumerate(list(values) + [None]):
            if v is None:
                if len(run) > 1:
                    self.draw.line(run, fill=colour, width=2)
                run = []
                continue
            p = (self.px(i), self.py(v))
            run.append(p)
            self.draw.ellipse((p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3), fill=colour)

    def bars(self, lo: Sequence[float | None], hi: Sequence[float | None], colour: tuple[int, int, int],
             shift: float) -> None:
        for i, (a, b) in enumerate(zip(lo, hi)):
            if a is not None and b is not None:
                x = self.px(i) + shift
                self.draw.line((x, self.py(a), x, self.py(b)), fill=colour, width=1)

    def hline(self, v: float) -> None:
        self.draw.line((self.left, self.py(v), self.right, self.py(v)), fill=(150, 150, 150), width=1)

    def legend(self, names: Sequence[str], bottom: bool = False) -> None:
        font = _font(11)
        for k, name in enumerate(names):
            x = self.right - 90
            y = self.bottom - 8 - 14 * (len(names) - k) if bottom else self.top + 6 + 14 * k
            self.draw.line((x, y + 6, x + 16, y + 6), fill=SERIES_COLOURS[name], width=3)
            self.draw.text((x + 22, y), name, fill=(0, 0, 0), font=font)


def _nice_ticks(top: float) -> list[float]:
    """0 and four steps of 1, 2, 2.5 or 5 x 10^k reaching at least ``top``."""
    raw = max(top, 1e-12) / 4
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [round(k * step, 10) for k in range(5)]


def _used(bins_by_series: Sequence[Sequence[Mapping[str, Any]]]) -> slice:
    """The bins from the first to the last that holds anything in any series (empty ends trimmed)."""
    n = len(bins_by_series[0])
    used = [i for i in range(n) if any(s[i]["n"] for s in bins_by_series)]
    return slice(used[0], used[-1] + 1) if used else slice(0, n)


def render(metrics: Mapping[str, Any]) -> Image.Image:
    """The four panels of ``metrics`` (the ``metrics`` section of validation.json)."""
    img = Image.new("RGB", (2 * PANEL_W, 2 * PANEL_H), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    classes = metrics["classes"]
    names = [n for n in SERIES_COLOURS if classes[n]["n_truth"]]
    comp = [classes[n]["completeness_by_snr"] for n in names] or [classes["all"]["completeness_by_snr"]]
    cut = _used(comp)
    labels = [_bin_label(b) for b in comp[0][cut]]

    p = Panel(draw, 0, 0, "completeness vs truth S/N", 0.0, 1.05, labels, "truth peak / sigma_local",
              FRACTION_TICKS)
    for name in names:
        p.line([b["fraction"] for b in classes[name]["completeness_by_snr"][cut]], SERIES_COLOURS[name])
    p.legend(names, bottom=True)

    rel = metrics["reliability"]["by_snr"]
    rcut = _used([rel])
    p = Panel(draw, PANEL_W, 0, "reliability vs detection S/N", 0.0, 1.05, [_bin_label(b) for b in rel[rcut]],
              "PyBDSF Peak_flux / Isl_rms", FRACTION_TICKS)
    p.line([b["fraction"] for b in rel[rcut]], SERIES_COLOURS["all"])

    # 0-2 holds a good finder; a biased one is shown up to 5x (beyond: clipped at the top).
    highs = [b[k] for n in names for b in classes[n]["flux_ratio_by_snr"][cut] for k in ("median", "p84")
             if b[k] is not None]
    ticks = _nice_ticks(min(5.0, max([2.0, *highs])))
    p = Panel(draw, 0, PANEL_H, "flux ratio (detected / true), median and 16-84%", 0.0, ticks[-1], labels,
              "truth peak / sigma_local", ticks)
    p.hline(1.0)
    for k, name in enumerate(names):
        bins = classes[name]["flux_ratio_by_snr"][cut]
        p.bars([b["p16"] for b in bins], [b["p84"] for b in bins], SERIES_COLOURS[name], 3 * (k - 1.5))
        p.line([b["median"] for b in bins], SERIES_COLOURS[name])
    p.legend(names)

    hist = metrics["offset_histogram"]
    edges = hist["edges_beams"]
    hist_labels = [f"{edges[i]:.2g}" for i in range(len(edges) - 1)]
    ticks = _nice_ticks(max([max(c) for c in hist["counts"].values() if c] + [1]))
    p = Panel(draw, PANEL_W, PANEL_H, "matches per offset bin (offset in beam FWHM)", 0.0, ticks[-1], hist_labels,
              "offset / beam", ticks)
    for name in names:
        p.line([float(c) for c in hist["counts"][name]], SERIES_COLOURS[name])
    p.legend(names)
    return img


def write_plot(path: str | Path, metrics: Mapping[str, Any]) -> Path:
    """validation.png, whole or not at all."""
    img = render(metrics)
    return replace_when_done(path, lambda tmp: img.save(tmp, format="PNG"))
