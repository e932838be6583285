"""Training throughput (samples/s) of the AE and LDM stages with 1 and 2 Ray Train workers.

Usage: python benchmarks/train_throughput.py [--config configs/demo.yaml] [--steps 40]
           [--workers 1 2] [--stages ae ldm] [--simulate-n 256] [--gpu] [--out DIR] [--json PATH]

Each (workers, stage) pair is a fresh ``run_stage`` run (radiff_scale/pipelines/train_job.py)
of ``--steps`` steps with the config's global batch size (ae first: the ldm stage needs its
autoencoder). Two rates are reported, both from rank 0's own clock:

* ``steady``: samples/s over the second half of the run, from the checkpoints written at
  the half-way step and at the end (so the first steps -- DDP set-up, allocator warm-up --
  are left out; one checkpoint save falls inside the window);
* ``loop``: samples/s over the whole training loop, as the job itself logs it;

plus the stage's wall time, which adds Ray Train start-up (controller and worker
processes, imports) and the driver's data preparation. With N workers the global batch
is split N ways, so on a CPU box N workers share the cores (torch threads = cores / N).
The dataset is shrunk to ``--simulate-n`` simulated cutouts: throughput does not depend
on it, and the demo's 2000 would only make every run wait for the simulator.
JSON goes to benchmarks/results/train_throughput.json unless ``--json`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere: jobs/ is a top-level package
    sys.path.insert(0, str(REPO))

from radiff_scale.pipelines.train_job import run_stage  # noqa: E402
from radiff_scale.training.config import load_train_config  # noqa: E402


def _meta(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "meta.json").read_text())


def steady_rate(checkpoints: Path, half: int, steps: int, batch_size: int) -> float | None:
    """Samples/s between the checkpoints at ``half`` and ``steps``, from their cumulative rates.

    Each checkpoint records ``samples_per_s`` = samples seen / seconds since the loop
    started, so its loop time is ``step * batch / rate``.
    """
    first, last = checkpoints / f"step_{half:08d}", checkpoints / f"step_{steps:08d}"
    if half <= 0 or half >= steps or not (first / "meta.json").is_file() or not (last / "meta.json").is_file():
        return None
    t_half = half * batch_size / _meta(first)["metrics"]["samples_per_s"]
    t_end = steps * batch_size / _meta(last)["metrics"]["samples_per_s"]
    return (steps - half) * batch_size / (t_end - t_half) if t_end > t_half else None


def run_one(stage: str, workers: int, config: str, steps: int, simulate_n: int, out: Path, gpu: bool) -> dict[str, Any]:
    half = max(1, steps // 2)
    overrides = {
        f"train.{stage}.steps": steps,
        f"train.{stage}.checkpoint_every": half,
        f"train.{stage}.log_every": steps,
        "train.data.simulate_n": simulate_n,
    }
    started = time.perf_counter()
    entry = run_stage(stage, config, overrides, out, workers=workers, use_gpu=gpu, progress=False)
    wall = time.perf_counter() - started
    batch = int(entry["batch_size"])
    return {
        "stage": stage, "workers": workers, "gpu": gpu, "steps": int(entry["steps"]), "batch_size": batch,
        "steady_samples_per_s": steady_rate(out / "checkpoints" / stage, half, steps, batch),
        "loop_samples_per_s": float(entry["samples_per_s"]),
        "wall_seconds": wall, "final_loss": float(entry["final_loss"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    parser.add_argument("--steps", type=int, default=40, help="training steps per run (>= 2)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--stages", nargs="+", choices=("ae", "ldm"), default=["ae", "ldm"])
    parser.add_argument("--simulate-n", type=int, default=256, help="simulated training cutouts")
    parser.add_argument("--gpu", action="store_true", help="one GPU per worker")
    parser.add_argument("--out", default=None, help="run folders (default: a temporary folder, removed)")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "train_throughput.json"))
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be >= 2")
    if "ldm" in args.stages and "ae" not in args.stages:
        parser.error("the ldm stage trains on the ae stage's autoencoder: include ae in --stages")
    if args.out and Path(args.out).exists() and any(Path(args.out).iterdir()):
        parser.error(f"--out {args.out} is not empty (a rerun would resume instead of measuring)")

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(num_cpus=max(max(args.workers), os.cpu_count() or 1), include_dashboard=False,
                 logging_level="ERROR", log_to_driver=False)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="train-bench-"))
    rows = []
    try:
        for workers in args.workers:
            for stage in ("ae", "ldm"):
                if stage in args.stages:
                    rows.append(run_one(stage, workers, args.config, args.steps, args.simulate_n,
                                        root / f"w{workers}", args.gpu))
                    print(f"  {stage} with {workers} worker(s): {rows[-1]['wall_seconds']:.0f} s", flush=True)
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)

    def fmt(value: float | None) -> str:
        return f"{value:.1f}" if value is not None else "-"

    print(f"{'stage':<6}{'workers':>8}{'batch':>7}{'steps':>7}{'steady/s':>10}{'loop/s':>9}{'wall s':>8}")
    for row in rows:
        print(f"{row['stage']:<6}{row['workers']:>8}{row['batch_size']:>7}{row['steps']:>7}"
              f"{fmt(row['steady_samples_per_s']):>10}{fmt(row['loop_samples_per_s']):>9}{row['wall_seconds']:>8.0f}")

    train, _, _ = load_train_config(args.config, {})
    result = {
        "rows": rows,
        "config": str(args.config),
        "simulate_n": args.simulate_n,
        "stage_configs": {stage: vars(getattr(train, stage)) for stage in args.stages},
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "ray": ray.__version__,
        },
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
