"""The engine end to end on the bundled tiny.en (one model load per session)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import audio_fixtures as af
import pytest
from engine_streams import feed_all
from stt_server.config import ServerConfig
from stt_server.engine import Engine, RecognitionResult, SpeechEvent, StreamOptions
from stt_server.metrics import ServerMetrics

pytestmark = pytest.mark.slow


@pytest.fixture
async def engine_factory(whisper_backend: Any) -> AsyncIterator[Callable[..., Any]]:
    engines: list[Engine] = []

    async def make(**limits: Any) -> Engine:
        config = ServerConfig.model_validate({"limits": limits})
        engine = Engine(config=config, metrics=ServerMetrics(), backend=whisper_backend)
        await engine.start()
        engines.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in engines:
            await engine.stop()



def results(items: list[RecognitionResult | SpeechEvent]) -> list[RecognitionResult]:
    return [i for i in items if isinstance(i, RecognitionResult)]


async def test_two_sentences_stream_partials_then_accurate_finals(engine_factory: Callable[..., Any]) -> None:
    engine = await engine_factory()
    stream = engine.open_stream(session_id="s1", options=StreamOptions())
    sentences = af.SENTENCES[:2]
    items = await feed_all(stream, af.speech_stream(sentences, gap_sec=1.0))
    finals = [r for r in results(items) if r.is_final]
    assert len(finals) == 2
    for index, (sentence, final) in enumerate(zip(sentences, finals)):
        utterance = [r for r in results(items) if r.utterance_index == index]
        assert not utterance[0].is_final, "a partial comes before the final"
        for earlier, later in itertools.pairwise(utterance):
            assert later.stable_text.startswith(earlier.stable_text), (earlier, later)
        assert af.word_error_rate(sentence, final.stable_text) <= 0.1, final.stable_text
        assert 0.5 < final.confidence <= 1.0
    await stream.close()
    assert engine.pending == 0 and engine.buffer_bytes_total == 0


async def test_saturation_drops_partials_but_every_final_arrives(engine_factory: Callable[..., Any]) -> None:
    engine = await engine_factory(max_decode_pending=2)
    streams = [engine.open_stream(session_id=f"s{i}", options=StreamOptions()) for i in range(6)]
    audio = af.speech_stream(af.SENTENCES[:2], gap_sec=0.8)
    outputs = await asyncio.gather(*(feed_all(s, audio) for s in streams))
    for items in outputs:
        finals = [r for r in results(items) if r.is_final]
        assert len(finals) == 2
        assert all(af.word_error_rate(s, f.stable_text) <= 0.1 for s, f in zip(af.SENTENCES[:2], finals))
    assert engine.metrics.seed.values()["stt_partial_drop_count"] > 0
    for stream in streams:
        await stream.close()
    assert engine.pending == 0 and engine.buffer_bytes_total == 0


async def test_closing_mid_utterance_cancels_decodes_and_frees_buffers(engine_factory: Callable[..., Any]) -> None:
    engine = await engine_factory()
    stream = engine.open_stream(session_id="gone", options=StreamOptions())
    audio = af.speech_stream(af.SENTENCES[1:3], gap_sec=0.6)
    for chunk in af.chunks(audio[: audio.size * 3 // 4]):
        await stream.feed(chunk)
    assert engine.buffer_bytes_total > 0
    await stream.close()
    assert engine.buffer_bytes_total == 0 and engine.open_streams == 0
    for _ in range(200):  # a decode already inside the model finishes as an orphan
        if engine.pending == 0:
            break
        await asyncio.sleep(0.025)
    assert engine.pending == 0
    assert engine.metrics.decode_pending._value.get() == 0
    assert engine.metrics.stream_buffers() == {}


async def test_recognize_matches_faster_whisper_directly(engine_factory: Callable[..., Any],
                                                         whisper_backend: Any) -> None:
    engine = await engine_factory()
    audio = af.speech_stream(af.SENTENCES[2:4], gap_sec=0.7)
    got = await engine.recognize(audio, options=StreamOptions(word_time_offsets=True))
    direct = whisper_backend.transcribe(audio, language="en", word_timestamps=True)
    assert " ".join(r.stable_text for r in got) == direct.text
    assert af.word_error_rate(" ".join(af.SENTENCES[2:4]), direct.text) <= 0.1
    words = [w for r in got for w in r.words]
    assert words and [w.start_sec for w in words] == sorted(w.start_sec for w in words)
    assert engine.info()["compute_type"] in ("int8", "float16")


async def test_streaming_finals_carry_word_offsets_in_stream_time(engine_factory: Callable[..., Any]) -> None:
    engine = await engine_factory()
    stream = engine.open_stream(session_id="w", options=StreamOptions(word_time_offsets=True))
    items = await feed_all(stream, af.speech_stream(af.SENTENCES[:2], gap_sec=1.0, lead_sec=1.0))
    finals = [r for r in results(items) if r.is_final]
    assert len(finals) == 2
    for final in finals:
        assert " ".join(w.word for w in final.words) == final.stable_text
        assert final.start_sec <= final.words[0].start_sec < final.words[-1].end_sec <= final.end_sec + 0.5
    assert finals[1].words[0].start_sec > finals[0].words[-1].end_sec
    await stream.close()
