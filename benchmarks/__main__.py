"""Run every benchmark and print one table: ``python -m benchmarks [--quick | --full]``.

``--quick`` (the default) runs each script with small arguments (about 5 minutes in all on 2
CPU cores, plus a one-time build of the cached tile bank); ``--full`` runs them at the sizes
docs/benchmarks.md reports (hours). ``--only NAME ...`` / ``--skip NAME ...`` pick
benchmarks, ``--list`` shows them with both argument sets.

Each benchmark is its own script, run in a subprocess (``python benchmarks/NAME.py ARGS``, so a
crash or a Ray session cannot leak into the next one); its JSON goes to
``benchmarks/results/NAME.json`` in full mode and ``benchmarks/results/quick/NAME.json`` in quick
mode (so a quick run never overwrites the full numbers the docs cite), with the harness's
machine record added under ``"harness"``, its output to ``.../logs/NAME.log``. The table
(benchmark | what | value | unit | vs peer) and the machine go to ``.../harness.json``
(``harness-NAME-....json`` when only some benchmarks ran).
Maps built for the map benchmarks use the demo model's tile bank from the cache folder
(``~/.cache/radiff-bench``, or ``$RADIFF_BENCH_CACHE``), built there if missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_env import demo_bank, machine_info, machine_line  # noqa: E402
from summaries import SUMMARIES, Row  # noqa: E402

HOLDOUT = REPO / "data" / "first-holdout"
ATCA_MAP = REPO.parent / "shared" / "data" / "backgrounds" / "ScorpioS17Field.fits"  # realism.py's default


@dataclass(frozen=True)
class Bench:
    name: str
    quick: list[str] | None  # None: not run in quick mode (``skip_quick`` says why)
    full: list[str]
    what: str
    out_flag: str = "--out"  # how the script is told where its JSON goes ("" = positional)
    bank: bool = False  # takes ``--bank`` (the cached demo tile bank)
    skip_quick: str = ""
    full_needs: Callable[[], str] | None = None  # returns why the full run cannot happen here, or ""

    @property
    def script(self) -> Path:
        return REPO / "benchmarks" / f"{self.name}.py"


def _needs_gpu() -> str:
    has_gpu = shutil.which("nvidia-smi") is not None
    return "" if has_gpu else "needs a CUDA GPU (none here); run benchmarks/gpu_check.py on a GPU machine"


def _needs_holdout() -> str:
    if not HOLDOUT.is_dir():
        return (f"needs the held-out FIRST cutouts in {HOLDOUT.relative_to(REPO)} "
                "(radiff-scale annotate of configs/first-holdout.txt)")
    if not ATCA_MAP.is_file():
        return f"needs the ATCA Scorpio map at {ATCA_MAP} (realism.py --atca-map)"
    return ""


#: In the order they run. Quick arguments are sized for ~5 minutes in all on 2 cores.
BENCHMARKS = (
    Bench("scaling", ["--sizes", "4096,8192", "--dd-mib", "512"], ["--sizes", "4096,8192,16384,32768,65536"],
          "ours vs the naive peer (naive_map.py) at growing map sizes", bank=True),
    Bench("make_map_scale", ["--size", "2048", "--chunk", "512"], ["--size", "32768", "--objects", "60000"],
          "memory of the job's process tree; compositor vs raw Zarr writes", bank=True),
    Bench("resume_8192", ["--size", "2048", "--chunk", "512"], [],
          "kill half-way, --resume, byte-identical products", bank=True),
    Bench("zarr_chunk_write", ["--n-chunks", "2", "--repeat", "1"], ["--repeat", "3"],
          "one chunk owner vs raw Zarr chunk writes"),
    Bench("simulate_speed", ["300"], ["2000"], "labelled cutout simulator", out_flag=""),
    Bench("sampling", ["--n", "8", "--samplers", "dpm++:10", "--actors", "1,2", "--reference-actors", "all"],
          ["--n", "32", "--samplers", "dpm++:20,ddim:50", "--actors", "1,2", "--reference-actors", "all"],
          "tile stage on the sampler actor pool"),
    Bench("mask_prior_stats", ["--n", "32", "--steps", "10"], [], "mask prior vs the real mask bank"),
    Bench("train_throughput", ["--steps", "4", "--workers", "1", "--stages", "ae", "--simulate-n", "32"], [],
          "Ray Train samples/s", out_flag="--json"),
    Bench("realism", None, ["--holdout", str(HOLDOUT.relative_to(REPO)), "--bundle", "demo=radiff_scale/assets/demo", "--n", "128",
                            "--png", ""],
          "tiles against held-out real FIRST galaxies",
          skip_quick="heavy: 176 generated tiles per bundle (~90 s a bundle on 2 cores) and held-out data; run with --full --only realism",
          full_needs=_needs_holdout),
    Bench("gpu_check", None, [], "CUDA vs CPU tiles, GPU throughput", out_flag="--json",
          skip_quick="needs a CUDA GPU and ~5 min on it; run with --full --only gpu_check on a GPU machine",
          full_needs=_needs_gpu),
)


def _command(bench: Bench, args: list[str], json_path: Path, bank: Path | None) -> list[str]:
    cmd = [sys.executable, str(bench.script), *args]
    if bench.bank and bank is not None:
        cmd += ["--bank", str(bank)]
    if bench.out_flag:
        cmd += [bench.out_flag, str(json_path)]
    else:
        cmd.append(str(json_path))
    return cmd


def _relative(arg: str) -> str:
    """``arg`` with the repository's path taken off (commands are recorded as run from its root)."""
    return arg.replace(str(REPO) + os.sep, "")


