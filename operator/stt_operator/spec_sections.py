"""The sections of an SttServer spec: small frozen records, each with its parser and defaults.

The defaults match the CRD's `default:` values and the server's own config defaults, so a manifest
with only `spec.image` gives the same server the bare `stt-server` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from stt_operator.autoscaling.behavior import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Behavior,
    ScalingPolicy,
    ScalingRules,
)
from stt_operator.spec_alerting import AlertmanagerConfigSpec, parse_alertmanager_config
from stt_operator.spec_reader import Reader, SpecError

SERVICE_TYPES: Final = ("ClusterIP", "NodePort")
SELECT_POLICIES: Final = ("Max", "Min", "Disabled")
POLICY_TYPES: Final = ("Pods", "Percent")


@dataclass(frozen=True)
class ModelSpec:
    """Which model: the bundled tiny.en, or a CTranslate2 directory on a read-only cache volume."""

    name: str = "tiny.en"
    cache_claim_name: str | None = None
    cache_host_path: str | None = None
    path: str | None = None  # inside the cache volume

    @property
    def has_cache(self) -> bool:
        return self.cache_claim_name is not None or self.cache_host_path is not None


@dataclass(frozen=True)
class ServiceSpec:
    type: str = "ClusterIP"
    grpc_port: int = 50051
    http_port: int = 8000
    node_port: int | None = None
    http_node_port: int | None = None
    rest_port: int = 8080  # the OpenAI-compatible REST API; 0 turns it off
    rest_node_port: int | None = None


@dataclass(frozen=True)
class LimitsSpec:
    """Server limits, under the server's config keys' defaults (contracts.md)."""

    max_sessions: int = 32
    max_sessions_per_api_key: int = 16
    requests_per_minute_per_api_key: int = 600
    max_stream_buffer_bytes: int = 1_920_000
    max_total_buffer_bytes: int = 67_108_864
    max_decode_pending: int = 16
    session_idle_timeout_seconds: float = 30.0
    max_stream_duration_seconds: float = 3600.0
    partial_interval_seconds: float = 0.5
    end_silence_ms: int = 500
    max_utterance_seconds: float = 15.0


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


@dataclass(frozen=True)
class SecretsSpec:
    api_keys: SecretKeyRef | None = None
    control_token: SecretKeyRef | None = None
    tls_secret_name: str | None = None


@dataclass(frozen=True)
class StorageSpec:
    persist_audio: bool = False
    claim_name: str | None = None  # None -> emptyDir
    max_bytes: int | None = None
    max_files: int | None = None
    max_age_days: float | None = None


@dataclass(frozen=True)
class Thresholds:
    """SLO thresholds (seed 002 defaults); percentages are 0-100."""

    create_session_p99_seconds: float = 0.3
    first_partial_p99_seconds: float = 2.5
    final_p99_seconds: float = 5.0
    error_rate_percent: float = 0.5
    orphan_rate_percent: float = 5.0
    partial_drop_rate_percent: float = 5.0
    buffer_usage_percent: float = 90.0
    session_churn_per_5m: int = 200
    decode_queue_saturation_percent: float = 90.0
    decode_p99_seconds: float = 2.0
    availability_percent: float = 99.0
    memory_usage_percent: float = 80.0
    cert_expiry_days: float = 14.0


@dataclass(frozen=True)
class GrafanaDashboardSpec:
    """`monitoring.grafanaDashboard`: a ConfigMap Grafana's dashboard sidecar loads."""

    enabled: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    folder: str | None = None


@dataclass(frozen=True)
class MonitoringSpec:
    service_monitor: bool = True
    interval: str = "30s"
    service_monitor_labels: Mapping[str, str] = field(default_factory=dict)
    prometheus_rule: bool = True
    prometheus_rule_labels: Mapping[str, str] = field(default_factory=dict)
    runbook_base_url: str = "https://github.com/stt-fleet/stt-fleet/blob/main/docs/slo.md"
    thresholds: Thresholds = Thresholds()
    grafana_dashboard: GrafanaDashboardSpec = GrafanaDashboardSpec()
    alertmanager_config: AlertmanagerConfigSpec = field(default_factory=AlertmanagerConfigSpec)


