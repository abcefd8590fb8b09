"""The schema helper itself: vendored prometheus-operator CRDs are the shared ones, and the
validators reject what the real API server would."""

from __future__ import annotations

import pathlib

import pytest
from schema_validation import MONITORING_FILES, SCHEMA_DIR, SchemaViolation, validate_manifest

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "schemas"


@pytest.mark.parametrize("file", sorted(MONITORING_FILES.values()))
def test_vendored_crds_match_the_shared_copy(file: str) -> None:
    if not (SHARED / file).exists():
        pytest.skip(f"no ../shared/schemas/{file} beside the repository; the vendored copy is used as is")
    assert (SCHEMA_DIR / file).read_bytes() == (SHARED / file).read_bytes()


def test_vendored_crds_say_where_they_come_from() -> None:
    readme = (SCHEMA_DIR / "README.md").read_text()
    assert "v0.93.0" in readme and "Apache License 2.0" in readme


def test_core_kinds_are_checked_strictly() -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
    validate_manifest(config_map)
    with pytest.raises(SchemaViolation):
        validate_manifest({**config_map, "spec": {"unknown": True}})
    with pytest.raises(SchemaViolation):
        validate_manifest({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                           "spec": {"replicas": "three", "selector": {}, "template": {}}})


def test_monitoring_kinds_use_the_prometheus_operator_schema() -> None:
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"},
               "spec": {"selector": {}, "endpoints": [{"port": "http", "interval": "30s"}]}}
    validate_manifest(monitor)
    monitor["spec"]["endpoints"][0]["interval"] = "thirty seconds"  # fails the CRD's duration pattern
    with pytest.raises(SchemaViolation, match="interval"):
        validate_manifest(monitor)
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "x"},
            "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "5 minutes"}]}]}}
    with pytest.raises(SchemaViolation, match="for"):
        validate_manifest(rule)
