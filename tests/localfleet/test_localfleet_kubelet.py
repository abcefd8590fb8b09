"""The kubelet's list+watch of its own pods against a fake API: selectors, resume, relist after 410."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from stt_localfleet.backoff import CrashBackoff
from stt_localfleet.containerstart import NodeServices
from stt_localfleet.events import EventRecorder
from stt_localfleet.kubelet import Kubelet
from stt_localfleet.pods import AddressPool
from stt_localfleet.sources import TokenCache
from stt_operator.autoscaling.kubeapi import ApiError


def pod(name: str, uid: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "stt", "uid": uid, "resourceVersion": version},
            "spec": {"nodeName": "localfleet", "containers": [{"name": "c", "image": "nginx:1.27"}]},
            "status": {"phase": "Pending"}}


class WatchingApi:
    """A list, then a watch that delivers an update and a 410; the relist has another pod instead."""

    def __init__(self) -> None:
        self.lists: list[Mapping[str, str]] = []
        self.watches: list[Mapping[str, str]] = []
        self.listed = [
            {"metadata": {"resourceVersion": "10"}, "items": [pod("a", "uid-a", "9")]},
            {"metadata": {"resourceVersion": "20"}, "items": [pod("b", "uid-b", "19")]},
        ]

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      **_: Any) -> Any:
        if method == "GET" and path == "/api/v1/pods":
            self.lists.append(dict(params or {}))
            return self.listed[min(len(self.lists), len(self.listed)) - 1]
        return None

    async def watch(self, path: str, *, params: Mapping[str, str] | None = None) -> AsyncIterator[dict[str, Any]]:
        self.watches.append(dict(params or {}))
        if len(self.watches) == 1:
            yield {"type": "MODIFIED", "object": pod("a", "uid-a", "11")}
            yield {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}}
            yield {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}
            return
        await asyncio.sleep(3600)
        yield {}  # never reached: a generator all the same

    async def get(self, path: str) -> dict[str, Any]:
        raise ApiError(404, "not found")

    async def create(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        return dict(obj)

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return {}


async def test_list_watch_resume_and_relist(tmp_path: Path) -> None:
    api = WatchingApi()
    kubelet = Kubelet(api, workdir=tmp_path, api_server_url="https://10.244.0.1:6443")  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as http:
        kubelet._services = NodeServices(
            api=api, node_name="localfleet", node_ip="127.0.0.1", workdir=tmp_path, service_env={},  # type: ignore[arg-type]
            addresses=AddressPool("127.0.0.0/24", node_ip="127.0.0.1"), events=EventRecorder(api, host="x"),  # type: ignore[arg-type]
            tokens=TokenCache(api), http=http, backoff=CrashBackoff(), image_paths=(),  # type: ignore[arg-type]
            allocatable={}, retry_sec=0.05)
        watching = asyncio.create_task(kubelet._watch_pods())
        deadline = time.monotonic() + 10
        while set(kubelet.workers) != {"uid-b"} and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        assert set(kubelet.workers) == {"uid-b"}, "pod a is gone after the relist, pod b is run"
        await kubelet.shutdown()
    assert api.lists == [{"fieldSelector": "spec.nodeName=localfleet"}] * 2
    assert [w["resourceVersion"] for w in api.watches] == ["10", "20"]  # the relist's version, after the 410
    assert all(w["fieldSelector"] == "spec.nodeName=localfleet" and w["allowWatchBookmarks"] == "true"
               for w in api.watches)
