"""Synthesized test speech as 16 kHz 16-bit PCM (``tests/audio_fixtures.py`` when present)."""

from __future__ import annotations

import functools

import numpy as np
from stt_server.client import WavAudio

SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please send the quarterly report to the finance team before Friday.",
)


@functools.lru_cache(maxsize=8)
def speech_samples(text: str) -> np.ndarray:
    """float32 mono 16 kHz speech for ``text``."""
    try:
        import audio_fixtures  # type: ignore[import-not-found]

        return np.asarray(audio_fixtures.synthesize(text), dtype=np.float32)
    except (ImportError, AttributeError):
        from hibari import Hibari
        from stt_server.engine.audio import resample

        return resample(np.asarray(Hibari()(text), dtype=np.float32).reshape(-1), source_rate=24000)


def speech_wav(text: str, *, lead_sec: float = 0.5, tail_sec: float = 1.0) -> WavAudio:
    """``text`` spoken, with silence before and after (the tail lets the endpointer close it)."""
    samples = np.concatenate([np.zeros(int(lead_sec * 16000), np.float32), speech_samples(text),
                              np.zeros(int(tail_sec * 16000), np.float32)])
    return WavAudio(pcm=(np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes(), sample_rate_hz=16000)
