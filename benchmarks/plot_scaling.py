"""Draw scaling.py's results: wall time and peak memory against map size, ours and the naive peer.

Run: ``python benchmarks/plot_scaling.py RESULTS.json [MORE.json ...] --out docs/img/scaling.png``.
Runs of the same peer and size in several files are averaged. Log-log axes; the wall-time
panel also shows how long the disk takes to write our final outputs (dd speed of each
file), the memory panel the machine's RAM. Uses matplotlib when it is installed, else PIL.
"""

from __future__ import annotations

import argparse
import json
import math
import textwrap
from pathlib import Path

COLOURS = {"ours": (31, 119, 180), "naive": (255, 127, 14), "disk": (120, 120, 120), "ram": (180, 60, 60)}
LABELS = {"ours": "radiff-scale (Ray, 2 workers)", "naive": "naive script (all in RAM)",
          "disk": "disk time of our final outputs", "ram": "RAM of the machine"}


def load(paths: list[Path]) -> tuple[dict, dict, str]:
    """Per series: {size: value} for time and memory; plus a caption line."""
    acc: dict = {}
    machine, disk = "", {}
    for path in paths:
        r = json.loads(path.read_text())
        m = r.get("machine", {})
        machine = f"{m.get('cpu', '?')}, {m.get('usable_cpus', '?')} cores, {m.get('mem_total_gib', '?')} GiB RAM"
        for run in r["runs"]:
            acc.setdefault((run["peer"], run["size"]), []).append(run)
            if run["peer"] == "ours" and r.get("disk_mb_per_s"):
                disk.setdefault(run["size"], []).append(run["bytes_final"] / (r["disk_mb_per_s"] * 1e6))
        ram = m.get("mem_total_gib")
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    time_series: dict = {"ours": {}, "naive": {}}
    mem_series: dict = {"ours": {}, "naive": {}}
    for (peer, size), runs in sorted(acc.items()):
        time_series.setdefault(peer, {})[size] = mean([x["wall_seconds"] for x in runs])
        mem_series.setdefault(peer, {})[size] = mean([x["peak_memory_mib"] for x in runs])
    time_series = {k: v for k, v in time_series.items() if v}
    mem_series = {k: v for k, v in mem_series.items() if v}
    if disk:
        time_series["disk"] = {size: mean(v) for size, v in sorted(disk.items())}
    if ram:
        sizes = sorted({s for _, s in acc})
        mem_series["ram"] = {sizes[0]: ram * 1024, sizes[-1]: ram * 1024}
    return time_series, mem_series, machine


def _decades(lo: float, hi: float) -> tuple[float, float]:
    return 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))


def draw_pil(panels: list[tuple[str, str, dict]], caption: str, out: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    try:  # a font with a superscript two where there is one
        font, small = ImageFont.truetype("DejaVuSans.ttf", 17), ImageFont.truetype("DejaVuSans.ttf", 14)
        square = "\u00b2"
    except OSError:
        font, small, square = ImageFont.load_default(size=17), ImageFont.load_default(size=14), "^2"
    pw, ph, left, top, bottom = 560, 420, 80, 50, 60
    img = Image.new("RGB", (len(panels) * (pw + left + 30) + 10, top + ph + bottom + 120), "white")
    d = ImageDraw.Draw(img)
    for i, (title, unit, series) in enumerate(panels):
        ox = 10 + i * (pw + left + 30) + left
        values = [v for s in series.values() for v in s.values() if v > 0]
        sizes = sorted({k for s in series.values() for k in s})
        y0, y1 = _decades(min(values), max(values))
        x0, x1 = math.log2(sizes[0]) - 0.3, math.log2(sizes[-1]) + 0.3
        px = lambda s: ox + (math.log2(s) - x0) / (x1 - x0) * pw  # noqa: E731
        py = lambda v: top + ph - (math.log10(v) - math.log10(y0)) / (math.log10(y1) - math.log10(y0)) * ph  # noqa: E731
        d.rectangle([ox, top, ox + pw, top + ph], outline="black")
        d.text((ox + pw / 2, top - 30), title, fill="black", font=font, anchor="mm")
        decade = y0
        while decade <= y1 * 1.0001:
            for mult in range(1, 10):
                v = decade * mult
                if y0 <= v <= y1:
                    y = py(v)
                    d.line([ox, y, ox + (8 if mult == 1 else 4), y], fill="black")
                    if mult == 1:
                        d.line([ox, y, ox + pw, y], fill=(225, 225, 225))
                        d.text((ox - 8, y), f"{v:g}", fill="black", font=small, anchor="rm")
            decade *= 10
        for s in sizes:
            d.line([px(s), top + ph, px(s), top + ph - 8], fill="black")
            d.text((px(s), top + ph + 8), f"{s}{square}", fill="black", font=small, anchor="mt")
        d.text((ox + pw / 2, top + ph + 34), "map size (pixels)", fill="black", font=small, anchor="mt")
        d.text((ox - 8, top - 8), unit, fill="black", font=small, anchor="rb")
        for j, (name, pts) in enumerate(series.items()):
            xy = [(px(s), py(v)) for s, v in sorted(pts.items()) if v > 0]
            colour = COLOURS[name]
            dashed = name in ("disk", "ram")
            for a, b in zip(xy, xy[1:]):
                if dashed:
                    n = max(1, int(math.dist(a, b) // 12))
                    for k in range(n):
                        f0, f1 = k / n, (k + 0.5) / n
                        d.line([a[0] + (b[0] - a[0]) * f0, a[1] + (b[1] - a[1]) * f0,
                                a[0] + (b[0] - a[0]) * f1, a[1] + (b[1] - a[1]) * f1], fill=colour, width=2)
                else:
                    d.line([a, b], fill=colour, width=3)
            if name not in ("ram",):
                for x, y in xy:
                    d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
            ly = top + ph + 60 + 20 * j
            d.line([ox, ly, ox + 30, ly], fill=colour, width=3)
            d.text((ox + 38, ly), LABELS[name], fill="black", font=small, anchor="lm")
    for k, line in enumerate(textwrap.wrap(caption, 140)):
        d.text((10, img.height - 40 + 20 * k), line, fill=(90, 90, 90), font=small, anchor="lm")
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, optimize=True)


def draw_matplotlib(panels: list[tuple[str, str, dict]], caption: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.8))
    for ax, (title, unit, series) in zip(axes, panels):
        for name, pts in series.items():
            xs, ys = zip(*sorted(pts.items()))
            style = "--" if name in ("disk", "ram") else "-o"
            ax.plot(xs, ys, style, color=[c / 255 for c in COLOURS[name]], label=LABELS[name])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        sizes = sorted({k for s in series.values() for k in s})
        ax.set_xticks(sizes, [f"{s}²" for s in sizes])
        ax.set_title(title)
        ax.set_xlabel("map size (pixels)")
        ax.set_ylabel(unit)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    fig.text(0.01, 0.01, caption, fontsize=8, color="0.35")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=Path("docs/img/scaling.png"))
    parser.add_argument("--caption", default=None, help="text under the plot (default: the machine)")
    args = parser.parse_args()
    time_series, mem_series, machine = load(args.results)
    panels = [("wall time, start-up included", "seconds", time_series),
              ("peak memory of the process tree", "MiB", mem_series)]
    caption = args.caption or f"benchmarks/scaling.py on {machine}"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        draw_pil(panels, caption, args.out)
    else:
        draw_matplotlib(panels, caption, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
