"""The PrometheusRule: seed 002's SLOs as recording rules and alerts, scoped to one SttServer.

Every expression selects `namespace` and `job` of this instance, so two SttServers in one
Prometheus never alert on each other's series. Thresholds come from
`spec.monitoring.prometheusRule.thresholds`; each alert links to its runbook anchor.
"""

from __future__ import annotations

from typing import Any, Final

from stt_operator.builders.labels import metadata, prometheus_job
from stt_operator.spec import SttServerSpec

# Server-side failures count against availability. UNAVAILABLE and RESOURCE_EXHAUSTED are load
# shedding (seed 002: excluded from the availability SLO but tracked) and the rest are the client's.
SERVER_ERROR_STATUSES: Final = "UNKNOWN|INTERNAL|DATA_LOSS|DEADLINE_EXCEEDED|UNIMPLEMENTED"
SHED_STATUSES: Final = "UNAVAILABLE|RESOURCE_EXHAUSTED"
BY: Final = "namespace, job"


def _selector(spec: SttServerSpec) -> str:
    return f'namespace="{spec.namespace}", job="{prometheus_job(spec)}"'


def _number(value: float) -> str:
    return f"{value:g}"


def recording_rules(spec: SttServerSpec) -> list[dict[str, Any]]:
    """Per-instance P99s and ratios, recorded so dashboards and alerts share one definition."""
    sel = _selector(spec)

    def p99(metric: str) -> str:
        return f"histogram_quantile(0.99, sum by ({BY}, le) (rate({metric}_bucket{{{sel}}}[5m])))"

    requests = f"sum by ({BY}) (rate(stt_grpc_requests_total{{{sel}}}[5m]))"
    return [
        {"record": "sttfleet:create_session_seconds:p99_rate5m", "expr": p99("stt_create_session_seconds")},
        {"record": "sttfleet:first_partial_latency_seconds:p99_rate5m",
         "expr": p99("stt_first_partial_latency_seconds")},
        {"record": "sttfleet:final_latency_seconds:p99_rate5m", "expr": p99("stt_final_latency_seconds")},
        {"record": "sttfleet:grpc_requests:rate5m", "expr": requests},
        {"record": "sttfleet:grpc_server_errors:ratio_rate5m",
         "expr": f'sum by ({BY}) (rate(stt_grpc_requests_total{{{sel}, grpc_status=~"{SERVER_ERROR_STATUSES}"}}[5m]))'
                 f" / {requests}"},
        {"record": "sttfleet:grpc_shed:ratio_rate5m",
         "expr": f'sum by ({BY}) (rate(stt_grpc_requests_total{{{sel}, grpc_status=~"{SHED_STATUSES}"}}[5m]))'
                 f" / {requests}"},
        {"record": "sttfleet:decode_orphaned:ratio_rate5m",
         "expr": f"sum by ({BY}) (rate(stt_decode_orphaned{{{sel}}}[5m])) / (sum by ({BY}) "
                 f"(rate(stt_decode_orphaned{{{sel}}}[5m])) + sum by ({BY}) (rate(stt_decode_cancelled{{{sel}}}[5m])))"},
        {"record": "sttfleet:partial_drop:ratio_rate5m",
         "expr": f"sum by ({BY}) (rate(stt_partial_drop_count{{{sel}}}[5m])) / "
                 f"sum by ({BY}) (rate(stt_decode_latency_count{{{sel}}}[5m]))"},
        {"record": "sttfleet:active_sessions:sum", "expr": f"sum by ({BY}) (stt_active_sessions{{{sel}}})"},
        {"record": "sttfleet:decode_pending:sum", "expr": f"sum by ({BY}) (stt_decode_pending{{{sel}}})"},
    ]


def _alert(spec: SttServerSpec, name: str, *, expr: str, duration: str, severity: str, summary: str,
           description: str) -> dict[str, Any]:
    return {
        "alert": name, "expr": expr, "for": duration,
        "labels": {"severity": severity, "sttserver": spec.name},
        "annotations": {"summary": summary, "description": description,
                        "runbook_url": f"{spec.monitoring.runbook_base_url}#{name.lower()}"},
    }


