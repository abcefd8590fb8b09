"""Audio in: LINEAR16 bytes and WAV files to float32 mono at 16 kHz.

The servicer hands every audio message to a ``PcmDecoder`` (one per stream, because resampling
keeps filter state across message boundaries); unary ``Recognize`` calls ``decode_wav`` or
``decode_pcm16``. Resampling uses PyAV's libswresample, a proper windowed-sinc filter.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

import av
import numpy as np

from stt_server.engine.errors import AudioFormatError
from stt_server.engine.types import SAMPLE_RATE
from stt_server.errors import ErrorCode

SUPPORTED_RATES: Final = (8_000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)
MAX_CHANNELS: Final = 8
_WAVE_FORMAT_PCM: Final = 1
_WAVE_FORMAT_FLOAT: Final = 3
_WAVE_FORMAT_EXTENSIBLE: Final = 0xFFFE


def check_sample_rate(rate: int) -> None:
    """Raise ``AudioFormatError`` unless ``rate`` is one the server resamples from."""
    if rate not in SUPPORTED_RATES:
        rates = ", ".join(str(r) for r in SUPPORTED_RATES)
        raise AudioFormatError(ErrorCode.UNSUPPORTED_AUDIO, f"sample rate {rate} Hz is not one of {rates}")


def check_channels(channels: int) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFormatError(ErrorCode.UNSUPPORTED_AUDIO, f"{channels} channels (1..{MAX_CHANNELS} accepted)")


def pcm16_to_float32(data: bytes, *, channels: int = 1, index: int = 0) -> np.ndarray:
    """Little-endian signed 16-bit PCM to float32 in [-1, 1), mixed down to mono.

    ``index`` is the message number, only used in the error message for odd byte counts.
    """
    frame_bytes = 2 * channels
    if len(data) % frame_bytes:
        raise AudioFormatError(ErrorCode.ODD_BYTE_COUNT, f"{len(data)} bytes is not a whole number of "
                               f"{channels}-channel 16-bit frames", index=index, nbytes=len(data))
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32)
    samples *= 1.0 / 32768.0  # in place: one float copy of a long upload, not two
    return to_mono(samples, channels=channels)


def to_mono(interleaved: np.ndarray, *, channels: int) -> np.ndarray:
    """Average interleaved channels into one float32 channel."""
    if channels == 1:
        return np.ascontiguousarray(interleaved, dtype=np.float32)
    return interleaved.reshape(-1, channels).mean(axis=1, dtype=np.float32)


class Resampler:
    """Streaming resampler to 16 kHz mono float32; keeps filter state between ``process`` calls."""

    def __init__(self, source_rate: int) -> None:
        check_sample_rate(source_rate)
        self.source_rate = source_rate
        self._swr = None if source_rate == SAMPLE_RATE else av.AudioResampler(
            format="flt", layout="mono", rate=SAMPLE_RATE)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Resample one block of mono float32 samples; may return fewer samples (filter delay)."""
        if self._swr is None:
            return np.ascontiguousarray(samples, dtype=np.float32)
        if samples.size == 0:
            return np.zeros(0, dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.source_rate
        return self._collect(self._swr.resample(frame))

    def flush(self) -> np.ndarray:
        """The samples still held in the filter at end of stream."""
        if self._swr is None:
            return np.zeros(0, dtype=np.float32)
        return self._collect(self._swr.resample(None))

    @staticmethod
    def _collect(frames: list[av.AudioFrame]) -> np.ndarray:
        if not frames:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32, copy=False)


def resample(samples: np.ndarray, *, source_rate: int) -> np.ndarray:
    """One-shot resample of a whole clip to 16 kHz."""
    resampler = Resampler(source_rate)
    return np.concatenate([resampler.process(samples), resampler.flush()])


class PcmDecoder:
    """Per-stream LINEAR16 decoder: bytes at any supported rate/channels -> float32 16 kHz mono."""

    def __init__(self, *, sample_rate: int, channels: int = 1) -> None:
        check_channels(channels)
        self.channels = channels
        self._resampler = Resampler(sample_rate)
        self._messages = 0

    def decode(self, data: bytes) -> np.ndarray:
        self._messages += 1
        return self._resampler.process(pcm16_to_float32(data, channels=self.channels, index=self._messages))

    def flush(self) -> np.ndarray:
        return self._resampler.flush()


@dataclass(frozen=True)
class WavAudio:
    """A decoded WAV file: mono float32 at 16 kHz plus what the header said."""

    samples: np.ndarray
    source_rate: int
    channels: int
    bits_per_sample: int


def is_wav(data: bytes) -> bool:
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE"


