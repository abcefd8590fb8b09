"""Test audio in the upload formats: 16 kHz float32 speech encoded with PyAV, as a client would send it."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

import av
import numpy as np


@dataclass(frozen=True)
class Encoding:
    container: str
    codec: str
    rate: int
    filename: str
    mime: str


ENCODINGS: Final = {
    "flac": Encoding("flac", "flac", 16_000, "speech.flac", "audio/flac"),
    "mp3": Encoding("mp3", "libmp3lame", 16_000, "speech.mp3", "audio/mpeg"),
    "ogg": Encoding("ogg", "libopus", 48_000, "speech.ogg", "audio/ogg"),
    "webm": Encoding("webm", "libopus", 48_000, "speech.webm", "audio/webm"),
    "m4a": Encoding("ipod", "aac", 16_000, "speech.m4a", "audio/mp4"),
    "aiff": Encoding("aiff", "pcm_s16be", 16_000, "speech.aiff", "audio/aiff"),  # real audio, not accepted
}


def missing_encoder(name: str) -> str | None:
    """Why ``name`` cannot be encoded with this PyAV build (``None`` when it can)."""
    codec = ENCODINGS[name].codec
    if codec not in av.codecs_available:
        return f"PyAV {av.__version__} has no {codec} encoder, so no {name} test file can be made"
    return None


def to_wav(samples: np.ndarray, *, rate: int = 16_000) -> bytes:
    import wave

    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm)
    return buf.getvalue()


def encode(samples: np.ndarray, name: str) -> bytes:
    """16 kHz mono float32 ``samples`` as a ``name`` file (see ``ENCODINGS``)."""
    spec = ENCODINGS[name]
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
    buf = io.BytesIO()
    with av.open(buf, "w", format=spec.container) as out:
        stream = out.add_stream(spec.codec, rate=spec.rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 16_000
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=spec.rate)
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()
