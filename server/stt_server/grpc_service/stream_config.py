"""Turn wire configs (``RecognitionConfig`` / ``StreamingRecognitionConfig``) into validated settings.

Pure functions: a proto message and the server config in, an ``AudioFormat`` plus the engine's
``StreamOptions`` out, or an ``SttError`` saying which field is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from stt_server.config import ServerConfig
from stt_server.echo import clip_echo
from stt_server.engine.audio import MAX_CHANNELS, SUPPORTED_RATES
from stt_server.engine.types import StreamOptions
from stt_server.errors import ErrorCode, SttError
from stt_server.proto_gen import stt_pb2

TARGET_RATE: Final = 16000
# the engine's accepted endpointing ranges (Engine.stream_settings); checked here too so that
# CreateSession refuses what the stream would refuse later
SPEECH_START_MS_MAX: Final = 5000
END_SILENCE_MS_RANGE: Final = (50, 10_000)
MAX_UTTERANCE_SEC_RANGE: Final = (1.0, 30.0)


@dataclass(frozen=True)
class AudioFormat:
    """How the client's audio bytes are laid out (WAV: taken from the header instead)."""

    encoding: str = "linear16"  # linear16 | wav
    sample_rate_hz: int = TARGET_RATE
    channels: int = 1


@dataclass(frozen=True)
class SessionConfig:
    """Everything a stream needs to know about its audio and recognition options."""

    audio: AudioFormat
    options: StreamOptions
    request_id: str = ""


def _language(config: stt_pb2.RecognitionConfig, server: ServerConfig) -> str | None:
    model_is_english_only = server.model.name.endswith(".en") and server.model.path is None
    if config.auto_detect_language:
        if model_is_english_only:
            raise SttError(ErrorCode.INVALID_CONFIG, reason=f"model {server.model.name} cannot auto-detect languages")
        return None
    code = config.language_code.strip()
    if not code:
        return server.model.language
    base = code.split("-")[0].split("_")[0].lower()
    if not base.isalpha() or not 2 <= len(base) <= 3:
        raise SttError(ErrorCode.INVALID_CONFIG, reason=f"language_code {clip_echo(code)!r} is not a BCP-47 code")
    if model_is_english_only and base != "en":
        raise SttError(ErrorCode.INVALID_CONFIG, reason=f"model {server.model.name} only recognises English")
    return base


def parse_audio_format(config: stt_pb2.RecognitionConfig) -> AudioFormat:
    """Validate encoding, sample rate and channel count (ERR1004 when unsupported)."""
    if config.encoding == stt_pb2.WAV:
        return AudioFormat(encoding="wav")
    if config.encoding not in (stt_pb2.ENCODING_UNSPECIFIED, stt_pb2.LINEAR16):
        raise SttError(ErrorCode.UNSUPPORTED_AUDIO, reason=f"encoding {config.encoding} (use LINEAR16 or WAV)")
    rate = config.sample_rate_hertz or TARGET_RATE
    if rate not in SUPPORTED_RATES:
        rates = ", ".join(str(r) for r in SUPPORTED_RATES)
        raise SttError(ErrorCode.UNSUPPORTED_AUDIO, reason=f"sample_rate_hertz={rate} is not one of {rates}")
    channels = config.audio_channel_count or 1
    if not 1 <= channels <= MAX_CHANNELS:
        raise SttError(ErrorCode.UNSUPPORTED_AUDIO, reason=f"audio_channel_count={channels} outside 1..{MAX_CHANNELS}")
    return AudioFormat(encoding="linear16", sample_rate_hz=rate, channels=channels)


def _check_model(config: stt_pb2.RecognitionConfig, server: ServerConfig) -> None:
    if config.model and config.model != server.model.name:
        raise SttError(ErrorCode.INVALID_CONFIG, reason=f"model {clip_echo(config.model)!r} is not served here (have {server.model.name})")


def _endpointing(config: stt_pb2.RecognitionConfig) -> dict[str, float | int | None]:
    ep = config.endpointing
    for name, value in (("speech_start_ms", ep.speech_start_ms), ("end_silence_ms", ep.end_silence_ms),
                        ("max_utterance_sec", ep.max_utterance_sec)):
        if value < 0:
            raise SttError(ErrorCode.INVALID_CONFIG, reason=f"endpointing.{name} must not be negative")
    if ep.speech_start_ms > SPEECH_START_MS_MAX:
        raise SttError(ErrorCode.INVALID_CONFIG,
                       reason=f"endpointing.speech_start_ms must be within 0..{SPEECH_START_MS_MAX}")
    low, high = END_SILENCE_MS_RANGE
    if ep.end_silence_ms and not low <= ep.end_silence_ms <= high:
        raise SttError(ErrorCode.INVALID_CONFIG, reason=f"endpointing.end_silence_ms must be within {low}..{high}")
    low_sec, high_sec = MAX_UTTERANCE_SEC_RANGE
    if ep.max_utterance_sec and not low_sec <= ep.max_utterance_sec <= high_sec:
        raise SttError(ErrorCode.INVALID_CONFIG,
                       reason=f"endpointing.max_utterance_sec must be within {low_sec:g}..{high_sec:g}")
    return {
        "speech_start_ms": ep.speech_start_ms or None,
        "end_silence_ms": ep.end_silence_ms or None,
        "max_utterance_sec": float(ep.max_utterance_sec) or None,
    }


def parse_recognition_config(
    config: stt_pb2.RecognitionConfig, server: ServerConfig, *, interim_results: bool = False,
    single_utterance: bool = False,
) -> SessionConfig:
    """Validated settings for one stream or one Recognize call."""
    _check_model(config, server)
    if len(config.request_id) > 128:
        raise SttError(ErrorCode.INVALID_CONFIG, reason="request_id longer than 128 characters")
    options = StreamOptions(
        language=_language(config, server),
        interim_results=interim_results,
        single_utterance=single_utterance,
        word_time_offsets=config.enable_word_time_offsets,
        **_endpointing(config),  # type: ignore[arg-type]
    )
    return SessionConfig(audio=parse_audio_format(config), options=options, request_id=config.request_id)


def parse_streaming_config(config: stt_pb2.StreamingRecognitionConfig, server: ServerConfig) -> SessionConfig:
    return parse_recognition_config(
        config.config, server, interim_results=config.interim_results, single_utterance=config.single_utterance
    )


def limits_message(server: ServerConfig) -> stt_pb2.Limits:
    """The limits block of CreateSession and GetServerInfo responses."""
    limits = server.limits
    return stt_pb2.Limits(
        max_message_bytes=server.server.max_message_bytes,
        max_stream_duration_sec=server.server.max_stream_duration_sec,
        max_sessions=limits.max_sessions,
        max_sessions_per_api_key=min(limits.max_sessions_per_api_key, limits.max_sessions),
        requests_per_minute_per_api_key=limits.requests_per_minute_per_api_key,
        session_idle_timeout_sec=limits.session_idle_timeout_sec,
        session_ttl_sec=limits.session_ttl_sec,
        max_stream_buffer_bytes=limits.max_stream_buffer_bytes,
        max_total_buffer_bytes=limits.max_total_buffer_bytes,
        max_decode_pending=limits.max_decode_pending,
    )
