"""Time the cutout simulator alone and the whole dataset writer (simulate + Survey-Collection files).

Usage: python benchmarks/simulate_speed.py [N] [JSON_PATH] [--workers K]

N defaults to 2000 and JSON_PATH to benchmarks/results/simulate_speed.json. The target is
10,000 cutouts in under 2 minutes on 2 cores, i.e. 12 ms per cutout including writing.
``--workers K`` adds a dataset run with K processes next to the in-process one, so the two
are compared on the same machine (it only pays on otherwise idle cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from radiff_scale.data.simulate import SimConfig, simulate_cutout, simulate_dataset
from radiff_scale.seeding import derive_seed

TARGET_MS = 12.0


def time_cutouts(n: int, config: SimConfig) -> dict:
    start = time.perf_counter()
    n_objects = 0
    for i in range(n):
        n_objects += len(simulate_cutout(config, derive_seed(0, i, "simulate")).objects)
    seconds = time.perf_counter() - start
    return {"what": "simulate_cutout", "n": n, "workers": 1, "seconds": seconds,
            "ms_per_cutout": 1000 * seconds / n, "objects_per_cutout": n_objects / n}


def time_dataset(n: int, config: SimConfig, workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="simbench-") as tmp:
        start = time.perf_counter()
        summary = simulate_dataset(n, Path(tmp) / "ds", seed=0, config=config, workers=workers)
        seconds = time.perf_counter() - start
        n_files = sum(1 for p in Path(tmp).rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    return {"what": "simulate_dataset", "n": n, "workers": workers, "seconds": seconds,
            "ms_per_cutout": 1000 * seconds / n, "files": n_files, "megabytes": size / 1e6,
            "objects_per_class": summary.objects_per_class, "cutouts_with_class": summary.cutouts_with_class}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=2000)
    parser.add_argument("json_path", nargs="?", default="benchmarks/results/simulate_speed.json")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    config = SimConfig()
    rows = [time_cutouts(args.n, config), time_dataset(args.n, config, 1)]
    if args.workers > 1:
        rows.append(time_dataset(args.n, config, args.workers))

    print(f"{'what':<18}{'N':>7}{'workers':>9}{'seconds':>10}{'ms/cutout':>11}{'10k cutouts':>13}")
    for row in rows:
        projected = row["ms_per_cutout"] * 10_000 / 1000
        print(f"{row['what']:<18}{row['n']:>7}{row['workers']:>9}{row['seconds']:>10.2f}"
              f"{row['ms_per_cutout']:>11.2f}{projected:>12.0f}s")
    print(f"target: {TARGET_MS:.0f} ms/cutout including writing (10,000 in 120 s)")

    result = {
        "rows": rows,
        "target_ms_per_cutout": TARGET_MS,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
    }
    out = Path(args.json_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
