"""``DecodeScheduler``: one bounded decode queue shared by every stream.

* Bounded: at most ``max_pending`` decodes queued or running.
* Finals before partials; offline decodes ride with the finals.
* Saturated: partials are dropped first (a newer partial from the same stream replaces its queued
  older one; a refresh partial that finds the queue full is dropped; an utterance's first partial
  evicts a queued refresh partial, or else is queued over the cap, at most one per stream; a final
  evicts the oldest refresh partial, else any partial). A final never gets dropped: it waits for
  room and only after ``final_wait_sec`` fails with ``DecodeQueueFull``.
* Batching: each of ``num_workers`` dispatchers takes up to ``max_batch_size`` batchable jobs of
  similar padded length (``batching.choose_batch``: within ``frame_budget``) and decodes them in
  one ``WhisperBackend.transcribe_batch`` call in the executor, so workers overlap and each call
  shares its encoder/decoder steps across streams.
* ``cancel_stream`` removes a closed stream's queued jobs (cancelled) and marks its running ones
  (orphaned: their results are discarded when the model returns).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import numpy as np

from stt_server.engine.backend import (
    FINAL_MARGIN_FRAMES,
    PARTIAL_MARGIN_FRAMES,
    BatchItem,
    Transcript,
    TranscriptSegment,
)
from stt_server.engine.batching import DEFAULT_FRAME_BUDGET, choose_batch, padded_frames
from stt_server.engine.errors import DecodeQueueFull, ModelError
from stt_server.metrics import DecodeTiming, ServerMetrics

DecodeKind = Literal["partial", "final", "offline"]
DEFAULT_FINAL_WAIT_SEC: Final = 30.0


class BackendLike(Protocol):
    def transcribe(self, audio: np.ndarray, *, language: str | None, word_timestamps: bool = False,
                   initial_prompt: str | None = None, prefix: str | None = None,
                   on_segment: Callable[[TranscriptSegment], None] | None = None) -> Transcript: ...

    def transcribe_batch(self, items: list[BatchItem]) -> list[Transcript]: ...


@dataclass(frozen=True)
class DecodeOutcome:
    """A finished decode and its phase timings (response_emit is measured by whoever sends it)."""

    transcript: Transcript
    buffer_wait: float
    queue_wait: float
    inference: float
    finished_at: float  # time.monotonic() when the model returned
    batch_size: int
    audio_seconds: float

    def timing(self, *, response_emit: float) -> DecodeTiming:
        return DecodeTiming(buffer_wait=self.buffer_wait, queue_wait=self.queue_wait,
                            inference=self.inference, response_emit=response_emit)


@dataclass(eq=False)
class DecodeJob:
    """One decode request. ``future`` resolves to an outcome, ``None`` (partial dropped) or is cancelled."""

    stream_id: str
    kind: DecodeKind
    audio: np.ndarray
    language: str | None = "en"
    prefix: str = ""
    word_timestamps: bool = False
    utterance_index: int = 0
    buffer_wait: float = 0.0
    first: bool = False  # the utterance's first partial: ranked above refreshes of other streams
    # offline only: Whisper's initial prompt, and a callback run (in the worker thread) per segment
    initial_prompt: str | None = None
    on_segment: Callable[[TranscriptSegment], None] | None = None
    future: asyncio.Future[DecodeOutcome | None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    submitted_at: float = field(default_factory=time.monotonic)
    orphaned: bool = False

    @property
    def batchable(self) -> bool:
        return self.kind != "offline"


class DecodeScheduler:
    """Shared decode queue with priorities, shedding, batching and per-stream cancellation."""

    def __init__(self, backend: BackendLike, *, metrics: ServerMetrics, max_pending: int, max_batch_size: int,
                 num_workers: int, final_wait_sec: float = DEFAULT_FINAL_WAIT_SEC,
                 frame_budget: int = DEFAULT_FRAME_BUDGET, clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.metrics = metrics
        self.max_pending = max_pending
        self.max_batch_size = max_batch_size
        self.frame_budget = frame_budget
        self.num_workers = num_workers
        self.final_wait_sec = final_wait_sec
        self._clock = clock
        self._finals: deque[DecodeJob] = deque()
        self._partials: deque[DecodeJob] = deque()
        self._running: set[DecodeJob] = set()
        self._busy = 0  # dispatchers inside a model call
        self.consecutive_failures = 0  # model calls that raised since the last one that worked
        self.last_failure = ""
        self._changed: asyncio.Condition | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._dispatchers: list[asyncio.Task[None]] = []
        metrics.decode_pending_cap.set(max_pending)

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._changed = asyncio.Condition()
        self._executor = ThreadPoolExecutor(max_workers=self.num_workers, thread_name_prefix="stt-decode")
        self._dispatchers = [asyncio.create_task(self._dispatch(), name=f"stt-decode-{i}")
                             for i in range(self.num_workers)]

    async def stop(self) -> None:
        for task in self._dispatchers:
            task.cancel()
        for task in self._dispatchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._dispatchers = []
        for job in [*self._finals, *self._partials, *self._running]:
            job.future.cancel()  # nobody may wait forever on a scheduler that is gone
        self._finals.clear()
        self._partials.clear()
        self._running.clear()
        self._update_gauge()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # --- state ------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Decodes queued or running."""
        return len(self._finals) + len(self._partials) + len(self._running)

    @property
    def queued(self) -> int:
        return len(self._finals) + len(self._partials)

    def _update_gauge(self) -> None:
        self.metrics.decode_pending.set(self.pending)

    def _cond(self) -> asyncio.Condition:
        if self._changed is None:
            raise RuntimeError("DecodeScheduler.start() was not awaited")
        return self._changed

    async def _notify(self) -> None:
        async with self._cond():
            self._cond().notify_all()

    def _drop(self, job: DecodeJob) -> None:
        self.metrics.record_partial_dropped()
        if not job.future.done():
            job.future.set_result(None)

    # --- submission -------------------------------------------------------------------------------

    async def submit_partial(self, job: DecodeJob) -> asyncio.Future[DecodeOutcome | None]:
        """Queue a partial unless saturated; the future resolves to ``None`` if it gets dropped."""
        job.submitted_at = self._clock()
        for index, queued in enumerate(self._partials):
            if queued.stream_id == job.stream_id:
                if job.first and not queued.first:  # a new utterance's first partial: its own place in line
                    del self._partials[index]
                    self._enqueue_partial(job)
                else:
                    self._partials[index] = job  # coalesce: newer audio, same place in line
                self._drop(queued)
                await self._notify()
                return job.future
        if self.pending >= self.max_pending:
            if not job.first:
                self._drop(job)
                return job.future
            # An utterance's first partial is never shed for want of room: it takes a refresh's
            # place, or else goes over the cap. Each stream has at most one partial queued, so the
            # overshoot is bounded by the open streams; dropping it instead costs that utterance
            # another partial interval each time the workers are busy, which is what pushed the
            # worst first partial past the SLO at 32 streams (docs/benchmarks/README.md).
            self._evict_partial(refresh_only=True)
        self._enqueue_partial(job)
        self._update_gauge()
        await self._notify()
        return job.future

    def _enqueue_partial(self, job: DecodeJob) -> None:
        """First partials of an utterance go ahead of refreshes: they decide first-partial latency."""
        if job.first:
            for index, queued in enumerate(self._partials):
                if not queued.first:
                    self._partials.insert(index, job)
                    return
        self._partials.append(job)

    def _evict_partial(self, *, refresh_only: bool = False) -> bool:
        """Drop the oldest queued refresh partial (or, unless ``refresh_only``, the oldest partial)."""
        victim = next((queued for queued in self._partials if not queued.first), None)
        if victim is None and not refresh_only and self._partials:
            victim = self._partials[0]
        if victim is None:
            return False
        self._partials.remove(victim)
        self._drop(victim)
        return True

    async def submit_final(self, job: DecodeJob) -> asyncio.Future[DecodeOutcome | None]:
        """Queue a final (or offline) decode, evicting a queued partial or waiting for room."""
        cond = self._cond()
        async with cond:
            if self.pending >= self.max_pending:
                self._evict_partial()
            try:
                async with asyncio.timeout(self.final_wait_sec):
                    await cond.wait_for(lambda: self.pending < self.max_pending or bool(self._partials))
            except TimeoutError:
                self.metrics.record_rate_limit_block("decode_queue")
                raise DecodeQueueFull(limit=self.max_pending) from None
            if self.pending >= self.max_pending:
                self._evict_partial()
            job.submitted_at = self._clock()
            self._finals.append(job)
            self._update_gauge()
            cond.notify_all()
        return job.future

    def cancel_stream(self, stream_id: str) -> int:
        """Cancel a closed stream's queued decodes and orphan its running ones; returns how many were cancelled."""
        cancelled = 0
        for queue in (self._finals, self._partials):
            keep = [job for job in queue if job.stream_id != stream_id]
            for job in queue:
                if job.stream_id == stream_id:
                    job.future.cancel()
                    cancelled += 1
            queue.clear()
            queue.extend(keep)
        for job in self._running:
            if job.stream_id == stream_id:
                job.orphaned = True
        if cancelled:
            self.metrics.record_decode_cancelled(cancelled)
        self._update_gauge()
        if self._changed is not None:
            asyncio.get_running_loop().create_task(self._notify())
        return cancelled

    # --- dispatch ---------------------------------------------------------------------------------

    def _take_batch(self) -> list[DecodeJob]:
        """Finals first; a non-batchable job runs alone; otherwise a share of the queue.

        The share is the queue split evenly over the idle workers (capped at ``max_batch_size``):
        on CPU one model call uses only its worker's threads, so two half batches in parallel beat
        one full batch (docs/engine.md). Within it, ``choose_batch`` keeps the padded size within
        ``frame_budget`` and leaves jobs of a very different length for the next call.
        """
        if self._finals and not self._finals[0].batchable:
            return [self._finals.popleft()]
        idle = max(1, self.num_workers - self._busy)
        limit = min(self.max_batch_size, -(-self.queued // idle))
        candidates: list[DecodeJob] = []
        for queue in (self._finals, self._partials):
            for queued in queue:
                if not queued.batchable:
                    break  # an offline job keeps its place: nothing behind it jumps it
                candidates.append(queued)
        widths = [padded_frames(samples=job.audio.size, final=job.kind != "partial") for job in candidates]
        ranks = [0 if job.kind != "partial" else 1 if job.first else 2 for job in candidates]
        batch = [candidates[i] for i in choose_batch(widths, limit=limit, ranks=ranks, frame_budget=self.frame_budget)]
        for job in batch:
            (self._partials if job.kind == "partial" else self._finals).remove(job)
        return batch

    async def _dispatch(self) -> None:
        cond = self._cond()
        loop = asyncio.get_running_loop()
        while True:
            async with cond:
                await cond.wait_for(lambda: self.queued > 0)
                batch = self._take_batch()
                self._running.update(batch)
                self._busy += 1
            started = self._clock()
            try:
                transcripts = await loop.run_in_executor(self._executor, self._run, batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any model failure must reach every job in the batch
                self.consecutive_failures += 1
                self.last_failure = f"{type(exc).__name__}: {exc}"
                self._finish(batch, error=ModelError(self.last_failure))
            else:
                finished = self._clock()
                self.consecutive_failures = 0
                self._finish(batch, transcripts=transcripts, started=started, finished=finished)
            finally:
                self._busy -= 1
            await self._notify()

    def _run(self, batch: list[DecodeJob]) -> list[Transcript]:
        """Executor thread: one model call for the whole batch."""
        if len(batch) == 1 and not batch[0].batchable:
            job = batch[0]
            extra: dict[str, Any] = {}  # only when asked, so backends without these keywords still work
            if job.initial_prompt:
                extra["initial_prompt"] = job.initial_prompt
            if job.on_segment is not None:
                extra["on_segment"] = job.on_segment
            return [self.backend.transcribe(job.audio, language=job.language, word_timestamps=job.word_timestamps,
                                            prefix=job.prefix or None, **extra)]
        return self.backend.transcribe_batch(
            [BatchItem(audio=job.audio, language=job.language, prefix=job.prefix, word_timestamps=job.word_timestamps,
                       margin_frames=PARTIAL_MARGIN_FRAMES if job.kind == "partial" else FINAL_MARGIN_FRAMES,
                       prompt=job.initial_prompt or "")
             for job in batch])

    def _finish(self, batch: list[DecodeJob], *, transcripts: list[Transcript] | None = None,
                started: float = 0.0, finished: float = 0.0, error: Exception | None = None) -> None:
        for index, job in enumerate(batch):
            self._running.discard(job)
            if job.orphaned:
                self.metrics.record_decode_orphaned()
                job.future.cancel()
                continue
            if job.future.done():
                continue
            if error is not None or transcripts is None:
                job.future.set_exception(error or ModelError("no transcript"))
                continue
            job.future.set_result(DecodeOutcome(
                transcript=transcripts[index], buffer_wait=job.buffer_wait,
                queue_wait=max(0.0, started - job.submitted_at), inference=finished - started,
                finished_at=finished, batch_size=len(batch), audio_seconds=job.audio.size / 16_000))
        self._update_gauge()
