"""Stream audio buffer and the engine-wide byte ledger."""

from __future__ import annotations

import numpy as np
import pytest
from stt_server.engine.buffers import AudioBuffer, BufferLedger, FeedClock
from stt_server.engine.errors import BufferLimitExceeded
from stt_server.errors import ErrorCode
from stt_server.metrics import ServerMetrics, hashed_stream_key


def test_audio_buffer_slices_in_stream_time_and_trims() -> None:
    buffer = AudioBuffer()
    for start in range(0, 100, 10):
        buffer.append(np.arange(start, start + 10, dtype=np.float32))
    assert (buffer.start, buffer.end, len(buffer)) == (0, 100, 100)
    np.testing.assert_array_equal(buffer.slice(25, 30), [25, 26, 27, 28, 29])
    buffer.trim_before(40)
    assert (buffer.start, len(buffer)) == (40, 60)
    np.testing.assert_array_equal(buffer.slice(0, 42), [40, 41])  # clamped to what is left
    assert buffer.slice(200, 300).size == 0
    buffer.clear()
    assert len(buffer) == 0 and buffer.end == 100


def test_ledger_caps_and_gauges() -> None:
    metrics = ServerMetrics()
    ledger = BufferLedger(metrics=metrics, max_stream_bytes=1000, max_total_bytes=1500)
    ledger.set("a", 900)
    ledger.check("a", extra=100)
    with pytest.raises(BufferLimitExceeded) as caught:
        ledger.check("a", extra=101)
    assert (caught.value.kind, caught.value.code) == ("stream", ErrorCode.STREAM_BUFFER_FULL)
    ledger.set("b", 500)
    with pytest.raises(BufferLimitExceeded) as caught:
        ledger.check("c", extra=200)
    assert (caught.value.kind, caught.value.code) == ("total", ErrorCode.TOTAL_BUFFER_FULL)
    assert metrics.buffer_bytes_total._value.get() == 1400
    assert metrics.stream_buffers()[hashed_stream_key("a")] == 900
    ledger.release("a")
    ledger.release("b")
    assert ledger.total == 0
    assert metrics.buffer_bytes_total._value.get() == 0
    assert metrics.stream_buffers() == {}
    blocks = metrics.seed.values()
    assert blocks["stt_rate_limit_blocks_stream_buffer"] == 1 and blocks["stt_rate_limit_blocks_total_buffer"] == 1


def test_feed_clock_maps_samples_to_the_feed_that_brought_them() -> None:
    now = iter([10.0, 10.1, 10.2, 99.0])
    clock = FeedClock(lambda: next(now))
    for end in (1600, 3200, 4800):
        clock.fed(end)
    assert clock.wall_time_of(0) == 10.0
    assert clock.wall_time_of(1600) == 10.1
    assert clock.wall_time_of(4799) == 10.2
    assert clock.wall_time_of(10_000) == 10.2  # past the end: the latest feed
    clock.forget_before(3200)
    assert clock.wall_time_of(0) == 10.2  # forgotten stretches map to the oldest kept feed