@dataclass(frozen=True)
class AutoscalingSpec:
    """Queue-depth autoscaling; `behavior` is the HPA-shaped behaviour, each unset part defaulted like the HPA's."""

    enabled: bool = False
    min_replicas: int = 1
    max_replicas: int = 4
    target_decode_pending_per_replica: float = 4.0
    target_active_sessions_per_replica: float | None = None
    scrape_interval_seconds: float = 15.0
    behavior: Behavior = field(default_factory=Behavior)


def parse_model(r: Reader) -> ModelSpec:
    cache = r.child("cache")
    pvc, host = cache.child("pvc"), cache.child("hostPath")
    claim = pvc.string("claimName", required=True) if cache.has("pvc") else None
    host_path = host.string("path", required=True) if cache.has("hostPath") else None
    if claim is not None and host_path is not None:
        raise SpecError(cache.path, "set either pvc or hostPath, not both")
    path = r.optional_string("path")
    name = r.string("name", "tiny.en")
    if name != "tiny.en" and claim is None and host_path is None:
        raise SpecError(f"{r.path}.cache", f"model {name!r} is not bundled; give a pvc or hostPath cache")
    return ModelSpec(name=name, cache_claim_name=claim, cache_host_path=host_path, path=path)


def parse_service(r: Reader) -> ServiceSpec:
    kind = r.enum("type", "ClusterIP", SERVICE_TYPES)
    node_port = r.optional_integer("nodePort", minimum=30000, maximum=32767)
    http_node_port = r.optional_integer("httpNodePort", minimum=30000, maximum=32767)
    rest_node_port = r.optional_integer("restNodePort", minimum=30000, maximum=32767)
    for key, value in (("nodePort", node_port), ("httpNodePort", http_node_port), ("restNodePort", rest_node_port)):
        if value is not None and kind != "NodePort":
            raise SpecError(f"{r.path}.{key}", "is only allowed with type NodePort")
    if node_port is not None and node_port == http_node_port:
        raise SpecError(f"{r.path}.httpNodePort", "must differ from nodePort")
    if rest_node_port is not None and rest_node_port in (node_port, http_node_port):
        raise SpecError(f"{r.path}.restNodePort", "must differ from nodePort and httpNodePort")
    grpc_port = r.integer("grpcPort", 50051, minimum=1, maximum=65535)
    http_port = r.integer("httpPort", 8000, minimum=1, maximum=65535)
    if grpc_port == http_port:
        raise SpecError(f"{r.path}.httpPort", "must differ from grpcPort")
    rest_port = r.integer("restPort", 8080, minimum=0, maximum=65535)
    if rest_port in (grpc_port, http_port):
        raise SpecError(f"{r.path}.restPort", "must differ from grpcPort and httpPort")
    if rest_port == 0 and rest_node_port is not None:
        raise SpecError(f"{r.path}.restNodePort", "needs the REST API on (restPort other than 0)")
    return ServiceSpec(type=kind, grpc_port=grpc_port, http_port=http_port, node_port=node_port,
                       http_node_port=http_node_port, rest_port=rest_port, rest_node_port=rest_node_port)