def _print_table(rows: list[Row]) -> None:
    head = ("benchmark", "what", "value", "unit", "vs peer")
    cells = [head] + [(r.benchmark, r.what, r.value, r.unit, r.vs_peer) for r in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(5)]
    for i, c in enumerate(cells):
        print(" | ".join(str(x).ljust(w) if j != 2 else str(x).rjust(w) for j, (x, w) in enumerate(zip(c, widths))))
        if i == 0:
            print("-+-".join("-" * w for w in widths))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small arguments, ~5 minutes on 2 cores (default)")
    mode.add_argument("--full", action="store_true", help="the sizes docs/benchmarks.md reports (hours)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME")
    parser.add_argument("--results", type=Path, default=None,
                        help="where the JSON goes (default benchmarks/results, or benchmarks/results/quick)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per benchmark (default 600 quick, 6 h full)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and their arguments, run nothing")
    opts = parser.parse_args()
    full = bool(opts.full)
    names = {b.name for b in BENCHMARKS}
    for name in (opts.only or []) + opts.skip:
        if name not in names:
            parser.error(f"no benchmark {name!r}; known: {', '.join(sorted(names))}")
    chosen = [b for b in BENCHMARKS if (opts.only is None or b.name in opts.only) and b.name not in opts.skip]
    if opts.list:
        for b in BENCHMARKS:
            quick = " ".join(b.quick) if b.quick is not None else f"(skipped: {b.skip_quick})"
            print(f"{b.name}: {b.what}\n  quick: {quick}\n  full:  {' '.join(b.full) or '(script defaults)'}")
        return 0

    results = opts.results or (REPO / "benchmarks" / "results" / ("" if full else "quick"))
    logs = results / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    mode_name = "full" if full else "quick"
    print(f"python -m benchmarks --{mode_name}: {len(chosen)} benchmarks; machine: {machine_line(machine)}", flush=True)
    bank, bank_seconds = None, None
    if any(b.bank for b in chosen):
        bank, bank_seconds = demo_bank(256, log=lambda m: print(m, flush=True))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               RAY_USAGE_STATS_ENABLED=os.environ.get("RAY_USAGE_STATS_ENABLED", "0"))
    timeout = opts.timeout or (6 * 3600 if full else 600)
    table: list[Row] = []
    record = []
    started_all = time.perf_counter()
    for bench in chosen:
        args = bench.full if full else bench.quick
        why = bench.skip_quick if not full and bench.quick is None else (bench.full_needs() if full and bench.full_needs else "")
        if why:
            table.append(Row(bench.name, "skipped", "-", "", why))
            record.append({"name": bench.name, "skipped": why})
            print(f"[{bench.name}] skipped: {why}", flush=True)
            continue
        json_path = results / f"{bench.name}.json"
        cmd = _command(bench, args, json_path, bank)
        shown = ["python", *(_relative(c) for c in cmd[1:])]
        print(f"[{bench.name}] {' '.join(shown)}", flush=True)
        started = time.perf_counter()
        with open(logs / f"{bench.name}.log", "w") as log:
            try:
                done = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
                rc = done.returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        seconds = round(time.perf_counter() - started, 1)
        entry = {"name": bench.name, "command": shown, "seconds": seconds, "returncode": rc}
        record.append(entry)
        if rc != 0 or not json_path.is_file():
            tail = (logs / f"{bench.name}.log").read_text(errors="replace").strip().splitlines()[-1:] or [""]
            table.append(Row(bench.name, "FAILED", str(rc), "", f"{tail[0][:100]} (log: {logs / (bench.name + '.log')})"))
            print(f"[{bench.name}] failed ({rc}) after {seconds} s; see {logs / (bench.name + '.log')}", flush=True)
            continue
        result = json.loads(json_path.read_text())
        result["harness"] = {"mode": mode_name, "command": entry["command"], "seconds": seconds, "machine": machine}
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        rows = SUMMARIES[bench.name](result)
        table.extend(rows)
        entry["rows"] = [r.__dict__ for r in rows]
        print(f"[{bench.name}] done in {seconds} s", flush=True)
    total = round(time.perf_counter() - started_all, 1)
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print()
    print(f"machine: {machine_line(machine)} (load at the end {machine['load_average_at_end']})")
    print(f"mode: {mode_name}; {total} s in all" + (f" (+ {bank_seconds} s building the tile bank)" if bank_seconds else ""))
    _print_table(table)
    summary = {"mode": mode_name, "seconds": total, "bank_build_seconds": bank_seconds,
               "tile_bank": None if bank is None else bank.name, "machine": machine, "benchmarks": record,
               "table": [r.__dict__ for r in table]}
    # A run of some benchmarks only does not replace the record of a whole run.
    name = "harness.json" if len(chosen) == len(BENCHMARKS) else f"harness-{'-'.join(b.name for b in chosen)}.json"
    (results / name).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {results / name}")
    return 0 if all(r.what != "FAILED" for r in table) else 1


if __name__ == "__main__":
    raise SystemExit(main())
