"""What the map-job benchmarks (make_map_scale.py, resume_8192.py) share: their common
options, the tile bank they run on, and the job's process tree (read from /proc, Linux),
for measuring or killing a whole job with Ray's workers (some leave its process group)."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def add_map_arguments(parser: argparse.ArgumentParser, size: int, bank_n: int, chunk: int) -> None:
    """Options both benchmarks take, with their own defaults."""
    parser.add_argument("--size", type=int, default=size, help="map side in pixels")
    parser.add_argument("--bank", type=Path, default=None, help="tile bank .npz (built with --model if missing)")
    parser.add_argument("--model", default=None, help="model bundle to build the bank with ('demo' or a folder)")
    parser.add_argument("--bank-n", type=int, default=bank_n, help="entries of a bank built here")
    parser.add_argument("--objects", type=int, default=None,
                        help="objects to place (default: the demo density, 400 per 4096^2 pixels)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=chunk, help="mosaic chunk side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where the maps go (default: a temp folder, removed)")
    parser.add_argument("--background-fits", type=Path, default=None,
                        help="run on a FITS background of --size (written here first, as beam-correlated noise, "
                             "if missing) instead of the synthetic one")


def tile_bank_for(args: argparse.Namespace, scratch: Path) -> tuple[Path, float | None]:
    """The tile bank to run on: ``--bank``, or one built from ``--model`` (and how long that took)."""
    bank = args.bank or scratch / "bank.npz"
    if bank.is_file():
        return bank, None
    if args.model is None:
        raise SystemExit(f"no tile bank at {bank}: pass --bank PATH or --model DIR to build one")
    from radiff_scale.models.bundle import resolve_model_dir
    from radiff_scale.compose.tile_bank import build_tile_bank

    started = time.perf_counter()
    build_tile_bank(resolve_model_dir(args.model), args.bank_n, bank)
    return bank, round(time.perf_counter() - started, 3)


def noise_fits(path: Path, size: int, seed: int, rms_jy: float = 2e-6, rows_per_band: int = 1024) -> float:
    """Write a size x size FITS map of the synthetic background (the job's defaults for beam,
    pixel scale and centre), streamed a band of rows at a time; returns the seconds it took.
    It stands in for a real background of that size (none that big ships with the repo)."""
    from astropy.io import fits

    from radiff_scale.compose.background import SyntheticBackground
    from radiff_scale.compose.spec import MapSpec
    from radiff_scale.compose.wcs import MapGeometry

    spec = MapSpec(size=size)
    geometry = MapGeometry(
        shape=(size, size), pixel_scale_arcsec=spec.pixel_scale_arcsec, centre_ra_deg=spec.centre_ra_deg,
        centre_dec_deg=spec.centre_dec_deg, beam=spec.beam, freq_hz=spec.freq_hz,
    )
    source = SyntheticBackground(geometry, rms_jy, seed)
    started = time.perf_counter()
    partial = path.with_name(path.name + ".partial")
    stream = fits.StreamingHDU(partial, geometry.header())
    for row0 in range(0, size, rows_per_band):
        stream.write(source.read(row0, min(size, row0 + rows_per_band), 0, size).astype(">f4"))
    stream.close()
    os.replace(partial, path)
    return round(time.perf_counter() - started, 3)


def n_objects(args: argparse.Namespace) -> int:
    return args.objects if args.objects is not None else round(400 * (args.size / 4096) ** 2)


def _children_of() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    """``root`` and every process below it, at this instant."""
    children, out, todo = _children_of(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def report(rows: list[tuple[str, str]], result: dict, out: Path) -> None:
    """Print ``rows`` as an aligned two-column table and write ``result`` as JSON to ``out``."""
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
