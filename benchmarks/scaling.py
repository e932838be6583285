"""How do time, memory and bytes grow with the map, for our map job and for the naive peer?

Run: ``python benchmarks/scaling.py [--sizes 4096,8192,16384,32768,65536] [--bank BANK.npz]
[--repeat 1] [--workers 2]``. Prints a table and writes JSON (default
``benchmarks/results/scaling.json``); ``benchmarks/plot_scaling.py`` draws it.

At every size both peers make the same map: a ``size`` x ``size`` synthetic map with the
job's default beam, pixel scale and noise, and SDC-like object density (60,000 objects on
32768^2, scaled with the area: 938 on 4096^2, 240,000 on 65536^2), the objects taken from
the same tile bank (the cached demo bank of 256 entries, built once if missing, see
bench_env.demo_bank):

* **ours**: ``python -m jobs.make_map --size N --tiles bank:BANK --workers W`` (Ray, the
  chunked Zarr mosaic, every truth product);
* **naive**: ``python benchmarks/naive_map.py`` (the whole map in RAM, one FFT, astropy).

For each run: wall time of the command (start-up, imports and Ray included), peak memory
of its whole process tree (sampled from /proc as in make_map_scale.py: the largest sum of
the processes' PSS at one instant, and the largest VmHWM of any of them), bytes written
(final outputs, and intermediate stores: ``map.zarr`` and ``work/``), objects placed per
second of wall time, and the seconds ``sync`` takes after the run (what was still in the
page cache; not in the wall time). The page cache is flushed (untimed) before each run.
The disk's own write speed is measured with ``dd ... conv=fdatasync`` before and after all
runs, and each row gives its final outputs' bytes at that speed ("disk time").

A size is skipped, with the reason, where the disk cannot hold a run (the job's own
worst case, 18 bytes per pixel plus the tile store) or, for the naive peer, where its
~9 bytes per pixel of RAM would pass 60% of MemTotal or what is available now; a run is
stopped (and reported so) if the machine's available memory falls under 1.5 GiB while it
runs, since other jobs may share the machine.
With ``--repeat 2`` or more the two peers take turns in alternating order.
"""

from __future__ import annotations

import argparse
import json
import os
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

from bench_env import demo_bank, disk_write_speed, machine_info, machine_line, mem_available_bytes, mem_total_bytes  # noqa: E402
from make_map_scale import TreeSampler  # noqa: E402

#: SDC1-like density: 60,000 objects on a 32768^2 map.
SDC_OBJECTS, SDC_SIZE = 60000, 32768
#: Bytes per pixel the job may write in the worst case (radiff_scale.compose.spec.WORST_BYTES_PER_PIXEL).
OURS_WORST_BYTES_PER_PIXEL = 18
#: Float32 tiles of the job's tile store, per object (128 x 128).
TILE_STORE_BYTES_PER_OBJECT = 128 * 128 * 4
#: The naive peer's RAM (white noise + spectrum, then map + class + instance) and disk, per pixel.
NAIVE_RAM_BYTES_PER_PIXEL, NAIVE_RAM_OVERHEAD = 9.0, 0.4 * 2**30
NAIVE_DISK_BYTES_PER_PIXEL = 9
#: Stop a run when the machine's available memory falls under this (see MemoryGuard).
MEMORY_FLOOR = int(1.5 * 2**30)
#: Keep this much disk free.
DISK_MARGIN = 2 * 2**30
#: Folders of our run folder that are intermediate stores, not products.
INTERMEDIATE = ("map.zarr", "work")


