"""Limits row: what the server refused to protect itself: session caps, rate limits, shed calls."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import Panel

from stt_operator.builders.prometheusrule import SHED_STATUSES
from stt_operator.dashboards.panels import SEL, Query, rate, series
from stt_operator.spec_sections import Thresholds


def panels(_: Thresholds) -> list[Builder[Panel]]:
    return [
        series("Sessions against max_sessions", [
            Query(f"sum by (pod) (stt_active_sessions{{{SEL}}})", "open {{pod}}"),
            Query(f"max(stt_max_sessions{{{SEL}}})", "max per pod"),
        ], unit="short", description="Open sessions per pod; at max_sessions CreateSession is refused (ERR1011)"),
        series("CreateSession refusals by code", [
            Query(rate("stt_create_session_refusals_total", by="code"), "{{code}}"),
            Query(rate("stt_session_limit_rejects_total"), "max_sessions (ERR1011)"),
        ], unit="short", description="Refused CreateSession calls per second, by catalogue code"),
        series("Rate-limit blocks", [
            Query(rate("stt_rate_limit_blocks_total", by="limit"), "{{limit}}"),
        ], unit="short", description="Requests refused per second, by the limit that refused them"),
        series("Shed calls", [
            Query(rate("stt_grpc_requests_total", by="method, grpc_status", extra=f'grpc_status=~"{SHED_STATUSES}"'),
                  "{{method}} {{grpc_status}}"),
        ], unit="short", width=24, height=6,
            description=f"Calls that ended {SHED_STATUSES} per second (load shedding)"),
    ]
