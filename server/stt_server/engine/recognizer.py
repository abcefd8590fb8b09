"""``StreamRecognizer``: one StreamingRecognize call's audio -> VAD -> decodes -> ordered results.

``feed`` appends audio, runs the VAD (in the engine's VAD thread), advances the endpointer and
submits decodes: a partial of the open utterance every ``partial_interval_sec`` of new audio (only
one pending per stream), a final at speech end / maximum utterance length / ``finish``. Everything
to send goes into one ordered queue (speech events, pending partials, pending finals) that
``events`` drains, so results come out in order even when decodes finish out of order. Partials
pass through LocalAgreement-2; the stable prefix is forced into the next decode of the utterance.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from stt_server.engine.agreement import LocalAgreement, split_words, trim_repetition
from stt_server.engine.buffers import BYTES_PER_SAMPLE, AudioBuffer, BufferLedger, FeedClock
from stt_server.engine.errors import StreamClosed
from stt_server.engine.results import build_final, build_partial
from stt_server.engine.scheduler import DecodeJob, DecodeOutcome, DecodeScheduler
from stt_server.engine.types import (
    SAMPLE_RATE,
    RecognitionResult,
    SpeechEvent,
    SpeechEventKind,
    StreamOptions,
)
from stt_server.engine.vad import CHUNK_SAMPLES, Endpointer, EndpointerSettings, EndpointEvent, SileroStream
from stt_server.metrics import DecodeTiming, ServerMetrics

PRE_ROLL_SEC: Final = 0.2  # audio kept before the VAD's speech start: onsets are soft
TAIL_PAD_SEC: Final = 0.2  # silence kept after speech end: Whisper finishes the last word better


@dataclass(frozen=True)
class StreamSettings:
    """One stream's effective settings (options over config defaults)."""

    endpointer: EndpointerSettings
    partial_interval_sec: float


@dataclass
class _Pending:
    """A decode whose result goes out at this position in the stream's output order."""

    kind: str  # partial | final
    waiter: asyncio.Future[DecodeOutcome | None]
    utterance_index: int
    start_sample: int
    end_sample: int
    origin_wall: float  # when the audio that the latency is measured from was fed


_END: Final = object()