def parse_limits(r: Reader) -> LimitsSpec:
    d = LimitsSpec()
    return LimitsSpec(
        max_sessions=r.integer("maxSessions", d.max_sessions, minimum=1),
        max_sessions_per_api_key=r.integer("maxSessionsPerApiKey", d.max_sessions_per_api_key, minimum=1),
        requests_per_minute_per_api_key=r.integer("requestsPerMinutePerApiKey",
                                                  d.requests_per_minute_per_api_key, minimum=1),
        max_stream_buffer_bytes=r.integer("maxStreamBufferBytes", d.max_stream_buffer_bytes, minimum=32_000),
        max_total_buffer_bytes=r.integer("maxTotalBufferBytes", d.max_total_buffer_bytes, minimum=32_000),
        max_decode_pending=r.integer("maxDecodePending", d.max_decode_pending, minimum=1),
        session_idle_timeout_seconds=r.number("sessionIdleTimeoutSeconds", d.session_idle_timeout_seconds,
                                              minimum=0, exclusive_minimum=True),
        max_stream_duration_seconds=r.number("maxStreamDurationSeconds", d.max_stream_duration_seconds,
                                             minimum=0, exclusive_minimum=True),
        partial_interval_seconds=r.number("partialIntervalSeconds", d.partial_interval_seconds,
                                          minimum=0, maximum=10, exclusive_minimum=True),
        end_silence_ms=r.integer("endSilenceMs", d.end_silence_ms, minimum=50),
        max_utterance_seconds=r.number("maxUtteranceSeconds", d.max_utterance_seconds, minimum=1,
                                       maximum=30, exclusive_minimum=True),
    )


def _secret_key(r: Reader, key: str) -> SecretKeyRef | None:
    if not r.has(key):
        return None
    ref = r.child(key)
    return SecretKeyRef(name=ref.string("name", required=True), key=ref.string("key", required=True))


def parse_secrets(r: Reader) -> SecretsSpec:
    tls = r.child("tls").optional_string("secretName") if r.has("tls") else None
    return SecretsSpec(api_keys=_secret_key(r, "apiKeys"), control_token=_secret_key(r, "controlToken"),
                       tls_secret_name=tls)


def parse_storage(r: Reader) -> StorageSpec:
    volume = r.child("volume")
    claim = volume.child("pvc").string("claimName", required=True) if volume.has("pvc") else None
    return StorageSpec(
        persist_audio=r.boolean("persistAudio", False), claim_name=claim,
        max_bytes=r.optional_integer("maxBytes", minimum=0), max_files=r.optional_integer("maxFiles", minimum=0),
        max_age_days=r.optional_number("maxAgeDays", minimum=0),
    )


def _labels(r: Reader, key: str) -> dict[str, str]:
    labels = r.mapping(key)
    bad = [k for k, v in labels.items() if not isinstance(v, str)]
    if bad:
        raise SpecError(f"{r.path}.{key}", f"label values must be strings: {bad}")
    return dict(labels)


def parse_monitoring(r: Reader) -> MonitoringSpec:
    sm, pr = r.child("serviceMonitor"), r.child("prometheusRule")
    t, d = pr.child("thresholds"), Thresholds()

    def pct(key: str, default: float) -> float:
        return t.number(key, default, minimum=0, maximum=100, exclusive_minimum=True)

    def seconds(key: str, default: float) -> float:
        return t.number(key, default, minimum=0, exclusive_minimum=True)

    thresholds = Thresholds(
        create_session_p99_seconds=seconds("createSessionP99Seconds", d.create_session_p99_seconds),
        first_partial_p99_seconds=seconds("firstPartialP99Seconds", d.first_partial_p99_seconds),
        final_p99_seconds=seconds("finalP99Seconds", d.final_p99_seconds),
        error_rate_percent=pct("errorRatePercent", d.error_rate_percent),
        orphan_rate_percent=pct("orphanRatePercent", d.orphan_rate_percent),
        partial_drop_rate_percent=pct("partialDropRatePercent", d.partial_drop_rate_percent),
        buffer_usage_percent=pct("bufferUsagePercent", d.buffer_usage_percent),
        session_churn_per_5m=t.integer("sessionChurnPer5m", d.session_churn_per_5m, minimum=1),
        decode_queue_saturation_percent=pct("decodeQueueSaturationPercent", d.decode_queue_saturation_percent),
        decode_p99_seconds=seconds("decodeP99Seconds", d.decode_p99_seconds),
        availability_percent=pct("availabilityPercent", d.availability_percent),
        memory_usage_percent=pct("memoryUsagePercent", d.memory_usage_percent),
        cert_expiry_days=t.number("certExpiryDays", d.cert_expiry_days, minimum=0, exclusive_minimum=True),
    )
    interval = sm.string("interval", "30s")
    if not interval or not interval[:-1].isdigit() or interval[-1] not in "smh":
        raise SpecError(f"{sm.path}.interval", f"must look like 30s, 1m or 1h, got {interval!r}")
    return MonitoringSpec(
        service_monitor=sm.boolean("enabled", True), interval=interval,
        service_monitor_labels=_labels(sm, "labels"),
        prometheus_rule=pr.boolean("enabled", True), prometheus_rule_labels=_labels(pr, "labels"),
        runbook_base_url=pr.string("runbookBaseURL", MonitoringSpec().runbook_base_url).rstrip("/"),
        thresholds=thresholds,
        grafana_dashboard=parse_grafana_dashboard(r.child("grafanaDashboard")),
        alertmanager_config=parse_alertmanager_config(
            r.child("alertmanagerConfig"), labels=_labels(r.child("alertmanagerConfig"), "labels")),
    )


