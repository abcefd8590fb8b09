"""Per-API-key request rate limiting: one token bucket per key.

A bucket holds up to ``requests_per_minute`` tokens and refills continuously at that rate, so a
client may burst a minute's worth and then sustain the rate. CreateSession, StreamingRecognize,
Recognize each take one token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from stt_server.errors import ErrorCode, SttError


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by API key id; ``clock`` is injectable for tests."""

    def __init__(self, *, requests_per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = float(requests_per_minute)
        self._rate = requests_per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key_id: str) -> None:
        """Take one token for ``key_id`` or raise ERR1013 with the wait until the next token."""
        now = self._clock()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = _Bucket(self._capacity, now)
        bucket.tokens = min(self._capacity, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / self._rate
            raise SttError(ErrorCode.API_KEY_RATE_LIMIT, limit=int(self._capacity)).with_retry_after(
                round(max(wait, 0.001), 3))
        bucket.tokens -= 1.0
        self._forget_full_buckets(now)

    def _forget_full_buckets(self, now: float) -> None:
        # a bucket that would have refilled completely carries no state; drop it so keys seen once
        # do not accumulate forever
        if len(self._buckets) < 1024:
            return
        refill = self._capacity / self._rate
        for key in [k for k, b in self._buckets.items() if now - b.updated >= refill]:
            del self._buckets[key]
