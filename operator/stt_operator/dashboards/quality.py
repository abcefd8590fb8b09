"""Quality row: partials per final, dropped partials, orphaned and cancelled decodes, errors by code."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import Panel

from stt_operator.dashboards.panels import Query, rate, series
from stt_operator.spec_sections import Thresholds


def panels(t: Thresholds) -> list[Builder[Panel]]:
    drop_limit = t.partial_drop_rate_percent / 100
    partials, finals = (rate("stt_results_total", extra=f'kind="{kind}"') for kind in ("partial", "final"))
    return [
        series("Partials per final", [
            Query(f"{partials} / {finals}", "partial / final"),
        ], unit="short", description="How many partial results a client sees per final result"),
        series("Partial drop ratio", [
            Query(f"{rate('stt_partial_drop_count')} / {rate('stt_decode_latency_count')}", "dropped / decodes"),
        ], unit="percentunit", limit=drop_limit,
            description="Partials superseded before they were decoded, per decode (seed 002); the line is the alert"),
        series("Orphaned and cancelled decodes", [
            Query(rate("stt_decode_orphaned"), "orphaned"),
            Query(rate("stt_decode_cancelled"), "cancelled"),
        ], unit="short", description="Per second: decodes that finished after their stream closed, and "
                                     "queued decodes cancelled with their stream"),
        series("Errors by code", [
            Query(rate("stt_errors_total", by="code, grpc_status"), "{{code}} {{grpc_status}}"),
        ], unit="short", width=24, description="Errors returned per second, by catalogue code (docs/errors.md)"),
    ]