def parse_grafana_dashboard(r: Reader) -> GrafanaDashboardSpec:
    folder = r.optional_string("folder")
    return GrafanaDashboardSpec(enabled=r.boolean("enabled", False), labels=_labels(r, "labels"),
                                folder=folder.strip() or None if folder is not None else None)


def parse_autoscaling(r: Reader) -> AutoscalingSpec:
    d = AutoscalingSpec()
    enabled = r.boolean("enabled", False)
    low = r.integer("minReplicas", d.min_replicas, minimum=1)
    high = r.integer("maxReplicas", d.max_replicas, minimum=1, maximum=1000)
    if low > high:
        raise SpecError(f"{r.path}.minReplicas", f"must be <= maxReplicas ({low} > {high})")
    target = r.number("targetDecodePendingPerReplica", d.target_decode_pending_per_replica,
                      minimum=0, exclusive_minimum=True)
    sessions = r.optional_number("targetActiveSessionsPerReplica", minimum=0, exclusive_minimum=True)
    behavior = r.child("behavior")
    return AutoscalingSpec(
        enabled=enabled, min_replicas=low, max_replicas=high, target_decode_pending_per_replica=target,
        target_active_sessions_per_replica=sessions,
        scrape_interval_seconds=r.number("scrapeIntervalSeconds", d.scrape_interval_seconds, minimum=1,
                                         maximum=600),
        behavior=Behavior(scale_up=_scaling_rules(behavior, "scaleUp", DEFAULT_SCALE_UP),
                          scale_down=_scaling_rules(behavior, "scaleDown", DEFAULT_SCALE_DOWN)),
    )


def _scaling_rules(behavior: Reader, direction: str, default: ScalingRules) -> ScalingRules:
    """One direction of `behavior`; what it leaves unset comes from that direction's HPA default."""
    if not behavior.has(direction):
        return default
    rules = behavior.child(direction)
    policies = tuple(
        ScalingPolicy(type=p.enum("type", "Pods", POLICY_TYPES),  # type: ignore[arg-type]
                      value=p.integer("value", 1, minimum=1),
                      period_seconds=p.integer("periodSeconds", 15, minimum=1, maximum=1800))
        for p in (Reader(item, f"{rules.path}.policies[{i}]") for i, item in enumerate(rules.list("policies")))
    )
    return ScalingRules(
        stabilization_window_seconds=rules.integer("stabilizationWindowSeconds",
                                                   default.stabilization_window_seconds, minimum=0, maximum=3600),
        select_policy=rules.enum("selectPolicy", default.select_policy, SELECT_POLICIES),  # type: ignore[arg-type]
        policies=policies if rules.has("policies") else default.policies,
    )
