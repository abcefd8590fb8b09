"""The ServiceMonitor that has a prometheus-operator scrape `/metrics` on the http port."""

from __future__ import annotations

from typing import Any

from stt_operator.builders.labels import metadata, selector_labels
from stt_operator.spec import SttServerSpec


def build_servicemonitor(spec: SttServerSpec) -> dict[str, Any]:
    """The ServiceMonitor `<name>`; with a control token, Prometheus sends it as a bearer token."""
    endpoint: dict[str, Any] = {"port": "http", "path": "/metrics", "interval": spec.monitoring.interval,
                                "scheme": "https" if spec.secrets.tls_secret_name else "http"}
    if spec.secrets.tls_secret_name:
        # The server's certificate names the Service, not the pod IP Prometheus dials.
        endpoint["tlsConfig"] = {"insecureSkipVerify": True}
    token = spec.secrets.control_token
    if token is not None:
        endpoint["authorization"] = {"type": "Bearer", "credentials": {"name": token.name, "key": token.key}}
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": metadata(spec, extra_labels=dict(spec.monitoring.service_monitor_labels)),
        "spec": {"selector": {"matchLabels": selector_labels(spec)},
                 "namespaceSelector": {"matchNames": [spec.namespace]},
                 "endpoints": [endpoint]},
    }
