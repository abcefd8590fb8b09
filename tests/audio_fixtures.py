"""Synthesized English speech for tests: 16 kHz mono float32, cached per session and on disk.

``synthesize(text)`` uses hibari-tts (voice ``heart``, 24 kHz) and falls back to espeak-ng when
hibari cannot be imported. Helpers build "speech, silence, speech" streams, noise and tones, and
score transcripts with ``word_error_rate`` (lowercase, punctuation stripped, numbers as spoken).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import string
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np

SAMPLE_RATE: Final = 16_000
SENTENCES: Final = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "The weather today is sunny with a light breeze from the west.",
    "Artificial intelligence is changing the way people work.",
)


def _cache_dir() -> Path:
    base = os.environ.get("STT_TEST_TTS_CACHE") or os.path.join(tempfile.gettempdir(), "stt-fleet-tts-cache")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _hibari(text: str) -> np.ndarray:
    from stt_server.engine.audio import resample

    audio = np.asarray(_hibari_voice()(text), dtype=np.float32).reshape(-1)
    return resample(audio, source_rate=24_000)


@functools.lru_cache(maxsize=1)
def _hibari_voice() -> object:
    from hibari import Hibari

    return Hibari()  # the bundled voice "heart"; never ask for another


def _espeak(text: str) -> np.ndarray:
    from stt_server.engine.audio import decode_wav

    binary = shutil.which("espeak-ng") or shutil.which("espeak")
    if binary is None:
        raise RuntimeError("neither hibari-tts nor espeak-ng is available to synthesize test speech")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run([binary, "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True, capture_output=True)
        return decode_wav(wav.read_bytes()).samples


def _engine_name() -> str:
    try:
        import hibari  # noqa: F401

        return "hibari"
    except ImportError:
        return "espeak"


@functools.lru_cache(maxsize=64)
def synthesize(text: str) -> np.ndarray:
    """``text`` spoken in 16 kHz mono float32 (read-only array; copy before changing it)."""
    engine = _engine_name()
    key = hashlib.sha256(f"{engine}:heart:{text}".encode()).hexdigest()[:24]
    cached = _cache_dir() / f"{key}.npy"
    if cached.exists():
        audio = np.load(cached)
    else:
        audio = _hibari(text) if engine == "hibari" else _espeak(text)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, audio)
        os.replace(tmp, cached)  # atomic: parallel sessions never read half a file
    audio = np.asarray(audio, dtype=np.float32)
    audio.setflags(write=False)
    return audio


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)


def noise(seconds: float, *, level: float = 0.01, seed: int = 0) -> np.ndarray:
    """White noise at RMS ``level`` (reproducible)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(round(seconds * SAMPLE_RATE)) * level).astype(np.float32)


def tone(seconds: float, *, hz: float = 440.0, rate: int = SAMPLE_RATE, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def speech_stream(texts: Sequence[str], *, gap_sec: float = 1.0, lead_sec: float = 0.5,
                  tail_sec: float = 1.0) -> np.ndarray:
    """Speech, silence, speech, ...: the sentences with ``gap_sec`` between them."""
    parts: list[np.ndarray] = [silence(lead_sec)]
    for index, text in enumerate(texts):
        if index:
            parts.append(silence(gap_sec))
        parts.append(synthesize(text))
    parts.append(silence(tail_sec))
    return np.concatenate(parts)


def chunks(audio: np.ndarray, *, seconds: float = 0.1) -> list[np.ndarray]:
    """Real-time-sized pieces (100 ms by default), as a client would send them."""
    size = int(seconds * SAMPLE_RATE)
    return [audio[i:i + size] for i in range(0, audio.size, size)]


def to_pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()


_NUMBERS: Final = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
                   "7": "seven", "8": "eight", "9": "nine", "10": "ten"}
_PUNCT: Final = re.compile(f"[{re.escape(string.punctuation.replace(chr(39), ''))}]")


def normalize_text(text: str) -> str:
    """Lowercase, punctuation (but not apostrophes) removed, single spaces, small numbers spelled."""
    words = _PUNCT.sub(" ", text.lower().replace("-", " ")).split()
    return " ".join(_NUMBERS.get(w, w) for w in words)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER after ``normalize_text`` on both sides (jiwer)."""
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))
