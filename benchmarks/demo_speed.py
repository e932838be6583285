"""`radiff-scale demo` with its defaults (the distilled student) against the same demo sampled by the teacher.

Run::

    python benchmarks/demo_speed.py [--workdir /tmp/demo-speed] [--out benchmarks/results/demo_speed.json]

Both commands run one after the other in this process's machine, as a user would type them::

    radiff-scale demo --out W/student --quiet
    radiff-scale demo --out W/teacher --quiet --set sampler.name=dpm++ --set sampler.steps=20

and the wall time of each (start-up, sampling, compositing and export included), the stage
times from each manifest and their ratio are printed and written as JSON. On a shared machine
compare the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_env import machine_info  # noqa: E402

RUNS = {
    "student (default)": [],
    "teacher dpm++ 20": ["--set", "sampler.name=dpm++", "--set", "sampler.steps=20"],
}


def run_demo(out: Path, extra: list[str]) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    tic = time.perf_counter()
    subprocess.run(["radiff-scale", "demo", "--out", str(out), "--quiet", *extra], check=True)
    wall = time.perf_counter() - tic
    manifest = json.loads((out / "manifest.json").read_text())
    return {"wall_s": round(wall, 1), "stage_seconds": manifest["seconds"], "sampler": manifest["spec"]["sampler"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/demo-speed"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "demo_speed.json")
    args = parser.parse_args(argv)
    results = {name: run_demo(args.workdir / name.split()[0], extra) for name, extra in RUNS.items()}
    student, teacher = (results[name]["wall_s"] for name in RUNS)
    doc = {"benchmark": "demo_speed", "machine": machine_info(), "results": results, "teacher_over_student": teacher / student}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    for name, r in results.items():
        tiles = r["stage_seconds"].get("tiles", float("nan"))
        print(f"{name:<20} {r['wall_s']:>7.1f} s end to end   (tiles stage {tiles:.1f} s)")
    print(f"teacher / student: {teacher / student:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
