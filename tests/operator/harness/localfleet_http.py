"""A JSON HTTP client and sample objects for the local API server's tests."""

from __future__ import annotations

from typing import Any

import aiohttp


class Http:
    """Tiny JSON client: returns (status, body) and never raises on 4xx/5xx."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def call(self, method: str, path: str, body: Any = None, *,
                   content_type: str = "application/json") -> tuple[int, Any]:
        headers = {"Content-Type": content_type}
        async with self.session.request(method, path, json=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.call("GET", path)

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body)

    async def put(self, path: str, body: Any) -> tuple[int, Any]:
        return await self.call("PUT", path, body)

    async def merge(self, path: str, body: Any) -> tuple[int, Any]:
        return await self.call("PATCH", path, body, content_type="application/merge-patch+json")

    async def delete(self, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.call("DELETE", path, body)


DEPLOYMENTS = "/apis/apps/v1/namespaces/test/deployments"
CONFIGMAPS = "/api/v1/namespaces/test/configmaps"


def deployment(name: str = "web", *, replicas: int = 1, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "img:1"}]}}}}
