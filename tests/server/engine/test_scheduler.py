"""DecodeScheduler: priorities, shedding, coalescing, batching, cancellation, timing (fake backend)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from engine_fakes import FakeBackend
from stt_server.engine.backend import FINAL_MARGIN_FRAMES, PARTIAL_MARGIN_FRAMES
from stt_server.engine.errors import DecodeQueueFull, ModelError
from stt_server.engine.scheduler import DecodeJob, DecodeKind, DecodeScheduler
from stt_server.errors import ErrorCode
from stt_server.metrics import ServerMetrics

P, F = f"batch:{PARTIAL_MARGIN_FRAMES}", f"batch:{FINAL_MARGIN_FRAMES}"


def job(stream: str, kind: DecodeKind, seconds: float = 1.0, **extra: object) -> DecodeJob:
    return DecodeJob(stream_id=stream, kind=kind, audio=np.zeros(int(seconds * 16_000), np.float32), **extra)  # type: ignore[arg-type]


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def metrics() -> ServerMetrics:
    return ServerMetrics()


@pytest.fixture
async def scheduler(backend: FakeBackend, metrics: ServerMetrics) -> AsyncIterator[DecodeScheduler]:
    sched = DecodeScheduler(backend, metrics=metrics, max_pending=4, max_batch_size=3, num_workers=1,
                            final_wait_sec=0.5)
    await sched.start()
    try:
        yield sched
    finally:
        backend.gate.set()
        await sched.stop()


async def occupy(backend: FakeBackend, scheduler: DecodeScheduler) -> asyncio.Future[object]:
    """Block the only worker on one running final so later submissions queue up."""
    backend.gate.clear()
    future = await scheduler.submit_final(job("busy", "final"))
    await asyncio.to_thread(backend.entered.acquire)
    return future


def counter(metrics: ServerMetrics, name: str) -> float:
    return metrics.seed.values()[name]


async def test_finals_run_before_partials_and_batch_together(backend: FakeBackend, scheduler: DecodeScheduler,
                                                             metrics: ServerMetrics) -> None:
    busy = await occupy(backend, scheduler)
    partial = await scheduler.submit_partial(job("a", "partial"))
    final_b = await scheduler.submit_final(job("b", "final"))
    final_c = await scheduler.submit_final(job("c", "final"))
    assert scheduler.pending == 4 and metrics.decode_pending._value.get() == 4
    backend.gate.set()
    outcomes = await asyncio.gather(busy, partial, final_b, final_c)
    assert backend.calls == [[F], [F, F, P]]  # one batch: finals first, then the partial
    assert all(o is not None and o.batch_size in (1, 3) for o in outcomes)
    assert outcomes[1].queue_wait > 0 and outcomes[1].inference >= 0  # type: ignore[union-attr]
    assert scheduler.pending == 0 and metrics.decode_pending._value.get() == 0


async def test_newer_partial_replaces_the_queued_one_of_the_same_stream(
        backend: FakeBackend, scheduler: DecodeScheduler, metrics: ServerMetrics) -> None:
    busy = await occupy(backend, scheduler)
    old = await scheduler.submit_partial(job("a", "partial", 1.0))
    new = await scheduler.submit_partial(job("a", "partial", 1.5))
    assert scheduler.pending == 2
    assert old.done() and old.result() is None
    backend.gate.set()
    await busy
    outcome = await new
    assert outcome is not None and outcome.audio_seconds == pytest.approx(1.5)
    assert counter(metrics, "stt_partial_drop_count") == 1


async def test_saturated_queue_drops_partials_never_finals(backend: FakeBackend, scheduler: DecodeScheduler,
                                                           metrics: ServerMetrics) -> None:
    busy = await occupy(backend, scheduler)
    partials = [await scheduler.submit_partial(job(f"p{i}", "partial")) for i in range(3)]
    assert scheduler.pending == 4
    late = await scheduler.submit_partial(job("late", "partial"))
    assert late.done() and late.result() is None  # queue full: the new partial is shed
    finals = [await scheduler.submit_final(job(f"f{i}", "final")) for i in range(3)]  # each evicts a partial
    assert scheduler.pending == 4
    assert all(p.done() and p.result() is None for p in partials)
    assert counter(metrics, "stt_partial_drop_count") == 4
    backend.gate.set()
    results = await asyncio.gather(busy, *finals)
    assert all(r is not None for r in results)


async def test_a_final_waits_for_room_then_fails_with_the_catalogue_error(
        backend: FakeBackend, scheduler: DecodeScheduler, metrics: ServerMetrics) -> None:
    busy = await occupy(backend, scheduler)
    finals = [await scheduler.submit_final(job(f"f{i}", "final")) for i in range(3)]
    waiting = asyncio.create_task(scheduler.submit_final(job("waits", "final")))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # no partial to evict: the final waits rather than being dropped
    with pytest.raises(DecodeQueueFull) as caught:
        await waiting  # final_wait_sec=0.5 passes while the model stays busy
    assert caught.value.code is ErrorCode.DECODE_QUEUE_FULL
    backend.gate.set()
    await asyncio.gather(busy, *finals)
    # With room again a final goes straight through.
    assert await (await scheduler.submit_final(job("after", "final"))) is not None


async def test_a_waiting_final_is_admitted_when_a_decode_finishes(backend: FakeBackend,
                                                                  scheduler: DecodeScheduler) -> None:
    busy = await occupy(backend, scheduler)
    finals = [await scheduler.submit_final(job(f"f{i}", "final")) for i in range(3)]
    waiting = asyncio.create_task(scheduler.submit_final(job("waits", "final")))
    await asyncio.sleep(0.05)
    backend.gate.set()
    assert await (await waiting) is not None
    await asyncio.gather(busy, *finals)


async def test_closing_a_stream_cancels_queued_and_orphans_running(backend: FakeBackend,
                                                                   scheduler: DecodeScheduler,
                                                                   metrics: ServerMetrics) -> None:
    backend.gate.clear()
    running = await scheduler.submit_final(job("gone", "final"))
    await asyncio.to_thread(backend.entered.acquire)
    queued = [await scheduler.submit_final(job("gone", "final")), await scheduler.submit_partial(job("gone", "partial"))]
    other = await scheduler.submit_final(job("stays", "final"))
    assert scheduler.cancel_stream("gone") == 2
    assert all(f.cancelled() for f in queued)
    assert scheduler.pending == 2  # the running one and the other stream's
    backend.gate.set()
    assert await other is not None
    await asyncio.wait([running])
    assert running.cancelled()
    assert counter(metrics, "stt_decode_cancelled") == 2
    assert counter(metrics, "stt_decode_orphaned") == 1
    assert scheduler.pending == 0


async def test_offline_jobs_run_alone_through_transcribe_word_finals_batch(
        backend: FakeBackend, scheduler: DecodeScheduler) -> None:
    busy = await occupy(backend, scheduler)
    offline = await scheduler.submit_final(job("a", "offline"))
    words = await scheduler.submit_final(job("b", "final", word_timestamps=True))
    plain = await scheduler.submit_final(job("c", "final"))
    backend.gate.set()
    await asyncio.gather(busy, offline, words, plain)
    assert backend.calls[1:] == [["single"], [F, F]]


async def test_batches_are_capped_at_max_batch_size(backend: FakeBackend, scheduler: DecodeScheduler) -> None:
    scheduler.max_pending = 10
    busy = await occupy(backend, scheduler)
    futures = [await scheduler.submit_partial(job(f"s{i}", "partial")) for i in range(5)]
    backend.gate.set()
    await asyncio.gather(busy, *futures)
    assert [len(call) for call in backend.calls[1:]] == [3, 2]


async def test_model_failure_reaches_every_job_in_the_batch(backend: FakeBackend, scheduler: DecodeScheduler) -> None:
    busy = await occupy(backend, scheduler)
    backend.fail_with = RuntimeError("boom")
    a = await scheduler.submit_final(job("a", "final"))
    backend.gate.set()
    for future in (busy, a):
        with pytest.raises(ModelError, match="boom"):
            await future
    assert scheduler.pending == 0


async def test_queued_work_is_split_over_idle_workers(backend: FakeBackend, metrics: ServerMetrics) -> None:
    sched = DecodeScheduler(backend, metrics=metrics, max_pending=8, max_batch_size=8, num_workers=2)
    await sched.start()
    try:
        backend.gate.clear()
        futures = [await sched.submit_partial(job(f"s{i}", "partial")) for i in range(4)]
        for _ in range(2):
            await asyncio.to_thread(backend.entered.acquire)
        assert sorted(len(call) for call in backend.calls) == [2, 2]  # two half batches, in parallel
        backend.gate.set()
        outcomes = await asyncio.gather(*futures)
        assert {o.batch_size for o in outcomes if o is not None} == {2}
    finally:
        backend.gate.set()
        await sched.stop()


async def test_first_partials_jump_refreshes_and_survive_saturation(backend: FakeBackend,
                                                                    scheduler: DecodeScheduler) -> None:
    busy = await occupy(backend, scheduler)
    refreshes = [await scheduler.submit_partial(job(f"r{i}", "partial")) for i in range(3)]
    first = await scheduler.submit_partial(job("new", "partial", 2.0, first=True))  # queue full
    assert not first.done()  # it took the place of the oldest refresh
    assert refreshes[0].done() and refreshes[0].result() is None
    final = await scheduler.submit_final(job("f", "final", 3.0))  # evicts a refresh, not the first partial
    assert refreshes[1].result() is None and not first.done()
    backend.gate.set()
    outcomes = await asyncio.gather(busy, final, first, refreshes[2])
    # Order inside the batch: the final, then the first partial, then the remaining refresh.
    assert [round(o.audio_seconds) for o in outcomes[1:] if o is not None] == [3, 2, 1]
    assert backend.calls[1] == [F, P, P]


async def test_stop_releases_every_waiter(backend: FakeBackend, metrics: ServerMetrics) -> None:
    sched = DecodeScheduler(backend, metrics=metrics, max_pending=4, max_batch_size=2, num_workers=1)
    await sched.start()
    backend.gate.clear()
    running = await sched.submit_final(job("a", "final"))
    await asyncio.to_thread(backend.entered.acquire)
    queued = await sched.submit_partial(job("b", "partial"))
    await sched.stop()
    backend.gate.set()
    assert running.cancelled() and queued.cancelled()
    assert sched.pending == 0 and metrics.decode_pending._value.get() == 0


async def test_a_first_partial_is_queued_over_the_cap_when_no_refresh_can_make_room(
        backend: FakeBackend, scheduler: DecodeScheduler, metrics: ServerMetrics) -> None:
    busy = await occupy(backend, scheduler)
    finals = [await scheduler.submit_final(job(f"f{i}", "final")) for i in range(3)]  # full: 1 running + 3
    late_refresh = await scheduler.submit_partial(job("r", "partial"))
    first = await scheduler.submit_partial(job("new", "partial", first=True))
    assert late_refresh.done() and late_refresh.result() is None  # refreshes are still shed
    assert not first.done() and scheduler.pending == 5  # the first partial waits in line, one over the cap
    backend.gate.set()
    outcomes = await asyncio.gather(busy, *finals, first)
    assert all(o is not None for o in outcomes)
    assert counter(metrics, "stt_partial_drop_count") == 1


async def test_a_new_utterances_first_partial_does_not_inherit_a_refresh_place(scheduler: DecodeScheduler,
                                                                            backend: FakeBackend) -> None:
    scheduler.max_batch_size = 1  # one call per job: the calls' order is the queue's
    busy = await occupy(backend, scheduler)
    other = await scheduler.submit_partial(job("c", "partial", 2.0))  # stream c's refresh
    old = await scheduler.submit_partial(job("a", "partial", 3.0))  # stream a's refresh, behind it
    renewed = await scheduler.submit_partial(job("a", "partial", 1.0, first=True))  # a's next utterance
    assert old.done() and old.result() is None  # replaced by the newer audio
    backend.gate.set()
    _, first, refresh = await asyncio.gather(busy, renewed, other)
    # The first partial goes ahead of c's refresh instead of taking a's old place behind it.
    assert first is not None and refresh is not None and first.finished_at < refresh.finished_at


async def test_a_long_final_and_short_partials_go_to_separate_calls(backend: FakeBackend,
                                                                    scheduler: DecodeScheduler) -> None:
    busy = await occupy(backend, scheduler)
    long_final = await scheduler.submit_final(job("f", "final", 12.0))  # 1700 padded frames
    partials = [await scheduler.submit_partial(job(f"p{i}", "partial", 1.0)) for i in range(2)]  # 400 each
    backend.gate.set()
    await asyncio.gather(busy, long_final, *partials)
    # Padding both 1 s partials to the final's 17 s would quadruple what they cost the encoder.
    assert backend.calls[1:] == [[F], [P, P]]
