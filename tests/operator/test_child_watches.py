"""The child watches (child_watch.py) against a small fake API server on loopback: filtered by the
API server (labelSelector), every event handed over with its kind, a 410 lists again, an unserved
kind is looked for again later; and kopf's per-event "succeeded" lines are DEBUG."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from aiohttp import web
from stt_operator.autoscaling.kubeapi import KubeApi
from stt_operator.child_watch import SELECTOR, Scope, watch_kind
from stt_operator.handlers import EVENT_HANDLERS_AT_DEBUG

PATH = "/api/v1/namespaces/ns/configmaps"
NS_SCOPE = Scope(("ns",))


def cm(name: str, version: str, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version}, **extra}


class FakeApi:
    """LIST answers with `listings` in turn; each WATCH streams the next script of events."""

    def __init__(self, listings: list[dict[str, Any]], watches: list[list[dict[str, Any]]]) -> None:
        self.listings, self.watches = listings, watches
        self.requests: list[dict[str, str]] = []
        self.all_watched = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        self.requests.append(params)
        if params.get("labelSelector") != SELECTOR:
            return web.json_response({"kind": "Status", "code": 400}, status=400)
        if params.get("watch") != "true":
            if not self.listings:
                return web.json_response({"kind": "Status", "code": 404}, status=404)
            return web.json_response(self.listings.pop(0))
        if not self.watches:
            self.all_watched.set()
            await asyncio.sleep(3600)  # an idle stream, until the test stops the watch
        response = web.StreamResponse()
        await response.prepare(request)
        for event in self.watches.pop(0):
            await response.write(json.dumps(event).encode() + b"\n")
        return response


async def run_until(fake: FakeApi, api: KubeApi, *, scope: Scope = NS_SCOPE,
                    not_served_retry_sec: float = 30.0) -> list[tuple[str, str, str, str]]:
    seen: list[tuple[str, str, str, str]] = []

    def on_event(type_: str, obj: Any) -> None:
        seen.append((type_, obj["kind"], obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))
    async with api:
        task = asyncio.create_task(watch_kind(api, path=PATH, kind="ConfigMap", scope=scope, on_event=on_event,
                                              timeout_sec=60, not_served_retry_sec=not_served_retry_sec))
        try:
            async with asyncio.timeout(10):
                await fake.all_watched.wait()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return seen


async def test_listed_then_watched_from_the_lists_version_with_the_kind_set(api_on_loopback: Any) -> None:
    fake = FakeApi(
        listings=[{"metadata": {"resourceVersion": "10"}, "items": [cm("a", "5")]}],
        watches=[[{"type": "ADDED", "object": {"kind": "ConfigMap", **cm("b", "11")}},
                  {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "12"}}},
                  {"type": "MODIFIED", "object": {"kind": "ConfigMap", **cm("a", "13")}},
                  {"type": "DELETED", "object": {"kind": "ConfigMap", **cm("b", "14")}}]])
    seen = await run_until(fake, await api_on_loopback(PATH, fake.handle))
    assert seen == [("ADDED", "ConfigMap", "a", "5"), ("ADDED", "ConfigMap", "b", "11"),
                    ("MODIFIED", "ConfigMap", "a", "13"), ("DELETED", "ConfigMap", "b", "14")]
    watches = [r for r in fake.requests if r.get("watch") == "true"]
    assert [w["resourceVersion"] for w in watches] == ["10", "14"]  # the stream ended: go on from the last seen
    assert all(w["allowWatchBookmarks"] == "true" and w["timeoutSeconds"] == "60" for w in watches)


async def test_a_410_lists_again_and_hands_over_what_the_new_list_holds(api_on_loopback: Any) -> None:
    fake = FakeApi(
        listings=[{"metadata": {"resourceVersion": "10"}, "items": [cm("a", "5")]},
                  {"metadata": {"resourceVersion": "90"}, "items": [cm("a", "80"), cm("c", "85")]}],
        watches=[[{"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}]])
    seen = await run_until(fake, await api_on_loopback(PATH, fake.handle))
    assert seen == [("ADDED", "ConfigMap", "a", "5"), ("ADDED", "ConfigMap", "a", "80"), ("ADDED", "ConfigMap", "c", "85")]
    assert [r.get("resourceVersion") for r in fake.requests if r.get("watch") == "true"] == ["10", "90"]


async def test_a_kind_not_served_is_looked_for_again_later(api_on_loopback: Any) -> None:
    fake = FakeApi(listings=[], watches=[])
    api = await api_on_loopback(PATH, fake.handle)

    async def install_the_crd_soon() -> None:
        await asyncio.sleep(0.3)
        fake.listings.append({"metadata": {"resourceVersion": "3"}, "items": [cm("a", "2")]})
    install = asyncio.create_task(install_the_crd_soon())
    seen = await run_until(fake, api, not_served_retry_sec=0.2)
    await install
    assert seen == [("ADDED", "ConfigMap", "a", "2")]
    lists = [r for r in fake.requests if r.get("watch") != "true"]
    assert len(lists) >= 2  # 404 first, then found


async def test_a_glob_scope_watches_cluster_wide_and_keeps_only_its_namespaces() -> None:
    assert Scope(("a", "b")).paths("v1", "configmaps") == ["/api/v1/namespaces/a/configmaps",
                                                            "/api/v1/namespaces/b/configmaps"]
    assert Scope(("team-*",)).paths("apps/v1", "deployments") == ["/apis/apps/v1/deployments"]
    assert Scope().paths("v1", "services") == ["/api/v1/services"]
    assert Scope(("team-*",)).admits("team-x") and not Scope(("team-*",)).admits("other")
    assert Scope().admits("anything")


@pytest.mark.parametrize("level, shown", [(logging.INFO, False), (logging.DEBUG, True)])
def test_routine_sttserver_event_handler_lines_are_debug(caplog: pytest.LogCaptureFixture, level: int,
                                                         shown: bool) -> None:
    kopf_objects = logging.getLogger("kopf.objects")
    assert EVENT_HANDLERS_AT_DEBUG in kopf_objects.filters
    with caplog.at_level(level, logger="kopf.objects"):
        kopf_objects.info("Handler 'reconcile' succeeded.")
        kopf_objects.info("Handler 'autoscaler' succeeded.")
        kopf_objects.info("Handler 'release' succeeded.")
        kopf_objects.error("Handler 'reconcile' failed with an exception. Will ignore.")
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "kopf.objects"]
    assert ("INFO", "Handler 'release' succeeded.") in records
    assert ("ERROR", "Handler 'reconcile' failed with an exception. Will ignore.") in records
    assert (("DEBUG", "Handler 'reconcile' succeeded.") in records) is shown
    assert ("INFO", "Handler 'reconcile' succeeded.") not in records
    assert ("INFO", "Handler 'autoscaler' succeeded.") not in records
