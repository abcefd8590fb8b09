"""`heap.trim_every`: the operator trims its heap on a period, with glibc's real malloc_trim."""

from __future__ import annotations

import asyncio

import pytest
from stt_operator.heap import malloc_trim, trim_every


async def test_trim_every_calls_the_trim_on_its_period_until_cancelled() -> None:
    calls = 0
    thrice = asyncio.Event()

    def trim() -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            thrice.set()
        return 1

    task = asyncio.create_task(trim_every(0.01, trim=trim))
    await asyncio.wait_for(thrice.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stopped_at = calls
    await asyncio.sleep(0.05)
    assert calls == stopped_at


def test_glibc_malloc_trim_is_found_and_answers() -> None:
    trim = malloc_trim()
    if trim is None:
        pytest.skip("this C library has no malloc_trim (not glibc)")
    assert trim() in (0, 1)  # 1: memory was released, 0: there was none to release
