"""Performance row: the SLO latencies as P50/P95/P99, decode latency, real-time factor, phases."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import Panel

from stt_operator.dashboards.panels import SEL, Query, quantile, quantiles, rate, series
from stt_operator.dashboards.slo import objectives
from stt_operator.spec_sections import Thresholds


def panels(t: Thresholds) -> list[Builder[Panel]]:
    latency: list[Builder[Panel]] = [
        series(f"{o.title} latency", quantiles(o.histogram), unit="s", limit=o.seconds,
               description=f"P50/P95/P99 of {o.histogram}; the dashed line is the P99 objective")
        for o in objectives(t)]
    return [
        *latency,
        series("Decode latency", [
            Query(f"{rate('stt_decode_latency_total')} / {rate('stt_decode_latency_count')}", "avg"),
            Query(quantile(0.99, "stt_decode_phase_seconds", extra='phase="total"'), "P99"),
            Query(f"max(stt_decode_latency_max{{{SEL}}})", "max (60 s)"),
        ], unit="s", description="Seconds per decode end to end: seed 002's average, the largest in the last "
                                 "60 s (stt_decode_latency_max), and P99 from the phase histogram"),
        series("Real-time factor", [
            Query(f"{rate('stt_rtf_total')} / {rate('stt_rtf_count')}", "avg"),
            Query(quantile(0.95, "stt_decode_rtf", by="kind"), "P95 {{kind}}"),
            Query(f"max(stt_rtf_max{{{SEL}}})", "max (60 s)"),
        ], unit="short", description="Inference seconds per second of audio (below 1: faster than real time)"),
        series("Decode phases (P95)", [
            Query(quantile(0.95, "stt_decode_phase_seconds", by="phase", extra='phase!="total"'), "{{phase}}"),
        ], unit="s", description="Where decode time goes: buffer wait, queue wait, inference, response emit"),
        series("Decode batch size", [
            Query(f"{rate('stt_decode_batch_size_sum')} / {rate('stt_decode_batch_size_count')}", "avg streams"),
        ], unit="short", width=24, height=6, description="Streams decoded together in one model call"),
    ]