class MemoryGuard(threading.Thread):
    """Kills the run (its top process: the naive peer is one process) if the machine's available
    memory falls under ``floor`` bytes, rather than let the kernel's OOM killer pick a victim
    among whatever else shares the machine."""

    def __init__(self, proc: subprocess.Popen, floor: int = MEMORY_FLOOR, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.proc, self.floor, self.interval = proc, floor, interval
        self.stop_event = threading.Event()
        self.fired = ""

    def run(self) -> None:
        while not self.stop_event.is_set() and self.proc.poll() is None:
            available = mem_available_bytes()
            if available < self.floor:
                self.fired = (f"stopped: the machine's available memory fell to {available / 2**30:.1f} GiB "
                              f"(other jobs share it)")
                self.proc.kill()
                return
            self.stop_event.wait(self.interval)


def objects_for(size: int) -> int:
    return round(SDC_OBJECTS * (size / SDC_SIZE) ** 2)


def folder_bytes(out: Path) -> tuple[int, int]:
    """(final output bytes, intermediate bytes) of a run folder."""
    final = intermediate = 0
    for path in out.rglob("*"):
        if path.is_file():
            top = path.relative_to(out).parts[0]
            if top in INTERMEDIATE:
                intermediate += path.stat().st_size
            else:
                final += path.stat().st_size
    return final, intermediate


def why_skip(peer: str, size: int, workdir: Path) -> str | None:
    free = shutil.disk_usage(workdir).free
    gib = lambda b: f"{b / 2**30:.1f} GiB"  # noqa: E731
    if peer == "ours":
        need = size * size * OURS_WORST_BYTES_PER_PIXEL + objects_for(size) * TILE_STORE_BYTES_PER_OBJECT
    else:
        need = size * size * NAIVE_DISK_BYTES_PER_PIXEL
        ram = size * size * NAIVE_RAM_BYTES_PER_PIXEL + NAIVE_RAM_OVERHEAD
        if ram > 0.6 * mem_total_bytes():
            return f"needs ~{gib(ram)} of RAM, over 60% of MemTotal ({gib(mem_total_bytes())})"
        if ram + MEMORY_FLOOR > mem_available_bytes():
            return f"needs ~{gib(ram)} of RAM, only {gib(mem_available_bytes())} available now (other jobs share the machine)"
    if need + DISK_MARGIN > free:
        return f"needs up to {gib(need)} of disk (worst case), {gib(free)} free in {workdir}"
    return None


def command(peer: str, size: int, out: Path, bank: Path, args: argparse.Namespace, scratch: Path) -> list[str]:
    n = str(objects_for(size))
    if peer == "ours":
        return [sys.executable, "-m", "jobs.make_map", "--out", str(out), "--size", str(size), "--seed", str(args.seed),
                "--workers", str(args.workers), "--tiles", f"bank:{bank}", "--quiet",
                "--set", f"placement.n_objects={n}"]
    return [sys.executable, str(REPO / "benchmarks" / "naive_map.py"), "--size", str(size), "--objects", n,
            "--bank", str(bank), "--out", str(out), "--seed", str(args.seed), "--json", str(scratch / "naive.json")]


def run_one(peer: str, size: int, bank: Path, args: argparse.Namespace, scratch: Path) -> dict:
    out = scratch / f"{peer}-{size}"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.sync()  # start from a clean page cache (untimed)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(command(peer, size, out, bank, args, scratch), cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid, args.interval)
    sampler.start()
    guard = MemoryGuard(proc)
    guard.start()
    _, stderr = proc.communicate()
    wall = time.perf_counter() - started
    for thread in (sampler, guard):
        thread.stop_event.set()
        thread.join()
    flush_started = time.perf_counter()
    os.sync()
    flush = time.perf_counter() - flush_started
    if guard.fired:
        shutil.rmtree(out, ignore_errors=True)
        return {"size": size, "peer": peer, "aborted": guard.fired}
    if proc.returncode != 0:
        raise SystemExit(f"{peer} at {size}^2 failed ({proc.returncode}):\n{stderr[-3000:]}")
    own_hwm_kib = 0
    if peer == "ours":
        manifest = json.loads((out / "manifest.json").read_text())
        placed, stages = manifest["counts"]["objects_placed"], manifest["seconds"]
    else:
        report = json.loads((scratch / "naive.json").read_text())
        placed, stages = report["objects_placed"], report["seconds"]
        own_hwm_kib = 1024 * report.get("peak_rss_mib", 0)
    final, intermediate = folder_bytes(out)
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    hwm = max([v[0] for v in sampler.process_hwm.values()] + [own_hwm_kib])
    return {
        "size": size, "peer": peer, "objects_planned": objects_for(size), "objects_placed": placed,
        "wall_seconds": round(wall, 2), "sync_seconds_after": round(flush, 2), "stage_seconds": stages,
        "tree_peak_pss_mib": round(sampler.tree_pss_peak / 1024, 1),
        # The comparison's measure: the tree's peak PSS sum; for a single process (the naive
        # peer) its own VmHWM where that is higher (a sample can miss the peak, VmHWM cannot).
        "peak_memory_mib": round(max(sampler.tree_pss_peak, own_hwm_kib) / 1024, 1),
        "tree_peak_rss_sum_mib": round(sampler.tree_rss_peak / 1024, 1),
        "largest_process_peak_rss_mib": round(hwm / 1024, 1), "processes_seen": sampler.max_processes,
        "bytes_final": final, "bytes_intermediate": intermediate, "bytes_written": final + intermediate,
        "objects_per_s": round(placed / wall, 1), "load_average_before": round(load, 2),
    }


def summarise(runs: list[dict], disk_mb_s: float | None) -> list[dict]:
    """Per size: the mean of each peer's runs, and ours against the naive peer and the disk."""
    rows = []
    for size in sorted({r["size"] for r in runs}):
        by_peer = {}
        for peer in ("ours", "naive"):
            mine = [r for r in runs if r["size"] == size and r["peer"] == peer]
            if mine:
                by_peer[peer] = {k: sum(r[k] for r in mine) / len(mine) for k in (
                    "wall_seconds", "peak_memory_mib", "tree_peak_pss_mib", "largest_process_peak_rss_mib", "bytes_final",
                    "bytes_written", "objects_per_s")}
                by_peer[peer]["runs"] = len(mine)
        row = {"size": size, **{f"{p}": v for p, v in by_peer.items()}}
        if "ours" in by_peer and "naive" in by_peer:
            row["wall_ratio_ours_over_naive"] = round(by_peer["ours"]["wall_seconds"] / by_peer["naive"]["wall_seconds"], 3)
            row["memory_ratio_ours_over_naive"] = round(
                by_peer["ours"]["peak_memory_mib"] / by_peer["naive"]["peak_memory_mib"], 3)
        if "ours" in by_peer and disk_mb_s:
            disk_s = by_peer["ours"]["bytes_final"] / (disk_mb_s * 1e6)
            row["disk_seconds_final_outputs"] = round(disk_s, 2)
            row["wall_over_disk_time"] = round(by_peer["ours"]["wall_seconds"] / disk_s, 2)
        rows.append(row)
    return rows


def save(path: Path, result: dict) -> None:
    """Write ``result`` whole (after every run, so an interrupted benchmark keeps what it measured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(partial, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4096,8192", help="map sides, comma-separated")
    parser.add_argument("--peers", default="ours,naive")
    parser.add_argument("--bank", type=Path, default=None, help="tile bank (default: the cached demo bank, built if missing)")
    parser.add_argument("--bank-n", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each peer per size (alternating order)")
    parser.add_argument("--dd-mib", type=int, default=1024, help="MiB written by each dd disk-speed test")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between memory samples")
    parser.add_argument("--workdir", type=Path, default=None, help="where the maps go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the maps (default: removed after each run)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "scaling.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    peers = [p for p in args.peers.split(",") if p]
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="radiff_scaling_", dir=args.workdir))
    machine = machine_info(scratch)
    try:
        bank, bank_seconds = (args.bank, None) if args.bank is not None else demo_bank(args.bank_n, log=lambda m: print(m, file=sys.stderr))
        dd = [disk_write_speed(scratch, args.dd_mib)]
        runs, skipped = [], []
        for i, size in enumerate(sizes):
            for rep in range(args.repeat):
                order = peers if (i + rep) % 2 == 0 else peers[::-1]
                for peer in order:
                    reason = why_skip(peer, size, scratch)
                    if reason is not None:
                        if rep == 0:
                            skipped.append({"size": size, "peer": peer, "reason": reason})
                            print(f"skip {peer} {size}^2: {reason}", file=sys.stderr)
                        continue
                    print(f"run {peer} {size}^2 ({objects_for(size)} objects)", file=sys.stderr, flush=True)
                    r = run_one(peer, size, bank, args, scratch)
                    if "aborted" in r:
                        skipped.append({"size": size, "peer": peer, "reason": r["aborted"]})
                        print(f"  {r['aborted']}", file=sys.stderr, flush=True)
                        continue
                    runs.append(r)
                    print(f"  {r['wall_seconds']} s, peak memory {r['peak_memory_mib']} MiB", file=sys.stderr, flush=True)
                    save(args.out, {"benchmark": "scaling", "partial": True, "runs": runs, "skipped": skipped,
                                    "disk_write": dd, "machine": machine})
        dd.append(disk_write_speed(scratch, args.dd_mib))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    speeds = [d["mb_per_s"] for d in dd if "mb_per_s" in d]
    disk_mb_s = sum(speeds) / len(speeds) if speeds else None
    summary = summarise(runs, disk_mb_s)
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {"benchmark": "scaling", "sizes": sizes, "peers": peers, "workers": args.workers, "repeat": args.repeat,
              "objects_rule": f"round({SDC_OBJECTS} * (size / {SDC_SIZE})^2)", "tile_bank": bank.name,
              "bank_build_seconds": bank_seconds, "disk_write": dd, "disk_mb_per_s": disk_mb_s,
              "runs": runs, "skipped": skipped, "summary": summary, "machine": machine}
    save(args.out, result)
    print(f"machine: {machine_line(machine)}")
    print(f"disk write (dd conv=fdatasync): {', '.join(f'{s} MB/s' for s in speeds)}")
    head = f"{'size':>6} {'peer':<6} {'objects':>8} {'wall s':>8} {'sync s':>7} {'peak MiB':>9} {'GB written':>10} {'GB final':>9} {'obj/s':>8}"
    print(head)
    for r in runs:
        print(f"{r['size']:>6} {r['peer']:<6} {r['objects_placed']:>8} {r['wall_seconds']:>8.1f} {r['sync_seconds_after']:>7.1f} "
              f"{r['peak_memory_mib']:>9.0f} {r['bytes_written'] / 1e9:>10.2f} {r['bytes_final'] / 1e9:>9.2f} {r['objects_per_s']:>8.0f}")
    for row in summary:
        bits = [f"{k} {row[k]}" for k in ("wall_ratio_ours_over_naive", "memory_ratio_ours_over_naive",
                                          "disk_seconds_final_outputs", "wall_over_disk_time") if k in row]
        print(f"{row['size']}^2: " + ", ".join(bits))
    for s in skipped:
        print(f"skipped {s['peer']} {s['size']}^2: {s['reason']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
