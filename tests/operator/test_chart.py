"""The Helm chart rendered by `helm template` (the local cluster's helm binary): its objects in both
RBAC modes, least-privilege rules that still cover every API call the operator makes, names unique
per release, the leader election for several replicas and the uninstall hook."""

from __future__ import annotations

import os
import pathlib
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest
import yaml
from stt_operator.reconcile import CHILD_KINDS

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "stt-operator"
Grants = dict[tuple[str, str], set[str]]


def render(*values: str, release: str = "rel", namespace: str = "opns") -> list[dict[str, Any]]:
    from stt_localfleet import binaries

    helm = binaries.bin_dir() / "helm"
    if not helm.exists():
        if os.environ.get("STT_REQUIRE_CLUSTER"):
            pytest.fail(f"{helm} missing: run `stt-localfleet build`")
        pytest.skip(f"{helm} missing: run `stt-localfleet build`")
    args = [str(helm), "template", release, str(CHART), "--namespace", namespace]
    for value in values:
        args += ["--set", value]
    out = subprocess.run(args, capture_output=True, text=True, check=True,
                         env={**os.environ, "HELM_CACHE_HOME": "/tmp/helm-test", "HELM_CONFIG_HOME": "/tmp/helm-test",
                              "HELM_DATA_HOME": "/tmp/helm-test"}).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def grants(docs: Sequence[dict[str, Any]], kind: str, *, namespace: str | None = None) -> Grants:
    granted: Grants = {}
    for doc in docs:
        if doc["kind"] == kind and (namespace is None or doc["metadata"].get("namespace") == namespace):
            for rule in doc["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def operator_args(docs: Sequence[dict[str, Any]]) -> list[str]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])


def test_chart_metadata_and_values_parse() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "stt-operator"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"] == "stt-fleet/stt-operator"


def test_chart_crd_is_the_repository_crd() -> None:
    assert (CHART / "crds" / "sttservers.sttfleet.io.yaml").read_bytes() == \
        (REPO / "crds" / "sttservers.sttfleet.io.yaml").read_bytes()


def test_cluster_wide_rules_cover_every_call_and_nothing_more() -> None:
    docs = render()
    granted = grants(docs, "ClusterRole")
    for api_version, plural in CHILD_KINDS.values():
        group = api_version.rpartition("/")[0]
        assert granted[(group, plural)] == {"get", "list", "watch", "create", "patch", "delete"}, plural
    assert granted[("sttfleet.io", "sttservers")] == {"get", "list", "watch", "patch"}
    assert granted[("sttfleet.io", "sttservers/status")] == {"patch"}
    # OwnerReferencesPermissionEnforcement: blockOwnerDeletion needs update on the finalizers subresource.
    assert granted[("sttfleet.io", "sttservers/finalizers")] == {"update"}
    assert granted[("", "secrets")] == {"get"} and granted[("", "pods")] == {"list"}
    assert granted[("", "events")] == {"create"}
    assert granted[("", "namespaces")] == {"list", "watch"}
    assert ("sttfleet.io", "sttservers/scale") not in granted and ("kopf.dev", "kopfpeerings") not in granted
    assert "--all-namespaces" in operator_args(docs) and "--standalone" in operator_args(docs)


def test_watched_namespaces_get_roles_and_the_cluster_role_keeps_only_discovery() -> None:
    docs = render("watchNamespaces={a,b}")
    assert set(grants(docs, "ClusterRole")) == {("", "namespaces"), ("apiextensions.k8s.io",
                                                                    "customresourcedefinitions")}
    for namespace in ("a", "b"):
        role = grants(docs, "Role", namespace=namespace)
        assert role[("", "secrets")] == {"get"} and role[("apps", "deployments")] >= {"create", "patch"}
        binding = next(d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] == namespace)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rel", "namespace": "opns"}]
    assert [a for a in operator_args(docs) if a.startswith("--namespace")] == ["--namespace=a", "--namespace=b"]


def test_names_are_unique_per_release() -> None:
    first = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
             for d in render("watchNamespaces={a}", release="one", namespace="x")}
    second = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
              for d in render("watchNamespaces={a}", release="one", namespace="y")}
    assert first & second == set()
    cluster_scoped = {name for kind, _, name in first if kind in {"ClusterRole", "ClusterRoleBinding"}}
    assert cluster_scoped == {"one-x"}


def test_several_replicas_elect_a_leader_through_a_lease() -> None:
    docs = render("replicaCount=2")
    args = operator_args(docs)
    assert "--leader-election=opns/rel" in args and "--standalone" not in args
    own = grants(docs, "Role", namespace="opns")
    assert own[("coordination.k8s.io", "leases")] == {"create", "get", "patch"}
    assert ("coordination.k8s.io", "leases") not in grants(render(), "Role", namespace="opns")


def test_uninstall_hook_stops_the_operator_then_releases_the_finalizers() -> None:
    job = next(d for d in render("watchNamespaces={a}") if d["kind"] == "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["release-finalizers", "--stop-deployment=opns/rel", "--namespace=a"]
    assert not [d for d in render("uninstallHook.enabled=false") if d["kind"] == "Job"]
