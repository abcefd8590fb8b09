"""Unary recognize on the bundled tiny.en: VAD-gated, chunked, batched (issue 13 defects 3-4, issue 14 section 3)."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import audio_fixtures as af
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from stt_server.config import ServerConfig
from stt_server.engine import Engine, StreamOptions
from stt_server.engine.audio import sanitize_float
from stt_server.metrics import ServerMetrics

pytestmark = pytest.mark.slow


@pytest.fixture
async def engine(whisper_backend: Any) -> AsyncIterator[Engine]:
    engine = Engine(config=ServerConfig(), metrics=ServerMetrics(CollectorRegistry()), backend=whisper_backend)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


async def test_silence_and_low_noise_give_no_text(engine: Engine) -> None:
    # Before the VAD gate, 131 s of silence came back as "you" four times.
    assert await engine.recognize(af.silence(131.0), options=StreamOptions()) == []
    assert await engine.recognize(af.noise(30.0, level=0.003), options=StreamOptions()) == []
    assert engine.pending == 0


async def test_batched_chunks_read_like_faster_whisper_sequential(engine: Engine, whisper_backend: Any) -> None:
    # Two groups of sentences 8 s apart: two chunks, decoded through the scheduler's batches.
    sentences = af.SENTENCES
    audio = np.concatenate([af.speech_stream(sentences[:2], gap_sec=0.8, tail_sec=8.0),
                            af.speech_stream(sentences[2:], gap_sec=0.8)])
    got = await engine.recognize(audio, options=StreamOptions(word_time_offsets=True))
    sequential = whisper_backend.transcribe(audio, language="en").text
    reference = " ".join(sentences)
    batched = " ".join(r.text for r in got)
    assert len(got) == 2
    assert af.word_error_rate(reference, batched) <= af.word_error_rate(reference, sequential) + 0.03, batched
    assert af.word_error_rate(reference, batched) <= 0.1, batched
    assert got[0].end_sec < 12.0 < got[1].start_sec  # results sit where their speech is
    words = [w for r in got for w in r.words]
    assert [w.start_sec for w in words] == sorted(w.start_sec for w in words)
    assert words[-1].end_sec <= audio.size / 16_000


async def test_a_huge_float_clip_decodes_like_the_clean_one(engine: Engine) -> None:
    # Issue 13 defect 3: at 1e30 the features overflowed and the decode looped on "!!!!" for ~25 s.
    speech = af.speech_stream(af.SENTENCES[:1])
    huge = sanitize_float(speech * np.float32(1e30))
    [result] = await engine.recognize(huge, options=StreamOptions())
    assert af.word_error_rate(af.SENTENCES[0], result.text) <= 0.1, result.text


async def test_a_long_clip_is_decoded_without_whole_clip_copies(engine: Engine) -> None:
    # Ten minutes, one sentence: the old whole-file decode built log-mel features (and STFT frames)
    # for all ten minutes, several times the clip's own 38 MB.
    audio = af.silence(600.0)
    sentence = af.synthesize(af.SENTENCES[0])
    audio[16_000 * 300: 16_000 * 300 + sentence.size] = sentence
    tracemalloc.start()
    try:
        results = await engine.recognize(audio, options=StreamOptions())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(results) == 1 and 299.0 <= results[0].start_sec <= 302.0
    assert af.word_error_rate(af.SENTENCES[0], results[0].text) <= 0.1
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB during recognize of a 38 MB clip"
