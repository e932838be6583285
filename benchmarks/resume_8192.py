"""Does a map job killed half-way resume to the very bytes of an uninterrupted run?

Run: ``python benchmarks/resume_8192.py --bank bank.npz [--size 8192] [--workers 2]``
(or ``--model demo --bank-n 64`` to build the tile bank first). Prints a table and
writes JSON (default ``benchmarks/results/resume_8192.json``).

Three runs of ``python -m jobs.make_map --tiles bank:PATH`` (a tile bank, so the runs
are about composition and export, where the kill lands, not about sampling):

1. **reference**: the map made in one go;
2. **killed**: the same command in its own process group (its own session), SIGKILLed
   as a whole -- the driver, Ray's GCS and raylet, the chunk workers, plus any
   descendant that left the group, found from /proc just before the kill -- once about
   half the chunks have their done marker (``map.zarr/_done/*.json``);
3. **resumed**: the same command with ``--resume`` in the killed run's folder.

Checks: map.fits pixel data, labels.fits and the catalogue (Parquet, CSV, FITS) are
byte-identical to the reference; the resumed manifest wrote exactly the chunks that had
no marker after the kill (``chunks_written = total - markers``), sampled no tile batch
again; and every marker left by the killed run is the same file afterwards (same inode
and mtime: a redone chunk replaces its marker with a new file), i.e. nothing finished
before the kill was redone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from map_bench import add_map_arguments, process_tree, report, tile_bank_for  # noqa: E402
from map_bench import n_objects as objects_for  # noqa: E402

#: Outputs compared byte for byte with the reference run.
COMPARED = ("map.fits", "labels.fits", "catalogue.parquet", "catalogue.csv", "catalogue.fits", "regions.reg")


def markers(out: Path) -> dict[str, tuple[int, int]]:
    """Chunk done markers of a run: name -> (inode, mtime_ns)."""
    folder = out / "work" / "chunks_done"
    if not folder.is_dir():
        return {}
    found = {}
    for entry in os.scandir(folder):
        if entry.name.endswith(".json") and not entry.name.startswith("."):
            st = entry.stat()
            found[entry.name] = (st.st_ino, st.st_mtime_ns)
    return found


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def fits_data_sha256(path: Path) -> str:
    """sha256 of every HDU's data bytes (headers left out), read in 4 MiB blocks: never the whole map."""
    from astropy.io import fits

    digest = hashlib.sha256()
    with fits.open(path, memmap=True) as hdul:
        hdul.readall()
        offsets = [(hdu._data_offset, hdu._data_size) for hdu in hdul]
    with open(path, "rb") as fh:
        for offset, size in offsets:
            fh.seek(offset)
            left = size
            while left > 0:
                block = fh.read(min(left, 1 << 22))
                if not block:
                    break
                digest.update(block)
                left -= len(block)
    return digest.hexdigest()


def make_map_cmd(out: Path, args: argparse.Namespace, bank: Path, n_objects: int) -> list[str]:
    return [sys.executable, "-m", "jobs.make_map", "--out", str(out), "--size", str(args.size), "--seed",
            str(args.seed), "--workers", str(args.workers), "--tiles", f"bank:{bank}", "--quiet",
            "--set", f"chunk={args.chunk}", "--set", f"placement.n_objects={n_objects}"]


def run_to_end(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:4])} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return time.perf_counter() - started


