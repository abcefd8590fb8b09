"""Offline Recognize planning: VAD events -> speech spans -> decode chunks, and their decoding (no model)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import weakref
from collections.abc import AsyncIterator

import numpy as np
import pytest
from engine_fakes import FakeBackend
from prometheus_client import CollectorRegistry
from stt_server.engine.backend import Transcript, TranscriptSegment, TranscriptWord
from stt_server.engine.offline import (
    ChunkDecode,
    Span,
    chunk_result,
    decode_chunks,
    plan_chunks,
    spans_from_events,
)
from stt_server.engine.scheduler import DecodeOutcome, DecodeScheduler
from stt_server.engine.vad import EndpointEvent
from stt_server.metrics import ServerMetrics

SR = 16_000


def sec(seconds: float) -> int:
    return round(seconds * SR)


def test_events_become_spans_and_an_open_span_closes_at_the_end() -> None:
    events = [EndpointEvent("begin", sec(1)), EndpointEvent("end", sec(3)),
              EndpointEvent("begin", sec(5)), EndpointEvent("cut", sec(20)), EndpointEvent("end", sec(22)),
              EndpointEvent("begin", sec(30))]
    assert spans_from_events(events, total=sec(31)) == [
        Span(sec(1), sec(3)), Span(sec(5), sec(20)), Span(sec(20), sec(22)), Span(sec(30), sec(31))]
    assert spans_from_events([], total=sec(131)) == []


def test_chunks_pad_merge_close_neighbours_and_never_overlap() -> None:
    spans = [Span(sec(1), sec(3)), Span(sec(4), sec(6)), Span(sec(20), sec(22))]
    chunks = plan_chunks(spans, total=sec(23), pad_sec=0.25, max_gap_sec=3.0, max_chunk_sec=19.0)
    # the first two are 1 s apart (merged); the third starts 14 s later (its own chunk)
    assert chunks == [Span(sec(0.75), sec(6.25)), Span(sec(19.75), sec(22.25))]
    touching = plan_chunks([Span(0, sec(2)), Span(sec(2.1), sec(4))], total=sec(4), max_chunk_sec=3.0)
    assert all(a.end <= b.start for a, b in itertools.pairwise(touching))
    assert touching[0].start == 0 and touching[-1].end == sec(4)


def test_chunks_stay_within_the_cap() -> None:
    spans = [Span(sec(i * 5), sec(i * 5 + 4)) for i in range(12)]  # 4 s of speech every 5 s
    chunks = plan_chunks(spans, total=sec(60), max_chunk_sec=19.0)
    assert all(c.seconds <= 19.0 for c in chunks)
    assert len(chunks) == 4
    long = plan_chunks([Span(0, sec(50))], total=sec(50), max_chunk_sec=19.0)
    assert [c.seconds for c in long] == [19.0, 19.0, 12.0]


def test_chunk_result_is_in_clip_time_and_empty_text_is_dropped() -> None:
    words = (TranscriptWord("hello", 0.1, 0.4, 0.9), TranscriptWord("there", 0.5, 0.8, 0.8))
    transcript = Transcript((TranscriptSegment("hello there", 0.0, 1.0, -0.2, words),), "en")
    result = chunk_result(transcript, Span(sec(10), sec(11)), index=3, with_words=True)
    assert result is not None
    assert (result.text, result.start_sec, result.end_sec, result.utterance_index) == ("hello there", 10.0, 11.0, 3)
    assert [(w.word, w.start_sec) for w in result.words] == [("hello", 10.1), ("there", 10.5)]
    assert chunk_result(Transcript((), "en"), Span(0, SR), index=0, with_words=False) is None


@pytest.fixture
async def scheduler() -> AsyncIterator[tuple[DecodeScheduler, FakeBackend]]:
    backend = FakeBackend()
    sched = DecodeScheduler(backend, metrics=ServerMetrics(CollectorRegistry()), max_pending=16, max_batch_size=4,
                            num_workers=2, final_wait_sec=2.0)
    await sched.start()
    try:
        yield sched, backend
    finally:
        backend.gate.set()
        await sched.stop()


async def test_chunks_decode_in_order_with_a_bounded_number_in_flight(
        scheduler: tuple[DecodeScheduler, FakeBackend]) -> None:
    sched, backend = scheduler
    samples = np.zeros(sec(60), np.float32)
    chunks = [Span(sec(i * 6), sec(i * 6 + 5)) for i in range(10)]
    seen: list[int] = []
    most_pending = 0

    def ready(index: int, outcome: DecodeOutcome) -> None:
        nonlocal most_pending
        most_pending = max(most_pending, sched.pending)
        seen.append(index)

    outcomes = await decode_chunks(samples, chunks, scheduler=sched, plan=ChunkDecode(
        stream_id="r1", language="en", word_timestamps=False, in_flight=3), on_ready=ready)
    assert seen == list(range(10))
    assert [o.audio_seconds for o in outcomes] == [5.0] * 10
    assert most_pending <= 3
    assert sum(len(call) for call in backend.calls) == 10
    assert sched.pending == 0


async def test_a_cancelled_recognize_drops_its_queued_chunks(scheduler: tuple[DecodeScheduler, FakeBackend]) -> None:
    sched, backend = scheduler
    backend.gate.clear()  # the model is busy: chunks queue up
    samples = np.zeros(sec(60), np.float32)
    chunks = [Span(sec(i * 6), sec(i * 6 + 5)) for i in range(10)]
    task = asyncio.create_task(decode_chunks(samples, chunks, scheduler=sched, plan=ChunkDecode(
        stream_id="r2", language="en", word_timestamps=False, in_flight=4)))
    await asyncio.to_thread(backend.entered.acquire)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sched.queued == 0  # nothing of r2 is left to decode
    backend.gate.set()
    async with asyncio.timeout(5):
        while sched.pending:
            await asyncio.sleep(0.01)


async def test_the_clip_is_not_kept_alive_after_the_call(scheduler: tuple[DecodeScheduler, FakeBackend]) -> None:
    # A decode worker keeps its last batch until it takes the next one; chunks that were views of
    # the clip kept the whole clip (115 MB for 30 minutes) alive after the call returned.
    sched, _ = scheduler
    samples = np.zeros(sec(60), np.float32)
    clip = weakref.ref(samples)
    await decode_chunks(samples, [Span(0, sec(5)), Span(sec(10), sec(15))], scheduler=sched,
                        plan=ChunkDecode(stream_id="r3", language="en", word_timestamps=False))
    del samples
    gc.collect()
    assert clip() is None
