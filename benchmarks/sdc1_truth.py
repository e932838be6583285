"""The SDC1 catalogue check with the real model: do placed rows get their position, flux and shape?

    python benchmarks/sdc1_truth.py [--rows 500] [--size 4096] [--out /tmp/sdc1-map]

Takes the ``--rows`` brightest rows of the SDC1 B1 training catalogue (../shared/data),
re-centres them on a ``--size``^2 map at SDC1's 0.6"/pixel and 1.5" beam, makes the map
with the shipped model (``tiles: model``; masks from the shipped bank, stretched to each
row's size), and compares the truth catalogue with the rows: position of the flux
centroid (pixels), integrated flux (measured / requested), and, for rows resolved by more
than two beams, the deconvolved major axis (ratio) and PA (degrees). Prints a table,
writes ``benchmarks/results/sdc1_truth.json`` and ``docs/img/sdc1_truth.png`` (the twelve
largest objects with their truth ellipses).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_env import machine_info  # noqa: E402

CATALOGUE = REPO.parent / "shared" / "data" / "catalogues" / "TrainingSet_B1_v2_ML.txt"
BEAM_ARCSEC, PIXEL_ARCSEC = 1.5, 0.6


def brightest_rows(n: int, out: Path) -> tuple[Path, np.ndarray]:
    lines = CATALOGUE.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.split() and line.split()[0].isdigit())
    rows = np.array([[float(v) for v in line.split()] for line in lines[first:] if line.strip()])
    chosen = rows[np.argsort(-rows[:, 5], kind="stable")[:n]]
    out.write_text("\n".join(lines[:first]) + "\n" + "\n".join(" ".join(repr(float(v)) for v in r) for r in chosen) + "\n")
    return out, chosen


def picture(result, truth: list[dict], path: Path, n: int = 12, box: int = 96) -> None:
    """The ``n`` largest placed objects, asinh-stretched, with their observed-size ellipses."""
    from astropy.io import fits
    from PIL import Image, ImageDraw

    data = fits.getdata(result.map, memmap=True)
    largest = sorted(truth, key=lambda r: -r["obs_major_arcsec"])[:n]
    cell = 2 * box
    canvas = Image.new("L", (cell * 4, cell * math.ceil(n / 4)), 0)
    draw = ImageDraw.Draw(canvas)
    for k, row in enumerate(largest):
        r, c = int(round(row["y"])), int(round(row["x"]))
        cut = np.asarray(data[max(r - box, 0) : r + box, max(c - box, 0) : c + box], dtype=np.float64)
        scale = np.percentile(cut, 99.5) or 1.0
        img = np.clip(np.arcsinh(cut / (0.05 * scale)) / np.arcsinh(1 / 0.05), 0, 1)[::-1]  # north up
        x0, y0 = (k % 4) * cell, (k // 4) * cell
        canvas.paste(Image.fromarray((img * 255).astype(np.uint8)), (x0, y0))
        a = row["obs_major_arcsec"] / PIXEL_ARCSEC / 2
        b = row["obs_minor_arcsec"] / PIXEL_ARCSEC / 2
        theta = math.radians(row["obs_pa_deg"])
        pts = []
        for t in np.linspace(0, 2 * math.pi, 60):
            along, across = a * math.cos(t), b * math.sin(t)
            dr = along * math.cos(theta) + across * math.sin(theta)
            dc = -along * math.sin(theta) + across * math.cos(theta)
            pts.append((x0 + (c + dc) - max(c - box, 0), y0 + (cut.shape[0] - 1) - ((r + dr) - max(r - box, 0))))
        draw.line(pts + pts[:1], fill=160, width=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--out", type=Path, default=Path("/tmp/sdc1-map"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--resume", action="store_true", help="finish the run in --out (e.g. after deleting its stamps)")
    args = parser.parse_args()

    import pyarrow.parquet as pq
    from astropy.io import fits
    from astropy.wcs import WCS

    from radiff_scale import MapSpec, PlacementConfig, make_map, positions_from_sdc1
    from radiff_scale.compose.sdc1 import GAUSS_TO_LAS

    args.out.mkdir(parents=True, exist_ok=True)
    path, rows = brightest_rows(args.rows, args.out / f"sdc1_{args.rows}.txt")
    positions = positions_from_sdc1(path)
    ra = np.where(positions.ra > 180.0, positions.ra - 360.0, positions.ra)
    spec = MapSpec(size=args.size, workers=args.workers, seed=0, pixel_scale_arcsec=PIXEL_ARCSEC,
                   beam_bmaj_arcsec=BEAM_ARCSEC, beam_bmin_arcsec=BEAM_ARCSEC, freq_hz=560e6, noise_rms_jy=2e-6,
                   centre_ra_deg=float((ra.min() + ra.max()) / 2 % 360.0),
                   centre_dec_deg=float((positions.dec.min() + positions.dec.max()) / 2),
                   placement=PlacementConfig(margin_px=16, flux_mode="integrated"))
    result = make_map(spec, args.out / "map", positions=positions, overwrite=not args.resume, resume=args.resume)
    truth = pq.read_table(result.catalogue).to_pylist()
    x, y = WCS(fits.getheader(result.map)).wcs_world2pix(positions.ra, positions.dec, 0)
    ids = np.array([r["id"] for r in truth]) - 1
    offset = np.hypot(np.array([r["x"] for r in truth]) - x[ids], np.array([r["y"] for r in truth]) - y[ids])
    flux_ratio = np.array([r["flux_jy"] / r["flux_req_jy"] for r in truth])
    resolved = positions.major[ids] > 2 * BEAM_ARCSEC  # by more than two beams (intrinsic FWHM)
    # Measured sizes in each row's own convention (SDC1 size code 1 LAS, 2 FWHM, 3 exponential).
    convention = np.array([{1: GAUSS_TO_LAS, 2: 1.0, 3: 2**-0.5}[int(c)] for c in rows[ids, 10]])
    major_ratio = (np.array([r["src_major_arcsec"] for r in truth]) * convention)[resolved] / rows[ids, 7][resolved]
    elongated = resolved & (rows[ids, 8] < 0.8 * rows[ids, 7])
    pa_gap = np.abs((np.array([r["src_pa_deg"] for r in truth]) - positions.pa[ids] + 90.0) % 180.0 - 90.0)[elongated]
    refusals: dict[str, int] = {}
    for u in result.unplaced_objects:
        refusals[u.kind.value] = refusals.get(u.kind.value, 0) + 1
    numbers = {
        "rows": args.rows, "size": args.size, "placed": len(truth), "refused": refusals,
        "position_error_px": {"median": float(np.median(offset)), "max": float(offset.max())},
        "flux_ratio": {"min": float(flux_ratio.min()), "max": float(flux_ratio.max())},
        "resolved_rows": int(resolved.sum()),
        "major_ratio": {q: float(np.percentile(major_ratio, p)) for q, p in (("p5", 5), ("median", 50), ("p95", 95))}
        | {"min": float(major_ratio.min()), "max": float(major_ratio.max()),
           "within_20pct": float(np.mean(np.abs(major_ratio - 1) <= 0.2))},
        "elongated_rows": int(elongated.sum()),
        "pa_error_deg": {"median": float(np.median(pa_gap)), "p95": float(np.percentile(pa_gap, 95)),
                         "max": float(pa_gap.max()), "within_15deg": float(np.mean(pa_gap <= 15.0))},
        "seconds": result.manifest["seconds"]["total"],
    }
    print(f"{'placed':<28}{len(truth)} of {args.rows} (refused: {refusals})")
    print(f"{'position error (px)':<28}median {numbers['position_error_px']['median']:.3f}, max {offset.max():.3f}")
    print(f"{'flux measured/requested':<28}{flux_ratio.min():.6f} .. {flux_ratio.max():.6f}")
    print(f"{'major axis ratio (resolved)':<28}{major_ratio.min():.3f} .. {major_ratio.max():.3f}, "
          f"median {np.median(major_ratio):.3f} over {resolved.sum()} rows")
    print(f"{'PA error (deg, elongated)':<28}median {np.median(pa_gap):.2f}, max {pa_gap.max():.2f} "
          f"over {elongated.sum()} rows")
    out = REPO / "benchmarks" / "results" / "sdc1_truth.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"numbers": numbers, "machine": machine_info()}, indent=2, sort_keys=True) + "\n")
    picture(result, truth, REPO / "docs" / "img" / "sdc1_truth.png")
    print(f"wrote {out} and docs/img/sdc1_truth.png")


if __name__ == "__main__":
    main()
