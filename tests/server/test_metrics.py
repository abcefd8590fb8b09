"""``ServerMetrics``: names, types and values as Prometheus would scrape them."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from stt_server.metrics import DECODE_PHASES, RATE_LIMIT_KINDS, DecodeTiming, ServerMetrics, hashed_stream_key


def _families(metrics: ServerMetrics) -> dict[str, object]:
    text = generate_latest(metrics.registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def _sample(metrics: ServerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} not exported"
    return value


SEED_COUNTERS = ("stt_decode_latency_total", "stt_decode_latency_count", "stt_rtf_total", "stt_rtf_count",
                 "stt_partial_drop_count", "stt_decode_orphaned", "stt_decode_cancelled",
                 *[f"stt_rate_limit_blocks_{kind}" for kind in RATE_LIMIT_KINDS])


def test_seed_002_names_are_exported_bare() -> None:
    text = generate_latest(ServerMetrics().registry).decode()
    for name in SEED_COUNTERS:
        assert f"\n{name} 0.0\n" in text, name
    for gauge in ("stt_active_sessions", "stt_decode_pending", "stt_buffer_bytes_total", "stt_decode_latency_max",
                  "stt_rtf_max"):
        assert f"# TYPE {gauge} gauge\n{gauge} 0.0" in text, gauge


def test_seed_002_names_have_matching_type_lines() -> None:
    text = generate_latest(ServerMetrics().registry).decode()
    for name in SEED_COUNTERS:
        assert f"# TYPE {name} " in text, name


def test_record_decode_feeds_histograms_sums_and_maxima() -> None:
    metrics = ServerMetrics()
    metrics.record_decode(kind="final", timing=DecodeTiming(0.1, 0.2, 0.5, 0.05), audio_seconds=2.0, batch_size=3)
    metrics.record_decode(kind="partial", timing=DecodeTiming(0.0, 0.0, 0.1, 0.0), audio_seconds=1.0)
    for phase in DECODE_PHASES:
        assert _sample(metrics, "stt_decode_phase_seconds_count", phase=phase, kind="final") == 1
    assert abs(_sample(metrics, "stt_decode_phase_seconds_sum", phase="total", kind="final") - 0.85) < 1e-9
    assert abs(_sample(metrics, "stt_decode_latency_total") - 0.95) < 1e-9
    assert _sample(metrics, "stt_decode_latency_count") == 2
    assert abs(_sample(metrics, "stt_decode_latency_max") - 0.85) < 1e-9
    assert abs(_sample(metrics, "stt_rtf_max") - 0.25) < 1e-9  # 0.5 s inference / 2 s audio
    assert _sample(metrics, "stt_decode_batch_size_sum") == 4
    assert _sample(metrics, "stt_decode_rtf_count", kind="partial") == 1


def test_zero_audio_decode_skips_rtf() -> None:
    metrics = ServerMetrics()
    metrics.record_decode(kind="offline", timing=DecodeTiming(0, 0, 0.1, 0), audio_seconds=0.0)
    assert _sample(metrics, "stt_rtf_count") == 0 and _sample(metrics, "stt_decode_latency_count") == 1


def test_errors_and_rate_limits_count_under_both_names() -> None:
    metrics = ServerMetrics()
    metrics.record_error(code="ERR1011", grpc_status="RESOURCE_EXHAUSTED")
    metrics.record_error(code="ERR1011", grpc_status="RESOURCE_EXHAUSTED")
    metrics.record_rate_limit_block("decode_queue")
    assert _sample(metrics, "stt_errors_total", code="ERR1011", grpc_status="RESOURCE_EXHAUSTED") == 2
    assert _sample(metrics, "stt_error_counts_resource_exhausted") == 2
    assert _sample(metrics, "stt_rate_limit_blocks_total", limit="decode_queue") == 1
    assert _sample(metrics, "stt_rate_limit_blocks_decode_queue") == 1


def test_stream_buffers_use_hashed_keys_and_disappear() -> None:
    metrics = ServerMetrics()
    metrics.set_stream_buffer("session-secret-id", 6400)
    key = hashed_stream_key("session-secret-id")
    text = generate_latest(metrics.registry).decode()
    assert f"stt_stream_buffer_bytes_{key} 6400.0" in text and "session-secret-id" not in text
    metrics.set_stream_buffer("session-secret-id", -1)
    assert f"stt_stream_buffer_bytes_{key}" not in generate_latest(metrics.registry).decode()


def test_each_instance_has_its_own_registry() -> None:
    first, second = ServerMetrics(), ServerMetrics()
    first.active_sessions.set(5)
    assert _sample(second, "stt_active_sessions") == 0


def test_counters_for_the_seeds_gaps_exist() -> None:
    metrics = ServerMetrics()
    metrics.sessions_created.inc()
    metrics.streams_started.inc()
    metrics.session_limit_rejects.inc()
    assert _sample(metrics, "stt_sessions_created_total") == 1
    assert _sample(metrics, "stt_streams_started_total") == 1
    assert _sample(metrics, "stt_session_limit_rejects_total") == 1
    names = _families(metrics)
    for histogram in ("stt_create_session_seconds", "stt_first_partial_latency_seconds", "stt_final_latency_seconds"):
        assert names[histogram].type == "histogram"
