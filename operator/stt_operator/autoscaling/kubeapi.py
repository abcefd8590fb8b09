"""A thin async Kubernetes API client over aiohttp: kubeconfig or in-cluster, JSON in and out.

The autoscaler and the local-fleet kubelet need a handful of calls (get, list, merge-patch, create,
delete, watch). Credentials come from `credentials.py` (kubeconfig or service account, the same
source as kopf's login): the Authorization header is taken afresh for every request, so a
rotated projected token is used within a minute, and a 401 reloads the credentials and retries once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final, Self

import aiohttp

from stt_operator.autoscaling.credentials import (  # noqa: F401 - re-exported: callers import them from here
    SERVICE_ACCOUNT_DIR,
    Credentials,
    credentials_from_env,
    credentials_from_kubeconfig,
    in_cluster_server,
    own_namespace,
)

logger = logging.getLogger(__name__)
LIST_PAGE_SIZE: Final = 50  # objects per LIST request (`limit`); see `KubeApi.list`


class ApiError(Exception):
    """A non-2xx answer from the API server; `status` is the HTTP status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def resource_path(api_version: str, plural: str, *, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    """`/api/v1/namespaces/ns/pods/x` or `/apis/apps/v1/namespaces/ns/deployments/x/status`."""
    parts = ["/api/v1" if api_version == "v1" else f"/apis/{api_version}"]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name:
        parts.append(name)
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


def matches_labels(obj: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


class KubeApi:
    """JSON calls against one API server. Use as an async context manager."""

    def __init__(self, credentials: Credentials, *, timeout_sec: float = 10.0, max_in_flight: int | None = None) -> None:
        """`max_in_flight` bounds the requests (not watches) sent at once; the others wait for a turn
        before their timeout starts, so a burst queues here instead of timing out in the pool."""
        self.credentials = credentials
        self._timeout = aiohttp.ClientTimeout(total=timeout_sec)
        self._session: aiohttp.ClientSession | None = None
        self._reloading = asyncio.Lock()
        self._turns = asyncio.Semaphore(max_in_flight) if max_in_flight else contextlib.nullcontext()

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("KubeApi used outside 'async with'")
        return self._session

    def _request_options(self, credentials: Credentials) -> dict[str, Any]:
        auth = credentials.authorization()
        ssl_option = credentials.ssl_context if credentials.ssl_context is not None else True
        options: dict[str, Any] = {"headers": {"Authorization": auth} if auth else {}, "ssl": ssl_option}
        if credentials.tls.server_name:
            options["server_hostname"] = credentials.tls.server_name  # the kubeconfig's tls-server-name
        return options

    async def _reload_after_401(self, failed: Credentials) -> bool:
        """Load the credentials afresh (once for many concurrent 401s); False when they cannot be."""
        if failed.reload is None:
            return False
        async with self._reloading:
            if self.credentials is failed:
                # The loaders read files and may run an exec plugin: keep that off the event loop.
                self.credentials = await asyncio.to_thread(failed.reload)
                logger.info("API server answered 401: credentials reloaded")
        return True

    async def request(self, method: str, path: str, *, body: Any = None,
                      content_type: str = "application/json", params: Mapping[str, str] | None = None) -> Any:
        data = None if body is None else json.dumps(body)
        for attempt in (0, 1):
            credentials = self.credentials
            options = self._request_options(credentials)
            if data is not None:
                options["headers"]["Content-Type"] = content_type
            async with self._turns, self.session.request(method, credentials.server + path, data=data,
                                                         params=params, timeout=self._timeout, **options) as resp:
                text = await resp.text()
                if resp.status == 401 and attempt == 0 and await self._reload_after_401(credentials):
                    continue
                if resp.status >= 400:
                    raise ApiError(resp.status, text[:500])
                return json.loads(text) if text else None
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, path: str) -> dict[str, Any]:
        return await self.request("GET", path)  # type: ignore[no-any-return]

    async def get_or_none(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, path: str, *, labels: Mapping[str, str] | None = None,
                   keep: Callable[[dict[str, Any]], Any] | None = None, page_size: int = LIST_PAGE_SIZE) -> list[Any]:
        """List objects, `page_size` at a time (`limit` and `continue`, as client-go's pager does).

        `keep` turns each object into what the caller needs (None drops it) as soon as its page is
        parsed: 200 Pods listed whole are 12 MB of Python objects at once, and the heap keeps the
        peak. The label filter is also applied here, for servers that ignore `labelSelector`.
        A continue token that expired (410) starts the listing again, once, in one request.
        """
        base = {"labelSelector": ",".join(f"{k}={v}" for k, v in labels.items())} if labels else {}
        kept: list[Any] = []
        params = {**base, "limit": str(page_size)}
        while True:
            try:
                body = await self.request("GET", path, params=params) or {}
            except ApiError as exc:
                if exc.status == 410 and "continue" in params:
                    # The token outlived etcd's compaction: start again unpaged, as client-go's pager does.
                    kept, params = [], dict(base)
                    continue
                raise
            for item in body.get("items") or ():
                if labels and not matches_labels(item, labels):
                    continue
                wanted = item if keep is None else keep(item)
                if wanted is not None:
                    kept.append(wanted)
            token = (body.get("metadata") or {}).get("continue")
            if not token or "limit" not in params:
                return kept
            params = {**params, "continue": token}

    async def create(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body=obj)  # type: ignore[no-any-return]

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request(  # type: ignore[no-any-return]
            "PATCH", path, body=patch, content_type="application/merge-patch+json")

    async def delete(self, path: str, *, grace_period: int | None = None) -> None:
        params = None if grace_period is None else {"gracePeriodSeconds": str(grace_period)}
        try:
            await self.request("DELETE", path, params=params)
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def watch(self, path: str, *, params: Mapping[str, str] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Yield watch events (`{"type", "object"}`) until the server closes the stream.

        `params` adds query parameters, e.g. `resourceVersion`, `labelSelector`, `timeoutSeconds`.
        """
        for attempt in (0, 1):
            credentials = self.credentials
            async with self.session.get(credentials.server + path, params={**(params or {}), "watch": "true"},
                                        timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
                                        **self._request_options(credentials)) as resp:
                if resp.status == 401 and attempt == 0 and await self._reload_after_401(credentials):
                    continue
                if resp.status >= 400:
                    raise ApiError(resp.status, (await resp.text())[:500])
                buffer = b""
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            yield json.loads(line)
                return
