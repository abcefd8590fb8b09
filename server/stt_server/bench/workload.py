"""The audio each bench stream sends: synthesized sentences with silences, or silence, or noise.

Speech comes from hibari-tts (voice ``heart``, shipped with the package; 24 kHz, resampled to
16 kHz). Each sentence is trimmed to its voiced part so the plan's start and end times are where
speech really starts and stops; the composition is pure and tested without a synthesizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from stt_server.bench.latency import Utterance

SAMPLE_RATE: Final = 16000
InputKind = Literal["speech", "silence", "noise"]

SENTENCES: Final = (
    "The quarterly report is due at the end of next week.",
    "Please send the meeting notes to everyone on the team.",
    "We moved the server migration to Thursday morning.",
    "Can you check whether the new build passed all of its tests?",
    "The customer asked for a demo of the streaming transcription feature.",
    "Our budget for the next quarter has not been approved yet.",
)
LEAD_SILENCE_SEC: Final = 0.5
GAP_SILENCE_SEC: Final = 1.5
# Long enough for the server's end-of-speech silence to close the last utterance on its own,
# so its final latency is measured the same way as the others (not via the client's half-close).
TAIL_SILENCE_SEC: Final = 2.0
VOICED_THRESHOLD: Final = 0.01


@dataclass(frozen=True)
class StreamAudio:
    """16 kHz mono LINEAR16 audio and where its speech is."""

    pcm: bytes
    plan: tuple[Utterance, ...]

    @property
    def duration_sec(self) -> float:
        return len(self.pcm) / (2 * SAMPLE_RATE)


def trim_silence(samples: np.ndarray, *, threshold: float = VOICED_THRESHOLD) -> np.ndarray:
    """Drop leading and trailing samples quieter than ``threshold`` (TTS pads its output)."""
    voiced = np.flatnonzero(np.abs(samples) >= threshold)
    if voiced.size == 0:
        return samples[:0]
    return samples[voiced[0]: voiced[-1] + 1]


def to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def compose(
    clips: Sequence[np.ndarray], *, texts: Sequence[str] = (), lead_sec: float = LEAD_SILENCE_SEC,
    gap_sec: float = GAP_SILENCE_SEC, tail_sec: float = TAIL_SILENCE_SEC,
) -> StreamAudio:
    """Clips separated by silences, with the plan of where each one lies."""
    parts: list[np.ndarray] = [np.zeros(round(lead_sec * SAMPLE_RATE), dtype=np.float32)]
    plan = []
    cursor = len(parts[0])
    for index, clip in enumerate(clips):
        if index:
            gap = np.zeros(round(gap_sec * SAMPLE_RATE), dtype=np.float32)
            parts.append(gap)
            cursor += len(gap)
        plan.append(Utterance(index, cursor / SAMPLE_RATE, (cursor + len(clip)) / SAMPLE_RATE,
                              texts[index] if index < len(texts) else ""))
        parts.append(clip.astype(np.float32))
        cursor += len(clip)
    parts.append(np.zeros(round(tail_sec * SAMPLE_RATE), dtype=np.float32))
    return StreamAudio(to_pcm16(np.concatenate(parts)), tuple(plan))


def silence(duration_sec: float) -> StreamAudio:
    return StreamAudio(bytes(2 * round(duration_sec * SAMPLE_RATE)), ())


def noise(duration_sec: float, *, seed: int = 0, level: float = 0.02) -> StreamAudio:
    """Low white noise: exercises VAD and buffers without speech."""
    rng = np.random.default_rng(seed)
    return StreamAudio(to_pcm16(rng.normal(0.0, level, round(duration_sec * SAMPLE_RATE))), ())


def synthesize(texts: Sequence[str]) -> list[np.ndarray]:
    """Each text as trimmed 16 kHz float32 speech (hibari-tts, voice ``heart``)."""
    try:
        from hibari import Hibari
    except ImportError as exc:
        raise RuntimeError("speech input needs hibari-tts (pip install hibari-tts), or use --input noise") from exc
    from stt_server.engine.audio import resample

    voice = Hibari()
    return [trim_silence(resample(np.asarray(voice(text), dtype=np.float32), source_rate=24000)) for text in texts]


def speech_variants(*, streams: int, per_stream: int = 3) -> list[StreamAudio]:
    """``streams`` different orderings of the sentences (synthesized once), so streams are not in lockstep."""
    clips = synthesize(SENTENCES)
    variants = []
    for offset in range(max(1, min(streams, len(SENTENCES)))):
        order = [(offset + k) % len(SENTENCES) for k in range(per_stream)]
        variants.append(compose([clips[i] for i in order], texts=[SENTENCES[i] for i in order]))
    return variants


def build_inputs(kind: InputKind, *, streams: int, duration_sec: float = 12.0) -> list[StreamAudio]:
    """The clips workers cycle through for ``kind``."""
    if kind == "speech":
        return speech_variants(streams=streams)
    if kind == "silence":
        return [silence(duration_sec)]
    return [noise(duration_sec, seed=seed) for seed in range(max(1, min(streams, 4)))]


def from_samples(samples: np.ndarray) -> StreamAudio:
    """A clip of the user's (16 kHz float32) with its speech found by Silero, offline.

    faster-whisper's ``get_speech_timestamps`` with 500 ms of silence between utterances (the
    server's default end-of-speech silence) and no padding, so the plan's times are where speech
    is; latencies are then measured against them as for the synthesized clips.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=500, speech_pad_ms=0, min_speech_duration_ms=250)
    spans = get_speech_timestamps(np.asarray(samples, dtype=np.float32), vad_options=options)
    plan = tuple(Utterance(index, span["start"] / SAMPLE_RATE, span["end"] / SAMPLE_RATE)
                 for index, span in enumerate(spans))
    return StreamAudio(to_pcm16(samples), plan)


def load_files(paths: Sequence[str]) -> list[StreamAudio]:
    """``--audio`` WAV files as bench clips; ``RuntimeError`` names a file that cannot be used."""
    from stt_server.engine.audio import decode_wav

    clips = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                clip = from_samples(decode_wav(handle.read()).samples)
        except (OSError, ValueError) as exc:  # AudioFormatError is a ValueError
            raise RuntimeError(f"--audio {path}: {exc}") from exc
        if not clip.plan:
            raise RuntimeError(f"--audio {path}: no speech found in it (Silero VAD)")
        clips.append(clip)
    return clips
