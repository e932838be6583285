"""How fast is one chunk owner? Raw Zarr chunk writes vs ``render_chunk`` with realistic stamps.

Run: ``python benchmarks/zarr_chunk_write.py [--n-chunks 4] [--chunk 2048] [--stamps-per-chunk 200] [--repeat 3]``.
Prints a table and writes JSON (default ``benchmarks/results/zarr_chunk_write.json``).

Rows:
- ``zarr image``: write N float32 chunks of noise to the ``image`` array (the mosaic's codec), nothing else.
- ``zarr 3 arrays``: image + class + instance chunks, as a chunk owner writes them.
- ``render (array bg)``: ``render_chunk`` with a precomputed background: stamp painting + writes + marker.
- ``render (synthetic bg)``: the same with ``SyntheticBackground`` computing beam-correlated noise.
- ``synthetic bg read``: ``SyntheticBackground.read`` of each chunk alone (no stamps, no writes).

``vs raw`` is the throughput of a row as a fraction of ``zarr 3 arrays`` (raw s/chunk divided
by the row's s/chunk): the issue's target is >= 0.60 for ``render (synthetic bg)``. ``cpu vs
raw`` is the same ratio of CPU seconds (all threads of the process, Zarr's included), which
is what decides throughput when every core is busy, as in a map run. Timings on a shared
machine swing with its load, so every case runs ``--repeat`` times, the cases taking turns
(a burst of load then hits all of them, not one), and each row reports its fastest run;
the 1/5/15-minute load averages go into the JSON too.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from radiff_scale.beam import Beam
from radiff_scale.classes import OBJECT_CLASSES
from radiff_scale.compose.background import SyntheticBackground
from radiff_scale.compose.mosaic import create_mosaic, render_chunk
from radiff_scale.compose.stamps import Stamp
from radiff_scale.compose.wcs import MapGeometry


class ArrayBackground:
    """A background already in memory, so render timings exclude noise generation."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    def read(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        return self.data[row0:row1, col0:col1].copy()