def alert_rules(spec: SttServerSpec) -> list[dict[str, Any]]:
    """One alert per seed 002 objective or guard, thresholds from the spec."""
    sel, t, who = _selector(spec), spec.monitoring.thresholds, f"SttServer {spec.namespace}/{spec.name}"
    return [
        _alert(spec, "SttCreateSessionLatencyHigh",
               expr=f"sttfleet:create_session_seconds:p99_rate5m{{{sel}}} > {_number(t.create_session_p99_seconds)}",
               duration="5m", severity="warning", summary=f"{who}: CreateSession P99 above SLO",
               description=f"CreateSession P99 has been above {_number(t.create_session_p99_seconds)}s for 5 minutes."),
        _alert(spec, "SttFirstPartialLatencyHigh",
               expr=f"sttfleet:first_partial_latency_seconds:p99_rate5m{{{sel}}} > "
                    f"{_number(t.first_partial_p99_seconds)}",
               duration="5m", severity="warning", summary=f"{who}: first-partial P99 above SLO",
               description=f"Speech start to first partial P99 has been above {_number(t.first_partial_p99_seconds)}s "
                           "for 5 minutes."),
        _alert(spec, "SttFinalLatencyHigh",
               expr=f"sttfleet:final_latency_seconds:p99_rate5m{{{sel}}} > {_number(t.final_p99_seconds)}",
               duration="5m", severity="warning", summary=f"{who}: final-result P99 above SLO",
               description=f"Utterance end to final P99 has been above {_number(t.final_p99_seconds)}s for 5 minutes."),
        _alert(spec, "SttGrpcErrorRateHigh",
               expr=f"sttfleet:grpc_server_errors:ratio_rate5m{{{sel}}} > {_number(t.error_rate_percent / 100)}",
               duration="5m", severity="critical", summary=f"{who}: gRPC server error rate above SLO",
               description=f"More than {_number(t.error_rate_percent)}% of gRPC calls fail with a server error "
                           "(UNAVAILABLE and RESOURCE_EXHAUSTED are load shedding, not counted)."),
        _alert(spec, "SttDecodeOrphanRateHigh",
               expr=f"sttfleet:decode_orphaned:ratio_rate5m{{{sel}}} > {_number(t.orphan_rate_percent / 100)}",
               duration="10m", severity="warning", summary=f"{who}: many decodes finish for a closed stream",
               description=f"More than {_number(t.orphan_rate_percent)}% of ended decodes finished after their "
                           "stream closed (orphaned / (orphaned + cancelled))."),
        _alert(spec, "SttPartialDropRateHigh",
               expr=f"sttfleet:partial_drop:ratio_rate5m{{{sel}}} > {_number(t.partial_drop_rate_percent / 100)}",
               duration="10m", severity="warning", summary=f"{who}: partial results are being dropped",
               description=f"More than {_number(t.partial_drop_rate_percent)}% of decodes drop their partial "
                           "result; the decoder is behind."),
        _alert(spec, "SttBufferUsageHigh",
               expr=f"stt_buffer_bytes_total{{{sel}}} / stt_max_total_buffer_bytes{{{sel}}} > "
                    f"{_number(t.buffer_usage_percent / 100)}",
               duration="5m", severity="warning", summary=f"{who}: global audio buffer nearly full",
               description=f"Pod {{{{ $labels.pod }}}} buffers more than {_number(t.buffer_usage_percent)}% of "
                           "max_total_buffer_bytes; new audio will be refused."),
        _alert(spec, "SttSessionChurnHigh",
               expr=f"sum by ({BY}) (increase(stt_sessions_created_total{{{sel}}}[5m])) > "
                    f"{t.session_churn_per_5m}",
               duration="5m", severity="info", summary=f"{who}: session churn spike",
               description=f"More than {t.session_churn_per_5m} sessions were created in 5 minutes."),
        _alert(spec, "SttDecodeQueueSaturated",
               expr=f"stt_decode_pending{{{sel}}} / stt_decode_pending_cap{{{sel}}} >= "
                    f"{_number(t.decode_queue_saturation_percent / 100)}",
               duration="5m", severity="warning", summary=f"{who}: decode queue saturated",
               description=f"Pod {{{{ $labels.pod }}}} has its decode queue at least "
                           f"{_number(t.decode_queue_saturation_percent)}% full; add replicas."),
        _alert(spec, "SttServerUnhealthy",
               expr=f"stt_ready{{{sel}}} == 0 or stt_model_loaded{{{sel}}} == 0",
               duration="5m", severity="critical", summary=f"{who}: a server is not ready",
               description="Pod {{ $labels.pod }} reports not ready or model not loaded for 5 minutes."),
        _alert(spec, "SttServerDown",
               expr=f"up{{{sel}}} == 0", duration="5m", severity="critical",
               summary=f"{who}: a server cannot be scraped",
               description="Prometheus cannot scrape {{ $labels.instance }} for 5 minutes."),
        _alert(spec, "SttServerAbsent",
               expr=f"absent(up{{{sel}}})", duration="10m", severity="critical",
               summary=f"{who}: no server targets",
               description="Prometheus has no scrape target for this SttServer: no pods, or no ServiceMonitor."),
    ]


def build_prometheusrule(spec: SttServerSpec) -> dict[str, Any]:
    """The PrometheusRule `<name>` with one recording group and one alerting group."""
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": metadata(spec, extra_labels=dict(spec.monitoring.prometheus_rule_labels)),
        "spec": {"groups": [
            {"name": f"sttfleet.{spec.namespace}.{spec.name}.recording", "interval": "30s",
             "rules": recording_rules(spec)},
            {"name": f"sttfleet.{spec.namespace}.{spec.name}.alerts", "rules": alert_rules(spec)},
        ]},
    }
