"""The Node and Lease documents, the Events, and the API reads of a pod's sources (with a fake API)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from stt_localfleet.events import EventRecorder, build_event
from stt_localfleet.launcherrors import CONTAINER_CREATING, LaunchError
from stt_localfleet.node import build_lease, build_node, build_node_status, host_resources, micro_time
from stt_localfleet.sources import TokenCache, fetch_sources, refresh_time, token_request
from stt_localfleet.volumes import TokenItem
from stt_operator.autoscaling.kubeapi import ApiError

POD = {"metadata": {"name": "web-1", "namespace": "stt", "uid": "u-1", "resourceVersion": "7"},
       "spec": {"serviceAccountName": "runner"}}


def test_the_node_offers_the_hosts_resources_and_no_gpu(tmp_path: Path) -> None:
    resources = host_resources(tmp_path)
    assert set(resources) == {"cpu", "memory", "ephemeral-storage", "pods"}
    assert int(resources["cpu"]) >= 1 and resources["memory"].endswith("Ki") and resources["pods"] == "110"
    node = build_node("localfleet", node_ip="10.244.0.1", resources=resources)
    status = node["status"]
    assert status["capacity"] == status["allocatable"] == resources
    assert "nvidia.com/gpu" not in status["allocatable"]
    assert status["addresses"][0] == {"type": "InternalIP", "address": "10.244.0.1"}
    assert {a["type"] for a in status["addresses"]} == {"InternalIP", "Hostname"}
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True", "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False"}
    assert status["nodeInfo"]["operatingSystem"] == "linux" and status["nodeInfo"]["kubeletVersion"]
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "localfleet"
    assert not any(label.startswith("node-role.kubernetes.io") for label in node["metadata"]["labels"])


def test_node_status_keeps_transition_times() -> None:
    previous = {"Ready": {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}}
    status = build_node_status(node_ip="10.244.0.1", resources={"cpu": "1"}, previous=previous)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert ready["lastHeartbeatTime"] != ready["lastTransitionTime"]


def test_the_lease() -> None:
    renew = micro_time(datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC))
    assert renew == "2026-01-02T03:04:05.678901Z"
    lease = build_lease("localfleet", node_uid="n-1", renew_time=renew)
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": "localfleet",
                                                     "uid": "n-1"}]
    assert lease["spec"] == {"holderIdentity": "localfleet", "leaseDurationSeconds": 40, "renewTime": renew}


def test_a_token_request_is_bound_to_the_pod() -> None:
    assert token_request(POD, TokenItem("token", "", 3607)) == {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [], "expirationSeconds": 3607,
                 "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web-1", "uid": "u-1"}}}
    assert token_request(POD, TokenItem("t", "vault", 600))["spec"]["audiences"] == ["vault"]


def test_tokens_refresh_at_80_percent_of_their_life() -> None:
    assert refresh_time(issued_at=1000.0, expires_at=4600.0) == 1000.0 + 2880.0
    assert refresh_time(issued_at=0.0, expires_at=10 * 86400.0) == 86400.0  # at least once a day


class FakeApi:
    """Answers GETs from `objects` (404 otherwise, 403 for names in `forbidden`) and TokenRequests."""

    def __init__(self, objects: Mapping[str, dict[str, Any]], *, forbidden: tuple[str, ...] = ()) -> None:
        self.objects = objects
        self.forbidden = forbidden
        self.created: list[tuple[str, Mapping[str, Any]]] = []
        self.patched: list[tuple[str, Mapping[str, Any]]] = []
        self.now = 0

    async def get(self, path: str) -> dict[str, Any]:
        if any(path.endswith("/" + name) for name in self.forbidden):
            raise ApiError(403, "forbidden: no relationship found between node and this object")
        if path not in self.objects:
            raise ApiError(404, "not found")
        return self.objects[path]

    async def create(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.created.append((path, obj))
        expires = datetime.datetime.fromtimestamp(self.now + 3600, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"status": {"token": f"token-{len(self.created)}", "expirationTimestamp": expires}}

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        self.patched.append((path, patch))
        return {}


async def test_sources_are_fetched_one_by_one() -> None:
    api = FakeApi({"/api/v1/namespaces/stt/configmaps/app": {"data": {"a": "1"}}}, forbidden=("secret-x",))
    configmaps, secrets = await fetch_sources(api, "stt", configmaps=["app", "gone"], secrets=[])  # type: ignore[arg-type]
    assert configmaps == {"app": {"data": {"a": "1"}}, "gone": None} and secrets == {}
    with pytest.raises(LaunchError) as err:
        await fetch_sources(api, "stt", configmaps=[], secrets=["secret-x"])  # type: ignore[arg-type]
    assert err.value.reason == CONTAINER_CREATING and "403" in err.value.message


async def test_the_token_cache_asks_again_only_when_due() -> None:
    api = FakeApi({})
    clock = [0.0]
    cache = TokenCache(api, clock=lambda: clock[0])  # type: ignore[arg-type]
    item = TokenItem("token", "", 3600)
    first = await cache.get(POD, item)
    assert first.value == "token-1" and api.created[0][0] == "/api/v1/namespaces/stt/serviceaccounts/runner/token"
    assert cache.next_refresh("u-1") == pytest.approx(2880.0)
    clock[0] = 2000.0
    assert (await cache.get(POD, item)).value == "token-1"
    clock[0] = api.now = 2900
    assert (await cache.get(POD, item)).value == "token-2"
    cache.forget("u-1")
    assert cache.next_refresh("u-1") is None


def test_events_name_the_kubelet_and_the_container() -> None:
    event = build_event(POD, reason="Started", message="Started container web", container="web", host="localfleet")
    assert event["source"] == {"component": "kubelet", "host": "localfleet"}
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "web-1", "namespace": "stt",
                                       "uid": "u-1", "resourceVersion": "7", "fieldPath": "spec.containers{web}"}
    assert event["type"] == "Normal" and event["count"] == 1 and re.fullmatch(r"web-1\.[0-9a-f]{16}",
                                                                              event["metadata"]["name"])


async def test_a_repeated_event_bumps_its_count() -> None:
    api = FakeApi({})
    recorder = EventRecorder(api, host="localfleet")  # type: ignore[arg-type]
    for _ in range(3):
        recorder.record(POD, reason="BackOff", kind="Warning", message="Back-off restarting failed container")
        await recorder.flush()
    assert len(api.created) == 1 and [p[1]["count"] for p in api.patched] == [2, 3]
    assert api.patched[0][0] == f"/api/v1/namespaces/stt/events/{api.created[0][1]['metadata']['name']}"
