"""The SttServer CRD: structural, valid apiextensions.k8s.io/v1, samples accepted, bad ones refused."""

from __future__ import annotations

import copy
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any

import kubernetes_validate
import pytest
import yaml
from schema_validation import KUBERNETES_VERSION, crd_validator, schema_errors
from stt_operator.crd import build_crd, render_crd
from stt_operator.spec import SpecError, parse_spec

REPO = pathlib.Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "sttservers.sttfleet.io.yaml"
SAMPLES = sorted((REPO / "crds" / "samples").glob("*.yaml"))


def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_FILE.read_text())


def root_schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def structural_problems(schema: Mapping[str, Any], path: str = "") -> Iterator[str]:
    """What makes a schema non-structural: a level with no type (unless it preserves unknown fields)."""
    if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields") \
            and not schema.get("x-kubernetes-int-or-string"):
        yield f"{path or '<root>'}: no type"
    for key in ("anyOf", "oneOf", "allOf", "not"):
        if key in schema:
            yield f"{path}: {key} needs care in a structural schema; not used here"
    for name, child in (schema.get("properties") or {}).items():
        yield from structural_problems(child, f"{path}.{name}")
    if isinstance(schema.get("items"), Mapping):
        yield from structural_problems(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from structural_problems(schema["additionalProperties"], f"{path}{{}}")


def test_committed_crd_is_the_generated_one() -> None:
    assert CRD_FILE.read_text() == render_crd(), "run: python -m stt_operator.crd > crds/sttservers.sttfleet.io.yaml"


def test_crd_is_valid_apiextensions_v1() -> None:
    kubernetes_validate.validate(crd(), KUBERNETES_VERSION, strict=True)


def test_crd_is_structural() -> None:
    assert list(structural_problems(root_schema())) == []


def test_the_checker_notices_an_untyped_level() -> None:
    broken = copy.deepcopy(root_schema())
    del broken["properties"]["spec"]["properties"]["service"]["properties"]["grpcPort"]["type"]
    assert list(structural_problems(broken)) == [".spec.service.grpcPort: no type"]


def test_names_subresources_and_columns() -> None:
    spec = build_crd()["spec"]
    assert (spec["group"], spec["scope"], spec["names"]["kind"], spec["names"]["plural"]) == \
        ("sttfleet.io", "Namespaced", "SttServer", "sttservers")
    assert spec["names"]["shortNames"] == ["stt"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"]["scale"] == {"specReplicasPath": ".spec.replicas",
                                                "statusReplicasPath": ".status.replicas",
                                                "labelSelectorPath": ".status.selector"}
    assert "status" in version["subresources"]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Ready", "Replicas", "Model", "Endpoint", "Age"]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_samples_validate_and_parse(sample: pathlib.Path) -> None:
    manifest = yaml.safe_load(sample.read_text())
    assert schema_errors(crd_validator(crd()), manifest) == []
    parse_spec(manifest)


@pytest.mark.parametrize(("change", "where"), [
    ({"replicas": "two"}, "spec.replicas"),
    ({"device": "tpu"}, "spec.device"),
    ({"service": {"type": "NodePort", "nodePort": 80}}, "spec.service.nodePort"),
    ({"autoscaling": {"maxReplicas": 0}}, "spec.autoscaling.maxReplicas"),
    ({"monitoring": {"prometheusRule": {"thresholds": {"bufferUsagePercent": 0}}}},
     "spec.monitoring.prometheusRule.thresholds.bufferUsagePercent"),
    ({"secrets": {"apiKeys": {"name": "k"}}}, "spec.secrets.apiKeys"),
    ({"autoscaling": {"behavior": {"scaleUp": {"policies": [{"type": "Nodes", "value": 1, "periodSeconds": 5}]}}}},
     "spec.autoscaling.behavior.scaleUp.policies.0.type"),
])
def test_bad_manifests_are_rejected_by_the_schema(change: dict[str, Any], where: str) -> None:
    manifest = yaml.safe_load((REPO / "crds" / "samples" / "minimal-cpu.yaml").read_text())
    manifest["spec"].update(change)
    errors = schema_errors(crd_validator(crd()), manifest)
    assert errors and errors[0].startswith(where), errors


def test_missing_image_is_rejected() -> None:
    errors = schema_errors(crd_validator(crd()), {"apiVersion": "sttfleet.io/v1alpha1", "kind": "SttServer",
                                                  "metadata": {"name": "x"}, "spec": {}})
    assert errors == ["spec: 'image' is a required property"]


def cel_rules(schema: Mapping[str, Any], path: str = "spec") -> Iterator[tuple[str, str]]:
    for rule in schema.get("x-kubernetes-validations") or ():
        yield path, rule["message"]
    for name, child in (schema.get("properties") or {}).items():
        yield from cel_rules(child, f"{path}.{name}")


# One manifest per CEL rule that breaks it: parse_spec must refuse each too, because a cluster
# without CEL (or an object stored before the rule existed) can still hand it to the operator.
CEL_BREAKERS: dict[str, dict[str, Any]] = {
    "device cpu cannot use GPUs": {"device": "cpu", "gpu": 1},
    "device cuda needs gpu >= 1": {"device": "cuda"},
    "a model other than the bundled tiny.en needs a cache volume": {"model": {"name": "base.en"}},
    "set either pvc or hostPath, not both": {"model": {"cache": {"pvc": {"claimName": "a"},
                                                                  "hostPath": {"path": "/m"}}}},
    "nodePort and httpNodePort are only allowed with type NodePort": {"service": {"httpNodePort": 30001}},
    "grpcPort and httpPort must differ": {"service": {"grpcPort": 9000, "httpPort": 9000}},
    "nodePort and httpNodePort must differ": {"service": {"type": "NodePort", "nodePort": 30001,
                                                          "httpNodePort": 30001}},
    "restNodePort is only allowed with type NodePort": {"service": {"restNodePort": 30003}},
    "restPort must differ from grpcPort and httpPort": {"service": {"restPort": 8000}},
    "restNodePort must differ from nodePort and httpNodePort": {"service": {"type": "NodePort", "nodePort": 30001,
                                                                            "restNodePort": 30001}},
    "restNodePort needs the REST API on (restPort other than 0)": {"service": {"type": "NodePort", "restPort": 0,
                                                                               "restNodePort": 30003}},
    "minReplicas must be <= maxReplicas": {"autoscaling": {"minReplicas": 3, "maxReplicas": 2}},
    "set webhookURL or webhookURLSecret, not both": {"monitoring": {"alertmanagerConfig": {"critical": {
        "webhookURL": "http://pager/x", "webhookURLSecret": {"name": "s", "key": "k"}}}}},
    ("label keys are [prefix/]name: prefix a DNS subdomain, name at most 63 characters of letters, digits, '-', "
     "'_' and '.', starting and ending with a letter or digit"): {"nodeSelector": {"bad key": "x"}},
}


def test_every_cel_rule_is_also_enforced_by_parse_spec() -> None:
    messages = {message for _, message in cel_rules(root_schema()["properties"]["spec"])}
    messages.discard("set either pvc or emptyDir")  # storage.volume: parse_spec reads pvc only
    assert messages == set(CEL_BREAKERS)
    for change in CEL_BREAKERS.values():
        with pytest.raises(SpecError):
            parse_spec({"metadata": {"name": "x"}, "spec": {"image": "i", **change}})


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """What the API server stores: `default`s filled in wherever the parent object exists."""
    if not isinstance(value, dict):
        return value
    for name, child in (schema.get("properties") or {}).items():
        if name not in value and "default" in child:
            value[name] = copy.deepcopy(child["default"])
        if name in value:
            value[name] = apply_defaults(child, value[name])
    return value


def test_crd_defaults_agree_with_parse_spec_defaults() -> None:
    bare = {"metadata": {"name": "x", "namespace": "n"}, "spec": {"image": "i"}}
    stored = apply_defaults(root_schema(), copy.deepcopy(bare))
    assert stored["spec"]["service"]["grpcPort"] == 50051  # defaults did apply
    assert stored["spec"]["monitoring"]["prometheusRule"]["thresholds"]["finalP99Seconds"] == 5.0
    assert parse_spec(stored) == parse_spec(bare)
