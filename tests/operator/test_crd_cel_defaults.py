"""The CRD's CEL rules, evaluated in Python (cel-python) the way kube-apiserver evaluates them.

The API server refuses a CRD whose `default` fails the CEL rules of its level (and of the levels
inside it), evaluated on the raw default before nested defaults fill in. It also evaluates the
root rules on `metadata.name`, which the operator re-checks in `parse_spec`.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml
from stt_operator.spec import SpecError, parse_spec
from test_crd import SAMPLES, apply_defaults, root_schema

celpy = pytest.importorskip("celpy", reason="cel-python (the dev extra) evaluates the CEL rules")

ENVIRONMENT = celpy.Environment()


@functools.cache
def program(rule: str) -> Any:
    return ENVIRONMENT.program(ENVIRONMENT.compile(rule))


def evaluate(rule: str, value: Any) -> Any:
    """The rule's result on `value` as `self`, or the evaluation error (returned, not raised)."""
    try:
        return program(rule).evaluate({"self": celpy.json_to_cel(value)})
    except celpy.CELEvalError as exc:
        return exc


def holds(result: Any) -> bool:
    return isinstance(result, celpy.celtypes.BoolType) and bool(result)


def rule_failures(schema: Mapping[str, Any], value: Any, path: str) -> Iterator[str]:
    """Every rule at this level and below (where `value` has data) that errs or is false."""
    for rule in schema.get("x-kubernetes-validations") or ():
        result = evaluate(rule["rule"], value)
        if not holds(result):
            yield f"{path}: {rule['rule']!r} -> {result!r}"
    if isinstance(value, Mapping):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for name, child_value in value.items():
            child = properties.get(name, extra if isinstance(extra, Mapping) else None)
            if child is not None:
                yield from rule_failures(child, child_value, f"{path}.{name}")
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            yield from rule_failures(schema["items"], item, f"{path}[{i}]")


def defaulted_levels(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    if "default" in schema:
        yield path, schema
    for name, child in (schema.get("properties") or {}).items():
        yield from defaulted_levels(child, f"{path}.{name}" if path else name)
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(schema.get(key), Mapping):
            yield from defaulted_levels(schema[key], path + suffix)


DEFAULTED = dict(defaulted_levels(root_schema()))


def rules_within(schema: Mapping[str, Any]) -> Iterator[Mapping[str, str]]:
    yield from schema.get("x-kubernetes-validations") or ()
    for child in (schema.get("properties") or {}).values():
        yield from rules_within(child)


RULES_BY_MESSAGE = {rule["message"]: rule["rule"] for rule in rules_within(root_schema())}


def test_the_levels_at_risk_are_found() -> None:
    at_risk = sorted(path for path, schema in DEFAULTED.items() if any(rules_within(schema)))
    assert at_risk == ["spec.autoscaling", "spec.model", "spec.monitoring", "spec.monitoring.grafanaDashboard",
                       "spec.monitoring.prometheusRule", "spec.monitoring.serviceMonitor", "spec.service"]


@pytest.mark.parametrize("path", sorted(DEFAULTED))
def test_every_default_passes_the_rules_of_its_level(path: str) -> None:
    schema = DEFAULTED[path]
    assert list(rule_failures(schema, schema["default"], f"{path}.default")) == []


def test_an_unguarded_rule_on_an_empty_default_is_caught() -> None:
    # What the API server refused before the rules were guarded.
    assert isinstance(evaluate("self.grpcPort != self.httpPort", {}), celpy.CELEvalError)
    unguarded = {"type": "object", "default": {}, "properties": {"grpcPort": {"type": "integer", "default": 1}},
                 "x-kubernetes-validations": [{"rule": "self.grpcPort > 0", "message": "m"}]}
    assert len(list(rule_failures(unguarded, {}, "x.default"))) == 1


def minimal() -> dict[str, Any]:
    return {"apiVersion": "sttfleet.io/v1alpha1", "kind": "SttServer",
            "metadata": {"name": "stt-minimal", "namespace": "n"}, "spec": {"image": "i"}}


@pytest.mark.parametrize("manifest", [minimal()] + [yaml.safe_load(p.read_text()) for p in SAMPLES],
                         ids=["minimal"] + [p.name for p in SAMPLES])
def test_defaulted_objects_pass_every_rule(manifest: dict[str, Any]) -> None:
    stored = apply_defaults(root_schema(), copy.deepcopy(manifest))
    assert list(rule_failures(root_schema(), stored, "<root>")) == []


@pytest.mark.parametrize(("change", "message"), [
    ({"model": {"name": "base.en"}}, "a model other than the bundled tiny.en needs a cache volume"),
    ({"service": {"httpNodePort": 30001}}, "nodePort and httpNodePort are only allowed with type NodePort"),
    ({"service": {"grpcPort": 8000}}, "grpcPort and httpPort must differ"),
    ({"autoscaling": {"minReplicas": 5}}, "minReplicas must be <= maxReplicas"),
    ({"device": "cuda"}, "device cuda needs gpu >= 1"),
])
def test_guarded_rules_still_refuse_defaulted_objects(change: dict[str, Any], message: str) -> None:
    # The has() guards only matter for raw defaults: once defaults fill in, the old meaning holds.
    manifest = minimal()
    manifest["spec"].update(change)
    stored = apply_defaults(root_schema(), manifest)
    failures = list(rule_failures(root_schema(), stored, "<root>"))
    assert len(failures) == 1 and repr(RULES_BY_MESSAGE[message]) in failures[0], failures


NAME_RULES = {r["message"]: r["rule"] for r in root_schema()["x-kubernetes-validations"]}


def refused_name_messages(name: str) -> set[str]:
    manifest = {**minimal(), "metadata": {"name": name}}
    return {message for message, rule in NAME_RULES.items() if not holds(evaluate(rule, manifest))}


@pytest.mark.parametrize("name", ["a", "stt-1", "s" * 52, "a0-b"])
def test_valid_names_pass_the_crd_and_parse_spec(name: str) -> None:
    assert refused_name_messages(name) == set()
    assert parse_spec({"metadata": {"name": name}, "spec": {"image": "i"}}).name == name


@pytest.mark.parametrize(("name", "which"), [
    ("stt.v2", "DNS-1035"), ("1stt", "DNS-1035"), ("Stt", "DNS-1035"), ("a-", "DNS-1035"),
    ("stt_1", "DNS-1035"), ("s" * 53, "at most 52"),
])
def test_invalid_names_are_refused_by_the_crd_and_parse_spec(name: str, which: str) -> None:
    refused = refused_name_messages(name)
    assert len(refused) == 1 and which in next(iter(refused)), refused
    with pytest.raises(SpecError) as caught:
        parse_spec({"metadata": {"name": name}, "spec": {"image": "i"}})
    assert caught.value.field == "metadata.name"
    # One wording for both: the CRD says "metadata.name <message>", the operator "<message>, got ...".
    assert next(iter(refused)) == f"metadata.name {caught.value.message.rsplit(', got ', 1)[0]}"
