"""What the benchmark harness (``python -m benchmarks``) and ``scaling.py`` share: the machine
they ran on, the cache of tile banks outside the repository, and the disk's own write speed."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Packages whose versions go into every result.
PACKAGES = ("numpy", "scipy", "astropy", "zarr", "numcodecs", "torch", "diffusers", "ray")


def _meminfo_kib() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def mem_total_bytes() -> int:
    return 1024 * _meminfo_kib().get("MemTotal", 0)


def mem_available_bytes() -> int:
    return 1024 * _meminfo_kib().get("MemAvailable", 0)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (longest mount point that contains it)."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                parts = line.split()
                mount = parts[1]
                if str(path.resolve()).startswith(mount) and len(mount) > len(best):
                    best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def machine_info(workdir: Path | None = None) -> dict:
    """Cores, memory, disk, load and software: enough to tell two machines' numbers apart."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    where = Path(workdir or REPO)
    disk = shutil.disk_usage(where)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "usable_cpus": usable,
        "mem_total_gib": round(mem_total_bytes() / 2**30, 1),
        "mem_available_gib_at_start": round(mem_available_bytes() / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "disk": {"path": str(where), "filesystem": _filesystem(where), "free_gib": round(disk.free / 2**30, 1),
                 "total_gib": round(disk.total / 2**30, 1)},
        "gpu": shutil.which("nvidia-smi") is not None,
        "platform": platform.platform(), "python": platform.python_version(), "packages": versions,
    }


def machine_line(info: dict) -> str:
    """One line for a table's caption."""
    return (f"{info['cpu']}, {info['usable_cpus']} usable cores, {info['mem_total_gib']} GiB RAM, "
            f"{info['disk']['filesystem']} disk ({info['disk']['free_gib']} GiB free), load {info['load_average']}, "
            f"Python {info['python']}")


def cache_dir() -> Path:
    """Where built inputs (tile banks) are kept between runs: ``$RADIFF_BENCH_CACHE``, else
    ``$XDG_CACHE_HOME/radiff-bench``, else ``~/.cache/radiff-bench`` (never inside the repo)."""
    explicit = os.environ.get("RADIFF_BENCH_CACHE")
    if explicit:
        path = Path(explicit)
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "radiff-bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _demo_model_hash() -> str:
    """A short hash of the shipped demo bundle's files: a retrained demo model gets a new bank."""
    from radiff_scale.models.bundle import DEMO_MODEL

    digest = hashlib.sha256()
    for path in sorted(Path(DEMO_MODEL).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(DEMO_MODEL)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def demo_bank(n: int = 256, seed: int = 0, log=print) -> tuple[Path, float | None]:
    """The cached demo-model tile bank of ``n`` entries, built with ``radiff-scale make-tile-bank``
    if missing (a few minutes on 2 CPU cores); returns its path and the seconds a build took."""
    path = cache_dir() / f"bank-demo-{_demo_model_hash()}-n{n}-s{seed}.npz"
    if path.is_file():
        return path, None
    log(f"building the tile bank {path} (demo model, {n} tiles; once, then cached)")
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "jobs.make_tile_bank",
           "--model", "demo", "--n", str(n), "--seed", str(seed), "--out", str(path), "--quiet"]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run(cmd, cwd=REPO, env=env, check=True)
    return path, round(time.perf_counter() - started, 1)


def disk_write_speed(folder: Path, mib: int = 1024) -> dict:
    """The disk's own sequential write speed: ``dd if=/dev/zero bs=64M conv=fdatasync`` of ``mib``
    MiB into ``folder`` (the page cache is flushed before dd returns), in MB/s (10^6 bytes/s)."""
    target = folder / "dd-write-test.bin"
    count = max(1, mib // 64)
    cmd = ["dd", "if=/dev/zero", f"of={target}", "bs=64M", f"count={count}", "conv=fdatasync"]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    target.unlink(missing_ok=True)
    if done.returncode != 0:
        return {"command": " ".join(cmd), "error": done.stderr.strip()[-300:]}
    written = count * 64 * 2**20
    return {"command": " ".join(cmd[:1] + cmd[1:2] + ["of=FILE"] + cmd[3:]), "bytes": written,
            "seconds": round(seconds, 3), "mb_per_s": round(written / seconds / 1e6, 1),
            "dd_says": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""}
