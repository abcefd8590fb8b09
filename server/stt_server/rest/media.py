"""Uploaded audio files (WAV, FLAC, MP3, OGG/Opus, WebM, M4A) to float32 mono 16 kHz.

WAV goes through the same parser as gRPC ``Recognize`` (so the same file gives the same samples,
and the same transcript, over both protocols); every other container is decoded with PyAV. Blocking:
call ``decode_upload`` in a worker thread. Anything that is not one of the accepted containers is
ERR1004; bytes PyAV cannot make sense of are ERR1023; a file longer than the duration limit stops
decoding early with ERR1006.
"""

from __future__ import annotations

import io
from typing import Final

import av
import numpy as np

from stt_server.engine.audio import decode_wav, is_wav
from stt_server.engine.types import SAMPLE_RATE
from stt_server.errors import ErrorCode, SttError

# PyAV / FFmpeg demuxer names of the containers the API accepts (as OpenAI's list: the m4a/mp4
# family is one demuxer, WebM is matroska's)
ACCEPTED_DEMUXERS: Final = frozenset({"wav", "flac", "mp3", "ogg", "matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2"})
ACCEPTED_NAMES: Final = "wav, flac, mp3, ogg (opus/vorbis), webm, m4a"


def decode_upload(data: bytes, *, max_duration_sec: float) -> np.ndarray:
    """The upload's first audio stream as float32 mono 16 kHz (``SttError`` when it cannot be)."""
    if not data:
        raise SttError(ErrorCode.EMPTY_STREAM, what="the uploaded file")
    if is_wav(data):
        samples = decode_wav(data).samples  # its AudioFormatError is a catalogue error already
        _check_duration(samples.size, max_duration_sec)
        return samples
    return _decode_container(data, max_duration_sec=max_duration_sec)


def _check_duration(samples: int, max_duration_sec: float) -> None:
    if samples / SAMPLE_RATE > max_duration_sec:
        raise SttError(ErrorCode.STREAM_TOO_LONG, limit=f"{max_duration_sec:g}")


def _decode_container(data: bytes, *, max_duration_sec: float) -> np.ndarray:
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        raise SttError(ErrorCode.INVALID_AUDIO, reason=f"not a readable audio file ({type(exc).__name__})") from exc
    with container:
        demuxer = container.format.name
        if demuxer not in ACCEPTED_DEMUXERS:
            raise SttError(ErrorCode.UNSUPPORTED_AUDIO, reason=f"{demuxer} files are not accepted "
                                                               f"(send {ACCEPTED_NAMES})")
        if not container.streams.audio:
            raise SttError(ErrorCode.UNSUPPORTED_AUDIO, reason=f"the {demuxer} file has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        limit = int(max_duration_sec * SAMPLE_RATE)
        blocks: list[np.ndarray] = []
        total = 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    block = out.to_ndarray().reshape(-1)
                    blocks.append(block)
                    total += block.size
                if total > limit:  # stop decoding: the rest of the file would be refused anyway
                    _check_duration(total, max_duration_sec)
            for out in resampler.resample(None):
                blocks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            if not blocks:
                raise SttError(ErrorCode.INVALID_AUDIO, reason=f"the {demuxer} audio cannot be decoded "
                                                               f"({type(exc).__name__})") from exc
            # a damaged tail after good audio: keep what decoded, as FFmpeg's own tools do
    samples = np.concatenate(blocks).astype(np.float32, copy=False) if blocks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise SttError(ErrorCode.EMPTY_STREAM, what="the uploaded file")
    _check_duration(samples.size, max_duration_sec)
    return samples
