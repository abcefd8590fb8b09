"""The PrometheusRule: seed 002's SLOs as recording rules and alerts, scoped to one SttServer.

Every expression selects `namespace` and `job` of this instance, so two SttServers in one
Prometheus never alert on each other's series. Thresholds come from
`spec.monitoring.prometheusRule.thresholds`; each alert links to its runbook anchor.
`alert_definitions` is the one source of alert truth: the rule renders it, and the alert tables in
docs/slo.md and docs/operations.md are generated from it (`python -m stt_operator.alert_docs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from stt_operator.builders.deployment import DEFAULT_RESOURCES
from stt_operator.builders.labels import metadata, prometheus_job
from stt_operator.reconcile import quantity_value
from stt_operator.spec import SttServerSpec

# Server faults count against availability; nothing else does. UNAVAILABLE and RESOURCE_EXHAUSTED
# are load shedding (seed 002: excluded from the availability SLO but tracked). DEADLINE_EXCEEDED is
# the client's: the server sends it only for ERR1017 (a stream that went idle), and a client's own
# deadline running out shows in the latency alerts. INVALID_ARGUMENT, NOT_FOUND, UNAUTHENTICATED,
# OUT_OF_RANGE, FAILED_PRECONDITION and CANCELLED are what clients send or do.
SERVER_ERROR_STATUSES: Final = "UNKNOWN|INTERNAL|DATA_LOSS"
SHED_STATUSES: Final = "UNAVAILABLE|RESOURCE_EXHAUSTED"
BY: Final = "namespace, job"


def _selector(spec: SttServerSpec) -> str:
    return f'namespace="{spec.namespace}", job="{prometheus_job(spec)}"'


def _number(value: float) -> str:
    # 15 significant digits: whole byte counts and seconds stay exact, 99.9 / 100 stays 0.999
    return f"{value:.15g}"


def recording_rules(spec: SttServerSpec) -> list[dict[str, Any]]:
    """Per-instance P99s and ratios, recorded so dashboards and alerts share one definition."""
    sel = _selector(spec)

    def p99(metric: str) -> str:
        return f"histogram_quantile(0.99, sum by ({BY}, le) (rate({metric}_bucket{{{sel}}}[5m])))"

    requests = f"sum by ({BY}) (rate(stt_grpc_requests_total{{{sel}}}[5m]))"

    def server_errors(window: str) -> str:
        return (f'sum by ({BY}) (rate(stt_grpc_requests_total{{{sel}, grpc_status=~"{SERVER_ERROR_STATUSES}"}}'
                f"[{window}])) / sum by ({BY}) (rate(stt_grpc_requests_total{{{sel}}}[{window}]))")

    return [
        {"record": "sttfleet:create_session_seconds:p99_rate5m", "expr": p99("stt_create_session_seconds")},
        {"record": "sttfleet:first_partial_latency_seconds:p99_rate5m",
         "expr": p99("stt_first_partial_latency_seconds")},
        {"record": "sttfleet:final_latency_seconds:p99_rate5m", "expr": p99("stt_final_latency_seconds")},
        {"record": "sttfleet:decode_seconds:p99_rate5m",
         "expr": f"histogram_quantile(0.99, sum by ({BY}, le) "
                 f'(rate(stt_decode_phase_seconds_bucket{{{sel}, phase="total"}}[5m])))'},
        {"record": "sttfleet:grpc_requests:rate5m", "expr": requests},
        {"record": "sttfleet:grpc_server_errors:ratio_rate5m", "expr": server_errors("5m")},
        {"record": "sttfleet:grpc_server_errors:ratio_rate1h", "expr": server_errors("1h")},
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


@dataclass(frozen=True)
class AlertDefinition:
    """One alert as rendered and as documented: `condition` is the docs' wording of `expr`, with
    this spec's thresholds; `field` the threshold's key under `prometheusRule.thresholds` (or None)."""

    name: str
    expr: str
    duration: str
    severity: str
    summary: str
    description: str
    condition: str
    field: str | None = None


def memory_limit_bytes(spec: SttServerSpec) -> int | None:
    """The server container's memory limit in bytes (the operator's default when resources are unset)."""
    limits = (spec.resources or DEFAULT_RESOURCES).get("limits") or {}
    value = quantity_value(limits.get("memory"))
    return None if value is None or value <= 0 else int(value)


def alert_definitions(spec: SttServerSpec) -> list[AlertDefinition]:
    """One alert per seed 002 objective or guard (plus seed 004's availability and memory), thresholds from the spec.

    The memory alert needs a memory limit to compare with; without one it is left out.
    """
    sel, t, who = _selector(spec), spec.monitoring.thresholds, f"SttServer {spec.namespace}/{spec.name}"
    n = _number
    a = AlertDefinition
    alerts = [
        a("SttCreateSessionLatencyHigh",
          expr=f"sttfleet:create_session_seconds:p99_rate5m{{{sel}}} > {n(t.create_session_p99_seconds)}",
          duration="5m", severity="warning", summary=f"{who}: CreateSession P99 above SLO",
          description=f"CreateSession P99 has been above {n(t.create_session_p99_seconds)}s for 5 minutes.",
          condition=f"CreateSession P99 > {n(t.create_session_p99_seconds)} s", field="createSessionP99Seconds"),
        a("SttFirstPartialLatencyHigh",
          expr=f"sttfleet:first_partial_latency_seconds:p99_rate5m{{{sel}}} > {n(t.first_partial_p99_seconds)}",
          duration="5m", severity="warning", summary=f"{who}: first-partial P99 above SLO",
          description=f"Speech start to first partial P99 has been above {n(t.first_partial_p99_seconds)}s "
                      "for 5 minutes.",
          condition=f"first-partial P99 > {n(t.first_partial_p99_seconds)} s", field="firstPartialP99Seconds"),
        a("SttFinalLatencyHigh",
          expr=f"sttfleet:final_latency_seconds:p99_rate5m{{{sel}}} > {n(t.final_p99_seconds)}",
          duration="5m", severity="warning", summary=f"{who}: final-result P99 above SLO",
          description=f"Utterance end to final P99 has been above {n(t.final_p99_seconds)}s for 5 minutes.",
          condition=f"final P99 > {n(t.final_p99_seconds)} s", field="finalP99Seconds"),
        a("SttDecodeLatencyHigh",
          expr=f"sttfleet:decode_seconds:p99_rate5m{{{sel}}} > {n(t.decode_p99_seconds)}",
          duration="5m", severity="warning", summary=f"{who}: decode P99 above its threshold",
          description=f"P99 of a decode's total time (buffer wait, queue wait, inference, emit) has been above "
                      f"{n(t.decode_p99_seconds)}s for 5 minutes.",
          condition=f"decode P99 (`stt_decode_phase_seconds{{phase=\"total\"}}` histogram) > "
                    f"{n(t.decode_p99_seconds)} s", field="decodeP99Seconds"),
        a("SttGrpcErrorRateHigh",
          expr=f"sttfleet:grpc_server_errors:ratio_rate5m{{{sel}}} > {n(t.error_rate_percent / 100)}",
          duration="5m", severity="critical", summary=f"{who}: gRPC server error rate above SLO",
          description=f"More than {n(t.error_rate_percent)}% of gRPC calls fail with a server fault "
                      f"({SERVER_ERROR_STATUSES.replace('|', ', ')}); load shedding and client mistakes "
                      "(idle streams, bad input) are not counted.",
          condition=f"server faults > {n(t.error_rate_percent)} % of calls over 5m", field="errorRatePercent"),
        a("SttAvailabilityLow",
          expr=f"1 - sttfleet:grpc_server_errors:ratio_rate1h{{{sel}}} < {n(t.availability_percent / 100)}",
          duration="5m", severity="critical", summary=f"{who}: availability below {n(t.availability_percent)}%",
          description=f"Fewer than {n(t.availability_percent)}% of gRPC calls in the last hour ended without "
                      "a server fault.",
          condition=f"calls without a server fault < {n(t.availability_percent)} % over 1h",
          field="availabilityPercent"),
        a("SttDecodeOrphanRateHigh",
          expr=f"sttfleet:decode_orphaned:ratio_rate5m{{{sel}}} > {n(t.orphan_rate_percent / 100)}",
          duration="10m", severity="warning", summary=f"{who}: many decodes finish for a closed stream",
          description=f"More than {n(t.orphan_rate_percent)}% of ended decodes finished after their "
                      "stream closed (orphaned / (orphaned + cancelled)).",
          condition=f"orphaned / (orphaned + cancelled) > {n(t.orphan_rate_percent)} %", field="orphanRatePercent"),
        a("SttPartialDropRateHigh",
          expr=f"sttfleet:partial_drop:ratio_rate5m{{{sel}}} > {n(t.partial_drop_rate_percent / 100)}",
          duration="10m", severity="warning", summary=f"{who}: partial results are being dropped",
          description=f"More than {n(t.partial_drop_rate_percent)}% of decodes drop their partial "
                      "result; the decoder is behind.",
          condition=f"dropped partials / decodes > {n(t.partial_drop_rate_percent)} %",
          field="partialDropRatePercent"),
        a("SttBufferUsageHigh",
          expr=f"stt_buffer_bytes_total{{{sel}}} / stt_max_total_buffer_bytes{{{sel}}} > "
               f"{n(t.buffer_usage_percent / 100)}",
          duration="5m", severity="warning", summary=f"{who}: global audio buffer nearly full",
          description=f"Pod {{{{ $labels.pod }}}} buffers more than {n(t.buffer_usage_percent)}% of "
                      "max_total_buffer_bytes; new audio will be refused.",
          condition=f"per pod `stt_buffer_bytes_total / stt_max_total_buffer_bytes` > {n(t.buffer_usage_percent)} %",
          field="bufferUsagePercent"),
        a("SttSessionChurnHigh",
          expr=f"sum by ({BY}) (increase(stt_sessions_created_total{{{sel}}}[5m])) > {t.session_churn_per_5m}",
          duration="5m", severity="info", summary=f"{who}: session churn spike",
          description=f"More than {t.session_churn_per_5m} sessions were created in 5 minutes.",
          condition=f"`increase(stt_sessions_created_total[5m])` > {t.session_churn_per_5m}",
          field="sessionChurnPer5m"),
        a("SttDecodeQueueSaturated",
          expr=f"stt_decode_pending{{{sel}}} / stt_decode_pending_cap{{{sel}}} >= "
               f"{n(t.decode_queue_saturation_percent / 100)}",
          duration="5m", severity="warning", summary=f"{who}: decode queue saturated",
          description=f"Pod {{{{ $labels.pod }}}} has its decode queue at least "
                      f"{n(t.decode_queue_saturation_percent)}% full; add replicas.",
          condition=f"per pod `stt_decode_pending / stt_decode_pending_cap` >= "
                    f"{n(t.decode_queue_saturation_percent)} %", field="decodeQueueSaturationPercent"),
    ]
    limit = memory_limit_bytes(spec)
    if limit is not None:
        alerts.append(a(
            "SttMemoryHigh",
            expr=f"process_resident_memory_bytes{{{sel}}} > {n(limit * t.memory_usage_percent / 100)}",
            duration="10m", severity="warning", summary=f"{who}: server memory near its limit",
            description=f"Pod {{{{ $labels.pod }}}} holds more than {n(t.memory_usage_percent)}% of its "
                        f"{limit / 2**20:.0f} MiB memory limit (resident set); it will be OOM-killed at the limit.",
            condition=f"per pod `process_resident_memory_bytes` > {n(t.memory_usage_percent)} % of the memory limit",
            field="memoryUsagePercent"))
    alerts += [
        a("SttTlsCertExpiringSoon",
          expr=f"stt_tls_cert_expiry_timestamp_seconds{{{sel}}} - time() < {n(t.cert_expiry_days * 86400)}",
          duration="10m", severity="warning", summary=f"{who}: TLS certificate expires soon",
          description=f"The serving certificate of pod {{{{ $labels.pod }}}} expires in less than "
                      f"{n(t.cert_expiry_days)} days; renew the Secret (cert-manager: check the Certificate).",
          condition=f"`stt_tls_cert_expiry_timestamp_seconds - time()` < {n(t.cert_expiry_days)} days",
          field="certExpiryDays"),
        a("SttServerUnhealthy",
          expr=f"stt_ready{{{sel}}} == 0 or stt_model_loaded{{{sel}}} == 0",
          duration="5m", severity="critical", summary=f"{who}: a server is not ready",
          description="Pod {{ $labels.pod }} reports not ready or model not loaded for 5 minutes.",
          condition="`stt_ready == 0 or stt_model_loaded == 0`"),
        a("SttServerDown",
          expr=f"up{{{sel}}} == 0", duration="5m", severity="critical",
          summary=f"{who}: a server cannot be scraped",
          description="Prometheus cannot scrape {{ $labels.instance }} for 5 minutes.", condition="`up == 0`"),
        a("SttServerAbsent",
          expr=f"absent(up{{{sel}}})", duration="10m", severity="critical",
          summary=f"{who}: no server targets",
          description="Prometheus has no scrape target for this SttServer: no pods, or no ServiceMonitor.",
          condition="`absent(up)` for the job"),
    ]
    return alerts


def alert_rules(spec: SttServerSpec) -> list[dict[str, Any]]:
    """The alerting rules of `alert_definitions`, each with `severity`, `sttserver` and a runbook link."""
    return [{
        "alert": d.name, "expr": d.expr, "for": d.duration,
        "labels": {"severity": d.severity, "sttserver": spec.name},
        "annotations": {"summary": d.summary, "description": d.description,
                        "runbook_url": f"{spec.monitoring.runbook_base_url}#{d.name.lower()}"},
    } for d in alert_definitions(spec)]


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
