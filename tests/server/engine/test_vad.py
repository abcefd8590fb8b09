"""Streaming Silero VAD and the endpointer state machine."""

from __future__ import annotations

import audio_fixtures as af
import numpy as np
import pytest
from faster_whisper.vad import get_vad_model
from stt_server.engine.vad import CHUNK_SAMPLES, Endpointer, EndpointerSettings, EndpointEvent, SileroStream

CHUNK_MS = CHUNK_SAMPLES / 16  # 32 ms


def endpointer(**overrides: float) -> Endpointer:
    settings = {"threshold": 0.5, "speech_start_ms": 96, "end_silence_ms": 160, "max_utterance_sec": 15.0}
    settings.update(overrides)
    return Endpointer(EndpointerSettings(**settings))  # type: ignore[arg-type]


def run(ep: Endpointer, probs: list[float]) -> list[EndpointEvent]:
    return ep.push_all(np.asarray(probs, dtype=np.float32))


def test_speech_begins_after_speech_start_ms_backdated_to_its_first_chunk() -> None:
    ep = endpointer()  # 96 ms = 3 chunks
    assert run(ep, [0.1, 0.9, 0.9]) == []
    assert run(ep, [0.9]) == [EndpointEvent("begin", 1 * CHUNK_SAMPLES)]
    assert ep.in_speech


def test_a_blip_shorter_than_speech_start_is_ignored() -> None:
    ep = endpointer()
    assert run(ep, [0.9, 0.9, 0.2, 0.9, 0.9, 0.1, 0.1]) == []
    assert not ep.in_speech


def test_speech_ends_after_end_silence_at_the_first_silent_chunk() -> None:
    ep = endpointer()  # 160 ms = 5 chunks
    run(ep, [0.9] * 4)
    assert run(ep, [0.9, 0.1, 0.1, 0.1, 0.1]) == []
    assert run(ep, [0.1]) == [EndpointEvent("end", 5 * CHUNK_SAMPLES)]
    assert not ep.in_speech


def test_hysteresis_keeps_speech_open_between_thresholds() -> None:
    ep = endpointer()
    run(ep, [0.9] * 4)
    assert run(ep, [0.4] * 20) == []  # above threshold - 0.15: still speech
    assert ep.in_speech


def test_short_pause_does_not_end_speech() -> None:
    ep = endpointer()
    run(ep, [0.9] * 4)
    assert run(ep, [0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1]) == []
    assert ep.in_speech


def test_max_utterance_cuts_and_continues() -> None:
    ep = endpointer(max_utterance_sec=1.024)  # 32 chunks
    events = run(ep, [0.9] * 80)
    assert [e.kind for e in events] == ["begin", "cut", "cut"]
    assert events[1].sample - events[0].sample == 32 * CHUNK_SAMPLES
    assert events[2].sample - events[1].sample == 32 * CHUNK_SAMPLES
    assert ep.in_speech


def test_zero_speech_start_begins_on_the_first_speech_chunk() -> None:
    ep = endpointer(speech_start_ms=0)
    assert run(ep, [0.2, 0.7]) == [EndpointEvent("begin", CHUNK_SAMPLES)]


def test_streamed_probabilities_equal_faster_whispers_one_shot() -> None:
    audio = np.concatenate([af.silence(0.4), af.synthesize(af.SENTENCES[0]), af.silence(0.4)])
    audio = audio[: audio.size // CHUNK_SAMPLES * CHUNK_SAMPLES]
    reference = get_vad_model()(audio.copy()).reshape(-1)
    stream = SileroStream()
    pieces = [stream.process(audio[i:i + 1234]) for i in range(0, audio.size, 1234)]  # odd sizes on purpose
    np.testing.assert_allclose(np.concatenate(pieces), reference, atol=1e-5)


def voiced_bounds(speech: np.ndarray) -> tuple[int, int]:
    """First and last sample of the clip's voiced part (TTS clips carry their own quiet edges)."""
    loud = np.flatnonzero(np.abs(speech) > 0.02)
    return int(loud[0]), int(loud[-1])


@pytest.mark.parametrize("background", ["silence", "noise"])
def test_speech_silence_speech_gives_two_utterances_near_the_true_bounds(background: str) -> None:
    speech = af.synthesize(af.SENTENCES[0])
    gap = af.silence(1.0) if background == "silence" else af.noise(1.0, level=0.005)
    audio = np.concatenate([gap, speech, gap, speech, gap])
    stream, ep = SileroStream(), Endpointer(EndpointerSettings())
    events = [e for i in range(0, audio.size, 1600) for e in ep.push_all(stream.process(audio[i:i + 1600]))]
    assert [e.kind for e in events] == ["begin", "end", "begin", "end"]
    first, last = voiced_bounds(speech)
    bounds = [(gap.size + first, gap.size + last), (2 * gap.size + speech.size + first, 2 * gap.size + speech.size + last)]
    for (begin, end), (true_begin, true_end) in zip(zip(events[::2], events[1::2]), bounds):
        assert abs(begin.sample - true_begin) < 0.25 * 16_000
        assert abs(end.sample - true_end) < 0.25 * 16_000


def test_noise_alone_opens_no_utterance() -> None:
    stream, ep = SileroStream(), Endpointer(EndpointerSettings())
    audio = af.noise(3.0, level=0.02, seed=3)
    assert ep.push_all(stream.process(audio)) == []