def make_stamps(shape: tuple[int, int], n: int, size: int, seed: int) -> list[Stamp]:
    """Stamps like the cutter makes: a blob inside a mask of random extent, some across chunk edges."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:size, 0:size] - size / 2
    stamps = []
    for oid in range(1, n + 1):
        radius = rng.uniform(3, size / 3)
        mask = rr**2 + cc**2 <= radius**2
        data = np.where(mask, np.exp(-(rr**2 + cc**2) / (2 * (radius / 2) ** 2)), 0.0).astype(np.float32) * 1e-3
        row0 = int(rng.integers(-size // 2, shape[0] - size // 2))
        col0 = int(rng.integers(-size // 2, shape[1] - size // 2))
        cls = int(OBJECT_CLASSES[int(rng.integers(len(OBJECT_CLASSES)))])
        stamps.append(Stamp(oid, cls, row0, col0, data, mask))
    return stamps


def _time(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn()``; CPU counts every thread of this process (Zarr's too)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def _fmt_load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def run(
    n_chunks: int, chunk: int, stamps_per_chunk: int, stamp_size: int, workdir: Path, block: int | None = None,
    repeat: int = 1,
) -> list[dict]:
    shape = (chunk, n_chunks * chunk)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(1e-4)
    classes = np.zeros(shape, np.uint8)
    instances = np.zeros(shape, np.int32)
    classes[:, : chunk // 8] = 2  # some labelled pixels so label chunks are not all fill value
    instances[:, : chunk // 8] = 7
    mb_per_chunk = chunk * chunk * 4 / 2**20
    rows = []

    def zarr_image() -> None:
        m = create_mosaic(workdir / "raw1.zarr", shape, chunk=chunk, overwrite=True)
        image = m.array("image", mode="r+")
        for j in range(n_chunks):
            image[:, j * chunk : (j + 1) * chunk] = noise[:, j * chunk : (j + 1) * chunk]

    def zarr_three() -> None:
        m = create_mosaic(workdir / "raw3.zarr", shape, chunk=chunk, overwrite=True)
        arrays = [(m.array(n, mode="r+"), d) for n, d in (("image", noise), ("class", classes), ("instance", instances))]
        for j in range(n_chunks):
            for arr, data in arrays:
                arr[:, j * chunk : (j + 1) * chunk] = data[:, j * chunk : (j + 1) * chunk]

    stamps = make_stamps(shape, stamps_per_chunk * n_chunks, stamp_size, seed=1)

    def render(background, name: str):
        def go() -> None:
            m = create_mosaic(workdir / name, shape, chunk=chunk, overwrite=True)
            for b in m.chunk_grid():
                render_chunk(m, b.index, background, [s for s in stamps if s.overlaps(b.row0, b.row1, b.col0, b.col1)])

        return go

    geometry = MapGeometry(shape, 1.5, 0.0, 0.0, Beam(6.5, 6.5), 1.4e9)

    def synthetic() -> SyntheticBackground:
        # No block cache: every chunk owner computes its own blocks, as on a cluster.
        sized = {} if block is None else {"block": block}
        return SyntheticBackground(geometry, 1e-4, seed=3, cache_blocks=0, **sized)

    def read_only() -> None:
        bg = synthetic()
        for j in range(n_chunks):
            bg.read(0, chunk, j * chunk, (j + 1) * chunk)

    cases = [
        ("zarr image", zarr_image, 0),
        ("zarr 3 arrays", zarr_three, 0),
        ("render (array bg)", render(ArrayBackground(noise), "r1.zarr"), stamps_per_chunk),
        ("render (synthetic bg)", render(synthetic(), "r2.zarr"), stamps_per_chunk),
        ("synthetic bg read", read_only, 0),
    ]
    best = {name: float("inf") for name, _, _ in cases}
    best_cpu = dict(best)
    for _ in range(max(1, repeat)):
        for name, fn, _ in cases:
            wall, cpu = _time(fn)
            best[name], best_cpu[name] = min(best[name], wall), min(best_cpu[name], cpu)
    for name, fn, n_st in cases:
        seconds = best[name]
        rows.append(
            {
                "case": name,
                "chunks": n_chunks,
                "chunk": chunk,
                "repeat": max(1, repeat),
                "stamps_per_chunk": n_st,
                "seconds": round(seconds, 4),
                "s_per_chunk": round(seconds / n_chunks, 4),
                "image_MiB_per_s": round(mb_per_chunk * n_chunks / seconds, 1),
                "cpu_seconds": round(best_cpu[name], 4),
            }
        )
    raw = next(r["seconds"] for r in rows if r["case"] == "zarr 3 arrays")
    raw_cpu = next(r["cpu_seconds"] for r in rows if r["case"] == "zarr 3 arrays")
    for r in rows:
        r["fraction_of_raw_3_arrays"] = round(raw / r["seconds"], 3)
        # What the ratio becomes when every core is busy (a map run): CPU time, not wall time, decides.
        r["cpu_fraction_of_raw_3_arrays"] = round(raw_cpu / r["cpu_seconds"], 3) if r["cpu_seconds"] > 0 else None
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-chunks", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--stamps-per-chunk", type=int, default=200)
    parser.add_argument("--stamp-size", type=int, default=128)
    parser.add_argument("--block", type=int, default=None, help="SyntheticBackground output block (default: the class default, as the map job uses)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of every case (cases take turns); rows report the fastest")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "zarr_chunk_write.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="zarr_bench_"))
    try:
        load_before = os.getloadavg()
        rows = run(args.n_chunks, args.chunk, args.stamps_per_chunk, args.stamp_size, workdir, args.block, args.repeat)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = os.getloadavg()
    header = f"{'case':<24}{'chunks':>7}{'stamps/chunk':>14}{'s/chunk':>10}{'MiB/s':>9}{'vs raw':>8}{'cpu vs raw':>12}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['case']:<24}{r['chunks']:>7}{r['stamps_per_chunk']:>14}{r['s_per_chunk']:>10.3f}{r['image_MiB_per_s']:>9.1f}"
              f"{r['fraction_of_raw_3_arrays']:>8.2f}{r['cpu_fraction_of_raw_3_arrays'] or float('nan'):>12.2f}")
    print(f"load average (1/5/15 min): before {_fmt_load(load_before)}, after {_fmt_load(load_after)} on {os.cpu_count()} CPUs")
    import zarr

    result = {
        "benchmark": "zarr_chunk_write",
        "rows": rows,
        "environment": {
            "python": platform.python_version(),
            "zarr": zarr.__version__,
            "numpy": np.__version__,
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
        },
        "synthetic_block": args.block or inspect.signature(SyntheticBackground).parameters["block"].default,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
