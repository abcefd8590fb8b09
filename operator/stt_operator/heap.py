"""Give the heap a burst left behind back to the operating system (glibc's `malloc_trim`).

Fifty SttServers applied at once make the operator hold hundreds of API answers, watch events and
TLS buffers for a few seconds; once they are freed, glibc keeps most of that memory in its arenas,
so the process's RSS stays at the burst's peak. `trim_every` calls `malloc_trim(0)` once a minute
in a worker thread (ctypes drops the GIL for the call); on a C library without it (musl), it
does nothing. `small_tls_read_buffers` makes the peak itself smaller.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import Final

logger = logging.getLogger(__name__)
TRIM_EVERY_SEC: Final = 60.0
TLS_READ_BUFFER_BYTES: Final = 64 * 1024


def small_tls_read_buffers(size: int = TLS_READ_BUFFER_BYTES) -> None:
    """Give each TLS connection asyncio opens from now on a `size`-byte read buffer instead of 256 KiB.

    asyncio allocates (and zeroes) `SSLProtocol.max_size` bytes for every TLS connection and reads
    application data in chunks of that size. The operator holds a dozen connections to the API
    server (the watches) and about forty during a burst of writes, and its answers and watch
    events are a few kilobytes: at 200 SttServers the 256 KiB buffers cost about 3 MB of RSS that
    stays after the burst. A larger answer is read in more chunks. Where an asyncio without this
    class attribute runs, setting it changes nothing.
    """
    asyncio.sslproto.SSLProtocol.max_size = size


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
