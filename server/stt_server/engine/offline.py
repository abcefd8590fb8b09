"""Unary ``Recognize``: VAD-gated speech spans, cut into decode chunks for batched decoding.

A whole clip is never decoded in one pass. ``find_speech`` runs the streaming path's Silero VAD and
``Endpointer`` over the clip in fixed windows (so memory does not grow with the clip), giving the
spans where someone speaks; silence yields no span, so no decode and no made-up text.
``plan_chunks`` pads the spans and merges neighbours into chunks of at most ``max_chunk_sec`` that
the decode scheduler batches like streaming finals (docs/engine.md, "Offline Recognize").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Final

import numpy as np

from stt_server.engine.backend import Transcript
from stt_server.engine.results import confidence_from_logprob
from stt_server.engine.scheduler import DecodeJob, DecodeOutcome, DecodeScheduler
from stt_server.engine.types import SAMPLE_RATE, RecognitionResult, Word
from stt_server.engine.vad import (
    CHUNK_SAMPLES,
    NEG_THRESHOLD_GAP,
    Endpointer,
    EndpointerSettings,
    EndpointEvent,
    SileroStream,
)
from stt_server.errors import ErrorCode, SttError

VAD_WINDOW_SAMPLES: Final = 640 * CHUNK_SAMPLES  # 20.48 s of audio per VAD executor call
RESET_SAMPLES: Final = 64 * CHUNK_SAMPLES  # Silero's state is reset after each silent 2.048 s
# Whisper sees 30 s at most and the backend appends 5 s of zero frames to a final; at 19 s two
# chunks (2,400 frames each with that tail) fit the scheduler's frame budget for one model call
# (engine/batching.py), so the two decode workers each decode a pair.
MAX_CHUNK_SEC: Final = 19.0
SPAN_PAD_SEC: Final = 0.25  # the endpointer marks speech tightly; keep the edges of words
MAX_GAP_SEC: Final = 3.0  # a longer pause starts a new chunk rather than being encoded


@dataclass(frozen=True)
class Span:
    """Samples ``[start, end)`` of the clip (16 kHz)."""

    start: int
    end: int

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


def spans_from_events(events: Iterable[EndpointEvent], *, total: int) -> list[Span]:
    """Endpointer events over a whole clip as speech spans (a span still open at the end closes there)."""
    spans: list[Span] = []
    start: int | None = None
    for event in events:
        if event.kind == "begin":
            start = event.sample
        elif start is not None:  # "end" closes the span; "cut" closes it and opens the next
            if event.sample > start:
                spans.append(Span(start, event.sample))
            start = event.sample if event.kind == "cut" else None
    if start is not None and total > start:
        spans.append(Span(start, total))
    return spans


def plan_chunks(spans: Sequence[Span], *, total: int, pad_sec: float = SPAN_PAD_SEC,
                max_gap_sec: float = MAX_GAP_SEC, max_chunk_sec: float = MAX_CHUNK_SEC) -> list[Span]:
    """Pad each span, then merge neighbours less than ``max_gap_sec`` apart while the merged chunk
    stays within ``max_chunk_sec``.

    Fewer, fuller chunks share the encoder's fixed padding better, and a longer silence is not worth
    encoding; a span longer than the cap is split at the cap.
    """
    pad = round(pad_sec * SAMPLE_RATE)
    gap = round(max_gap_sec * SAMPLE_RATE)
    cap = round(max_chunk_sec * SAMPLE_RATE)
    chunks: list[Span] = []
    for span in spans:
        start, end = max(0, span.start - pad), min(total, span.end + pad)
        if chunks:
            last = chunks[-1]
            start = max(start, last.end)  # padding must not make two chunks decode the same audio
            if start - last.end <= gap and end - last.start <= cap:
                chunks[-1] = Span(last.start, end)
                continue
        while end - start > cap:
            chunks.append(Span(start, start + cap))
            start += cap
        if end > start:
            chunks.append(Span(start, end))
    return chunks


class SpeechFinder:
    """Silero probabilities and the endpointer over consecutive windows of one clip.

    Not thread-safe; ``process`` is blocking (call it in the VAD executor, a window at a time, so
    streams sharing that executor wait for one window at most).
    """

    def __init__(self, settings: EndpointerSettings) -> None:
        self._vad = SileroStream()
        self._endpointer = Endpointer(settings)
        self._quiet = max(0.01, settings.threshold - NEG_THRESHOLD_GAP)
        self._events: list[EndpointEvent] = []

    def process(self, window: np.ndarray) -> None:
        for offset in range(0, window.size, RESET_SAMPLES):
            probs = self._vad.process(window[offset: offset + RESET_SAMPLES])
            self._events.extend(self._endpointer.push_all(probs))
            if not self._endpointer.in_speech and (probs.size == 0 or float(probs.max()) < self._quiet):
                # a silent stretch: start the next one fresh, or a soft onset after a long pause
                # is missed (the first words of a sentence after 10 s of silence, measured)
                self._vad.reset_state()

    def spans(self, *, total: int) -> list[Span]:
        return spans_from_events(self._events, total=total)


async def find_speech(samples: np.ndarray, *, settings: EndpointerSettings, executor: Executor | None,
                      window_samples: int = VAD_WINDOW_SAMPLES) -> list[Span]:
    """Speech spans of a 16 kHz float32 clip, one VAD window per executor call."""
    loop = asyncio.get_running_loop()
    finder = await loop.run_in_executor(executor, SpeechFinder, settings)
    for offset in range(0, samples.size, window_samples):
        await loop.run_in_executor(executor, finder.process, samples[offset: offset + window_samples])
    return finder.spans(total=samples.size)


@dataclass(frozen=True)
class ChunkDecode:
    """How to queue one clip's chunks: they share a stream id, so a cancelled call drops them all."""

    stream_id: str
    language: str | None
    word_timestamps: bool
    prompt: str | None = None
    in_flight: int = 4  # chunks queued or decoding at once, so streams' finals are not starved


