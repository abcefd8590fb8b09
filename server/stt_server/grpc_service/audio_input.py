"""Wire audio -> float32 mono 16 kHz, one message at a time, with the wire-level checks.

``StreamAudioDecoder`` validates each ``audio_content`` (whole samples, WAV header arriving in the
first messages, stream duration) and converts it with the engine's per-stream ``PcmDecoder``
(stateful resampling, so message boundaries do not click). ``decode_whole`` does the same for
``Recognize``.
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np

from stt_server.engine.audio import (
    PcmDecoder,
    check_channels,
    check_sample_rate,
    decode_audio_bytes,
    decode_wav,
    is_wav,
    parse_wav,
)
from stt_server.errors import ErrorCode, SttError
from stt_server.grpc_service.stream_config import AudioFormat

MAX_WAV_HEADER_BYTES: Final = 65536
_EMPTY: Final = np.zeros(0, dtype=np.float32)


def parse_wav_header(data: bytes) -> tuple[AudioFormat, int] | None:
    """``(format, offset of the PCM data)``; ``None`` while ``data`` does not hold the whole header."""
    if len(data) < 12:
        return None
    if not is_wav(data):
        raise SttError(ErrorCode.INVALID_AUDIO, reason="WAV encoding but the audio does not start with a RIFF/WAVE header")
    offset, fmt = 12, None
    while offset + 8 <= len(data):
        chunk_id, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        body = offset + 8
        if chunk_id == b"data":
            if fmt is None:
                raise SttError(ErrorCode.INVALID_AUDIO, reason="WAV data chunk before its fmt chunk")
            return fmt, body
        if body + size > len(data):
            return None
        if chunk_id == b"fmt ":
            if size < 16:
                raise SttError(ErrorCode.INVALID_AUDIO, reason="WAV fmt chunk too short")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[body:body + 16])
            if tag not in (1, 0xFFFE) or bits != 16:
                raise SttError(ErrorCode.UNSUPPORTED_AUDIO,
                               reason=f"streamed WAV must be 16-bit PCM (format tag {tag}, {bits} bits)")
            check_channels(channels)
            check_sample_rate(rate)
            fmt = AudioFormat(encoding="linear16", sample_rate_hz=rate, channels=channels)
        offset = body + size + (size & 1)
    return None


class StreamAudioDecoder:
    """Checks and converts one stream's ``audio_content`` messages in order."""

    def __init__(self, fmt: AudioFormat, *, max_duration_sec: float) -> None:
        self._wav = fmt.encoding == "wav"
        self._max_duration_sec = max_duration_sec
        self._fmt: AudioFormat | None = None
        self._pcm: PcmDecoder | None = None
        if not self._wav:
            self._start(fmt)
        self._header = b""
        self._carry = b""
        self._messages = 0
        self.received_sec = 0.0

    def _start(self, fmt: AudioFormat) -> None:
        self._fmt = fmt
        self._pcm = PcmDecoder(sample_rate=fmt.sample_rate_hz, channels=fmt.channels)

    @property
    def header_complete(self) -> bool:
        """False while a WAV stream's header has not fully arrived."""
        return self._pcm is not None

    def decode(self, chunk: bytes) -> np.ndarray:
        """Samples for ``chunk`` (possibly none yet); raises ``SttError`` on bad or excess audio."""
        self._messages += 1
        if self._pcm is None:
            self._header += chunk
            parsed = parse_wav_header(self._header)
            if parsed is None:
                if len(self._header) > MAX_WAV_HEADER_BYTES:
                    raise SttError(ErrorCode.INVALID_AUDIO, reason="no WAV data chunk in the first 64 KiB")
                return _EMPTY
            fmt, offset = parsed
            self._start(fmt)
            chunk, self._header = self._header[offset:], b""
        return self._convert(chunk)

    def _convert(self, chunk: bytes) -> np.ndarray:
        if self._pcm is None or self._fmt is None:  # pragma: no cover - decode() starts it first
            raise SttError(ErrorCode.INTERNAL, reason="audio decoder not started")
        frame_bytes = 2 * self._fmt.channels
        if self._wav:
            # a WAV body is a file cut into messages: a sample may straddle two of them
            chunk = self._carry + chunk
            whole = len(chunk) - len(chunk) % frame_bytes
            chunk, self._carry = chunk[:whole], chunk[whole:]
        elif len(chunk) % frame_bytes:
            raise SttError(ErrorCode.ODD_BYTE_COUNT, index=self._messages, nbytes=len(chunk))
        self.received_sec += len(chunk) / frame_bytes / self._fmt.sample_rate_hz
        if self.received_sec > self._max_duration_sec:
            raise SttError(ErrorCode.STREAM_TOO_LONG, limit=f"{self._max_duration_sec:g}")
        return self._pcm.decode(chunk) if chunk else _EMPTY

    def flush(self) -> np.ndarray:
        """The resampler's tail at end of stream."""
        return self._pcm.flush() if self._pcm is not None else _EMPTY


def check_recognize_duration(seconds: float, *, limit: float) -> None:
    """``SttError`` RECOGNIZE_TOO_LONG when a Recognize payload holds more than ``limit`` seconds."""
    if seconds > limit:
        raise SttError(ErrorCode.RECOGNIZE_TOO_LONG, seconds=f"{seconds:.1f}", limit=f"{limit:g}")


def decode_whole(data: bytes, fmt: AudioFormat, *, max_duration_sec: float) -> np.ndarray:
    """A whole ``Recognize`` payload as float32 mono 16 kHz (WAV: 8/16/24/32-bit or float).

    The duration is checked from the byte count or the WAV header before anything is decoded, so
    an over-long upload costs no float copy.
    """
    if fmt.encoding == "wav" and not is_wav(data):
        raise SttError(ErrorCode.INVALID_AUDIO, reason="WAV encoding but no RIFF/WAVE header")
    if fmt.encoding != "wav" and len(data) % (2 * fmt.channels):
        raise SttError(ErrorCode.ODD_BYTE_COUNT, index=1, nbytes=len(data))
    if is_wav(data):
        header = parse_wav(data)
        check_recognize_duration(header.duration_sec, limit=max_duration_sec)
        return decode_wav(data, header=header).samples
    check_recognize_duration(len(data) / (2 * fmt.channels) / fmt.sample_rate_hz, limit=max_duration_sec)
    return decode_audio_bytes(data, sample_rate=fmt.sample_rate_hz, channels=fmt.channels)
