"""Parse an SttServer custom resource once into a typed, defaulted, validated spec.

The CRD schema and its CEL rules reject most bad manifests at admission, but an object can still
arrive unchecked (an older CRD, a test server without validation, a hand-made body), so every rule
the builders rely on is checked again here. A violation raises `SpecError(field, message)`; the
reconciler turns it into a `Degraded` condition and a Warning Event, and waits for the next spec.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from stt_operator.label_syntax import check_labels
from stt_operator.spec_networkpolicy import NetworkPolicySpec, parse_network_policy
from stt_operator.spec_reader import Reader, SpecError
from stt_operator.spec_sections import (
    AutoscalingSpec,
    LimitsSpec,
    ModelSpec,
    MonitoringSpec,
    SecretsSpec,
    ServiceSpec,
    StorageSpec,
    parse_autoscaling,
    parse_limits,
    parse_model,
    parse_monitoring,
    parse_secrets,
    parse_service,
    parse_storage,
)
from stt_operator.spec_server import ServerTuningSpec, parse_server

__all__ = [
    "AutoscalingSpec", "LimitsSpec", "ModelSpec", "MonitoringSpec", "NetworkPolicySpec", "SecretsSpec", "ServerTuningSpec", "ServiceSpec",
    "SpecError", "StorageSpec", "SttServerSpec", "parse_spec",
]

DEVICES: Final = ("auto", "cpu", "cuda")
COMPUTE_TYPES: Final = ("auto", "int8", "int8_float16", "float16", "float32")
PULL_POLICIES: Final = ("Always", "IfNotPresent", "Never")

# Every child is named exactly `<name>` (builders.labels.metadata), and a Service name must be a
# DNS-1035 label. The builders add no suffix; the longest one comes from the Deployment controller:
# ReplicaSets are `<name>-<pod-template-hash>`, the hash up to 10 characters, so 52 + 11 = 63 keeps
# them a DNS label too. The CRD's root CEL rules (crd_schema.name_rules) say the same at admission.
NAME_PATTERN: Final = "^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MAX_LENGTH: Final = 52
NAME_PATTERN_MESSAGE: Final = ("must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter "
                               "and ending with a letter or digit) because it names the Service")
NAME_LENGTH_MESSAGE: Final = (f"must be at most {NAME_MAX_LENGTH} characters so the ReplicaSet names derived from it "
                              "(name, '-' and a hash of up to 10 characters) stay within 63")


@dataclass(frozen=True)
class SttServerSpec:
    """Everything the builders need, every optional field resolved to its default."""

    name: str
    namespace: str
    uid: str
    generation: int
    image: str
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    model: ModelSpec = field(default_factory=ModelSpec)
    device: str = "auto"
    compute_type: str = "auto"
    gpu: int = 0
    resources: Mapping[str, Any] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] | None = None
    runtime_class_name: str | None = None
    service: ServiceSpec = field(default_factory=ServiceSpec)
    limits: LimitsSpec = field(default_factory=LimitsSpec)
    secrets: SecretsSpec = field(default_factory=SecretsSpec)
    storage: StorageSpec = field(default_factory=StorageSpec)
    monitoring: MonitoringSpec = field(default_factory=MonitoringSpec)
    drain_grace_seconds: int = 30
    replicas: int = 1
    autoscaling: AutoscalingSpec = field(default_factory=AutoscalingSpec)
    network_policy: NetworkPolicySpec = field(default_factory=NetworkPolicySpec)
    server: ServerTuningSpec = field(default_factory=ServerTuningSpec)


def parse_spec(body: Mapping[str, Any]) -> SttServerSpec:
    """Read a whole SttServer object (metadata + spec) into an `SttServerSpec`; raises SpecError."""
    meta = body.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError("metadata.name", "is required")
    if len(name) > NAME_MAX_LENGTH:
        raise SpecError("metadata.name", f"{NAME_LENGTH_MESSAGE}, got {len(name)}")
    if not re.fullmatch(NAME_PATTERN, name):
        raise SpecError("metadata.name", f"{NAME_PATTERN_MESSAGE}, got {name!r}")
    spec = Reader(body.get("spec"), "spec")
    image = spec.string("image", required=True)
    if not image.strip():
        raise SpecError("spec.image", "must not be empty")
    gpu = spec.integer("gpu", 0, minimum=0, maximum=16)
    device = spec.enum("device", "auto", DEVICES)
    if gpu > 0 and device == "cpu":
        raise SpecError("spec.device", "is cpu but spec.gpu asks for GPUs; use auto or cuda")
    if device == "cuda" and gpu == 0:
        raise SpecError("spec.gpu", "must be at least 1 when spec.device is cuda")
    pull_secrets = spec.list("imagePullSecrets")
    # User labels go onto children verbatim: a bad one must stop the pass before any child is written.
    monitoring = spec.child("monitoring")
    for section in ("serviceMonitor", "prometheusRule", "grafanaDashboard", "alertmanagerConfig"):
        check_labels(monitoring.child(section).mapping("labels"), f"spec.monitoring.{section}.labels")
    check_labels(spec.mapping("nodeSelector"), "spec.nodeSelector")
    return SttServerSpec(
        name=name,
        namespace=str(meta.get("namespace") or "default"),
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0),
        image=image,
        image_pull_policy=spec.enum("imagePullPolicy", "IfNotPresent", PULL_POLICIES),
        image_pull_secrets=tuple(_pull_secret_name(item, f"spec.imagePullSecrets[{i}]")
                                 for i, item in enumerate(pull_secrets)),
        model=parse_model(spec.child("model")),
        device=device,
        compute_type=spec.enum("computeType", "auto", COMPUTE_TYPES),
        gpu=gpu,
        resources=_resources(spec.child("resources")),
        node_selector={str(k): str(v) for k, v in spec.mapping("nodeSelector").items()},
        tolerations=tuple(dict(t) for t in spec.list("tolerations") if isinstance(t, Mapping)),
        affinity=dict(spec.mapping("affinity")) or None,
        runtime_class_name=spec.optional_string("runtimeClassName"),
        service=parse_service(spec.child("service")),
        limits=parse_limits(spec.child("limits")),
        secrets=parse_secrets(spec.child("secrets")),
        storage=parse_storage(spec.child("storage")),
        monitoring=parse_monitoring(spec.child("monitoring")),
        drain_grace_seconds=spec.child("drain").integer("gracePeriodSeconds", 30, minimum=0, maximum=3600),
        replicas=spec.integer("replicas", 1, minimum=0, maximum=1000),
        autoscaling=parse_autoscaling(spec.child("autoscaling")),
        network_policy=parse_network_policy(spec.child("networkPolicy")),
        server=parse_server(spec.child("server")),
    )


def _pull_secret_name(item: Any, path: str) -> str:
    if isinstance(item, str) and item:
        return item
    if isinstance(item, Mapping) and isinstance(item.get("name"), str) and item["name"]:
        return str(item["name"])
    raise SpecError(path, "must be a Secret name or {name: ...}")


def _resources(reader: Reader) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in ("requests", "limits"):
        values = reader.mapping(part)
        unknown = sorted(set(values) - {"cpu", "memory", "ephemeral-storage"})
        if unknown:
            raise SpecError(f"{reader.path}.{part}", f"unsupported keys {unknown}; use spec.gpu for GPUs")
        if values:
            out[part] = {str(k): str(v) for k, v in values.items()}
    return out
