"""Give freed heap memory back to the operating system now and then (glibc ``malloc_trim``).

The server's Python heap does not grow under load (issue 13: ``tracemalloc`` flat over thousands of
streams and hostile requests), yet its RSS creeps: glibc keeps memory that CTranslate2, gRPC and
NumPy freed in its arenas, fragmented, instead of returning it. ``malloc_trim(0)`` walks every arena
and releases whole free pages, including those in the middle of a heap (``madvise``). After nine
maximum-size ``Recognize`` calls it handed back 114 MB of 447 (docs/engine.md).

``MemoryTrimmer`` calls it every ``server.malloc_trim_interval_sec`` seconds (0 turns it off) in a
worker thread: ``ctypes`` drops the GIL for the call, and glibc takes each arena's lock in turn, so
decodes keep running. Where the C library is not glibc (musl, macOS) the trimmer says so once at
DEBUG level and does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)


def glibc_malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)`` as a callable, or ``None`` where this C library has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


class MemoryTrimmer:
    """Runs ``malloc_trim`` every ``interval_sec`` seconds until stopped; counts what it gave back."""

    def __init__(self, interval_sec: float, *, trim: Callable[[], int] | None = None,
                 rss: Callable[[], int] | None = None) -> None:
        self.interval_sec = interval_sec
        self._trim = trim if trim is not None else glibc_malloc_trim()
        self._rss = rss if rss is not None else (lambda: int(psutil.Process().memory_info().rss))
        self._task: asyncio.Task[None] | None = None
        self.trims = 0
        self.released_bytes = 0

    @property
    def enabled(self) -> bool:
        return self.interval_sec > 0 and self._trim is not None

    def trim_once(self) -> int:
        """Trim now (blocking); returns the bytes RSS fell by, 0 when it did not fall."""
        if self._trim is None:
            return 0
        before = self._rss()
        self._trim()
        released = max(0, before - self._rss())
        self.trims += 1
        self.released_bytes += released
        log.debug("malloc_trim", extra={"released_mb": round(released / 1e6, 1), "rss_mb": round(before / 1e6, 1)})
        return released

    def start(self) -> None:
        if self.interval_sec > 0 and self._trim is None:
            log.debug("malloc_trim is not available in this C library; server.malloc_trim_interval_sec has no effect")
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="stt-malloc-trim")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_sec)
            await asyncio.to_thread(self.trim_once)

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
