"""Seed 003's Whisper-API panels and seed 004's HTTP, gRPC and business panels, on the names the
server exports for them (server/stt_server/metrics_compat.py). Seed 004's WebSocket and Redis
panels have no counterpart: stt-server speaks gRPC and keeps no Redis."""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import Panel

from stt_operator.dashboards.panels import SEL, Query, quantile, quantiles, rate, series, single
from stt_operator.spec_sections import Thresholds

HTTP_5XX: Final = 'status=~"5.."'
NOT_OK: Final = 'status!="OK"'


def whisper_api(_: Thresholds) -> list[Builder[Panel]]:
    """Seed 003: transcription duration, request rate, performance breakdown, errors, model state."""
    errors = (f"100 * ({rate('whisper_transcription_errors_total')} or vector(0)) / "
              f"{rate('whisper_transcription_requests_total')}")
    return [
        single("Transcription requests", Query(rate("whisper_transcription_requests_total"), "req/s"),
               unit="reqps", description="Recognize and StreamingRecognize calls finished per second"),
        single("Transcription errors", Query(errors, "errors"), unit="percent", limit=5, decimals=2,
               description="Share of transcription calls that ended with an error"),
        single("Model loaded", Query(f"min(whisper_model_loaded{{{SEL}}})", "loaded"), unit="short",
               floor=1, description="1 on every selected pod once the Whisper model is loaded"),
        single("Transcription P95", Query(quantile(0.95, "whisper_transcription_duration_seconds"), "P95"),
               unit="s", description="Seconds per call (a stream: its whole life)"),
        series("Transcription duration", quantiles("whisper_transcription_duration_seconds", qs=(0.5, 0.95)),
               unit="s", width=12, description="P50 and P95 seconds per Recognize / StreamingRecognize call"),
        series("Performance breakdown (P95)", [
            Query(quantile(0.95, "whisper_audio_load_duration_seconds"), "audio load"),
            Query(quantile(0.95, "whisper_inference_duration_seconds"), "inference"),
            Query(quantile(0.95, "whisper_processing_duration_seconds"), "processing"),
            Query(quantile(0.95, "whisper_decode_duration_seconds"), "decode (end to end)"),
        ], unit="s", width=12, description="Seed 003's operation timings: audio load, inference, processing, decode"),
    ]


def http_and_business(_: Thresholds) -> list[Builder[Panel]]:
    """Seed 004: control-plane HTTP, gRPC by method, and the transcription business counters."""
    http_5xx = f"({rate('http_requests_total', extra=HTTP_5XX)} or vector(0)) / {rate('http_requests_total')}"
    grpc_errors = f"({rate('grpc_requests_total', extra=NOT_OK)} or vector(0)) / {rate('grpc_requests_total')}"
    return [
        series("HTTP latency", quantiles("http_request_duration_seconds", qs=(0.95, 0.99)), unit="s",
               description="Control-plane request seconds (health, metrics, system)"),
        series("HTTP throughput", [Query(rate("http_requests_total", by="endpoint"), "{{endpoint}}")],
               unit="reqps", description="Control-plane requests per second by endpoint"),
        series("HTTP requests by status", [Query(rate("http_requests_total", by="status"), "{{status}}")],
               unit="reqps", description="Control-plane requests per second by status code"),
        series("HTTP 5xx ratio", [Query(http_5xx, "5xx")], unit="percentunit",
               description="Control-plane responses with a 5xx status"),
        series("HTTP in flight and sizes", [
            Query(f"sum(http_requests_in_progress{{{SEL}}})", "in progress"),
            Query(f"{rate('http_response_size_bytes_sum')} / {rate('http_response_size_bytes_count')}",
                  "avg response bytes"),
        ], unit="short", description="Requests being served, and the mean response body size"),
        series("gRPC request rate", [Query(rate("grpc_requests_total", by="method"), "{{method}}")],
               unit="reqps", description="gRPC calls finished per second by method (seed 004 grpc_requests)"),
        series("gRPC latency (P95)", [
            Query(quantile(0.95, "grpc_request_duration_seconds", by="method"), "{{method}}"),
        ], unit="s", description="Seconds per gRPC call by method (a stream: its whole life)"),
        series("gRPC error ratio", [Query(grpc_errors, "not OK")], unit="percentunit",
               description="gRPC calls that did not end OK (client mistakes and shedding included)"),
        series("Transcription sessions", [
            Query(f"sum(transcription_sessions_active{{{SEL}}})", "active"),
            Query(rate("transcription_sessions_total", by="status"), "ended {{status}} /s"),
        ], unit="short", description="Open sessions and streaming sessions ended per second by final status"),
        series("Transcription results", [
            Query(rate("transcription_results_total", by="type"), "{{type}}"),
        ], unit="short", width=24, height=6, description="Interim and final results per second (seed 004)"),
    ]
