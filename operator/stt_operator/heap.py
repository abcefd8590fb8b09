"""Give the heap a burst left behind back to the operating system (glibc's `malloc_trim`).

Fifty SttServers applied at once make the operator hold hundreds of API answers, watch events and
TLS buffers for a few seconds; once they are freed, glibc keeps most of that memory in its arenas,
so the process's RSS stays at the burst's peak. `trim_every` calls `malloc_trim(0)` once a minute
in a worker thread (ctypes drops the GIL for the call); on a C library without it (musl), it
does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import Final

logger = logging.getLogger(__name__)
TRIM_EVERY_SEC: Final = 60.0


def malloc_trim() -> Callable[[], int] | None:
    """glibc's `malloc_trim(0)`, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


async def trim_every(period: float = TRIM_EVERY_SEC, *, trim: Callable[[], int] | None = None) -> None:
    """Trim the heap every `period` seconds until cancelled."""
    trim = trim if trim is not None else malloc_trim()
    if trim is None:
        logger.debug("malloc_trim is not available in this C library: the heap is not trimmed")
        return
    while True:
        await asyncio.sleep(period)
        await asyncio.to_thread(trim)