async def decode_chunks(samples: np.ndarray, chunks: Sequence[Span], *, scheduler: DecodeScheduler,
                        plan: ChunkDecode,
                        on_ready: Callable[[int, DecodeOutcome], None] | None = None) -> list[DecodeOutcome]:
    """Decode every chunk through the shared scheduler, ``plan.in_flight`` at a time; outcomes in order.

    ``on_ready(index, outcome)`` runs on the event loop for each chunk in clip order, as soon as it
    and every chunk before it are decoded. Only the chunks in flight are copied out of ``samples``.
    """
    outcomes: list[DecodeOutcome | None] = [None] * len(chunks)
    active: dict[asyncio.Future[DecodeOutcome | None], int] = {}
    next_chunk = 0
    reported = 0
    try:
        while next_chunk < len(chunks) or active:
            while next_chunk < len(chunks) and len(active) < max(1, plan.in_flight):
                chunk = chunks[next_chunk]
                # a copy (at most 19 s, 1.2 MB), not a view: a decode worker keeps its last batch
                # until it takes the next one, and a view would keep the whole clip alive with it
                job = DecodeJob(stream_id=plan.stream_id, kind="final", audio=samples[chunk.start: chunk.end].copy(),
                                language=plan.language, word_timestamps=plan.word_timestamps,
                                initial_prompt=plan.prompt, utterance_index=next_chunk)
                active[await scheduler.submit_final(job)] = next_chunk
                next_chunk += 1
            done, _ = await asyncio.wait(active, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                index = active.pop(future)
                outcome = future.result()  # a ModelError from the batch surfaces here
                if outcome is None:
                    raise SttError(ErrorCode.INTERNAL, reason="an offline decode was dropped")
                outcomes[index] = outcome
            while reported < len(chunks) and (ready := outcomes[reported]) is not None:
                if on_ready is not None:
                    on_ready(reported, ready)
                reported += 1
    finally:
        if active:  # failed or cancelled midway: nobody will read the rest
            scheduler.cancel_stream(plan.stream_id)
    return [outcome for outcome in outcomes if outcome is not None]


def chunk_result(transcript: Transcript, chunk: Span, *, index: int, with_words: bool) -> RecognitionResult | None:
    """One final result for a decoded chunk, times in the clip's time; ``None`` when nothing was said."""
    text = transcript.text
    if not text:
        return None
    offset = chunk.start / SAMPLE_RATE
    words: tuple[Word, ...] = ()
    if with_words:
        words = tuple(Word(w.word, round(offset + w.start_sec, 3), round(offset + w.end_sec, 3), w.probability)
                      for w in transcript.words)
    return RecognitionResult(
        is_final=True, stable_text=text, unstable_text="", start_sec=round(offset, 3),
        end_sec=round(chunk.end / SAMPLE_RATE, 3), audio_processed_sec=round(chunk.end / SAMPLE_RATE, 3),
        utterance_index=index, confidence=confidence_from_logprob(transcript.avg_logprob), words=words,
        language=transcript.language, stability=1.0)
