"""Give a long-lived worker's freed heap back to the operating system between tasks.

A Ray worker runs task after task: noise synthesis, chunk writes and exports each
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
