"""``Engine``: the process-wide speech engine shared by every stream.

Owns the Whisper backend, the decode scheduler, the VAD thread and the buffer ledger; opens one
``StreamRecognizer`` per StreamingRecognize call and serves unary ``recognize``. Takes the server
config (``ServerConfig`` or anything with the same ``model`` / ``streaming`` / ``limits`` fields).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import numpy as np

from stt_server.engine.backend import TranscriptSegment, WhisperBackend
from stt_server.engine.buffers import BufferLedger
from stt_server.engine.offline import ChunkDecode, chunk_result, decode_chunks, find_speech, plan_chunks
from stt_server.engine.recognizer import StreamRecognizer, StreamSettings
from stt_server.engine.scheduler import DecodeOutcome, DecodeScheduler
from stt_server.engine.types import SAMPLE_RATE, RecognitionResult, StreamOptions
from stt_server.engine.vad import EndpointerSettings
from stt_server.errors import ErrorCode, SttError
from stt_server.metrics import ServerMetrics

log = logging.getLogger(__name__)

FAILURES_UNHEALTHY: Final = 3  # model calls failing in a row before the engine reports unhealthy
MAX_UTTERANCE_SEC: Final = 30.0  # Whisper's window: a longer utterance cannot be decoded in one pass


class Engine:
    """One per process; see docs/engine.md for the pipeline."""

    def __init__(self, *, config: Any, metrics: ServerMetrics, backend: WhisperBackend | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self.backend = backend if backend is not None else WhisperBackend(config.model)
        limits, streaming = config.limits, config.streaming
        self.ledger = BufferLedger(metrics=metrics, max_stream_bytes=limits.max_stream_buffer_bytes,
                                   max_total_bytes=limits.max_total_buffer_bytes)
        self.scheduler = DecodeScheduler(self.backend, metrics=metrics, max_pending=limits.max_decode_pending,
                                         max_batch_size=streaming.max_batch_size,
                                         num_workers=config.model.num_workers)
        self._vad_executor: ThreadPoolExecutor | None = None
        self._streams: dict[str, StreamRecognizer] = {}
        self._recognize_calls = 0  # names each Recognize's decode jobs, so a cancelled call drops its own
        self.loaded = False
        self._reasons: list[str] = ["model not loaded"]

    async def start(self) -> None:
        """Load the model (in an executor) and start the decode workers."""
        loop = asyncio.get_running_loop()
        self._vad_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stt-vad")
        try:
            if not self.backend.loaded:
                await loop.run_in_executor(None, self.backend.load)
        except Exception as exc:
            self._reasons = [f"model failed to load: {exc}"]
            self.metrics.model_loaded.set(0)
            raise
        await self.scheduler.start()
        self.loaded = True
        self._reasons = []
        self.metrics.model_loaded.set(1)

    async def stop(self) -> None:
        for stream in list(self._streams.values()):
            await stream.close()
        await self.scheduler.stop()
        if self._vad_executor is not None:
            self._vad_executor.shutdown(wait=False, cancel_futures=True)
            self._vad_executor = None
        self.loaded = False
        self._reasons = ["engine stopped"]
        self.metrics.model_loaded.set(0)

    @property
    def health_reasons(self) -> list[str]:
        """Why the engine is unhealthy (empty when healthy): not loaded, load error, a failing model."""
        reasons = list(self._reasons)
        if self.scheduler.consecutive_failures >= FAILURES_UNHEALTHY:
            reasons.append(f"{self.scheduler.consecutive_failures} model calls failed in a row, "
                           f"last: {self.scheduler.last_failure}")
        return reasons

    @property
    def healthy(self) -> bool:
        return self.loaded and not self.health_reasons

    @property
    def pending(self) -> int:
        """Decodes queued or running."""
        return self.scheduler.pending

    @property
    def buffer_bytes_total(self) -> int:
        return self.ledger.total

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def stream_settings(self, options: StreamOptions) -> StreamSettings:
        """Options over config defaults, validated (``SttError`` INVALID_CONFIG on a bad value)."""
        streaming = self.config.streaming
        start_ms = streaming.speech_start_ms if options.speech_start_ms is None else options.speech_start_ms
        silence_ms = streaming.end_silence_ms if options.end_silence_ms is None else options.end_silence_ms
        max_sec = streaming.max_utterance_sec if options.max_utterance_sec is None else options.max_utterance_sec
        if not 0 <= start_ms <= 5000:
            raise SttError(ErrorCode.INVALID_CONFIG, reason=f"speech_start_ms={start_ms} (0..5000)")
        if not 50 <= silence_ms <= 10_000:
            raise SttError(ErrorCode.INVALID_CONFIG, reason=f"end_silence_ms={silence_ms} (50..10000)")
        if not 1.0 <= max_sec <= MAX_UTTERANCE_SEC:
            raise SttError(ErrorCode.INVALID_CONFIG, reason=f"max_utterance_sec={max_sec} (1..{MAX_UTTERANCE_SEC:g})")
        if options.language is not None and self.backend.loaded and options.language not in self.backend.languages:
            raise SttError(ErrorCode.INVALID_CONFIG, reason=f"language {options.language!r} is not supported by "
                                                            f"model {self.backend.model_name}")
        return StreamSettings(
            endpointer=EndpointerSettings(threshold=streaming.vad_threshold, speech_start_ms=start_ms,
                                          end_silence_ms=silence_ms, max_utterance_sec=max_sec),
            partial_interval_sec=streaming.partial_interval_sec)

    def open_stream(self, *, session_id: str, options: StreamOptions) -> StreamRecognizer:
        """A recognizer for one StreamingRecognize call; ``close()`` it when the call ends."""
        if not self.loaded or self._vad_executor is None:
            raise SttError(ErrorCode.NOT_READY, reason="model not loaded")
        if session_id in self._streams:
            raise SttError(ErrorCode.SESSION_IN_USE, session_id=session_id)
        stream = StreamRecognizer(
            session_id=session_id, options=options, settings=self.stream_settings(options),
            scheduler=self.scheduler, ledger=self.ledger, metrics=self.metrics, vad_executor=self._vad_executor,
            on_close=self._forget)
        self._streams[session_id] = stream
        return stream

    def _forget(self, stream: StreamRecognizer) -> None:
        if self._streams.get(stream.session_id) is stream:
            del self._streams[stream.session_id]

    async def recognize(self, audio: np.ndarray, *, options: StreamOptions, prompt: str | None = None,
                        on_segment: Callable[[TranscriptSegment], None] | None = None) -> list[RecognitionResult]:
        """A whole clip: VAD-gated speech chunks, batched through the decode scheduler as finals.

        Silence decodes nothing (no made-up text), and memory stays that of the clip's samples:
        only the few chunks in flight are copied out (engine/offline.py). ``prompt`` is Whisper's
        initial prompt for every chunk; ``on_segment`` is called on the event loop with each
        chunk's text, in clip order, as soon as it is decoded (the REST API streams them).
        """
        if not self.loaded or self._vad_executor is None:
            raise SttError(ErrorCode.NOT_READY, reason="model not loaded")
        samples = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        if samples.size == 0:
            raise SttError(ErrorCode.EMPTY_STREAM, what="Recognize audio")
        if options.language is not None and options.language not in self.backend.languages:
            raise SttError(ErrorCode.INVALID_CONFIG, reason=f"language {options.language!r} is not supported")
        spans = await find_speech(samples, settings=self.stream_settings(options).endpointer,
                                  executor=self._vad_executor)
        chunks = plan_chunks(spans, total=samples.size)
        self._recognize_calls += 1
        plan = ChunkDecode(stream_id=f"recognize-{self._recognize_calls}", language=options.language,
                           word_timestamps=options.word_time_offsets, prompt=prompt or None,
                           in_flight=max(1, min(self.scheduler.max_pending // 2,
                                                2 * self.scheduler.num_workers)))
        results: list[RecognitionResult] = []

        def ready(index: int, outcome: DecodeOutcome) -> None:
            self.metrics.record_decode(kind="offline", timing=outcome.timing(response_emit=0.0),
                                       audio_seconds=outcome.audio_seconds)
            result = chunk_result(outcome.transcript, chunks[index], index=len(results),
                                  with_words=options.word_time_offsets)
            if result is None:
                return
            results.append(result)
            if on_segment is not None:
                on_segment(TranscriptSegment(result.text, result.start_sec, result.end_sec,
                                             outcome.transcript.avg_logprob))

        await decode_chunks(samples, chunks, scheduler=self.scheduler, plan=plan, on_ready=ready)
        self.metrics.results.labels(kind="final").inc(len(results))
        return results

    def info(self) -> dict[str, Any]:
        """Model name, device, compute type, languages and the engine's limits."""
        return {
            "model": self.backend.model_name,
            "model_path": getattr(self.backend, "model_path", ""),
            "device": self.backend.device,
            "compute_type": self.backend.compute_type,
            "num_workers": self.backend.num_workers,
            "languages": self.backend.languages if self.backend.loaded else [],
            "multilingual": self.backend.is_multilingual if self.backend.loaded else False,
            "sample_rate_hz": SAMPLE_RATE,
            "max_batch_size": self.scheduler.max_batch_size,
            "max_decode_pending": self.scheduler.max_pending,
        }
