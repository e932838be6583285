"""Workers hand freed heap back to the OS between tasks (glibc's malloc_trim)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from actors._worker import _malloc_trim

_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from actors._worker import release_free_memory

    def rss_mib():
        with open("/proc/self/status") as fh:
            return int(fh.read().split("VmRSS:")[1].split()[0]) / 1024

    # Freeing one large mmapped buffer raises glibc's adaptive mmap threshold, so the
    # 1 MiB buffers after it come from the heap, as a worker's chunk buffers do.
    big = np.ones(16 << 20, np.uint8); del big
    held = [np.ones(1 << 20, np.uint8) for _ in range(120)]
    keep = held[-1]  # a live block on top keeps the heap from shrinking by itself
    del held
    before = rss_mib()
    release_free_memory()
    print(before, rss_mib())
    """
)


@pytest.mark.skipif(_malloc_trim() is None or not sys.platform.startswith("linux"), reason="needs glibc's malloc_trim")
def test_release_free_memory_returns_freed_heap_pages(tmp_path):
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    before, after = (float(v) for v in out.stdout.split())
    assert before - after > 80, f"RSS {before:.0f} -> {after:.0f} MiB"
