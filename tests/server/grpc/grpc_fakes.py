"""A fake engine that satisfies the contract's Engine interface, for tests where the model is irrelevant.

``FakeEngine`` "recognises" by counting audio: every ``partial_every_sec`` of audio fed yields a
partial ``"sec N"``, and ``finish`` yields one final ``"fake N samples"`` covering the whole stream.
Limits behave like the real engine's: per-stream and total buffer caps (buffered audio is only
released when ``release_buffers`` is on) and a decode-queue cap. ``gate`` lets a test hold every
decode mid-way, to make a client vanish while its decode is in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from stt_server.engine.errors import BufferLimitExceeded, DecodeQueueFull
from stt_server.engine.types import RecognitionResult, SpeechEvent, StreamOptions
from stt_server.metrics import DecodeTiming, ServerMetrics


class FakeStreamRecognizer:
    def __init__(self, engine: FakeEngine, session_id: str, options: StreamOptions) -> None:
        self.engine = engine
        self.session_id = session_id
        self.options = options
        self.samples = 0
        self.buffered_bytes = 0
        self.closed = False
        self.finished = False
        self.single_done = False
        self._queue: asyncio.Queue[RecognitionResult | SpeechEvent | None] = asyncio.Queue()
        self._next_partial = engine.partial_every_sec
        self.timing_totals = DecodeTiming(buffer_wait=0.0, queue_wait=0.0, inference=0.0, response_emit=0.0)
        self.decode_count = 0

    async def feed(self, pcm: np.ndarray) -> None:
        if pcm.dtype != np.float32 or pcm.ndim != 1:
            raise AssertionError(f"feed needs float32 mono, got {pcm.dtype} {pcm.shape}")
        nbytes = pcm.size * 2
        limits = self.engine.config_limits
        if self.buffered_bytes + nbytes > limits["stream"]:
            raise BufferLimitExceeded(kind="stream", limit=limits["stream"], nbytes=self.buffered_bytes + nbytes)
        if self.engine.buffer_bytes_total + nbytes > limits["total"]:
            raise BufferLimitExceeded(kind="total", limit=limits["total"], nbytes=self.engine.buffer_bytes_total)
        if not self.engine.release_buffers:
            self.buffered_bytes += nbytes
            self.engine.buffer_bytes_total += nbytes
        if self.single_done:
            return  # like the real engine: audio after a single utterance ended is ignored
        if self.samples == 0 and pcm.size:
            await self._queue.put(SpeechEvent(kind="speech_begin", offset_sec=0.0))
        self.samples += pcm.size
        if self.options.single_utterance and self.samples >= 8000:
            self.single_done = True
            await self._queue.put(SpeechEvent(kind="end_of_single_utterance", offset_sec=self.samples / 16000))
            await self._decode(is_final=True)
            await self._queue.put(None)
            return
        while self.samples / 16000 >= self._next_partial:
            await self._decode(is_final=False)
            self._next_partial += self.engine.partial_every_sec

    async def _decode(self, *, is_final: bool) -> None:
        if self.engine.pending >= self.engine.max_pending:
            if not is_final:
                self.engine.metrics.record_partial_dropped()
                return
            raise DecodeQueueFull(limit=self.engine.max_pending)
        self.engine.pending += 1
        try:
            self.engine.decodes_started += 1
            await self.engine.gate.wait()
            self.decode_count += 1
            t = self.timing_totals
            self.timing_totals = DecodeTiming(t.buffer_wait + 0.01, t.queue_wait + 0.001, t.inference + 0.02,
                                              t.response_emit + 0.0001)
        finally:
            self.engine.pending -= 1
        seconds = self.samples / 16000
        if is_final:
            stable, unstable = f"fake {self.samples} samples", ""
        else:
            stable, unstable = "sec", f"{seconds:g}"
        await self._queue.put(RecognitionResult(
            is_final=is_final, stable_text=stable, unstable_text=unstable,
            start_sec=0.0, end_sec=seconds, audio_processed_sec=seconds, utterance_index=0,
            confidence=0.9 if is_final else 0.0, language="en", stability=1.0 if is_final else 0.5,
        ))

    async def finish(self) -> None:
        self.finished = True
        if self.single_done:
            return
        await self._queue.put(SpeechEvent(kind="speech_end", offset_sec=self.samples / 16000))
        await self._decode(is_final=True)
        await self._queue.put(None)

    async def events(self) -> AsyncIterator[RecognitionResult | SpeechEvent]:
        while (item := await self._queue.get()) is not None:
            yield item

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.engine.buffer_bytes_total -= self.buffered_bytes
            self.buffered_bytes = 0
            self.engine.open_streams.discard(self)


class FakeEngine:
    """Contract-shaped stand-in for ``stt_server.engine.Engine``."""

    def __init__(self, *, metrics: ServerMetrics | None = None, max_stream_buffer_bytes: int = 1_920_000,
                 max_total_buffer_bytes: int = 67_108_864, max_pending: int = 16,
                 partial_every_sec: float = 0.5, load_delay_sec: float = 0.0) -> None:
        self.metrics = metrics or ServerMetrics()
        self.config_limits = {"stream": max_stream_buffer_bytes, "total": max_total_buffer_bytes}
        self.max_pending = max_pending
        self.partial_every_sec = partial_every_sec
        self.load_delay_sec = load_delay_sec
        self.loaded = False
        self.healthy = True
        self.health_reasons: list[str] = []
        self.pending = 0
        self.buffer_bytes_total = 0
        self.release_buffers = True
        self.decodes_started = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.open_streams: set[FakeStreamRecognizer] = set()
        self.all_streams: list[FakeStreamRecognizer] = []
        self.recognized: list[np.ndarray] = []

    async def start(self) -> None:
        await asyncio.sleep(self.load_delay_sec)
        self.loaded = True

    async def stop(self) -> None:
        self.loaded = False

    def open_stream(self, *, session_id: str, options: StreamOptions) -> FakeStreamRecognizer:
        stream = FakeStreamRecognizer(self, session_id, options)
        self.open_streams.add(stream)
        self.all_streams.append(stream)
        return stream

    async def recognize(self, audio: np.ndarray, *, options: StreamOptions) -> list[RecognitionResult]:
        self.recognized.append(audio)
        seconds = audio.size / 16000
        return [RecognitionResult(is_final=True, stable_text=f"fake {audio.size} samples", unstable_text="",
                                  start_sec=0.0, end_sec=seconds, audio_processed_sec=seconds,
                                  utterance_index=0, confidence=0.9, language=options.language or "en")]

    def info(self) -> dict[str, Any]:
        return {"model": "fake", "device": "cpu", "compute_type": "none", "languages": ["en"]}
