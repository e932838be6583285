"""The naive peer: a synthetic radio map made the way a single script makes it today.

Run: ``python benchmarks/naive_map.py --size 8192 --objects 3750 --out DIR [--bank BANK.npz]``.

What a competent astronomer writes in an afternoon, and what ``benchmarks/scaling.py``
compares our map job with. Everything lives in RAM as numpy arrays:

1. **Noise**: white Gaussian noise of the whole map (float32), one real 2-D FFT of it with
   ``scipy.fft`` (all cores; two 1-D passes, the second in place, to spare memory), times
   the beam's Gaussian transfer function scaled so the result has ``--rms`` Jy/beam, one
   inverse FFT (periodic edges: the usual shortcut).
2. **Objects**: ``--objects`` of them, class mix 0.7 compact / 0.2 extended / 0.1
   spurious, peak ``k * rms`` with k ~ Exponential(3) capped at 10 (our map job's
   defaults). With ``--bank`` each is an entry of that tile bank (the same bank our job
   pastes), decoded with the bank's stretch, its background (median outside the mask)
   removed, normalised to peak 1 once per entry, then flipped/rotated at random; without
   one, elliptical 2-D Gaussians of the beam's size (compact, spurious) or 2-6 beams long
   (extended). A random position is redrawn (up to 50 times, 64 px from the edges) while
   the footprint would land on an object already placed.
3. **Output**: ``map.fits`` (float32, a SIN WCS, BMAJ/BMIN/BPA) and ``labels.fits`` (CLASS
   uint8 and INSTANCE int32 images) written with astropy, and ``catalogue.csv``.

Peak memory is about 9 bytes per pixel (white noise and its spectrum during the FFT;
then the map, the class and the instance images), so 32768^2 needs ~9.5 GiB and 65536^2
~38 GiB (scipy.fft.rfft2/irfft2 of the whole array would need ~13). Prints the stage times; ``--json PATH`` writes them.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import fft as sp_fft

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
CLASSES = {"spurious": 1, "compact": 2, "extended": 3}
FRACTIONS = {"compact": 0.7, "extended": 0.2, "spurious": 0.1}


def beam_noise(size: int, rms: float, bmaj_px: float, bmin_px: float, bpa_deg: float, rng, band: int = 1024):
    """Beam-correlated Gaussian noise of std ``rms``: white noise times the beam's transfer function."""
    # rfft2 / irfft2 in two 1-D passes, the column pass in place: peak ~8 bytes per pixel where
    # scipy.fft.rfft2 + irfft2 of the whole map peak at ~13 (measured at 8192^2), same speed.
    spectrum = sp_fft.rfft(rng.standard_normal((size, size), dtype=np.float32), axis=1, workers=-1)
    spectrum = sp_fft.fft(spectrum, axis=0, workers=-1, overwrite_x=True)
    s_maj, s_min, t = bmaj_px * FWHM_TO_SIGMA, bmin_px * FWHM_TO_SIGMA, math.radians(bpa_deg)
    # Beam covariance in (row, col); the major axis points north (+row) turned east (-col) by BPA.
    c_rr = (s_maj * math.cos(t)) ** 2 + (s_min * math.sin(t)) ** 2
    c_cc = (s_maj * math.sin(t)) ** 2 + (s_min * math.cos(t)) ** 2
    c_rc = -(s_maj**2 - s_min**2) * math.sin(t) * math.cos(t)
    # A unit-area Gaussian filter turns unit white noise into noise of variance 1 / (4 pi s_maj s_min).
    scale = np.float32(rms * math.sqrt(4.0 * math.pi * s_maj * s_min))
    fy, fx = sp_fft.fftfreq(size).astype(np.float32), sp_fft.rfftfreq(size).astype(np.float32)[None, :]
    w = np.float32(-2.0 * math.pi**2)
    for r0 in range(0, size, band):  # the transfer function a band of rows at a time, not a second full array
        f = fy[r0 : r0 + band, None]
        spectrum[r0 : r0 + band] *= scale * np.exp(w * (c_rr * f * f + 2 * c_rc * f * fx + c_cc * fx * fx))
    spectrum = sp_fft.ifft(spectrum, axis=0, workers=-1, overwrite_x=True)
    return sp_fft.irfft(spectrum, n=size, axis=1, workers=-1)


def bank_stamps(path: Path) -> dict[int, list[tuple[np.ndarray, np.ndarray]]]:
    """Unit-peak stamps (values, footprint), trimmed to the footprint's box, by class id."""
    from radiff_scale.data.stretch import stretch_for_card  # how the bank's tiles go back to flux

    with np.load(path) as bank:
        masks, tiles, classes, meta = bank["masks"], bank["tiles"], bank["classes"], json.loads(str(bank["meta"]))
    stretch = stretch_for_card(meta.get("card") or {})
    out: dict[int, list] = {c: [] for c in CLASSES.values()}
    for mask, tile, cls in zip(masks, tiles, classes):
        foot = mask > 0
        linear = np.asarray(stretch.decode(tile), dtype=np.float64)
        cut = np.where(foot, linear - (np.median(linear[~foot]) if (~foot).any() else 0.0), 0.0)
        rows, cols = np.flatnonzero(foot.any(1)), np.flatnonzero(foot.any(0))
        box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        if cut[foot].max() > 0:
            out[int(cls)].append(((cut / cut[foot].max())[box].astype(np.float32), foot[box]))
    return out


