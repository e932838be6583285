"""Process hygiene for Ray workers that run one-CPU map tasks, task after task.

**Codec threads.** Ray schedules a stamp, chunk or export task on one CPU, but numcodecs
sets Blosc to as many threads as the machine has cores (up to 8): on a 16-core node
running 16 tasks that is 128 compression threads. :func:`hold_one_cpu` sets Blosc to one
thread in the worker process. (On the 2-core dev machine the difference is within the
noise: 60-65 vs 61-72 ms per chunk write with two processes, A/B alternated.)

**Freed memory.** A Ray worker runs task after task: noise synthesis, chunk writes and exports each
allocate and free tens of MiB, and glibc keeps much of what was freed in its arenas
(numpy's large buffers fall under malloc's adaptive mmap threshold once a few have
been freed). Idle workers then sat at ~500 MiB each during a 32768^2 export, most of
the map job's memory besides the driver. ``malloc_trim(0)`` returns those free pages
in ~2 ms; on a C library without it (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import numcodecs.blosc

P = ParamSpec("P")
R = TypeVar("R")


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Return the C heap's free pages to the OS, if the C library can."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def hold_one_cpu() -> None:
    """Compress and decompress on the task's own CPU only (see the module docstring)."""
    if numcodecs.blosc.get_nthreads() != 1:
        numcodecs.blosc.set_nthreads(1)


def one_cpu_task(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` as a one-CPU task body: single-threaded codecs, freed heap returned after."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        hold_one_cpu()
        try:
            return fn(*args, **kwargs)
        finally:
            release_free_memory()

    return run
