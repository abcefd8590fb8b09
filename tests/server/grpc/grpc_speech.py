"""Test speech as 16-bit PCM for the gRPC client, built on ``tests/audio_fixtures.py``."""

from __future__ import annotations

import audio_fixtures
import numpy as np
from audio_fixtures import silence, synthesize
from stt_server.client import WavAudio

SENTENCES = (audio_fixtures.SENTENCES[2], audio_fixtures.SENTENCES[1])


def speech_wav(text: str, *, lead_sec: float = 0.5, tail_sec: float = 1.0) -> WavAudio:
    """``text`` spoken, with silence before and after (the tail lets the endpointer close it)."""
    samples = np.concatenate([silence(lead_sec), synthesize(text), silence(tail_sec)])
    return WavAudio(pcm=(np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes(), sample_rate_hz=16000)


def speech_then_speech(first: str, second: str, *, gap_sec: float = 1.5) -> WavAudio:
    """Two utterances separated by a pause long enough to end the first."""
    samples = np.concatenate([silence(0.5), synthesize(first), silence(gap_sec), synthesize(second), silence(1.0)])
    return WavAudio(pcm=(np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes(), sample_rate_hz=16000)