def gaussian_stamp(cls: int, bmaj_px: float, bmin_px: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """An elliptical Gaussian of peak 1 and random orientation, cut at 1% of its peak."""
    grow = rng.uniform(2.0, 6.0) if cls == CLASSES["extended"] else 1.0
    s_maj, s_min = bmaj_px * grow * FWHM_TO_SIGMA, bmin_px * FWHM_TO_SIGMA
    half = int(math.ceil(3.1 * s_maj))
    y, x = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    t = rng.uniform(0, math.pi)
    a, b = y * math.cos(t) - x * math.sin(t), y * math.sin(t) + x * math.cos(t)
    g = np.exp(-0.5 * ((a / s_maj) ** 2 + (b / s_min) ** 2))
    return g, g > 0.01


def paste_objects(image, cls_map, inst_map, n, rms, stamps, beam_px, rng, margin=64, tries=50):
    """Place ``n`` objects without overlap; returns the catalogue rows."""
    names = list(FRACTIONS)
    picks = rng.choice(len(names), size=n, p=np.array([FRACTIONS[k] for k in names]) / sum(FRACTIONS.values()))
    ks = np.minimum(rng.exponential(3.0, size=n), 10.0)
    size = image.shape[0]
    rows = []
    for i in range(n):
        cls = CLASSES[names[picks[i]]]
        if stamps is not None:
            values, foot = stamps[cls][rng.integers(len(stamps[cls]))]
            turn, flip = int(rng.integers(4)), bool(rng.integers(2))
            values, foot = np.rot90(values, turn), np.rot90(foot, turn)
            if flip:
                values, foot = values[:, ::-1], foot[:, ::-1]
        else:
            values, foot = gaussian_stamp(cls, *beam_px, rng)
        h, w = foot.shape
        for _ in range(tries):
            r0 = int(rng.integers(margin, size - margin - h + 1))
            c0 = int(rng.integers(margin, size - margin - w + 1))
            box = np.s_[r0 : r0 + h, c0 : c0 + w]
            if not inst_map[box][foot].any():
                break
        else:
            continue  # no free spot: dropped, as our planner reports unplaced objects
        peak = float(ks[i]) * rms
        image[box] += np.where(foot, values * np.float32(peak), np.float32(0))
        cls_map[box][foot] = cls
        inst_map[box][foot] = i + 1
        rows.append((i + 1, cls, r0, c0, h, w, float(ks[i]), peak))
    return rows


def header(size: int, pixel_arcsec: float, beam: tuple[float, float, float]) -> fits.Header:
    h = fits.Header()
    for key, value in (("BUNIT", "JY/BEAM"), ("CTYPE1", "RA---SIN"), ("CTYPE2", "DEC--SIN"),
                       ("CRPIX1", size / 2 + 0.5), ("CRPIX2", size / 2 + 0.5), ("CRVAL1", 0.0), ("CRVAL2", -30.0),
                       ("CDELT1", -pixel_arcsec / 3600), ("CDELT2", pixel_arcsec / 3600), ("CUNIT1", "deg"),
                       ("CUNIT2", "deg"), ("BMAJ", beam[0] / 3600), ("BMIN", beam[1] / 3600), ("BPA", beam[2])):
        h[key] = value
    return h


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--objects", type=int, default=938)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--bank", type=Path, default=None, help="tile bank .npz (default: 2-D Gaussians)")
    p.add_argument("--rms", type=float, default=1e-4, help="noise, Jy/beam (our job's default)")
    p.add_argument("--pixel-arcsec", type=float, default=1.5)
    p.add_argument("--beam", type=float, nargs=3, default=(9.8, 5.8, 0.0), metavar=("BMAJ", "BMIN", "BPA"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    rng, seconds, t = np.random.default_rng(args.seed), {}, time.perf_counter()
    beam_px = (args.beam[0] / args.pixel_arcsec, args.beam[1] / args.pixel_arcsec)

    stamps = bank_stamps(args.bank) if args.bank is not None else None
    image = beam_noise(args.size, args.rms, *beam_px, args.beam[2], rng)
    seconds["noise"], t = time.perf_counter() - t, time.perf_counter()
    cls_map = np.zeros(image.shape, dtype=np.uint8)
    inst_map = np.zeros(image.shape, dtype=np.int32)
    rows = paste_objects(image, cls_map, inst_map, args.objects, args.rms, stamps, beam_px, rng)
    seconds["objects"], t = time.perf_counter() - t, time.perf_counter()

    args.out.mkdir(parents=True, exist_ok=True)
    head = header(args.size, args.pixel_arcsec, tuple(args.beam))
    fits.PrimaryHDU(image, header=head).writeto(args.out / "map.fits", overwrite=True)
    del image
    labels = fits.HDUList([fits.PrimaryHDU(cls_map, header=head), fits.ImageHDU(inst_map, header=head, name="INSTANCE")])
    labels[0].header["EXTNAME"] = "CLASS"
    labels.writeto(args.out / "labels.fits", overwrite=True)
    np.savetxt(args.out / "catalogue.csv", np.array(rows, dtype=float).reshape(-1, 8), delimiter=",", comments="",
               header="id,class,row0,col0,height,width,k,peak_jy", fmt=["%d"] * 6 + ["%.6g", "%.6g"])
    seconds["write"] = time.perf_counter() - t
    with open("/proc/self/status") as fh:  # this process's own peak RSS (Linux)
        hwm_kib = next((int(line.split()[1]) for line in fh if line.startswith("VmHWM:")), 0)
    result = {"size": args.size, "objects_planned": args.objects, "objects_placed": len(rows),
              "bank": None if args.bank is None else str(args.bank), "seconds": {k: round(v, 3) for k, v in seconds.items()},
              "peak_rss_mib": round(hwm_kib / 1024, 1)}
    print(json.dumps(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
