"""``MemoryTrimmer``: glibc's malloc_trim really gives freed heap back, and the loop runs and stops."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util

import psutil
import pytest
from stt_server.memory_trim import MemoryTrimmer, glibc_malloc_trim


def _fragment_heap() -> None:
    """Leave many freed small blocks spread over the heap: what a decode's temporaries leave behind."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    # below the mmap threshold, so glibc serves them from the heap and keeps them when freed
    blocks = [libc.malloc(64 * 1024) for _ in range(3000)]
    for address in blocks[:-1]:  # the last one pins the heap's top, so plain top trimming cannot help
        ctypes.memset(address, 1, 64 * 1024)  # touch the pages so they count in RSS
    for address in blocks[:-1]:
        libc.free(address)
    _fragment_heap.pinned = blocks[-1]  # type: ignore[attr-defined]


@pytest.mark.skipif(glibc_malloc_trim() is None, reason="this C library has no malloc_trim (not glibc)")
def test_trim_returns_freed_heap_pages_to_the_os() -> None:
    _fragment_heap()
    rss_before = psutil.Process().memory_info().rss
    trimmer = MemoryTrimmer(60.0)
    released = trimmer.trim_once()
    assert released > 100 * 1024 * 1024, f"released only {released / 1e6:.1f} MB of ~196 MB freed"
    assert psutil.Process().memory_info().rss < rss_before - 100 * 1024 * 1024
    assert trimmer.trims == 1 and trimmer.released_bytes == released


async def test_loop_trims_on_its_interval_and_stops() -> None:
    calls = asyncio.Event()
    count = 0

    def fake_trim() -> int:
        nonlocal count
        count += 1
        if count >= 3:
            calls.set()
        return 1

    trimmer = MemoryTrimmer(0.01, trim=fake_trim, rss=lambda: 1000)
    trimmer.start()
    await asyncio.wait_for(calls.wait(), 5)
    await trimmer.stop()
    stopped_at = count
    await asyncio.sleep(0.05)
    assert count == stopped_at and trimmer.trims >= 3


async def test_interval_zero_never_trims() -> None:
    trimmer = MemoryTrimmer(0.0, trim=lambda: pytest.fail("trimmed although off"), rss=lambda: 0)
    assert not trimmer.enabled
    trimmer.start()
    await trimmer.stop()
