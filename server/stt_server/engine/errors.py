"""Typed engine failures, each already a catalogue ``SttError`` so the servicer can abort with it.

They also subclass ``ValueError`` where the cause is bad input, so pure callers (tests, the bench)
can catch them without knowing the catalogue.
"""

from __future__ import annotations

from typing import Literal

from stt_server.errors import ErrorCode, SttError


class AudioFormatError(SttError, ValueError):
    """Audio bytes that cannot be decoded: bad WAV header, odd byte count, unsupported rate/format."""

    def __init__(self, code: ErrorCode, reason: str, **details: object) -> None:
        self.reason = reason
        super().__init__(code, reason=reason, **details)


class BufferLimitExceeded(SttError):
    """A stream (``kind="stream"``) or all streams (``kind="total"``) buffered more than allowed."""

    def __init__(self, *, kind: Literal["stream", "total"], limit: int, nbytes: int) -> None:
        self.kind = kind
        self.limit = limit
        self.nbytes = nbytes
        code = ErrorCode.STREAM_BUFFER_FULL if kind == "stream" else ErrorCode.TOTAL_BUFFER_FULL
        super().__init__(code, limit=limit, nbytes=nbytes)


class DecodeQueueFull(SttError):
    """A final decode could not be queued within its wait budget (``limits.max_decode_pending``)."""

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        super().__init__(ErrorCode.DECODE_QUEUE_FULL, limit=limit)


class ModelLoadError(RuntimeError):
    """The Whisper model could not be found or loaded; the message says how to provide it."""


class ModelError(SttError):
    """The model failed on one decode."""

    def __init__(self, reason: str) -> None:
        super().__init__(ErrorCode.MODEL_ERROR, reason=reason)


class StreamClosed(RuntimeError):
    """``feed``/``finish`` called on a stream that was closed or already finished."""
