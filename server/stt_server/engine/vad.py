"""Streaming voice activity detection: Silero probabilities per 32 ms chunk, then an endpointer.

``SileroStream`` runs faster-whisper's bundled Silero v6 ONNX model incrementally (its LSTM state
and 64-sample context carried between calls, exactly as ``SileroVADModel.__call__`` does inside
one call). ``Endpointer`` is a pure state machine over those probabilities: speech begins after
``speech_start_ms`` of speech, ends after ``end_silence_ms`` of silence, and an utterance is cut
at ``max_utterance_sec`` even while speech goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

CHUNK_SAMPLES: Final = 512  # 32 ms at 16 kHz: the window Silero v6 was trained on
CONTEXT_SAMPLES: Final = 64
# Hysteresis as in faster-whisper's VadOptions: once in speech, only a clearly lower score is silence.
NEG_THRESHOLD_GAP: Final = 0.15


class SileroStream:
    """Speech probabilities for a continuous stream, one per 512-sample chunk.

    Not thread-safe; one per stream, called from one thread at a time (the engine's VAD executor).
    """

    def __init__(self) -> None:
        from faster_whisper.vad import get_vad_model  # onnxruntime session, shared and cached

        self._session = get_vad_model().session
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def reset_state(self) -> None:
        """Forget the LSTM state (the audio context stays). After a long silence the state drifts and
        Silero scores the next onset low: measured, 0.8 after 1 s of silence, 0.3 after 10-300 s."""
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities for every complete chunk now available; a remainder waits for more audio."""
        audio = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        count = audio.size // CHUNK_SAMPLES
        self._pending = audio[count * CHUNK_SAMPLES:]
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        chunks = audio[: count * CHUNK_SAMPLES].reshape(count, CHUNK_SAMPLES)
        contexts = np.vstack([self._context[None, :], chunks[:-1, -CONTEXT_SAMPLES:]])
        batch = np.ascontiguousarray(np.concatenate([contexts, chunks], axis=1))
        probs, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self._context = chunks[-1, -CONTEXT_SAMPLES:].copy()
        return np.asarray(probs, dtype=np.float32).reshape(-1)


@dataclass(frozen=True)
class EndpointEvent:
    """``begin``: speech started at ``sample``; ``end``: speech ended at ``sample``;
    ``cut``: the utterance reached its maximum length and was closed at ``sample`` (speech goes on)."""

    kind: Literal["begin", "end", "cut"]
    sample: int


@dataclass(frozen=True)
class EndpointerSettings:
    threshold: float = 0.5
    speech_start_ms: int = 200
    end_silence_ms: int = 500
    max_utterance_sec: float = 15.0
    sample_rate: int = 16_000

    def chunks(self, ms: float) -> int:
        """How many whole chunks cover ``ms`` milliseconds (at least one)."""
        return max(1, int(np.ceil(ms * self.sample_rate / 1000 / CHUNK_SAMPLES)))


class Endpointer:
    """Pure utterance state machine over per-chunk speech probabilities."""

    def __init__(self, settings: EndpointerSettings) -> None:
        self.settings = settings
        self._start_chunks = settings.chunks(settings.speech_start_ms)
        self._end_chunks = settings.chunks(settings.end_silence_ms)
        self._max_samples = int(settings.max_utterance_sec * settings.sample_rate)
        self._neg_threshold = max(0.01, settings.threshold - NEG_THRESHOLD_GAP)
        self.chunk_index = 0
        self.in_speech = False
        self.utterance_start = 0  # sample where the open utterance began
        self._speech_run = 0  # consecutive speech chunks while silent
        self._silence_run = 0  # consecutive silence chunks while in speech

    def push(self, prob: float) -> list[EndpointEvent]:
        """Advance by one chunk with speech probability ``prob``; return the events it causes."""
        index = self.chunk_index
        self.chunk_index += 1
        events: list[EndpointEvent] = []
        if not self.in_speech:
            self._speech_run = self._speech_run + 1 if prob >= self.settings.threshold else 0
            if self._speech_run >= self._start_chunks:
                # Back-date the start to the first chunk of the run that triggered it.
                self.utterance_start = (index + 1 - self._speech_run) * CHUNK_SAMPLES
                self.in_speech = True
                self._speech_run = 0
                self._silence_run = 0
                events.append(EndpointEvent("begin", self.utterance_start))
            return events
        self._silence_run = self._silence_run + 1 if prob < self._neg_threshold else 0
        end_of_chunk = (index + 1) * CHUNK_SAMPLES
        if self._silence_run >= self._end_chunks:
            # Speech ended where the silence run began.
            events.append(EndpointEvent("end", (index + 1 - self._silence_run) * CHUNK_SAMPLES))
            self.in_speech = False
            self._silence_run = 0
        elif end_of_chunk - self.utterance_start >= self._max_samples:
            events.append(EndpointEvent("cut", end_of_chunk))
            self.utterance_start = end_of_chunk
        return events

    def push_all(self, probs: np.ndarray) -> list[EndpointEvent]:
        events: list[EndpointEvent] = []
        for prob in probs:
            events.extend(self.push(float(prob)))
        return events
