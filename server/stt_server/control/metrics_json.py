"""``/metrics.json``: seed 000's JSON counters and gauges, read back from the Prometheus registry.

The registry is the single source of truth, so the JSON and the text exposition can never
disagree. Pure over a ``CollectorRegistry``: tests record into a fresh ``ServerMetrics`` and compare.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from prometheus_client import CollectorRegistry

from stt_server.metrics import DECODE_PHASES, RATE_LIMIT_KINDS, SPEECH_EVENTS, ServerMetrics

_Samples = dict[str, list[tuple[dict[str, str], float]]]


def collect_samples(registry: CollectorRegistry) -> _Samples:
    """Every sample in the registry, grouped by sample name (``..._bucket``, ``..._sum``, ...)."""
    samples: _Samples = defaultdict(list)
    for family in registry.collect():
        for sample in family.samples:
            samples[sample.name].append((dict(sample.labels), float(sample.value)))
    return samples


def _value(samples: _Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when absent)."""
    return sum(v for got, v in samples.get(name, ()) if all(got.get(k) == want for k, want in labels.items()))


def _by_label(samples: _Samples, name: str, *, label: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for got, value in samples.get(name, ()):
        if label in got:
            out[got[label]] += value
    return dict(out)


def _avg(total: float, count: float) -> float:
    return total / count if count else 0.0


def _decode_timing(samples: _Samples) -> dict[str, Any]:
    phases = {}
    for phase in DECODE_PHASES:
        total = _value(samples, "stt_decode_phase_seconds_sum", phase=phase)
        count = _value(samples, "stt_decode_phase_seconds_count", phase=phase)
        phases[phase] = {"sum_sec": total, "count": int(count), "avg_sec": _avg(total, count)}
    latency_total = _value(samples, "stt_decode_latency_total")
    latency_count = _value(samples, "stt_decode_latency_count")
    return {
        "count": int(latency_count),
        "latency_total_sec": latency_total,
        "latency_avg_sec": _avg(latency_total, latency_count),
        "latency_max_sec": _value(samples, "stt_decode_latency_max"),
        "phases": phases,
    }


def _latency(samples: _Samples, base: str) -> dict[str, Any]:
    total = _value(samples, f"{base}_sum")
    count = _value(samples, f"{base}_count")
    return {"count": int(count), "sum_sec": total, "avg_sec": _avg(total, count)}


def build_metrics_json(metrics: ServerMetrics, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``metrics`` object of ``/metrics.json``; ``extra`` (from the server view) is merged last."""
    s = collect_samples(metrics.registry)
    rtf_total, rtf_count = _value(s, "stt_rtf_total"), _value(s, "stt_rtf_count")
    rate_limits = {kind: int(_value(s, f"stt_rate_limit_blocks_{kind}")) for kind in RATE_LIMIT_KINDS}
    errors_by_status = {
        name.removeprefix("stt_error_counts_"): int(_value(s, name))
        for name in s
        if name.startswith("stt_error_counts_")
    }
    body: dict[str, Any] = {
        "active_sessions": int(_value(s, "stt_active_sessions")),
        "active_streams": int(_value(s, "stt_active_streams")),
        "api_key_sessions": {k: int(v) for k, v in _by_label(s, "stt_api_key_sessions", label="key_id").items()},
        "sessions_created": int(_value(s, "stt_sessions_created_total")),
        "streams_started": int(_value(s, "stt_streams_started_total")),
        "recognize_requests": int(_value(s, "stt_recognize_requests_total")),
        "decode_pending": int(_value(s, "stt_decode_pending")),
        "decode_pending_cap": int(_value(s, "stt_decode_pending_cap")),
        "decode_timing": _decode_timing(s),
        "rtf": {"total": rtf_total, "count": int(rtf_count), "avg": _avg(rtf_total, rtf_count),
                "max": _value(s, "stt_rtf_max")},
        "create_session_latency": _latency(s, "stt_create_session_seconds"),
        "first_partial_latency": _latency(s, "stt_first_partial_latency_seconds"),
        "final_latency": _latency(s, "stt_final_latency_seconds"),
        "results": {k: int(v) for k, v in _by_label(s, "stt_results_total", label="kind").items()},
        "vad_triggers": {event: int(_value(s, "stt_vad_triggers_total", event=event)) for event in SPEECH_EVENTS},
        "vad_active_utterances": int(_value(s, "stt_vad_active_utterances")),
        "error_counts": {k: int(v) for k, v in _by_label(s, "stt_errors_total", label="code").items()},
        "error_counts_by_status": errors_by_status,
        "buffer_bytes_total": int(_value(s, "stt_buffer_bytes_total")),
        "max_total_buffer_bytes": int(_value(s, "stt_max_total_buffer_bytes")),
        "stream_buffer_bytes": metrics.stream_buffers(),
        "partial_drop_count": int(_value(s, "stt_partial_drop_count")),
        "decode_orphaned": int(_value(s, "stt_decode_orphaned")),
        "decode_cancelled": int(_value(s, "stt_decode_cancelled")),
        "rate_limit_blocks": rate_limits,
        "session_limit_rejects": int(_value(s, "stt_session_limit_rejects_total")),
        "max_sessions": int(_value(s, "stt_max_sessions")),
        "model_loaded": bool(_value(s, "stt_model_loaded")),
        "ready": bool(_value(s, "stt_ready")),
        "draining": bool(_value(s, "stt_draining")),
    }
    for key, value in (extra or {}).items():
        # The view knows things the registry cannot (e.g. sessions per key before any gauge is set).
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return body
