"""Pure parts of the gRPC edge, without a network: keys, rate buckets, sessions, config parsing, audio."""

from __future__ import annotations

import io
import logging
import wave

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from stt_server.config import ServerConfig, build_config
from stt_server.errors import ErrorCode, SttError
from stt_server.grpc_service import stream_config
from stt_server.grpc_service.audio_input import StreamAudioDecoder, parse_wav_header
from stt_server.grpc_service.auth import ApiKeyAuthenticator, extract_key, key_id_for
from stt_server.grpc_service.rate_limit import RateLimiter
from stt_server.grpc_service.sessions import SessionRegistry
from stt_server.grpc_service.stream_config import AudioFormat, SessionConfig
from stt_server.metrics import ServerMetrics
from stt_server.proto_gen import stt_pb2


def code_of(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(SttError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value.code.value


def test_keys_optional_then_required() -> None:
    assert ApiKeyAuthenticator([]).authenticate([]).key_id == "anonymous"
    auth = ApiKeyAuthenticator(["alpha", "beta"])
    assert auth.authenticate([("x-api-key", "beta")]).key_id == key_id_for("beta")
    assert auth.authenticate([("authorization", "Bearer alpha")]).key_id == key_id_for("alpha")
    assert code_of(auth.authenticate, []) == "ERR1018"
    assert code_of(auth.authenticate, [("x-api-key", "gamma")]) == "ERR1019"
    assert "alpha" not in repr(vars(auth))  # only digests are kept
    assert extract_key([("authorization", "Basic abc")]) is None


def test_token_bucket_refills_at_the_configured_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(requests_per_minute=60, clock=lambda: now[0])
    for _ in range(60):
        limiter.acquire("k")
    with pytest.raises(SttError) as caught:
        limiter.acquire("k")
    assert caught.value.code is ErrorCode.API_KEY_RATE_LIMIT
    assert caught.value.retry_after_sec == pytest.approx(1.0)
    limiter.acquire("other")  # buckets are per key
    now[0] = 2.0
    limiter.acquire("k")
    limiter.acquire("k")
    assert code_of(limiter.acquire, "k") == "ERR1013"


def _session_config() -> SessionConfig:
    return stream_config.parse_streaming_config(stt_pb2.StreamingRecognitionConfig(), ServerConfig())


def test_registry_limits_expiry_and_gauges() -> None:
    metrics = ServerMetrics(CollectorRegistry())
    now = [0.0]
    limits = build_config({"limits": {"max_sessions": 3, "max_sessions_per_api_key": 2, "session_ttl_sec": 10}}).limits
    registry = SessionRegistry(limits, metrics=metrics, clock=lambda: now[0])
    a1 = registry.create(key_id="a", config=_session_config())
    registry.create(key_id="a", config=_session_config())
    assert code_of(registry.create, key_id="a", config=_session_config()) == "ERR1012"
    b1 = registry.create(key_id="b", config=_session_config())
    assert code_of(registry.create, key_id="c", config=_session_config()) == "ERR1011"
    assert metrics.registry.get_sample_value("stt_session_limit_rejects_total") == 1
    assert code_of(registry.claim, a1.session_id, key_id="b") == "ERR1008"  # not another key's
    registry.claim(a1.session_id, key_id="a")
    assert code_of(registry.claim, a1.session_id, key_id="a") == "ERR1010"
    now[0] = 11.0
    assert registry.expire_stale() == 2  # the unclaimed ones; a1 is streaming
    assert code_of(registry.claim, b1.session_id, key_id="b") == "ERR1009"
    registry.release(a1)
    registry.release(a1)  # idempotent
    assert len(registry) == 0 and registry.per_key_counts() == {}
    assert metrics.registry.get_sample_value("stt_active_sessions") == 0
    assert metrics.registry.get_sample_value("stt_api_key_sessions", {"key_id": "a"}) is None


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"sample_rate_hertz": 12000}, "ERR1004"),
        ({"audio_channel_count": 9}, "ERR1004"),
        ({"encoding": 7}, "ERR1004"),
        ({"model": "large-v3"}, "ERR1022"),
        ({"language_code": "fr-FR"}, "ERR1022"),
        ({"language_code": "e1"}, "ERR1022"),
        ({"auto_detect_language": True}, "ERR1022"),
        ({"endpointing": stt_pb2.EndpointingConfig(end_silence_ms=10)}, "ERR1022"),
        ({"endpointing": stt_pb2.EndpointingConfig(max_utterance_sec=60)}, "ERR1022"),
        ({"request_id": "x" * 129}, "ERR1022"),
    ],
)
def test_config_rejections(fields: dict[str, object], code: str) -> None:
    config = stt_pb2.RecognitionConfig(**fields)  # type: ignore[arg-type]
    assert code_of(stream_config.parse_recognition_config, config, ServerConfig()) == code


def test_config_accepts_and_maps_options() -> None:
    parsed = stream_config.parse_streaming_config(
        stt_pb2.StreamingRecognitionConfig(
            config=stt_pb2.RecognitionConfig(sample_rate_hertz=44100, audio_channel_count=2, language_code="en-GB",
                                             enable_word_time_offsets=True, request_id="r1",
                                             endpointing=stt_pb2.EndpointingConfig(end_silence_ms=800)),
            interim_results=True, single_utterance=True),
        ServerConfig(),
    )
    assert parsed.audio == AudioFormat(encoding="linear16", sample_rate_hz=44100, channels=2)
    options = parsed.options
    assert (options.language, options.interim_results, options.single_utterance, options.word_time_offsets) == (
        "en", True, True, True)
    assert (options.end_silence_ms, options.speech_start_ms) == (800, None)
    assert parsed.request_id == "r1"


def test_stream_decoder_checks_and_resamples() -> None:
    decoder = StreamAudioDecoder(AudioFormat(sample_rate_hz=8000), max_duration_sec=1.0)
    out = decoder.decode(np.zeros(4000, "<i2").tobytes())
    out = np.concatenate([out, decoder.flush()])
    assert abs(out.size - 8000) <= 64 and out.dtype == np.float32
    assert code_of(decoder.decode, b"\x00" * 3) == "ERR1003"
    assert code_of(decoder.decode, np.zeros(8000, "<i2").tobytes()) == "ERR1006"


def test_wav_header_needs_whole_header_and_16_bit() -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(1)
        handle.setframerate(16000)
        handle.writeframes(b"\x80" * 100)
    data = buffer.getvalue()
    assert parse_wav_header(data[:20]) is None
    assert code_of(parse_wav_header, data) == "ERR1004"
    assert code_of(parse_wav_header, b"NOTAWAVEFILE") == "ERR1023"


def test_no_api_key_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = ApiKeyAuthenticator(["s3cret-key"])
    auth.authenticate([("x-api-key", "s3cret-key")])
    with pytest.raises(SttError) as caught:
        auth.authenticate([("x-api-key", "s3cret-wrong")])
    assert "s3cret" not in caplog.text and "s3cret" not in caught.value.message
