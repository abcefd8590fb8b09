"""Names and labels a child cannot carry: refused at admission where the CRD can say so, and otherwise
a Degraded condition, a Warning Event and a WARNING log line before any child is written, and no
retry until the spec changes.

Objects made before the CRD's name rule existed cannot be made now (the rule refuses them), so the
reconciler is tested against a recording fake API that holds such an object; the label rules are
also tested against the real API server.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import Any

import pytest
from local_cluster import LocalCluster
from stt_operator.autoscaling.credentials import Credentials
from stt_operator.autoscaling.kubeapi import ApiError, KubeApi
from stt_operator.label_syntax import label_key_problem, label_value_problem
from stt_operator.reconciler import Reconciler, server_path
from stt_operator.spec import SpecError, parse_spec

NAMESPACE = "ns"


def server(name: str = "stt", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "sttfleet.io/v1alpha1", "kind": "SttServer",
            "metadata": {"name": name, "namespace": NAMESPACE, "uid": "u-1", "generation": 1, "resourceVersion": "7"},
            "spec": {"image": "stt-fleet/stt-server:dev", **spec}}


@pytest.mark.parametrize("key", ["app", "a.b_c-d", "example.com/team", "prometheus", "x" * 63,
                                 "a" * 63 + "." + "b" * 63 + "/name"])
def test_good_label_keys(key: str) -> None:
    assert label_key_problem(key) is None


@pytest.mark.parametrize("key", ["", "-a", "a-", "a b", "x" * 64, "/name", "Example.com/name", "a/b/c", "a/",
                                 "a_b.com/x", "é"])
def test_bad_label_keys(key: str) -> None:
    assert label_key_problem(key) is not None


@pytest.mark.parametrize(("value", "good"), [("", True), ("v1.2_3-x", True), ("x" * 63, True), ("x" * 64, False),
                                             ("-x", False), ("a b", False), ("a/b", False)])
def test_label_values(value: str, good: bool) -> None:
    assert (label_value_problem(value) is None) is good


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"monitoring": {"serviceMonitor": {"labels": {"bad key": "x"}}}}, "spec.monitoring.serviceMonitor.labels",
     "label key 'bad key'"),
    ({"monitoring": {"prometheusRule": {"labels": {"team": "a/b"}}}}, "spec.monitoring.prometheusRule.labels",
     "label value 'a/b' of 'team'"),
    ({"nodeSelector": {"disk": "x" * 64}}, "spec.nodeSelector", "of 'disk' must be empty or at most 63"),
])
def test_parse_spec_names_the_bad_label(spec: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(server(**spec))
    assert caught.value.field == field and words in caught.value.message


async def settle(reconciler: Reconciler) -> None:
    """Until the background passes asked for so far, and their Events, are done."""
    async with asyncio.timeout(5):
        await asyncio.gather(*reconciler._queued.values())
        await reconciler.events.flush()


class RecordingApi(KubeApi):
    """An API server holding one SttServer; every other object is missing. Records each request."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(Credentials(server="http://fake.invalid"))
        self.body = body
        self.calls: list[tuple[str, str, Any]] = []

    async def request(self, method: str, path: str, *, body: Any = None, content_type: str = "application/json",
                      params: Any = None) -> Any:
        self.calls.append((method, path, body))
        if method == "GET":
            if path == server_path(NAMESPACE, self.body["metadata"]["name"]):
                return copy.deepcopy(self.body)
            raise ApiError(404, "not found")
        return copy.deepcopy(body)

    def writes(self) -> list[tuple[str, str, Any]]:
        return [c for c in self.calls if c[0] != "GET"]


@pytest.mark.parametrize(("body", "field"), [
    (server("a" * 60), "metadata.name"),  # made before the CRD's rule: no Service can carry the name
    (server("stt", monitoring={"serviceMonitor": {"labels": {"team/": "x"}}}), "spec.monitoring.serviceMonitor"),
])
async def test_an_object_no_child_can_be_made_for_is_degraded_before_any_child_is_written(
        body: dict[str, Any], field: str, caplog: pytest.LogCaptureFixture) -> None:
    api = RecordingApi(body)
    name = body["metadata"]["name"]
    reconciler = Reconciler(api)
    with caplog.at_level(logging.WARNING, logger="stt_operator.reconciler"):
        reconciler.server_changed(NAMESPACE, name, body)  # its watch event, as handlers.server_event hands it
        await settle(reconciler)
    assert any(field in r.getMessage() and "invalid spec" in r.getMessage() for r in caplog.records)
    writes = api.writes()
    reconciler.server_changed(NAMESPACE, name, body)  # the same spec again (our status write's event)
    await settle(reconciler)
    assert api.writes() == writes, "an unchanged invalid spec is not tried again"
    status_patches = [b for m, p, b in writes if m == "PATCH" and p == server_path(NAMESPACE, name, subresource="status")]
    events = [b for m, p, b in writes if m == "POST" and p.endswith("/events")]
    assert len(writes) == len(status_patches) + len(events), f"a child was written: {json.dumps(writes)[:800]}"
    degraded = [c for c in status_patches[0]["status"]["conditions"] if c["type"] == "Degraded"]
    assert degraded[0]["status"] == "True" and field in degraded[0]["message"]
    assert any(e["type"] == "Warning" and e["reason"] == "Degraded" and field in e["message"] for e in events)


@pytest.fixture
def crd_installed(local_cluster: LocalCluster, sttserver_crd: None) -> LocalCluster:
    return local_cluster


def dry_run(cluster: LocalCluster, namespace: str, **spec: Any) -> tuple[int, str]:
    obj = server("probe", **spec)
    obj["metadata"] = {"name": "probe"}
    result = cluster.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", stdin=json.dumps(obj),
                             check=False)
    return result.returncode, result.stderr


@pytest.mark.parametrize(("spec", "needle"), [
    ({"monitoring": {"serviceMonitor": {"labels": {"bad key": "x"}}}}, "label keys are [prefix/]name"),
    ({"monitoring": {"prometheusRule": {"labels": {"Example.com/x": "y"}}}}, "label keys are [prefix/]name"),
    ({"monitoring": {"prometheusRule": {"labels": {"team": "a/b"}}}}, "should match"),
    ({"nodeSelector": {"disk": "x" * 64}}, "Too long"),
])
def test_bad_labels_are_refused_at_admission(crd_installed: LocalCluster, namespace: str, spec: dict[str, Any],
                                             needle: str) -> None:
    code, err = dry_run(crd_installed, namespace, **spec)
    assert code != 0 and needle in err, err


def test_good_labels_are_accepted_at_admission(crd_installed: LocalCluster, namespace: str) -> None:
    code, err = dry_run(crd_installed, namespace, nodeSelector={"kubernetes.io/os": "linux"},
                        monitoring={"serviceMonitor": {"labels": {"release": "kube-prometheus-stack", "t": ""}},
                                    "prometheusRule": {"labels": {"example.com/team": "speech.v2"}}})
    assert code == 0, err
