"""StreamRecognizer and Engine without the Whisper model: real VAD, scripted decodes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import audio_fixtures as af
import numpy as np
import pytest
from engine_fakes import FakeBackend
from engine_streams import feed_all
from stt_server.config import ServerConfig
from stt_server.engine import (
    BufferLimitExceeded,
    Engine,
    ModelLoadError,
    RecognitionResult,
    SpeechEvent,
    StreamClosed,
    StreamOptions,
)
from stt_server.errors import ErrorCode, SttError
from stt_server.metrics import ServerMetrics

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima", "mike"]


def counting_text(seconds: float) -> str:
    """One more word per 0.3 s of audio: successive partials extend each other, as real ones mostly do."""
    return " ".join(WORDS[: max(1, min(len(WORDS), int(seconds / 0.3)))])


def make_config(**limits: Any) -> ServerConfig:
    return ServerConfig.model_validate({"limits": limits, "model": {"num_workers": 1}})


@pytest.fixture
def metrics() -> ServerMetrics:
    return ServerMetrics()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(counting_text)


@pytest.fixture
async def engine_factory(backend: FakeBackend, metrics: ServerMetrics) -> AsyncIterator[Callable[..., Any]]:
    engines: list[Engine] = []

    async def make(**limits: Any) -> Engine:
        engine = Engine(config=make_config(**limits), metrics=metrics, backend=backend)  # type: ignore[arg-type]
        await engine.start()
        engines.append(engine)
        return engine

    try:
        yield make
    finally:
        backend.gate.set()
        for engine in engines:
            await engine.stop()



def kinds(items: list[RecognitionResult | SpeechEvent]) -> list[str]:
    return [i.kind if isinstance(i, SpeechEvent) else ("final" if i.is_final else "partial") for i in items]


async def test_two_utterances_come_out_in_order_with_offsets(engine_factory: Callable[..., Any],
                                                             metrics: ServerMetrics) -> None:
    engine = await engine_factory()
    stream = engine.open_stream(session_id="s1", options=StreamOptions())
    speech = af.synthesize(af.SENTENCES[0])
    items = await feed_all(stream, af.speech_stream([af.SENTENCES[0], af.SENTENCES[0]], gap_sec=1.0), timeout=30)
    sequence = kinds(items)
    compact = [k for i, k in enumerate(sequence) if k != "partial" or sequence[i - 1] != "partial"]
    assert compact == ["speech_begin", "partial", "speech_end", "final"] * 2
    finals = [i for i in items if isinstance(i, RecognitionResult) and i.is_final]
    assert [f.utterance_index for f in finals] == [0, 1]
    assert finals[0].start_sec == pytest.approx(0.5, abs=0.35)
    assert finals[1].start_sec == pytest.approx(0.5 + speech.size / 16_000 + 1.0, abs=0.35)
    assert all(f.confidence > 0 and f.stability == 1.0 and f.unstable_text == "" for f in finals)
    processed = [i.audio_processed_sec for i in items if isinstance(i, RecognitionResult)]
    assert processed == sorted(processed)
    results = [i for i in items if isinstance(i, RecognitionResult)]
    assert stream.decode_count == len(results)
    assert stream.timing_totals.inference >= 0 and stream.timing_totals.total > 0
    assert metrics.results.labels(kind="final")._value.get() == 2
    assert metrics.vad_triggers.labels(event="speech_begin")._value.get() == 2
    await stream.close()
    assert engine.pending == 0 and engine.buffer_bytes_total == 0
    assert metrics.vad_active_utterances._value.get() == 0


async def test_stable_text_only_grows_within_an_utterance(engine_factory: Callable[..., Any]) -> None:
    engine = await engine_factory()
    stream = engine.open_stream(session_id="s1", options=StreamOptions())
    items = await feed_all(stream, af.speech_stream([af.SENTENCES[1]]), timeout=30)
    results = [i for i in items if isinstance(i, RecognitionResult)]
    assert sum(not r.is_final for r in results) >= 3
    for earlier, later in itertools.pairwise(results):
        if earlier.utterance_index == later.utterance_index:
            assert later.stable_text.startswith(earlier.stable_text)
    assert results[-1].is_final and results[-1].stable_text.startswith("alpha bravo charlie")


async def test_no_partials_without_interim_results(engine_factory: Callable[..., Any], backend: FakeBackend) -> None:
    engine = await engine_factory()
    stream = engine.open_stream(session_id="s1", options=StreamOptions(interim_results=False))
    items = await feed_all(stream, af.speech_stream([af.SENTENCES[0]]), timeout=30)
    assert kinds(items) == ["speech_begin", "speech_end", "final"]
    assert len(backend.calls) == 1


async def test_single_utterance_ends_after_the_first_final(engine_factory: Callable[..., Any]) -> None:
    engine = await engine_factory()
    stream = engine.open_stream(session_id="s1", options=StreamOptions(single_utterance=True))
    items = await feed_all(stream, af.speech_stream([af.SENTENCES[0], af.SENTENCES[2]]), timeout=30)
    assert kinds(items)[-3:] == ["speech_end", "final", "end_of_single_utterance"]
    assert sum(k == "final" for k in kinds(items)) == 1
    await stream.close()


async def test_finish_finalises_an_utterance_still_open(engine_factory: Callable[..., Any],
                                                        metrics: ServerMetrics) -> None:
    engine = await engine_factory()
    stream = engine.open_stream(session_id="s1", options=StreamOptions())
    audio = np.concatenate([af.silence(0.5), af.synthesize(af.SENTENCES[0])[:24_000]])  # cut mid-speech
    items = await feed_all(stream, audio, timeout=30)
    assert kinds(items)[-2:] == ["speech_end", "final"]
    assert metrics.vad_active_utterances._value.get() == 0
    with pytest.raises(StreamClosed):
        await stream.feed(af.silence(0.1))


async def test_word_offsets_are_in_stream_time(engine_factory: Callable[..., Any]) -> None:
    engine = await engine_factory()
    stream = engine.open_stream(session_id="s1", options=StreamOptions(word_time_offsets=True))
    items = await feed_all(stream, af.speech_stream([af.SENTENCES[0]], lead_sec=2.0), timeout=30)
    final = next(i for i in items if isinstance(i, RecognitionResult) and i.is_final)
    assert final.words and final.words[0].start_sec == pytest.approx(final.start_sec)
    assert final.start_sec > 1.5


async def test_stream_buffer_cap_raises_a_typed_error(engine_factory: Callable[..., Any], backend: FakeBackend,
                                                      metrics: ServerMetrics) -> None:
    engine = await engine_factory(max_stream_buffer_bytes=64_000)  # 2 s of audio
    backend.gate.clear()  # finals hold their audio while the model is busy
    stream = engine.open_stream(session_id="s1", options=StreamOptions(interim_results=False))
    with pytest.raises(BufferLimitExceeded) as caught:
        for chunk in af.chunks(af.speech_stream([af.SENTENCES[0]] * 3, gap_sec=0.8)):
            await stream.feed(chunk)
    assert caught.value.kind == "stream" and caught.value.code is ErrorCode.STREAM_BUFFER_FULL
    await stream.close()
    assert engine.buffer_bytes_total == 0 and metrics.stream_buffers() == {}


async def test_total_buffer_cap_counts_every_stream(engine_factory: Callable[..., Any]) -> None:
    engine = await engine_factory(max_total_buffer_bytes=48_000, max_stream_buffer_bytes=40_000)
    speech = af.speech_stream([af.SENTENCES[0]], lead_sec=0.3)
    first = engine.open_stream(session_id="a", options=StreamOptions())
    second = engine.open_stream(session_id="b", options=StreamOptions())
    for chunk in af.chunks(speech[:20_800]):
        await first.feed(chunk)
    with pytest.raises(BufferLimitExceeded) as caught:
        for chunk in af.chunks(speech[:20_800]):
            await second.feed(chunk)
    assert caught.value.kind == "total"
    await first.close()
    await second.close()
    assert engine.buffer_bytes_total == 0


async def test_close_mid_decode_cancels_and_leaks_nothing(engine_factory: Callable[..., Any],
                                                          backend: FakeBackend, metrics: ServerMetrics) -> None:
    engine = await engine_factory()
    backend.gate.clear()
    stream = engine.open_stream(session_id="s1", options=StreamOptions())
    other = engine.open_stream(session_id="s2", options=StreamOptions(interim_results=False))
    items: list[object] = []

    async def consume() -> None:
        async for item in stream.events():
            items.append(item)

    consumer = asyncio.create_task(consume())
    for chunk in af.chunks(af.speech_stream([af.SENTENCES[0], af.SENTENCES[2]], gap_sec=0.8)):
        await stream.feed(chunk)
    assert engine.pending > 0 and engine.buffer_bytes_total > 0
    await stream.close()
    await asyncio.wait_for(consumer, timeout=5)  # events() ends on close
    backend.gate.set()
    other_items = await feed_all(other, af.speech_stream([af.SENTENCES[0]]), timeout=30)
    assert kinds(other_items)[-1] == "final"  # the other stream is unaffected
    await other.close()
    for _ in range(100):
        if engine.pending == 0:
            break
        await asyncio.sleep(0.02)
    assert engine.pending == 0 and engine.buffer_bytes_total == 0 and engine.open_streams == 0
    seeds = metrics.seed.values()
    assert seeds["stt_decode_cancelled"] + seeds["stt_decode_orphaned"] >= 1
    assert metrics.decode_pending._value.get() == 0 and metrics.vad_active_utterances._value.get() == 0


@pytest.mark.parametrize(("options", "words"), [
    (StreamOptions(end_silence_ms=10), "end_silence_ms"),
    (StreamOptions(max_utterance_sec=60), "max_utterance_sec"),
    (StreamOptions(speech_start_ms=-1), "speech_start_ms"),
    (StreamOptions(language="de"), "language"),
])
async def test_bad_stream_options_are_invalid_config(engine_factory: Callable[..., Any], options: StreamOptions,
                                                     words: str) -> None:
    engine = await engine_factory()
    with pytest.raises(SttError) as caught:
        engine.open_stream(session_id="s1", options=options)
    assert caught.value.code is ErrorCode.INVALID_CONFIG and words in caught.value.message


async def test_one_stream_per_session_id(engine_factory: Callable[..., Any]) -> None:
    engine = await engine_factory()
    stream = engine.open_stream(session_id="s1", options=StreamOptions())
    with pytest.raises(SttError) as caught:
        engine.open_stream(session_id="s1", options=StreamOptions())
    assert caught.value.code is ErrorCode.SESSION_IN_USE
    await stream.close()
    engine.open_stream(session_id="s1", options=StreamOptions())


async def test_recognize_whole_clip_and_its_errors(engine_factory: Callable[..., Any], metrics: ServerMetrics) -> None:
    engine = await engine_factory()
    results = await engine.recognize(af.synthesize(af.SENTENCES[0]), options=StreamOptions())
    assert len(results) == 1 and results[0].is_final and results[0].stable_text
    assert metrics.decode_phase_seconds.labels(phase="total", kind="offline")._sum.get() > 0
    with pytest.raises(SttError) as caught:
        await engine.recognize(np.zeros(0, np.float32), options=StreamOptions())
    assert caught.value.code is ErrorCode.EMPTY_STREAM


async def test_not_ready_before_start_and_load_errors_reach_health(metrics: ServerMetrics) -> None:
    config = ServerConfig.model_validate({"model": {"name": "large-v3"}})
    engine = Engine(config=config, metrics=metrics)
    with pytest.raises(SttError) as caught:
        engine.open_stream(session_id="s1", options=StreamOptions())
    assert caught.value.code is ErrorCode.NOT_READY
    with pytest.raises(ModelLoadError, match="never downloads"):
        await engine.start()
    assert not engine.healthy and "never downloads" in engine.health_reasons[0]
    await engine.stop()


async def test_a_failing_model_makes_the_engine_unhealthy_until_it_recovers(
        engine_factory: Callable[..., Any], backend: FakeBackend) -> None:
    engine = await engine_factory()
    assert engine.healthy and engine.health_reasons == []
    backend.fail_with = RuntimeError("CUDA out of memory")
    for _ in range(3):
        with pytest.raises(SttError) as caught:
            await engine.recognize(af.synthesize(af.SENTENCES[0]), options=StreamOptions())
        assert caught.value.code is ErrorCode.MODEL_ERROR
    assert not engine.healthy and "CUDA out of memory" in engine.health_reasons[0]
    backend.fail_with = None
    await engine.recognize(af.synthesize(af.SENTENCES[0]), options=StreamOptions())
    assert engine.healthy