@dataclass(frozen=True)
class WavHeader:
    """What a RIFF/WAVE header says, and its sample data (a view of the file's bytes, not a copy)."""

    tag: int
    channels: int
    rate: int
    bits: int
    payload: memoryview

    @property
    def duration_sec(self) -> float:
        """Seconds of audio the data chunk holds (before decoding it)."""
        frame = max(1, self.bits // 8) * max(1, self.channels)
        return len(self.payload) // frame / self.rate if self.rate else 0.0


def parse_wav(data: bytes) -> WavHeader:
    """The fmt and data chunks of a RIFF/WAVE file; raises ``AudioFormatError`` on a bad header."""
    if not is_wav(data):
        raise AudioFormatError(ErrorCode.INVALID_AUDIO, "not a RIFF/WAVE file")
    view = memoryview(data)
    fmt: tuple[int, int, int, int] | None = None
    payload: memoryview | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, pos)
        body = view[pos + 8: pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise AudioFormatError(ErrorCode.INVALID_AUDIO, "WAV fmt chunk is truncated")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]  # first two bytes of the sub-format GUID
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            payload = body  # a streamed WAV may claim a larger size than it holds: take what is there
            break
        pos += 8 + size + (size & 1)
    if fmt is None:
        raise AudioFormatError(ErrorCode.INVALID_AUDIO, "WAV file has no fmt chunk")
    if payload is None:
        raise AudioFormatError(ErrorCode.INVALID_AUDIO, "WAV file has no data chunk")
    tag, channels, rate, bits = fmt
    check_channels(channels)
    check_sample_rate(rate)
    return WavHeader(tag=tag, channels=channels, rate=rate, bits=bits, payload=payload)


def decode_wav(data: bytes, *, header: WavHeader | None = None) -> WavAudio:
    """Parse a RIFF/WAVE file (PCM 8/16/24/32-bit or float32, any channel count) to 16 kHz mono.

    ``header`` is ``parse_wav(data)`` when the caller already has it (to check limits first).
    """
    wav = header if header is not None else parse_wav(data)
    interleaved = _wav_samples(wav.payload, tag=wav.tag, bits=wav.bits, channels=wav.channels)
    mono = to_mono(interleaved, channels=wav.channels)
    samples = mono if wav.rate == SAMPLE_RATE else resample(mono, source_rate=wav.rate)
    return WavAudio(samples=samples, source_rate=wav.rate, channels=wav.channels, bits_per_sample=wav.bits)


def sanitize_float(samples: np.ndarray) -> np.ndarray:
    """Float samples made safe to decode, in place: NaN/inf refused, a range past [-1, 1] brought back.

    Non-finite samples are ``AudioFormatError`` NON_FINITE_AUDIO: they poison the log-mel features
    and the decoder then loops on "!!!!" through every temperature fallback (issue 13: 25 s of CPU
    for a 4 s clip). Finite but absurd values (a float WAV at 1e30) are scaled by the 99.9th
    percentile of the magnitudes, so a uniformly too-loud clip keeps its shape, then clipped, so a
    few huge spikes do not silence the rest.
    """
    finite = np.isfinite(samples)
    bad = samples.size - int(np.count_nonzero(finite))
    del finite
    if bad:
        raise AudioFormatError(ErrorCode.NON_FINITE_AUDIO, f"{bad} non-finite samples", count=bad)
    if samples.size == 0 or (float(samples.max()) <= 1.0 and float(samples.min()) >= -1.0):
        return samples
    reference = float(np.quantile(np.abs(samples), 0.999))
    if reference > 1.0:
        samples /= np.float32(reference)
    np.clip(samples, -1.0, 1.0, out=samples)
    return samples


def _wav_samples(payload: bytes | memoryview, *, tag: int, bits: int, channels: int) -> np.ndarray:
    width = bits // 8
    if bits % 8 or width == 0:
        raise AudioFormatError(ErrorCode.UNSUPPORTED_AUDIO, f"{bits}-bit WAV samples")
    usable = len(payload) - len(payload) % (width * channels)  # drop a torn last frame
    raw = payload[:usable]
    if tag == _WAVE_FORMAT_FLOAT and bits == 32:
        return sanitize_float(np.frombuffer(raw, dtype="<f4").astype(np.float32))
    if tag != _WAVE_FORMAT_PCM:
        raise AudioFormatError(ErrorCode.UNSUPPORTED_AUDIO, f"WAV format tag {tag} with {bits} bits "
                               "(PCM 8/16/24/32-bit and float32 accepted)")
    if bits == 8:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    if bits == 16:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float32)
        samples *= 1.0 / 32768.0
        return samples
    if bits == 24:
        triples = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        values = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        values = np.where(values >= 1 << 23, values - (1 << 24), values)
        return values.astype(np.float32) / float(1 << 23)
    if bits == 32:
        return np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    raise AudioFormatError(ErrorCode.UNSUPPORTED_AUDIO, f"{bits}-bit PCM WAV")


def decode_audio_bytes(data: bytes, *, sample_rate: int, channels: int = 1) -> np.ndarray:
    """Unary helper: a WAV container (detected by its header) or raw LINEAR16 at ``sample_rate``."""
    if is_wav(data):
        return decode_wav(data).samples
    decoder = PcmDecoder(sample_rate=sample_rate, channels=channels)
    samples, tail = decoder.decode(data), decoder.flush()
    return np.concatenate([samples, tail]) if tail.size else samples  # 16 kHz input: no second copy
