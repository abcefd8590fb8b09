"""What the API server does with a custom resource's body before storing it: default, prune, validate.

Structural-schema rules from apiextensions.k8s.io/v1, as far as they are emulated here:
`default` values are filled in where a field is absent, unknown fields are pruned unless
`x-kubernetes-preserve-unknown-fields` says otherwise, and the body is validated against the
schema (types, enums, ranges, patterns, required, lengths) with `jsonschema`. `nullable`,
boolean `exclusiveMinimum`/`exclusiveMaximum` and `x-kubernetes-int-or-string` are translated. CEL rules (`x-kubernetes-validations`) are NOT
evaluated; `format` is not checked.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonschema

_OPENAPI_ONLY = ("nullable", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
                 "x-kubernetes-validations", "x-kubernetes-embedded-resource", "x-kubernetes-list-type",
                 "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "default", "format")


def to_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Translate an OpenAPI v3 structural schema into plain JSON Schema for `jsonschema`."""
    result: dict[str, Any] = {k: v for k, v in schema.items() if k not in _OPENAPI_ONLY}
    if schema.get("x-kubernetes-int-or-string"):
        result.pop("type", None)
        result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in schema:
        result["properties"] = {k: to_json_schema(v) for k, v in schema["properties"].items()}
    if isinstance(schema.get("items"), Mapping):
        result["items"] = to_json_schema(schema["items"])
    if isinstance(schema.get("additionalProperties"), Mapping):
        result["additionalProperties"] = to_json_schema(schema["additionalProperties"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            result[key] = [to_json_schema(s) for s in schema[key]]
    if "not" in schema:
        result["not"] = to_json_schema(schema["not"])
    # OpenAPI 3.0 (as in CRDs) writes exclusive bounds as booleans beside minimum/maximum;
    # JSON Schema draft 7 wants the bound itself in exclusiveMinimum/exclusiveMaximum.
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(schema.get(exclusive), bool):
            result.pop(exclusive)
            if schema[exclusive] and bound in schema:
                result[exclusive] = result.pop(bound)
    if schema.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
    return result


def default_and_prune(value: Any, schema: Mapping[str, Any]) -> Any:
    """Fill `default`s of absent fields and drop unknown ones, recursively (on a copy)."""
    if isinstance(value, Mapping) and (schema.get("type") == "object" or "properties" in schema):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        keep_unknown = bool(schema.get("x-kubernetes-preserve-unknown-fields")) or additional is True
        result: dict[str, Any] = {}
        for key, item in value.items():
            if key in properties:
                result[key] = default_and_prune(item, properties[key])
            elif isinstance(additional, Mapping):
                result[key] = default_and_prune(item, additional)
            elif keep_unknown or schema.get("x-kubernetes-embedded-resource") and key in (
                    "apiVersion", "kind", "metadata"):
                result[key] = copy.deepcopy(item)
        for key, sub in properties.items():
            if key not in result and "default" in sub:
                result[key] = default_and_prune(copy.deepcopy(sub["default"]), sub)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [default_and_prune(item, schema["items"]) for item in value]
    return copy.deepcopy(value)


def validation_causes(obj: Mapping[str, Any], schema: Mapping[str, Any]) -> list[dict[str, str]]:
    """The `details.causes` of a 422 Invalid answer; empty when the object is valid."""
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    sub = dict(schema)
    sub["properties"] = {k: v for k, v in (schema.get("properties") or {}).items()
                         if k not in ("apiVersion", "kind", "metadata")}
    validator = jsonschema.Draft7Validator(to_json_schema(sub))
    causes = []
    for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
        field = ".".join(str(p) for p in error.absolute_path) or "<root>"
        causes.append({"reason": "FieldValueInvalid", "field": field,
                       "message": f"Invalid value: {_short(error.instance)}: {error.message}"})
    return causes


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
