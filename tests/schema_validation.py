"""Validate manifests against the real schemas: Kubernetes OpenAPI and prometheus-operator CRDs.

Core kinds go through `kubernetes-validate` (strict: unknown fields are errors) at a recent
Kubernetes version; ServiceMonitor and PrometheusRule go through the `openAPIV3Schema` of the
prometheus-operator v0.93.0 CRDs copied under `tests/schemas/prometheus-operator/`. The CRD
schemas are OpenAPI 3.0 (boolean `exclusiveMinimum`), which is JSON Schema draft 4.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Mapping
from typing import Any, Final

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION: Final = "1.33.0"
SCHEMA_DIR: Final = pathlib.Path(__file__).parent / "schemas" / "prometheus-operator"
MONITORING_FILES: Final = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}
# Trimmed to what the operator renders (see the README there), so validation is also strict:
# a field the trimmed schema does not declare is an error rather than unchecked.
ALERTMANAGERCONFIG_FILE: Final = "monitoring.coreos.com_alertmanagerconfigs.trimmed.yaml"


class SchemaViolation(AssertionError):
    """A manifest the schema rejects; the message lists every problem with its path."""


def crd_validator(crd: Mapping[str, Any], *, version: str | None = None) -> jsonschema.Draft4Validator:
    """A validator for the `openAPIV3Schema` of one served version of a CRD (the first by default)."""
    versions = crd["spec"]["versions"]
    chosen = next(v for v in versions if version is None or v["name"] == version)
    return jsonschema.Draft4Validator(chosen["schema"]["openAPIV3Schema"])


@functools.cache
def _monitoring_validator(kind: str) -> jsonschema.Draft4Validator:
    crd = yaml.safe_load((SCHEMA_DIR / MONITORING_FILES[kind]).read_text())
    return crd_validator(crd, version="v1")


def schema_errors(validator: jsonschema.Draft4Validator, manifest: Mapping[str, Any]) -> list[str]:
    """Every violation as `path: message`, sorted (empty when valid)."""
    return sorted(f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
                  for e in validator.iter_errors(manifest))


@functools.cache
def _alertmanagerconfig_schema() -> dict[str, Any]:
    crd = yaml.safe_load((SCHEMA_DIR / ALERTMANAGERCONFIG_FILE).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return dict(version["schema"]["openAPIV3Schema"])


def undeclared_fields(schema: Mapping[str, Any], value: Any, path: str = "") -> list[str]:
    """Fields of `value` that `schema` does not declare (where it lists `properties`)."""
    found: list[str] = []
    if isinstance(value, Mapping) and "properties" in schema:
        for key, child in value.items():
            if key not in schema["properties"]:
                found.append(f"{path}{key}: not declared in the schema")
            else:
                found += undeclared_fields(schema["properties"][key], child, f"{path}{key}.")
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            found += undeclared_fields(schema["items"], item, f"{path}{index}.")
    return found


def alertmanagerconfig_errors(manifest: Mapping[str, Any]) -> list[str]:
    """Schema violations and undeclared fields of an AlertmanagerConfig, child routes included."""
    schema = _alertmanagerconfig_schema()
    errors = schema_errors(jsonschema.Draft4Validator(schema), manifest) + undeclared_fields(schema, manifest)
    route_schema = schema["properties"]["spec"]["properties"]["route"]
    pending = [(f"spec.route.routes.{i}.", r) for i, r in
               enumerate(manifest.get("spec", {}).get("route", {}).get("routes") or ())]
    while pending:
        path, route = pending.pop()
        errors += [f"{path}{e}" for e in schema_errors(jsonschema.Draft4Validator(route_schema), route)]
        errors += undeclared_fields(route_schema, route, path)
        pending += [(f"{path}routes.{i}.", r) for i, r in enumerate(route.get("routes") or ())]
    return errors


def validate_manifest(manifest: Mapping[str, Any]) -> None:
    """Raise SchemaViolation unless `manifest` is valid for its kind."""
    kind = manifest.get("kind")
    if kind == "AlertmanagerConfig":
        errors = alertmanagerconfig_errors(manifest)
        if errors:
            raise SchemaViolation(f"{kind} {manifest.get('metadata', {}).get('name')}: " + "; ".join(errors))
        return
    if kind in MONITORING_FILES:
        errors = schema_errors(_monitoring_validator(str(kind)), manifest)
        if errors:
            raise SchemaViolation(f"{kind} {manifest.get('metadata', {}).get('name')}: " + "; ".join(errors))
        return
    try:
        kubernetes_validate.validate(dict(manifest), KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise SchemaViolation(f"{kind}: {exc}") from exc
