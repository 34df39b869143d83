"""Process settings that decide CPU training speed.

glibc's malloc serves large blocks (a batch's activations, over 128 KiB) with fresh ``mmap``
pages and gives them back on ``free``; every training step then pays page faults to zero new
pages, and memory freed by other work (an evaluation pass, a DataLoader) is returned to the
kernel and faulted in again. Raising the mmap and trim thresholds keeps those blocks in the heap
for reuse (docs/benchmarks.md measures what it is worth). Elsewhere it is a no-op.

These are settings of the whole process, so the library never makes them: the command line
does, when it starts (``dnntune tune``, ``dnntune worker``...).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

__all__ = ["tune_allocator"]

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3


@functools.cache
def tune_allocator() -> bool:
    """Keep freed large blocks in the heap (glibc only); return whether the settings applied.

    ``DNNTUNE_TUNE_MALLOC=0`` in the environment leaves malloc as it is (for comparisons).
    """
    if os.environ.get("DNNTUNE_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30) or mallopt(_M_MMAP_THRESHOLD, 32 << 20))
    ok = bool(mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)) and ok
    return bool(mallopt(_M_TOP_PAD, 256 << 20)) and ok
