"""Audio buffers: one stream's sample buffer and the engine-wide byte ledger with its caps.

Bytes are counted as LINEAR16 at 16 kHz (2 bytes per sample), the unit the limits are written in
(``limits.max_stream_buffer_bytes: 1920000`` is 60 s of audio), whatever the in-memory dtype.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Final

import numpy as np

from stt_server.engine.errors import BufferLimitExceeded
from stt_server.metrics import ServerMetrics

BYTES_PER_SAMPLE: Final = 2


class AudioBuffer:
    """Samples ``[start, end)`` of a stream, appended at the end and trimmed from the front."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self.start = 0  # stream sample index of the first buffered sample
        self.end = 0  # one past the last buffered sample

    def __len__(self) -> int:
        return self.end - self.start

    def append(self, samples: np.ndarray) -> None:
        if samples.size:
            self._chunks.append(samples)
            self.end += samples.size

    def slice(self, first: int, last: int) -> np.ndarray:
        """A copy of samples ``[first, last)`` clamped to what is buffered."""
        first, last = max(first, self.start), min(last, self.end)
        if last <= first:
            return np.zeros(0, dtype=np.float32)
        joined = self._joined()
        return joined[first - self.start: last - self.start].copy()

    def trim_before(self, sample: int) -> None:
        """Forget samples before ``sample``."""
        if sample <= self.start:
            return
        if sample >= self.end:
            self._chunks = []
            self.start = self.end
            return
        joined = self._joined()
        self._chunks = [joined[sample - self.start:].copy()]
        self.start = sample

    def clear(self) -> None:
        self._chunks = []
        self.start = self.end

    def _joined(self) -> np.ndarray:
        if len(self._chunks) != 1:
            self._chunks = [np.concatenate(self._chunks)] if self._chunks else [np.zeros(0, dtype=np.float32)]
        return self._chunks[0]


class BufferLedger:
    """Engine-wide accounting of buffered audio: per-stream and total caps, gauges kept current."""

    def __init__(self, *, metrics: ServerMetrics, max_stream_bytes: int, max_total_bytes: int) -> None:
        self.metrics = metrics
        self.max_stream_bytes = max_stream_bytes
        self.max_total_bytes = max_total_bytes
        self._lock = threading.Lock()
        self._streams: dict[str, int] = {}
        self.total = 0
        metrics.max_total_buffer_bytes.set(max_total_bytes)
        metrics.buffer_bytes_total.set(0)

    def stream_bytes(self, session_id: str) -> int:
        return self._streams.get(session_id, 0)

    def check(self, session_id: str, *, extra: int) -> None:
        """Raise ``BufferLimitExceeded`` if adding ``extra`` bytes to the stream would pass a cap."""
        current = self.stream_bytes(session_id)
        if current + extra > self.max_stream_bytes:
            self.metrics.record_rate_limit_block("stream_buffer")
            raise BufferLimitExceeded(kind="stream", limit=self.max_stream_bytes, nbytes=current + extra)
        if self.total + extra > self.max_total_bytes:
            self.metrics.record_rate_limit_block("total_buffer")
            raise BufferLimitExceeded(kind="total", limit=self.max_total_bytes, nbytes=self.total + extra)

    def set(self, session_id: str, nbytes: int) -> None:
        with self._lock:
            self.total += nbytes - self._streams.get(session_id, 0)
            self._streams[session_id] = nbytes
            total = self.total
        self.metrics.buffer_bytes_total.set(total)
        self.metrics.set_stream_buffer(session_id, nbytes)

    def release(self, session_id: str) -> None:
        with self._lock:
            self.total -= self._streams.pop(session_id, 0)
            total = self.total
        self.metrics.buffer_bytes_total.set(total)
        self.metrics.set_stream_buffer(session_id, -1)


class FeedClock:
    """When each stretch of a stream's audio was fed: anchors audio time to wall time for latencies."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._marks: deque[tuple[int, float]] = deque()  # (end sample of a feed, wall time it arrived)

    def fed(self, end_sample: int) -> None:
        self._marks.append((end_sample, self._clock()))

    def wall_time_of(self, sample: int) -> float:
        """Wall time at which the audio holding ``sample`` was fed (latest feed if past the end)."""
        for end, wall in self._marks:
            if sample < end:
                return wall
        return self._marks[-1][1] if self._marks else self._clock()

    def forget_before(self, sample: int) -> None:
        while len(self._marks) > 1 and self._marks[0][0] <= sample:
            self._marks.popleft()