class StreamRecognizer:
    """Per-stream state machine; create with ``Engine.open_stream``."""

    def __init__(self, *, session_id: str, options: StreamOptions, settings: StreamSettings,
                 scheduler: DecodeScheduler, ledger: BufferLedger, metrics: ServerMetrics, vad_executor: Executor,
                 on_close: Callable[[StreamRecognizer], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.session_id = session_id
        self.options = options
        self.settings = settings
        self._scheduler = scheduler
        self._ledger = ledger
        self._metrics = metrics
        self._vad_executor = vad_executor
        self._on_close = on_close
        self._clock = clock
        self._vad = SileroStream()
        self._endpointer = Endpointer(settings.endpointer)
        self._buffer = AudioBuffer()
        self._feed_clock = FeedClock(clock)
        self._out: asyncio.Queue[object] = asyncio.Queue()
        self._agreements: dict[int, LocalAgreement] = {}
        self._first_partial_sent: set[int] = set()
        self._utterance_index = -1
        self._utterance_open = False
        self._utterance_start = 0
        self._speech_start_wall = 0.0
        self._last_partial_end = 0
        self._partial: asyncio.Future[DecodeOutcome | None] | None = None
        self._partial_utterance = -1
        self._final_tasks: set[asyncio.Task[DecodeOutcome | None]] = set()
        self._held_final_bytes = 0
        self._stopped = False  # single utterance done: further audio is ignored
        self._finished = False
        self._closed = False
        self._closed_future: asyncio.Future[None] | None = None
        self.timing_totals = DecodeTiming(0.0, 0.0, 0.0, 0.0)
        self.decode_count = 0

    # --- input ------------------------------------------------------------------------------------

    @property
    def samples_fed(self) -> int:
        return self._buffer.end

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer) * BYTES_PER_SAMPLE + self._held_final_bytes

    async def feed(self, pcm: np.ndarray) -> None:
        """Accept float32 mono 16 kHz audio; raises ``BufferLimitExceeded`` past a buffer cap."""
        if self._closed or self._finished:
            raise StreamClosed(f"stream {self.session_id} is {'closed' if self._closed else 'finished'}")
        if self._stopped or pcm.size == 0:
            return
        samples = np.ascontiguousarray(pcm, dtype=np.float32).reshape(-1)
        self._ledger.check(self.session_id, extra=samples.size * BYTES_PER_SAMPLE)
        self._buffer.append(samples)
        self._feed_clock.fed(self._buffer.end)
        self._account()
        probs = await asyncio.get_running_loop().run_in_executor(self._vad_executor, self._vad.process, samples)
        if self._closed:
            return
        for event in self._endpointer.push_all(probs):
            await self._on_endpoint(event)
            if self._stopped:
                return
        if self._utterance_open:
            await self._maybe_partial()
        else:
            self._trim_silence()
        self._account()

    async def finish(self) -> None:
        """End of audio: finalise the open utterance; ``events`` ends after its final."""
        if self._closed or self._finished:
            return
        self._finished = True
        if self._utterance_open:
            end = self._buffer.end
            self._close_utterance()
            self._emit_event("speech_end", end)
            await self._submit_final(end, origin_wall=self._feed_clock.wall_time_of(end - 1))
        self._out.put_nowait(_END)

    async def close(self) -> None:
        """Cancel pending decodes and free buffers (safe to call more than once)."""
        if self._closed:
            return
        self._closed = True
        self._scheduler.cancel_stream(self.session_id)
        if self._partial is not None:
            self._partial.cancel()  # a running one is orphaned in the scheduler; stop waiting for it
        for task in self._final_tasks:
            task.cancel()
        self._close_utterance()
        self._buffer.clear()
        self._held_final_bytes = 0
        self._ledger.release(self.session_id)
        self._closed_signal().set_result(None)
        self._out.put_nowait(_END)
        self._on_close(self)

    # --- endpointing ------------------------------------------------------------------------------

    async def _on_endpoint(self, event: EndpointEvent) -> None:
        if event.kind == "begin":
            self._open_utterance(max(self._buffer.start, event.sample - int(PRE_ROLL_SEC * SAMPLE_RATE)))
            self._speech_start_wall = self._feed_clock.wall_time_of(event.sample)
            self._emit_event("speech_begin", event.sample)
        elif event.kind == "end":
            self._close_utterance()
            self._emit_event("speech_end", event.sample)
            # The tail stays inside the silence that ended the utterance (never the next onset).
            tail_sec = min(TAIL_PAD_SEC, self.settings.endpointer.end_silence_ms / 1000)
            end = min(self._buffer.end, event.sample + int(tail_sec * SAMPLE_RATE))
            await self._submit_final(end, origin_wall=self._feed_clock.wall_time_of(event.sample))
        else:  # cut: close this utterance at max length, the next one starts right here
            await self._submit_final(event.sample, origin_wall=self._feed_clock.wall_time_of(event.sample - 1))
            if not self._stopped:
                self._open_utterance(event.sample)
                self._speech_start_wall = self._feed_clock.wall_time_of(event.sample)

    def _open_utterance(self, start: int) -> None:
        if not self._utterance_open:
            self._metrics.vad_active_utterances.inc()
        self._utterance_open = True
        self._utterance_index += 1
        self._utterance_start = start
        self._last_partial_end = start
        self._agreements[self._utterance_index] = LocalAgreement()

    def _close_utterance(self) -> None:
        if self._utterance_open:
            self._metrics.vad_active_utterances.dec()
        self._utterance_open = False

    def _emit_event(self, kind: SpeechEventKind, sample: int) -> None:
        self._metrics.vad_triggers.labels(event=kind).inc()
        self._out.put_nowait(SpeechEvent(kind=kind, offset_sec=sample / SAMPLE_RATE))

    def _trim_silence(self) -> None:
        keep = int((self.settings.endpointer.speech_start_ms / 1000 + PRE_ROLL_SEC + 0.1) * SAMPLE_RATE)
        self._buffer.trim_before(self._buffer.end - keep)
        self._feed_clock.forget_before(self._buffer.start)

    def _account(self) -> None:
        self._ledger.set(self.session_id, self.buffered_bytes)

    # --- decodes ----------------------------------------------------------------------------------

    def _job(self, kind: str, end: int, *, origin_wall: float) -> DecodeJob:
        agreement = self._agreements[self._utterance_index]
        return DecodeJob(
            stream_id=self.session_id, kind="final" if kind == "final" else "partial",
            audio=self._buffer.slice(self._utterance_start, end), language=self.options.language,
            prefix=agreement.stable_text, word_timestamps=kind == "final" and self.options.word_time_offsets,
            utterance_index=self._utterance_index, buffer_wait=max(0.0, self._clock() - origin_wall))

    async def _maybe_partial(self) -> None:
        if not self.options.interim_results:
            return
        if self._partial is not None and not self._partial.done() and self._partial_utterance == self._utterance_index:
            return  # one partial in flight per utterance keeps partials cheap under load
        end = self._buffer.end
        if (end - self._last_partial_end) / SAMPLE_RATE < self.settings.partial_interval_sec:
            return
        self._last_partial_end = end
        job = self._job("partial", end, origin_wall=self._feed_clock.wall_time_of(end - 1))
        job.first = self._utterance_index not in self._first_partial_sent
        self._partial = await self._scheduler.submit_partial(job)
        self._partial_utterance = self._utterance_index
        self._out.put_nowait(_Pending("partial", self._partial, self._utterance_index, self._utterance_start, end,
                                      self._speech_start_wall))

    async def _submit_final(self, end: int, *, origin_wall: float) -> None:
        job = self._job("final", end, origin_wall=origin_wall)
        held = job.audio.size * BYTES_PER_SAMPLE
        self._held_final_bytes += held
        task = asyncio.create_task(self._run_final(job, held))
        self._final_tasks.add(task)
        task.add_done_callback(self._final_tasks.discard)
        self._out.put_nowait(_Pending("final", task, self._utterance_index, self._utterance_start, end, origin_wall))
        self._buffer.trim_before(end)  # the final holds its own copy
        if self.options.single_utterance:
            self._stopped = True
            self._close_utterance()
            self._emit_event("end_of_single_utterance", end)
            self._out.put_nowait(_END)
        self._account()

    async def _run_final(self, job: DecodeJob, held: int) -> DecodeOutcome | None:
        try:
            future = await self._scheduler.submit_final(job)
            return await future
        finally:
            if not self._closed:
                self._held_final_bytes -= held
                self._account()

    # --- output -----------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[RecognitionResult | SpeechEvent]:
        """Results and speech events in stream order; ends after ``finish`` (or ``close``)."""
        while not self._closed:
            item = await self._out.get()
            if item is _END or self._closed:
                return
            if isinstance(item, SpeechEvent):
                yield item
                continue
            assert isinstance(item, _Pending)
            # asyncio.wait never raises; close() resolves _closed_signal so an orphaned decode
            # still inside the model does not hold the caller.
            waiters: list[asyncio.Future[Any]] = [item.waiter, self._closed_signal()]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if self._closed:
                return
            if item.waiter.cancelled():
                continue
            outcome = item.waiter.result()  # re-raises DecodeQueueFull / ModelError for the servicer
            if outcome is None:  # partial dropped under load
                continue
            result = self._result(item, outcome)
            if result is not None:
                self._sent(item, outcome, result)
                yield result

    def _closed_signal(self) -> asyncio.Future[None]:
        if self._closed_future is None:
            self._closed_future = asyncio.get_running_loop().create_future()
        return self._closed_future

    def _result(self, item: _Pending, outcome: DecodeOutcome) -> RecognitionResult | None:
        agreement = self._agreements.get(item.utterance_index)
        if agreement is None:
            return None
        words = trim_repetition(split_words(outcome.transcript.text))
        start_sec, end_sec = item.start_sample / SAMPLE_RATE, item.end_sample / SAMPLE_RATE
        processed = self._endpointer.chunk_index * CHUNK_SAMPLES / SAMPLE_RATE
        if item.kind == "partial":
            state = agreement.update(words)
            if not words:
                return None
            return build_partial(state, start_sec=start_sec, end_sec=end_sec, audio_processed_sec=processed,
                                 utterance_index=item.utterance_index, language=outcome.transcript.language)
        del self._agreements[item.utterance_index]
        state = agreement.finalize(words)
        if not state.stable:
            return None
        return build_final(state, outcome.transcript, start_sec=start_sec, end_sec=end_sec,
                           audio_processed_sec=max(processed, end_sec), utterance_index=item.utterance_index,
                           with_words=self.options.word_time_offsets)

    def _sent(self, item: _Pending, outcome: DecodeOutcome, result: RecognitionResult) -> None:
        now = self._clock()
        timing = outcome.timing(response_emit=max(0.0, now - outcome.finished_at))
        self._metrics.record_decode(kind=item.kind, timing=timing, audio_seconds=outcome.audio_seconds,
                                    batch_size=outcome.batch_size)
        self.timing_totals = DecodeTiming(
            buffer_wait=self.timing_totals.buffer_wait + timing.buffer_wait,
            queue_wait=self.timing_totals.queue_wait + timing.queue_wait,
            inference=self.timing_totals.inference + timing.inference,
            response_emit=self.timing_totals.response_emit + timing.response_emit)
        self.decode_count += 1
        self._metrics.results.labels(kind=item.kind).inc()
        if item.kind == "final":
            self._metrics.final_seconds.observe(max(0.0, now - item.origin_wall))
        elif item.utterance_index not in self._first_partial_sent:
            self._first_partial_sent.add(item.utterance_index)
            self._metrics.first_partial_seconds.observe(max(0.0, now - item.origin_wall))
