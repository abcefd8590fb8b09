"""A container's environment as the kubelet builds it: $(VAR) expansion, envFrom, env, the downward API."""

from __future__ import annotations

import base64

import pytest
from stt_localfleet.envvars import (
    PodFacts,
    expand,
    field_value,
    quantity,
    referenced_sources,
    resolve_env,
    service_env,
)
from stt_localfleet.launcherrors import CONFIG_ERROR, LaunchError

FACTS = PodFacts(pod_ip="10.244.0.7", host_ip="10.244.0.1", node_allocatable={"cpu": "2", "memory": "4Gi"})
POD = {
    "metadata": {"name": "web-1", "namespace": "stt", "uid": "u-1", "labels": {"app": "web", "tier": "a\"b"},
                 "annotations": {"note": "x"}},
    "spec": {"nodeName": "localfleet", "serviceAccountName": "runner"},
}
CONFIGMAPS = {"settings": {"data": {"LEVEL": "debug", "MODE": "fast", "bad=name": "x"}}}
SECRETS = {"tok": {"data": {"token": base64.b64encode(b"t0k").decode()}}}


def env_of(container: dict, *, base: dict | None = None) -> dict[str, str]:
    return resolve_env(POD, container, base=base or {}, configmaps=CONFIGMAPS, secrets=SECRETS, facts=FACTS)


@pytest.mark.parametrize(("text", "expected"), [
    ("$(A)-$(B)", "1-$(B)"),          # an undefined reference stays as written
    ("$$(A)", "$(A)"),                # escaped
    ("cost: $$5", "cost: $5"),
    ("$(A", "$(A"),                   # incomplete
    ("a$xb", "a$xb"),                 # not an expression
    ("trailing $", "trailing $"),
    ("$(A)$(A)", "11"),
])
def test_expand_follows_kubernetes(text: str, expected: str) -> None:
    assert expand(text, {"A": "1"}.get) == expected


def test_env_order_envfrom_then_env_with_expansion_of_earlier_variables() -> None:
    env = env_of({
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}],
        "env": [
            {"name": "LATER_REF", "value": "$(DEFINED_LATER)"},
            {"name": "DEFINED_LATER", "value": "x"},
            {"name": "COMBINED", "value": "$(APP_LEVEL)/$(DEFINED_LATER)/$(KUBERNETES_SERVICE_HOST)"},
            {"name": "APP_MODE", "value": "slow"},  # env wins over envFrom
        ],
    }, base=service_env("https://10.244.0.1:6443"))
    assert env["APP_LEVEL"] == "debug" and env["APP_MODE"] == "slow"
    assert "APP_bad=name" not in env  # not a valid variable name: skipped
    assert env["LATER_REF"] == "$(DEFINED_LATER)"
    assert env["COMBINED"] == "debug/x/10.244.0.1"


def test_value_from_secret_configmap_field_and_resource() -> None:
    env = env_of({
        "resources": {"limits": {"memory": "512Mi"}, "requests": {"cpu": "250m"}},
        "env": [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "LEVEL"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
            {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}},
        ],
    })
    assert {k: env[k] for k in ("TOKEN", "LEVEL", "POD_IP", "HOST_IP", "NODE", "SA", "UID", "APP")} == {
        "TOKEN": "t0k", "LEVEL": "debug", "POD_IP": "10.244.0.7", "HOST_IP": "10.244.0.1", "NODE": "localfleet",
        "SA": "runner", "UID": "u-1", "APP": "web"}
    assert (env["MEM_MI"], env["CPU_M"]) == ("512", "250")
    assert env["CPU_LIMIT"] == "2"  # no limit: the node's allocatable
    assert "GONE" not in env


def test_missing_sources_are_container_config_errors() -> None:
    with pytest.raises(LaunchError) as missing:
        env_of({"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]})
    assert (missing.value.reason, missing.value.message) == (CONFIG_ERROR, 'secret "absent" not found')
    with pytest.raises(LaunchError) as no_key:
        env_of({"env": [{"name": "T", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nokey"}}}]})
    assert no_key.value.message == "couldn't find key nokey in configmap stt/settings"
    with pytest.raises(LaunchError):
        env_of({"envFrom": [{"secretRef": {"name": "absent"}}]})
    assert env_of({"envFrom": [{"secretRef": {"name": "absent", "optional": True}}]}) == {}


def test_labels_as_a_file_are_quoted_lines() -> None:
    assert field_value(POD, "metadata.labels", FACTS) == 'app="web"\ntier="a\\"b"'
    assert field_value(POD, "metadata.annotations['note']", FACTS) == "x"
    with pytest.raises(LaunchError):
        field_value(POD, "spec.somethingElse", FACTS)


def test_service_env_points_at_the_api_server() -> None:
    env = service_env("https://10.244.0.1:36123")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.244.0.1" and env["KUBERNETES_SERVICE_PORT"] == "36123"
    assert env["KUBERNETES_PORT"] == "tcp://10.244.0.1:36123"


def test_quantities() -> None:
    assert quantity("250m") * 1000 == 250 and quantity("1Gi") == 2**30 and quantity("1e3") == 1000
    with pytest.raises(LaunchError):
        quantity("lots")


def test_referenced_sources_cover_env_envfrom_and_volumes() -> None:
    pod = {"spec": {
        "initContainers": [{"envFrom": [{"secretRef": {"name": "s-init"}}]}],
        "containers": [{"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c-env", "key": "k"}}}]}],
        "volumes": [{"name": "v", "secret": {"secretName": "s-vol"}},
                    {"name": "p", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}}],
    }}
    assert referenced_sources(pod) == ({"c-env", "kube-root-ca.crt"}, {"s-init", "s-vol"})