def run_and_kill(cmd: list[str], env: dict[str, str], out: Path, kill_at: int, timeout: float) -> dict:
    """Start ``cmd`` in its own session, SIGKILL its whole tree once ``kill_at`` markers exist."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    seen_at_kill = 0
    tree: list[int] = []
    try:
        while time.perf_counter() - started < timeout:
            if proc.poll() is not None:
                raise SystemExit(f"the run ended (code {proc.returncode}) before {kill_at} chunks were done:\n"
                                 f"{proc.stderr.read()[-4000:]}")
            seen_at_kill = len(markers(out))
            if seen_at_kill >= kill_at:
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"no {kill_at} chunk markers after {timeout:.0f} s")
    finally:
        tree = process_tree(proc.pid)  # /proc walk: ~10 ms, taken just before the kill
        escaped = []
        for pid in tree:  # descendants that moved to a process group of their own
            try:
                if os.getpgid(pid) != proc.pid:
                    escaped.append(pid)
            except ProcessLookupError:
                pass
        killed_at = time.perf_counter() - started
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the session's group: the driver and all it started in it
        except ProcessLookupError:
            pass
        for pid in escaped:  # we started them all (they descend from our child)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        proc.stderr.close()
    # A chunk write already in flight in a worker cannot survive its process; wait until nothing moves.
    stable, last = 0, markers(out)
    while stable < 3:
        time.sleep(1.0)
        now = markers(out)
        stable = stable + 1 if now == last else 0
        last = now
    return {"seconds_to_kill": round(killed_at, 3), "markers_at_kill_signal": seen_at_kill,
            "markers_after_kill": last, "processes_in_tree": len(tree), "processes_outside_the_group": len(escaped),
            "manifest_exists_after_kill": (out / "manifest.json").exists()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_map_arguments(parser, size=8192, bank_n=64, chunk=1024)
    parser.add_argument("--kill-fraction", type=float, default=0.5, help="kill once this fraction of chunks is done")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the kill point")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "resume_8192.json")
    args = parser.parse_args()
    if not 0 < args.kill_fraction < 1:
        raise SystemExit("--kill-fraction must be in (0, 1)")

    scratch = Path(tempfile.mkdtemp(prefix="resume_8192_", dir=args.workdir))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("RAY_AUTH_MODE", "disabled")
    if not env.get("RAY_TMPDIR"):
        env["RAY_TMPDIR"] = str(scratch / "ray")
        Path(env["RAY_TMPDIR"]).mkdir()
    try:
        bank, bank_seconds = tile_bank_for(args, scratch)
        n_objects = objects_for(args)
        total_chunks = math.ceil(args.size / args.chunk) ** 2
        kill_at = max(1, round(total_chunks * args.kill_fraction))

        reference, resumed = scratch / "reference", scratch / "killed"
        reference_seconds = run_to_end(make_map_cmd(reference, args, bank, n_objects), env)
        kill = run_and_kill(make_map_cmd(resumed, args, bank, n_objects), env, resumed, kill_at, args.timeout)
        before = kill.pop("markers_after_kill")
        resume_seconds = run_to_end([*make_map_cmd(resumed, args, bank, n_objects), "--resume"], env)
        after = markers(resumed)

        manifest = json.loads((resumed / "manifest.json").read_text())
        ref_manifest = json.loads((reference / "manifest.json").read_text())
        counts = manifest["counts"]
        identical = {name: file_sha256(reference / name) == file_sha256(resumed / name) for name in COMPARED}
        map_data_identical = fits_data_sha256(reference / "map.fits") == fits_data_sha256(resumed / "map.fits")
        kept = [name for name, stat in before.items() if after.get(name) == stat]
        checks = {
            "map_fits_data_identical": map_data_identical,
            "catalogue_identical": identical["catalogue.parquet"] and identical["catalogue.csv"]
            and identical["catalogue.fits"],
            "all_outputs_identical": all(identical.values()),
            "killed_run_had_no_manifest": not kill["manifest_exists_after_kill"],
            "killed_about_half_way": 0 < len(before) < total_chunks,
            "resume_wrote_only_missing_chunks": counts["chunks_written"] == total_chunks - len(before),
            "chunks_done_before_kill_not_redone": len(kept) == len(before),
            "resume_sampled_no_tiles": counts.get("tile_batches_sampled") == 0,
            "resume_cut_no_stamps": counts.get("stamp_batches_cut") == 0,
        }
    finally:
        if args.workdir is None:
            shutil.rmtree(scratch, ignore_errors=True)

    result = {
        "benchmark": "resume_8192",
        "size": args.size, "chunk": args.chunk, "workers": args.workers, "objects_planned": n_objects,
        "objects_placed": counts["objects_placed"], "tile_bank": str(bank), "bank_build_seconds": bank_seconds,
        "chunks_total": total_chunks, "kill_at_markers": kill_at,
        "chunks_done_before_kill": len(before), "chunks_written_on_resume": counts["chunks_written"],
        "kill": kill,
        "seconds": {"reference_wall": round(reference_seconds, 3), "resume_wall": round(resume_seconds, 3),
                    "reference_stages": ref_manifest["seconds"], "resume_stages": manifest["seconds"]},
        "identical": identical,
        "checks": checks,
        "passed": all(checks.values()),
        "environment": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
                        "load_average": [round(v, 2) for v in os.getloadavg()]},
    }
    rows = [
        ("map", f"{args.size}x{args.size}, chunk {args.chunk} ({total_chunks} chunks), {args.workers} workers"),
        ("objects placed / planned", f"{counts['objects_placed']} / {n_objects}"),
        ("reference run (uninterrupted)", f"{reference_seconds:.1f} s wall (chunks {ref_manifest['seconds']['chunks']:.1f} s)"),
        ("killed run", (f"SIGKILL at {kill['seconds_to_kill']:.1f} s with {kill['markers_at_kill_signal']} markers; "
                        f"{len(before)} after the kill settled")),
        ("resumed run", (f"{resume_seconds:.1f} s wall, {counts['chunks_written']} chunks written "
                         f"(chunks {manifest['seconds']['chunks']:.1f} s)")),
    ]
    rows += [(f"check: {name}", "ok" if ok else "FAILED") for name, ok in checks.items()]
    report(rows, result, args.out)
    if not result["passed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
