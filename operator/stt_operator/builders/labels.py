"""Names and labels shared by every child of an SttServer (contracts.md, "Operator")."""

from __future__ import annotations

from typing import Any, Final

from stt_operator.spec import SttServerSpec

APP_NAME: Final = "stt-server"
MANAGED_BY: Final = "stt-operator"
CONFIG_HASH_ANNOTATION: Final = "sttfleet.io/config-hash"
CONFIG_DIR: Final = "/etc/stt"
CONFIG_FILE: Final = "/etc/stt/config.yaml"
API_KEYS_DIR: Final = "/etc/stt-secrets/api-keys"
TLS_DIR: Final = "/etc/stt-secrets/tls"
MODEL_DIR: Final = "/models"
CAPTURE_DIR: Final = "/var/lib/stt/captures"


def selector_labels(spec: SttServerSpec) -> dict[str, str]:
    """The labels that select this instance's pods (immutable in a Deployment: keep them few)."""
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": spec.name}


def common_labels(spec: SttServerSpec) -> dict[str, str]:
    """Labels every child carries."""
    return {**selector_labels(spec), "app.kubernetes.io/managed-by": MANAGED_BY,
            "app.kubernetes.io/component": "speech-to-text"}


def metadata(spec: SttServerSpec, *, extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Child metadata: named after the SttServer, in its namespace, without owner references."""
    return {"name": spec.name, "namespace": spec.namespace,
            "labels": {**(extra_labels or {}), **common_labels(spec)}}


def prometheus_job(spec: SttServerSpec) -> str:
    """The `job` label Prometheus gives this instance's targets.

    A ServiceMonitor without `jobLabel` names the job after the Service, which is named after the
    SttServer; the rules scope every expression to it and the namespace.
    """
    return spec.name
