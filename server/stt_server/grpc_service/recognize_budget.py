"""Admission for unary ``Recognize`` uploads: one call's size, and what all calls in progress hold.

A Recognize call holds its upload and one float32 copy of it at 16 kHz until it answers
(docs/engine.md, "Offline Recognize"), so the server bounds both per call
(``limits.max_recognize_bytes``, ERR1032) and across calls (``limits.max_recognize_inflight_bytes``,
ERR1034, retryable). A single call within the per-call limit is always admitted, so a limit set
below it cannot refuse every call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from stt_server.errors import ErrorCode, SttError


def check_upload(nbytes: int, *, limit: int) -> None:
    """``SttError`` RECOGNIZE_TOO_LARGE when one upload is larger than ``limit`` bytes."""
    if nbytes > limit:
        raise SttError(ErrorCode.RECOGNIZE_TOO_LARGE, nbytes=nbytes, limit=limit)


class RecognizeBudget:
    """Bytes of Recognize audio held by the calls in progress (event-loop only, no locking)."""

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self.held = 0

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        """Hold ``nbytes`` for the ``with`` block; ``SttError`` RECOGNIZE_BUSY if that passes the limit."""
        if self.held and self.held + nbytes > self.limit:
            raise SttError(ErrorCode.RECOGNIZE_BUSY, inflight=self.held, limit=self.limit)
        self.held += nbytes
        try:
            yield
        finally:
            self.held -= nbytes
