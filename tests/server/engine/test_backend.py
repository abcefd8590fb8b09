"""WhisperBackend: model resolution (no model needed) and batched decodes (bundled tiny.en)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import audio_fixtures as af
import pytest
from stt_server.engine.backend import (
    FINAL_MARGIN_FRAMES,
    BatchItem,
    resolve_compute_type,
    resolve_device,
    resolve_model_path,
)
from stt_server.engine.errors import ModelLoadError


def test_bundled_tiny_en_resolves_to_a_local_directory() -> None:
    assert Path(resolve_model_path(name="tiny.en", path=None)).is_dir()


def test_a_named_model_that_is_not_local_is_refused_with_a_remedy() -> None:
    with pytest.raises(ModelLoadError) as caught:
        resolve_model_path(name="large-v3", path=None)
    assert "never downloads" in str(caught.value) and "model.path" in str(caught.value)


def test_a_path_must_be_a_directory(tmp_path: Path) -> None:
    assert resolve_model_path(name="whatever", path=tmp_path) == str(tmp_path)
    with pytest.raises(ModelLoadError, match="not a directory"):
        resolve_model_path(name="tiny.en", path=tmp_path / "missing")


def test_auto_device_and_compute_type() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    assert resolve_compute_type("auto", device="cpu") == "int8"
    assert resolve_compute_type("auto", device="cuda") == "float16"
    assert resolve_compute_type("int8_float16", device="cuda") == "int8_float16"


@pytest.mark.slow
def test_batched_decode_matches_the_sentences(whisper_backend: Any) -> None:
    sentences = list(af.SENTENCES)
    transcripts = whisper_backend.transcribe_batch([BatchItem(af.synthesize(s)) for s in sentences])
    for sentence, transcript in zip(sentences, transcripts):
        assert af.word_error_rate(sentence, transcript.text) <= 0.1, transcript.text
        assert transcript.language == "en" and transcript.avg_logprob < 0


@pytest.mark.slow
def test_a_forced_prefix_is_continued(whisper_backend: Any) -> None:
    [transcript] = whisper_backend.transcribe_batch([BatchItem(af.synthesize(af.SENTENCES[0]), prefix="The quick")])
    assert transcript.text.startswith("The quick brown fox")


@pytest.mark.slow
def test_transcribe_consumes_the_generator_and_gives_words(whisper_backend: Any) -> None:
    transcript = whisper_backend.transcribe(af.synthesize(af.SENTENCES[2]), language="en", word_timestamps=True)
    assert af.word_error_rate(af.SENTENCES[2], transcript.text) <= 0.1
    starts = [w.start_sec for w in transcript.words]
    assert len(starts) >= 10 and starts == sorted(starts)


@pytest.mark.slow
def test_batched_word_timings_agree_with_faster_whisper(whisper_backend: Any) -> None:
    audio = af.synthesize(af.SENTENCES[2])
    reference = whisper_backend.transcribe(audio, language="en", word_timestamps=True).words
    plain, timed = whisper_backend.transcribe_batch([
        BatchItem(af.synthesize(af.SENTENCES[0])),
        BatchItem(audio, prefix="The weather", word_timestamps=True, margin_frames=FINAL_MARGIN_FRAMES)])
    assert plain.words == ()
    assert [w.word for w in timed.words] == [w.word for w in reference]
    for mine, theirs in zip(timed.words, reference):
        assert mine.start_sec == pytest.approx(theirs.start_sec, abs=0.15)
        assert mine.end_sec == pytest.approx(theirs.end_sec, abs=0.15)
