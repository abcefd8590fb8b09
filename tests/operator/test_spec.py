"""parse_spec: defaults, every section read, and each invalid input named by its field."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest
import yaml
from stt_operator.spec import SpecError, SttServerSpec, parse_spec

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "crds" / "samples"


def body(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "sttfleet.io/v1alpha1", "kind": "SttServer",
            "metadata": {"name": "s1", "namespace": "ns", "uid": "u-1", "generation": 3},
            "spec": {"image": "img:1", **spec}}


def test_image_alone_gives_the_documented_defaults() -> None:
    spec = parse_spec(body())
    assert (spec.name, spec.namespace, spec.uid, spec.generation) == ("s1", "ns", "u-1", 3)
    assert spec.model.name == "tiny.en" and not spec.model.has_cache
    assert (spec.device, spec.compute_type, spec.gpu, spec.replicas) == ("auto", "auto", 0, 1)
    assert (spec.service.type, spec.service.grpc_port, spec.service.http_port) == ("ClusterIP", 50051, 8000)
    assert spec.limits.max_sessions == 32 and spec.limits.max_decode_pending == 16
    assert spec.drain_grace_seconds == 30
    assert spec.monitoring.thresholds.create_session_p99_seconds == 0.3
    assert spec.monitoring.thresholds.buffer_usage_percent == 90
    assert not spec.autoscaling.enabled


def test_spec_is_frozen() -> None:
    spec = parse_spec(body())
    with pytest.raises(AttributeError):
        spec.replicas = 5  # type: ignore[misc]


def test_gpu_sample_reads_every_section() -> None:
    spec = parse_spec(yaml.safe_load((SAMPLES / "gpu-production.yaml").read_text()))
    assert isinstance(spec, SttServerSpec)
    assert spec.namespace == "speech" and spec.gpu == 1 and spec.device == "cuda"
    assert spec.model.cache_claim_name == "whisper-models" and spec.model.path == "faster-whisper-large-v3"
    assert spec.service.node_port == 32051 and spec.service.type == "NodePort"
    assert spec.secrets.control_token is not None and spec.secrets.control_token.key == "token"
    assert spec.secrets.tls_secret_name == "stt-tls" and spec.image_pull_secrets == ("ghcr-pull",)
    assert spec.monitoring.interval == "15s"
    assert spec.monitoring.prometheus_rule_labels == {"release": "kube-prometheus-stack"}
    assert spec.monitoring.thresholds.final_p99_seconds == 4.0
    assert spec.monitoring.runbook_base_url == "https://runbooks.example.com/stt"
    assert (spec.autoscaling.min_replicas, spec.autoscaling.max_replicas) == (2, 8)
    assert spec.autoscaling.behavior.scale_down.stabilization_window_seconds == 300
    assert spec.drain_grace_seconds == 60


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"image": None}, "spec.image", "required"),
    ({"image": ""}, "spec.image", "empty"),
    ({"replicas": -1}, "spec.replicas", "at least 0"),
    ({"replicas": "2"}, "spec.replicas", "integer"),
    ({"device": "tpu"}, "spec.device", "one of"),
    ({"computeType": "int4"}, "spec.computeType", "one of"),
    ({"device": "cpu", "gpu": 1}, "spec.device", "GPUs"),
    ({"device": "cuda"}, "spec.gpu", "at least 1"),
    ({"service": {"nodePort": 32051}}, "spec.service.nodePort", "NodePort"),
    ({"service": {"type": "NodePort", "nodePort": 80}}, "spec.service.nodePort", "at least 30000"),
    ({"service": {"type": "LoadBalancer"}}, "spec.service.type", "one of"),
    ({"service": {"grpcPort": 8000}}, "spec.service.httpPort", "differ"),
    ({"model": {"name": "large-v3"}}, "spec.model.cache", "not bundled"),
    ({"model": {"cache": {"pvc": {"claimName": "a"}, "hostPath": {"path": "/m"}}}}, "spec.model.cache", "not both"),
    ({"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}, "spec.autoscaling.minReplicas", "<= maxReplicas"),
    ({"autoscaling": {"enabled": True, "targetDecodePendingPerReplica": 0}},
     "spec.autoscaling.targetDecodePendingPerReplica", "greater than 0"),
    ({"autoscaling": {"behavior": {"scaleUp": {"selectPolicy": "Most"}}}},
     "spec.autoscaling.behavior.scaleUp.selectPolicy", "one of"),
    ({"autoscaling": {"behavior": {"scaleDown": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 5}]}}}},
     "spec.autoscaling.behavior.scaleDown.policies[0].value", "at least 1"),
    ({"monitoring": {"prometheusRule": {"thresholds": {"errorRatePercent": 150}}}},
     "spec.monitoring.prometheusRule.thresholds.errorRatePercent", "at most 100"),
    ({"monitoring": {"serviceMonitor": {"interval": "soon"}}}, "spec.monitoring.serviceMonitor.interval", "30s"),
    ({"monitoring": {"serviceMonitor": {"labels": {"release": 1}}}},
     "spec.monitoring.serviceMonitor.labels", "strings"),
    ({"secrets": {"controlToken": {"name": "t"}}}, "spec.secrets.controlToken.key", "required"),
    ({"limits": {"maxSessions": 0}}, "spec.limits.maxSessions", "at least 1"),
    ({"limits": "many"}, "spec.limits", "object"),
    ({"resources": {"limits": {"nvidia.com/gpu": "1"}}}, "spec.resources.limits", "spec.gpu"),
    ({"drain": {"gracePeriodSeconds": 7200}}, "spec.drain.gracePeriodSeconds", "at most 3600"),
])
def test_invalid_spec_names_the_field(change: dict[str, Any], field: str, words: str) -> None:
    manifest = body()
    manifest["spec"].update(change)
    if manifest["spec"].get("image") is None:
        del manifest["spec"]["image"]
    with pytest.raises(SpecError) as caught:
        parse_spec(manifest)
    assert caught.value.field == field
    assert words in caught.value.message
    assert str(caught.value).startswith(field)


def test_missing_spec_and_long_name_are_rejected() -> None:
    with pytest.raises(SpecError, match="spec.image"):
        parse_spec({"metadata": {"name": "x"}})
    long = copy.deepcopy(body())
    long["metadata"]["name"] = "n" * 53
    with pytest.raises(SpecError) as caught:
        parse_spec(long)
    assert caught.value.field == "metadata.name"


def test_namespace_defaults_to_default() -> None:
    manifest = body()
    del manifest["metadata"]["namespace"]
    assert parse_spec(manifest).namespace == "default"
