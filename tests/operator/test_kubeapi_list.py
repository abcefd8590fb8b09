"""`KubeApi.list` against a fake API server on loopback: pages of `limit` followed by their continue
tokens, each object reduced by `keep` as its page arrives (None drops it), the label filter
applied, and an expired continue token (410) answered by one unpaged listing, without duplicates.
And `slim_pod` keeps what the autoscaler reads of a Pod."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aiohttp import web
from stt_operator.autoscaling.kubeapi import ApiError
from stt_operator.autoscaling.scrape_loop import pods_fingerprint
from stt_operator.autoscaling.scraper import pod_is_ready, pod_targets, slim_pod
from stt_operator.spec import parse_spec

PATH = "/api/v1/namespaces/ns/pods"


def pod(i: int, *, app: str = "stt-server") -> dict[str, Any]:
    return {"metadata": {"name": f"p{i:02d}", "namespace": "ns", "labels": {"app": app}}}


class PagedApi:
    """Serves `objects` `limit` at a time; the continue token is the next index. `expire_after`:
    answer 410 to the continue token of that page, once."""

    def __init__(self, objects: list[dict[str, Any]], *, expire_after: int | None = None) -> None:
        self.objects, self.expire_after = objects, expire_after
        self.requests: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        self.requests.append(params)
        start = int(params.get("continue", "0"))
        if self.expire_after is not None and start == self.expire_after:
            self.expire_after = None
            return web.json_response({"kind": "Status", "code": 410, "reason": "Expired"}, status=410)
        limit = int(params.get("limit", len(self.objects) or 1))
        page = self.objects[start:start + limit]
        more = start + limit < len(self.objects)
        return web.json_response({"kind": "PodList", "items": page,
                                  "metadata": {"continue": str(start + limit)} if more else {}})


async def test_pages_are_followed_and_each_object_is_kept_as_its_page_comes(api_on_loopback: Any) -> None:
    fake = PagedApi([pod(i) for i in range(7)])
    seen_pages: list[int] = []

    def keep(obj: dict[str, Any]) -> str | None:
        seen_pages.append(len(fake.requests))  # the page this object came with
        name = str(obj["metadata"]["name"])
        return None if name == "p03" else name.upper()

    async with await api_on_loopback(PATH, fake.handle) as api:
        kept = await api.list(PATH, keep=keep, page_size=3)
    assert kept == ["P00", "P01", "P02", "P04", "P05", "P06"]
    assert [r.get("limit") for r in fake.requests] == ["3", "3", "3"]
    assert [r.get("continue") for r in fake.requests] == [None, "3", "6"]
    assert seen_pages == [1, 1, 1, 2, 2, 2, 3]


async def test_the_label_filter_is_sent_and_applied_before_keep(api_on_loopback: Any) -> None:
    fake = PagedApi([pod(0), pod(1, app="other"), pod(2)])  # a server that ignores labelSelector
    kept_names: list[str] = []

    def keep(obj: dict[str, Any]) -> dict[str, Any]:
        kept_names.append(obj["metadata"]["name"])
        return obj

    async with await api_on_loopback(PATH, fake.handle) as api:
        listed = await api.list(PATH, labels={"app": "stt-server"}, keep=keep, page_size=2)
    assert [p["metadata"]["name"] for p in listed] == ["p00", "p02"]
    assert kept_names == ["p00", "p02"]
    assert {r["labelSelector"] for r in fake.requests} == {"app=stt-server"}


async def test_an_expired_continue_token_lists_again_in_one_request(api_on_loopback: Any) -> None:
    fake = PagedApi([pod(i) for i in range(5)], expire_after=2)
    async with await api_on_loopback(PATH, fake.handle) as api:
        listed = await api.list(PATH, keep=lambda p: p["metadata"]["name"], page_size=2)
    assert listed == ["p00", "p01", "p02", "p03", "p04"]  # the first page is not kept twice
    assert [(r.get("limit"), r.get("continue")) for r in fake.requests] == [("2", None), ("2", "2"), (None, None)]


async def test_a_second_410_is_raised(api_on_loopback: Any) -> None:
    fake = PagedApi([pod(i) for i in range(3)], expire_after=0)  # even the first, unpaged request: 410
    async with await api_on_loopback(PATH, fake.handle) as api:
        with pytest.raises(ApiError) as raised:
            await api.list(PATH, page_size=10)
    assert raised.value.status == 410
    assert len(fake.requests) == 1  # no continue token was used: nothing to start again from


def full_pod(name: str, *, ready: bool, deleting: bool = False) -> dict[str, Any]:
    """A Pod as the API server lists it, with the parts the autoscaler never reads."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "ns", "uid": "u-" + name, "resourceVersion": "7",
            "labels": {"app.kubernetes.io/name": "stt-server", "app.kubernetes.io/instance": "demo"},
            "annotations": {"checksum/config": "abc"},
            "managedFields": [{"manager": "kube-controller-manager", "fieldsV1": {"f:metadata": {}}}],
            "ownerReferences": [{"kind": "ReplicaSet", "name": "demo-1", "uid": "rs"}],
            **({"deletionTimestamp": "2026-12-03T12:00:00Z"} if deleting else {}),
        },
        "spec": {"containers": [{"name": "stt-server", "image": "stt-server:1", "env": [{"name": "A", "value": "1"}],
                                 "ports": [{"name": "grpc", "containerPort": 50051},
                                           {"name": "http", "containerPort": 8181}],
                                 "readinessProbe": {"httpGet": {"path": "/health/ready", "port": "http"}}}],
                 "volumes": [{"name": "config", "configMap": {"name": "demo"}}]},
        "status": {"phase": "Running", "podIP": "10.0.0.9",
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                   "containerStatuses": [{"name": "stt-server", "ready": ready, "restartCount": 0}]},
    }


def test_slim_pod_keeps_what_the_autoscaler_reads() -> None:
    pods = [full_pod("a", ready=True), full_pod("b", ready=False), full_pod("c", ready=True, deleting=True)]
    slim = [slim_pod(copy.deepcopy(p)) for p in pods]
    assert pod_targets(slim) == pod_targets(pods)
    assert [t.http_port for t in pod_targets(slim)] == [8181, 8181, 8181]
    assert [pod_is_ready(p) for p in slim] == [True, False, True]
    spec = parse_spec({"metadata": {"name": "demo", "namespace": "ns"}, "spec": {"image": "stt-server:1"}})
    assert pods_fingerprint(spec, 1, slim) == pods_fingerprint(spec, 1, pods)
    assert slim[0]["metadata"]["labels"] == pods[0]["metadata"]["labels"]
    for dropped in ("managedFields", "annotations", "ownerReferences"):
        assert dropped not in slim[0]["metadata"]
    assert "containerStatuses" not in slim[0]["status"]
    assert slim[0]["spec"] == {"containers": [{"name": "stt-server", "ports": pods[0]["spec"]["containers"][0]["ports"]}]}
