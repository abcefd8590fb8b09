"""The Deployment running `stt-server`: probes, drain, restricted pod security, GPUs, volumes."""

from __future__ import annotations

from typing import Any, Final

from stt_operator.builders.configmap import config_hash
from stt_operator.builders.labels import (
    API_KEYS_DIR,
    CAPTURE_DIR,
    CONFIG_DIR,
    CONFIG_FILE,
    CONFIG_HASH_ANNOTATION,
    MODEL_DIR,
    TLS_DIR,
    common_labels,
    metadata,
    selector_labels,
)
from stt_operator.spec import SttServerSpec

RUN_AS_USER: Final = 10001
GPU_RESOURCE: Final = "nvidia.com/gpu"
# Kubelet SIGKILLs at the end of the grace period; the margin covers the preStop sleep plus the
# server's own shutdown after its drain_grace_sec.
DRAIN_MARGIN_SECONDS: Final = 15
PRE_STOP_SLEEP_SECONDS: Final = 5
DEFAULT_RESOURCES: Final = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}


def build_deployment(spec: SttServerSpec, *, replicas: int | None = None) -> dict[str, Any]:
    """The Deployment `<name>` at `replicas` (default `spec.replicas`; the handler passes the
    autoscaler's count when autoscaling owns it)."""
    pod_spec: dict[str, Any] = {
        "containers": [_container(spec)],
        "volumes": _volumes(spec),
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                            "fsGroup": RUN_AS_USER, "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": spec.drain_grace_seconds + PRE_STOP_SLEEP_SECONDS + DRAIN_MARGIN_SECONDS,
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
    }
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in spec.image_pull_secrets]
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    tolerations = [dict(t) for t in spec.tolerations]
    if spec.gpu > 0 and not any(t.get("key") == GPU_RESOURCE for t in tolerations):
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if spec.affinity:
        pod_spec["affinity"] = dict(spec.affinity)
    if spec.runtime_class_name:
        pod_spec["runtimeClassName"] = spec.runtime_class_name
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(spec),
        "spec": {
            "replicas": spec.replicas if replicas is None else replicas,
            "selector": {"matchLabels": selector_labels(spec)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": common_labels(spec),
                             "annotations": {CONFIG_HASH_ANNOTATION: config_hash(spec)}},
                "spec": pod_spec,
            },
        },
    }


def _probe(spec: SttServerSpec, path: str, *, period: int, failures: int) -> dict[str, Any]:
    # With TLS configured the control plane serves HTTPS only; kubelet skips verification.
    get: dict[str, Any] = {"path": path, "port": "http"}
    if spec.secrets.tls_secret_name:
        get["scheme"] = "HTTPS"
    return {"httpGet": get, "periodSeconds": period, "failureThreshold": failures, "timeoutSeconds": 3}


def _container(spec: SttServerSpec) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "stt-server",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["stt-server", "--config", CONFIG_FILE],
        "ports": [{"name": "grpc", "containerPort": spec.service.grpc_port, "protocol": "TCP"},
                  {"name": "http", "containerPort": spec.service.http_port, "protocol": "TCP"},
                  *([{"name": "rest", "containerPort": spec.service.rest_port, "protocol": "TCP"}]
                    if spec.service.rest_port else [])],
        "env": _env(spec),
        "resources": _resources(spec),
        "volumeMounts": _mounts(spec),
        # A big model pulled onto a GPU node may take minutes to load: up to 10 minutes here,
        # after which liveness takes over with a short fuse.
        "startupProbe": _probe(spec, "/health/live", period=5, failures=120),
        "livenessProbe": _probe(spec, "/health/live", period=10, failures=3),
        "readinessProbe": _probe(spec, "/health/ready", period=5, failures=2),
        # The sleep lets endpoints controllers drop the pod before SIGTERM starts the drain, so no
        # new stream lands on a draining server.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SLEEP_SECONDS)]}}},
        # A start-up failure (ERR1035: device cuda without cuBLAS/cuDNN, a bad config key) ends in one
        # log line; with this it becomes the container's termination message in `kubectl describe`.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }
    return container


def _env(spec: SttServerSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": "HOME", "value": "/tmp"}]
    token = spec.secrets.control_token
    if token is not None:
        env.append({"name": "STT_CONTROL_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": token.name, "key": token.key}}})
    return env


def _resources(spec: SttServerSpec) -> dict[str, Any]:
    resources = {k: dict(v) for k, v in (spec.resources or DEFAULT_RESOURCES).items()}
    if spec.gpu > 0:
        resources.setdefault("limits", {})[GPU_RESOURCE] = str(spec.gpu)
    return resources


def _volumes(spec: SttServerSpec) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": spec.name}},
        {"name": "tmp", "emptyDir": {}},
    ]
    model = spec.model
    if model.cache_claim_name:
        volumes.append({"name": "model-cache",
                        "persistentVolumeClaim": {"claimName": model.cache_claim_name, "readOnly": True}})
    elif model.cache_host_path:
        volumes.append({"name": "model-cache", "hostPath": {"path": model.cache_host_path, "type": "Directory"}})
    if spec.secrets.api_keys:
        volumes.append({"name": "api-keys", "secret": {"secretName": spec.secrets.api_keys.name, "defaultMode": 0o440}})
    if spec.secrets.tls_secret_name:
        volumes.append({"name": "tls", "secret": {"secretName": spec.secrets.tls_secret_name, "defaultMode": 0o440}})
    if spec.storage.persist_audio:
        claim = spec.storage.claim_name
        volumes.append({"name": "captures", "persistentVolumeClaim": {"claimName": claim}} if claim
                       else {"name": "captures", "emptyDir": {}})
    return volumes


def _mounts(spec: SttServerSpec) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if spec.model.has_cache:
        mounts.append({"name": "model-cache", "mountPath": MODEL_DIR, "readOnly": True})
    if spec.secrets.api_keys:
        mounts.append({"name": "api-keys", "mountPath": API_KEYS_DIR, "readOnly": True})
    if spec.secrets.tls_secret_name:
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
    if spec.storage.persist_audio:
        mounts.append({"name": "captures", "mountPath": CAPTURE_DIR})
    return mounts
