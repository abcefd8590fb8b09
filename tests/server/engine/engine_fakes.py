"""A scripted, gate-controlled stand-in for ``WhisperBackend`` (model-free engine tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
from stt_server.engine.backend import BatchItem, Transcript, TranscriptSegment, TranscriptWord


class FakeBackend:
    """Returns ``text_for(audio_seconds)`` per item; while ``gate`` is clear, calls block (a busy model)."""

    def __init__(self, text_for: Callable[[float], str] | None = None) -> None:
        self.text_for = text_for or (lambda seconds: f"audio of {seconds:.2f} seconds")
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)
        self.calls: list[list[str]] = []  # per model call: "batch:<prefix>" / "single" items
        self.fail_with: Exception | None = None
        self.model_name = "fake"
        self.device = "cpu"
        self.compute_type = "int8"
        self.num_workers = 1
        self.languages = ["en"]
        self.is_multilingual = False
        self.loaded = True

    def load(self) -> None:
        self.loaded = True

    def _transcript(self, audio: np.ndarray, prefix: str = "") -> Transcript:
        seconds = audio.size / 16_000
        text = self.text_for(seconds)
        if prefix and not text.startswith(prefix):
            text = f"{prefix} {text}"
        words = tuple(TranscriptWord(w, i * 0.1, i * 0.1 + 0.1, 0.9) for i, w in enumerate(text.split()))
        return Transcript((TranscriptSegment(text, 0.0, seconds, -0.1, words),), "en")

    def _enter(self, labels: list[str]) -> None:
        self.calls.append(labels)
        self.entered.release()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("fake backend gate never opened")
        if self.fail_with is not None:
            raise self.fail_with

    def transcribe(self, audio: np.ndarray, *, language: str | None, word_timestamps: bool = False,
                   initial_prompt: str | None = None, prefix: str | None = None,
                   on_segment: Callable[[TranscriptSegment], None] | None = None) -> Transcript:
        self._enter(["single"])
        return self._transcript(audio, prefix or "")

    def transcribe_batch(self, items: Sequence[BatchItem]) -> list[Transcript]:
        self._enter([f"batch:{item.margin_frames}" for item in items])
        return [self._transcript(item.audio, item.prefix) for item in items]
