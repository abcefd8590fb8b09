"""Seed 003's and 004's metric names: present, well-formed, and equal to the figures they derive from."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from stt_server.metrics import DecodeTiming, ServerMetrics
from stt_server.metrics_compat import GRPC_SERVICE, REST_SERVICE

# Every seed 003 / 004 name stt-server can honestly serve (WebSocket and Redis ones it cannot).
SEED_003 = ("whisper_transcription_requests", "whisper_transcription_errors", "whisper_transcription_duration_seconds",
            "whisper_inference_duration_seconds", "whisper_audio_load_duration_seconds",
            "whisper_processing_duration_seconds", "whisper_decode_duration_seconds", "whisper_model_loaded")
SEED_004 = ("http_requests", "http_request_duration_seconds", "http_request_size_bytes", "http_response_size_bytes",
            "http_requests_in_progress", "grpc_requests", "grpc_request_duration_seconds",
            "transcription_sessions_active", "transcription_sessions", "audio_chunks_processed",
            "transcription_results")


def _families(metrics: ServerMetrics) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())}


def _value(metrics: ServerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} not exported"
    return value


def test_every_applicable_seed_name_is_exported_with_a_type() -> None:
    families = _families(ServerMetrics())
    missing = [name for name in (*SEED_003, *SEED_004) if name not in families]
    assert not missing


def test_derived_names_follow_the_metrics_they_come_from() -> None:
    m = ServerMetrics()
    for method, status in (("Recognize", "OK"), ("StreamingRecognize", "OK"), ("StreamingRecognize", "OK"),
                           ("StreamingRecognize", "RESOURCE_EXHAUSTED"), ("CreateSession", "OK")):
        m.grpc_requests.labels(method=method, grpc_status=status, protocol="grpc").inc()
        m.grpc_request_seconds.labels(service=GRPC_SERVICE, method=method, protocol="grpc").observe(0.2)
    m.results.labels(kind="partial").inc(5)
    m.results.labels(kind="final").inc(2)
    m.record_decode(kind="partial", timing=DecodeTiming(0.0, 0.1, 0.2, 0.01), audio_seconds=1.0)
    m.record_decode(kind="final", timing=DecodeTiming(0.0, 0.3, 0.4, 0.02), audio_seconds=1.0)
    m.model_loaded.set(1)
    m.active_sessions.set(3)

    assert _value(m, "grpc_requests_total", service=GRPC_SERVICE, method="StreamingRecognize", status="OK") == 2
    assert _value(m, "whisper_transcription_requests_total") == 4  # CreateSession is not a transcription
    assert _value(m, "whisper_transcription_errors_total") == 1
    assert _value(m, "transcription_sessions_total", status="OK") == 2
    assert _value(m, "transcription_sessions_total", status="RESOURCE_EXHAUSTED") == 1
    assert _value(m, "transcription_results_total", type="interim") == 5
    assert _value(m, "transcription_results_total", type="final") == 2
    assert _value(m, "whisper_transcription_duration_seconds_count") == 4
    assert _value(m, "whisper_inference_duration_seconds_count") == 2
    assert abs(_value(m, "whisper_inference_duration_seconds_sum") - 0.6) < 1e-9
    assert _value(m, "whisper_inference_duration_seconds_bucket", le="0.25") == 1  # the 0.2 s one
    assert abs(_value(m, "whisper_decode_duration_seconds_sum") - (0.31 + 0.72)) < 1e-9
    assert abs(_value(m, "whisper_processing_duration_seconds_sum") - 0.03) < 1e-9
    assert _value(m, "whisper_model_loaded") == 1 and _value(m, "transcription_sessions_active") == 3


def test_rest_calls_count_as_transcriptions_but_not_as_seed_grpc_calls() -> None:
    m = ServerMetrics()
    m.grpc_requests.labels(method="Recognize", grpc_status="OK", protocol="grpc").inc()
    m.grpc_requests.labels(method="Recognize", grpc_status="OK", protocol="rest").inc(2)
    m.grpc_requests.labels(method="Recognize", grpc_status="INVALID_ARGUMENT", protocol="rest").inc()
    m.grpc_request_seconds.labels(service=REST_SERVICE, method="Recognize", protocol="rest").observe(0.2)

    assert _value(m, "grpc_requests_total", service=GRPC_SERVICE, method="Recognize", status="OK") == 1
    assert m.registry.get_sample_value("grpc_requests_total", {"service": GRPC_SERVICE, "method": "Recognize",
                                                               "status": "INVALID_ARGUMENT"}) is None
    assert _value(m, "whisper_transcription_requests_total") == 4
    assert _value(m, "whisper_transcription_errors_total") == 1
    assert _value(m, "whisper_transcription_duration_seconds_count") == 1
