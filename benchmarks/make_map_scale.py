"""Does a big map stay bounded in memory, and how close is the compositor to raw Zarr speed?

Run: ``python benchmarks/make_map_scale.py --bank bank.npz [--size 32768] [--workers 2]``
(or ``--model DIR --bank-n 256`` to build the bank first). Prints a table and writes
JSON (default ``benchmarks/results/make_map_scale.json``).

It runs ``python -m jobs.make_map --size N --tiles bank:PATH`` in a subprocess (a tile
bank, so the run measures planning, composition and export rather than sampling) and,
while it runs, samples the memory of the whole process tree (the driver, Ray's GCS and
raylet, the chunk workers) from /proc every ``--interval`` seconds:

* ``driver_peak_rss``: VmHWM of the driver process (its own high-water mark);
* ``largest_process_peak_rss``: the largest VmHWM of any process of the tree;
* ``tree_peak_pss``: the largest sum, at one instant, of the tree's proportional set
  sizes (PSS shares shared pages, e.g. Ray's object store, between processes, so the
  sum does not count them twice; a sampled value, it can miss short spikes);
* ``children_max_rss``: ``getrusage(RUSAGE_CHILDREN)`` after the run, the largest RSS
  of any reaped descendant (a cross-check that needs no sampling).

Throughput: the compositor's chunks/s (chunks written / the manifest's chunk-stage
seconds, and the steady rate between the first and last chunk done markers, which
leaves out the workers' start-up) against raw Zarr writes of *the same chunks* (read back from the map, then
written to a fresh mosaic with the same codecs) by as many processes as the run had
workers. The ratio is the fraction of raw write speed the compositor reaches (target
>= 60%): what is left is reading the background (or synthesising it), reading and
painting stamps, checksums and task overhead. Stamps are cut once per object in the
stage before (``stamps``); the table also gives the fraction counting that stage's
time, and the workers' seconds by step (from the manifest).

The table also gives the comparison per core *without the background*: the owners'
milliseconds per chunk reading stamps, painting and writing, against the raw writer's
milliseconds per chunk. That is what compositing adds to a background it is handed; the
background's own cost (a FITS read, or synthesising beam-correlated noise) is in the
per-step times.

``--background-fits PATH`` runs on a FITS background of ``--size`` (beam-correlated
noise written there first if missing) instead of the synthetic background, which
generates the noise inside each chunk owner.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from map_bench import add_map_arguments, noise_fits, process_tree, report, tile_bank_for  # noqa: E402
from map_bench import n_objects as objects_for  # noqa: E402

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _status_kib(pid: int) -> dict[str, int]:
    values = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    values[key] = int(value.split()[0])
    except OSError:
        pass
    return values


def _pss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            words = fh.read().split(b"\0")
        return " ".join(w.decode(errors="replace") for w in words[:3])[:80]
    except OSError:
        return "?"


class TreeSampler(threading.Thread):
    """Samples the memory of a process and its descendants until stopped."""

    def __init__(self, root: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.stop_event = threading.Event()
        self.driver_hwm = 0
        self.process_hwm: dict[int, tuple[int, str]] = {}
        self.tree_pss_peak = 0
        self.tree_pss_peak_at = 0.0  # seconds after the monitor started
        self.tree_pss_peak_top: list[tuple[str, int]] = []  # the largest processes at that moment (name, PSS KiB)
        self.tree_rss_peak = 0
        self.max_processes = 0
        self.samples = 0

    def run(self) -> None:
        started = time.perf_counter()
        while not self.stop_event.is_set():
            pids = process_tree(self.root)
            pss_sum = rss_sum = 0
            per_process: list[tuple[int, int]] = []
            for pid in pids:
                status = _status_kib(pid)
                if not status:
                    continue
                hwm = status.get("VmHWM", 0)
                if pid == self.root:
                    self.driver_hwm = max(self.driver_hwm, hwm)
                if hwm > self.process_hwm.get(pid, (0, ""))[0]:
                    self.process_hwm[pid] = (hwm, self.process_hwm.get(pid, (0, ""))[1] or _name(pid))
                rss_sum += status.get("VmRSS", 0)
                pss = _pss_kib(pid)
                pss = pss if pss is not None else status.get("VmRSS", 0)
                pss_sum += pss
                per_process.append((pss, pid))
            if pss_sum > self.tree_pss_peak:
                self.tree_pss_peak_at = time.perf_counter() - started
                self.tree_pss_peak_top = [(_name(pid), kib) for kib, pid in sorted(per_process, reverse=True)[:4]]
            self.tree_pss_peak = max(self.tree_pss_peak, pss_sum)
            self.tree_rss_peak = max(self.tree_rss_peak, rss_sum)
            self.max_processes = max(self.max_processes, len(pids))
            self.samples += 1
            self.stop_event.wait(self.interval)


def _raw_writer(args: tuple[str, str, list[tuple[int, int]]]) -> tuple[int, float]:
    """Write the given chunks of ``src`` into ``dst`` (same layout); returns (chunks, write seconds)."""
    from radiff_scale.compose.mosaic import ARRAYS, open_mosaic

    src_path, dst_path, indices = args
    src, dst = open_mosaic(src_path), open_mosaic(dst_path)
    sources = {name: src.array(name) for name in ARRAYS}
    targets = {name: dst.array(name, mode="r+") for name in ARRAYS}
    seconds = 0.0
    for index in indices:
        bounds = src.chunk_bounds(index)
        data = {name: sources[name][bounds.slices] for name in ARRAYS}  # read: not timed
        started = time.perf_counter()
        for name, block in data.items():
            targets[name][bounds.slices] = block
        seconds += time.perf_counter() - started
    return len(indices), seconds


def raw_write_chunks_per_s(mosaic: Path, workers: int, scratch: Path) -> dict:
    """Aggregate chunks/s of ``workers`` processes rewriting every chunk of ``mosaic``."""
    from radiff_scale.compose.mosaic import create_mosaic, open_mosaic

    src = open_mosaic(mosaic)
    dst = scratch / "raw.zarr"
    create_mosaic(dst, src.shape, src.chunk)
    indices = [b.index for b in src.chunk_grid()]
    shares = [indices[w::workers] for w in range(workers)]
    with mp.get_context("spawn").Pool(workers) as pool:
        parts = pool.map(_raw_writer, [(str(mosaic), str(dst), share) for share in shares if share])
    shutil.rmtree(dst, ignore_errors=True)
    rate = sum(n / s for n, s in parts if s > 0)
    return {"chunks": len(indices), "processes": len(parts), "chunks_per_s": rate,
            "write_seconds_per_process": [round(s, 3) for _, s in parts]}


#: The map job's stages in the order they run (manifest "seconds" keys).
STAGE_ORDER = ("sigma_map", "plan", "tiles", "stamps", "chunks", "export")


def stage_at(seconds: dict[str, float], before_end: float) -> str:
    """The stage that was running ``before_end`` seconds before the job ended (stages counted
    back from the end, since start-up comes first; approximate to the job's own overheads)."""
    for stage in reversed(STAGE_ORDER):
        before_end -= seconds.get(stage, 0.0)
        if before_end <= 0:
            return stage
    return "start-up"


def steady_chunks_per_s(mosaic: Path) -> float | None:
    """Chunks/s between the first and the last chunk done marker: the stage without its start-up
    (Ray workers importing the library), which dominates small maps."""
    times = sorted(p.stat().st_mtime for p in (mosaic.parent / "work" / "chunks_done").glob("*.json"))
    if len(times) < 3 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_map_arguments(parser, size=32768, bank_n=256, chunk=2048)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between memory samples")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "make_map_scale.json")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="make_map_scale_", dir=args.workdir))
    try:
        bank, bank_seconds = tile_bank_for(args, scratch)
        n_objects = objects_for(args)
        background_seconds = None
        if args.background_fits is not None and not args.background_fits.is_file():
            background_seconds = noise_fits(args.background_fits, args.size, args.seed + 1)
        where = ["--size", str(args.size)] if args.background_fits is None else ["--background", str(args.background_fits)]
        out = scratch / "map"
        cmd = [sys.executable, "-m", "jobs.make_map", "--out", str(out), *where,
               "--seed", str(args.seed), "--workers", str(args.workers), "--tiles", f"bank:{bank}", "--quiet",
               "--set", f"chunk={args.chunk}", "--set", f"placement.n_objects={n_objects}"]
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sampler = TreeSampler(proc.pid, args.interval)
        sampler.start()
        stdout, stderr = proc.communicate()
        wall = time.perf_counter() - started
        sampler.stop_event.set()
        sampler.join()
        if proc.returncode != 0:
            raise SystemExit(f"make_map failed ({proc.returncode}):\n{stderr[-4000:]}")
        children_max_rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        manifest = json.loads((out / "manifest.json").read_text())
        seconds, counts = manifest["seconds"], manifest["counts"]
        compositor = counts["chunks_written"] / seconds["chunks"] if seconds.get("chunks") else float("nan")
        steady = steady_chunks_per_s(out / "map.zarr")
        raw = raw_write_chunks_per_s(out / "map.zarr", args.workers, scratch)
        map_bytes = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    finally:
        if args.workdir is None:
            shutil.rmtree(scratch, ignore_errors=True)

    _, (largest_hwm, largest_name) = max(sampler.process_hwm.items(), key=lambda kv: kv[1][0])
    mib = lambda kib: round(kib / 1024, 1)  # noqa: E731
    result = {
        "benchmark": "make_map_scale",
        "size": args.size, "chunk": args.chunk, "workers": args.workers, "objects_planned": n_objects,
        "objects_placed": counts["objects_placed"], "tile_bank": str(bank), "bank_build_seconds": bank_seconds,
        "wall_seconds": round(wall, 3), "stage_seconds": seconds,
        "memory_mib": {
            "driver_peak_rss": mib(sampler.driver_hwm),
            "largest_process_peak_rss": mib(largest_hwm), "largest_process": largest_name,
            "tree_peak_pss": mib(sampler.tree_pss_peak), "tree_peak_rss_sum": mib(sampler.tree_rss_peak),
            "children_max_rss": mib(children_max_rss_kib),
            "processes_seen": sampler.max_processes, "samples": sampler.samples,
            "tree_peak_pss_stage": stage_at(seconds, wall - sampler.tree_pss_peak_at),
            "tree_peak_pss_top_processes": [[name, mib(kib)] for name, kib in sampler.tree_pss_peak_top],
        },
        "background": "synthetic" if args.background_fits is None else f"fits:{args.background_fits}",
        "background_fits_seconds": background_seconds,
        "worker_seconds": manifest.get("worker_seconds"),
        "chunks": {
            "written": counts["chunks_written"],
            "fraction_of_raw_with_stamp_stage": round(
                counts["chunks_written"] / (seconds["chunks"] + seconds["stamps"]) / raw["chunks_per_s"], 3
            ) if raw["chunks_per_s"] else None,
            "compositor_chunks_per_s": round(compositor, 3),
            "compositor_steady_chunks_per_s": None if steady is None else round(steady, 3),
            "steady_fraction_of_raw": round(steady / raw["chunks_per_s"], 3) if steady and raw["chunks_per_s"] else None,
            "raw_zarr_chunks_per_s": round(raw["chunks_per_s"], 3),
            "fraction_of_raw": round(compositor / raw["chunks_per_s"], 3) if raw["chunks_per_s"] else None,
            "target_fraction": 0.6,
            "raw": raw,
        },
        "output_bytes": map_bytes,
        "environment": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "machine": platform.machine()},
    }
    m, c = result["memory_mib"], result["chunks"]
    per_chunk = {
        step: 1000 * value / max(1, counts["chunks_written"])
        for step, value in (result["worker_seconds"] or {}).get("chunks", {}).items()
    }
    # The same comparison per core, without the background: what compositing adds to a
    # background it is handed (read stamps, paint, write) against writing the chunk raw.
    raw_ms = 1000 * sum(raw["write_seconds_per_process"]) / max(1, raw["chunks"])
    compositing_ms = sum(per_chunk.get(k, 0.0) for k in ("stamps", "paint", "write"))
    c["raw_write_ms_per_chunk"] = round(raw_ms, 1)
    c["compositing_ms_per_chunk"] = round(compositing_ms, 1)
    c["fraction_of_raw_background_excluded"] = round(raw_ms / compositing_ms, 3) if compositing_ms else None
    rows = [
        ("map", f"{args.size}x{args.size}, chunk {args.chunk}, {args.workers} workers, background {result['background']}"),
        ("objects placed / planned", f"{counts['objects_placed']} / {n_objects}"),
        ("wall time", f"{wall:.1f} s (" + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items() if k != "total") + ")"),
        ("driver peak RSS", f"{m['driver_peak_rss']} MiB"),
        ("largest process peak RSS", f"{m['largest_process_peak_rss']} MiB ({m['largest_process']})"),
        ("tree peak PSS (sum)", f"{m['tree_peak_pss']} MiB over {m['processes_seen']} processes, during "
                                f"{m['tree_peak_pss_stage']}; largest then: "
                                + ", ".join(f"{name.split()[-1][:30]} {v}" for name, v in m["tree_peak_pss_top_processes"])),
        ("children max RSS (rusage)", f"{m['children_max_rss']} MiB"),
        ("compositor", f"{c['compositor_chunks_per_s']:.3f} chunks/s (stage wall time); "
                       f"{c['compositor_steady_chunks_per_s']} chunks/s (first to last chunk done)"),
        ("raw zarr writes", f"{c['raw_zarr_chunks_per_s']:.3f} chunks/s ({raw['processes']} processes)"),
        ("fraction of raw", f"{c['fraction_of_raw']} stage, {c['steady_fraction_of_raw']} steady (target >= 0.6); "
                            f"{c['fraction_of_raw_with_stamp_stage']} counting the stamp stage"),
        ("chunk owner ms/chunk", ", ".join(f"{k} {v:.0f}" for k, v in per_chunk.items())),
        ("background excluded", f"stamps + paint + write {compositing_ms:.0f} ms vs raw write {raw_ms:.0f} ms per chunk "
                                f"and core: fraction {c['fraction_of_raw_background_excluded']}"),
    ]
    report(rows, result, args.out)


if __name__ == "__main__":
    main()
