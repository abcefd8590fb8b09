"""Traffic row: who is connected and what they call (seed 002's Traffic, seed 004's business panels)."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import Panel

from stt_operator.dashboards.panels import SEL, Query, rate, series
from stt_operator.spec_sections import Thresholds


def panels(_: Thresholds) -> list[Builder[Panel]]:
    return [
        series("Active sessions and streams", [
            Query(f"sum by (pod) (stt_active_sessions{{{SEL}}})", "sessions {{pod}}"),
            Query(f"sum by (pod) (stt_active_streams{{{SEL}}})", "streams {{pod}}"),
        ], unit="short", description="Open sessions (stt_active_sessions) and StreamingRecognize calls in progress"),
        series("Sessions created, streams started", [
            Query(rate("stt_sessions_created_total"), "sessions created"),
            Query(rate("stt_streams_started_total"), "streams started"),
            Query(rate("stt_recognize_requests_total"), "Recognize calls"),
        ], unit="reqps", description="Per second: CreateSession successes, streams, unary Recognize"),
        series("gRPC requests by method and status", [
            Query(rate("stt_grpc_requests_total", by="method, grpc_status"), "{{method}} {{grpc_status}}"),
        ], unit="reqps", description="Finished gRPC calls per second (stt_grpc_requests_total)"),
        series("Results sent", [
            Query(rate("stt_results_total", by="kind"), "{{kind}}"),
        ], unit="short", description="Partial and final results per second"),
        series("Audio received", [
            Query(rate("audio_chunks_processed_total"), "audio messages"),
        ], unit="short", description="Audio messages per second on streams (seed 004 audio_chunks_processed)"),
        series("VAD events", [
            Query(rate("stt_vad_triggers_total", by="event"), "{{event}}"),
        ], unit="short", description="Speech begin / end events per second"),
    ]
