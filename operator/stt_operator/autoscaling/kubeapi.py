"""A thin async Kubernetes API client over aiohttp: kubeconfig or in-cluster, JSON in and out.

The autoscaler and the local-fleet kubelet need a handful of calls (get, list, merge-patch, create,
delete, watch); a full client library would be a heavy dependency for that. Credentials come from
`KUBECONFIG` (or `~/.kube/config`), else from the in-cluster service account, as kopf does.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self

import aiohttp
import yaml

SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ApiError(Exception):
    """A non-2xx answer from the API server; `status` is the HTTP status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Credentials:
    server: str
    token: str | None = None
    ssl_context: ssl.SSLContext | bool | None = None  # False: skip verification


def _material(entry: Mapping[str, Any], key: str, base_dir: Path) -> str | None:
    """A file path for `key` or `key-data` (written to a private temp file)."""
    if entry.get(f"{key}-data"):
        fd, name = tempfile.mkstemp(prefix="kubeapi-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(base64.b64decode(entry[f"{key}-data"]))
        return name
    if entry.get(key):
        return str((base_dir / entry[key]).resolve())
    return None


def credentials_from_kubeconfig(path: Path) -> Credentials:
    """Read the current context of a kubeconfig file."""
    config = yaml.safe_load(path.read_text())
    context_name = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or ()}
    context: Mapping[str, Any] = contexts.get(context_name) or next(iter(contexts.values()), {})
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or ()}
    users = {u["name"]: u.get("user") or {} for u in config.get("users") or ()}
    cluster = clusters.get(context.get("cluster")) or next(iter(clusters.values()))
    user = users.get(context.get("user"), {})
    server = str(cluster["server"]).rstrip("/")
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    ssl_context: ssl.SSLContext | bool | None = None
    if server.startswith("https"):
        if cluster.get("insecure-skip-tls-verify"):
            ssl_context = False
        else:
            ssl_context = ssl.create_default_context(cafile=_material(cluster, "certificate-authority", path.parent))
        cert = _material(user, "client-certificate", path.parent)
        key = _material(user, "client-key", path.parent)
        if cert and key:
            if not isinstance(ssl_context, ssl.SSLContext):
                ssl_context = ssl.create_default_context()
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
            ssl_context.load_cert_chain(cert, key)
    return Credentials(server=server, token=token, ssl_context=ssl_context)


def in_cluster_server() -> str | None:
    """`https://host:port` the kubelet names in a pod's environment; None outside a pod or with KUBECONFIG."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if not host or os.environ.get("KUBECONFIG") or not (SERVICE_ACCOUNT_DIR / "token").exists():
        return None
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def credentials_from_env() -> Credentials:
    """KUBECONFIG (first file), the in-cluster service account, or ~/.kube/config."""
    env = os.environ.get("KUBECONFIG")
    if env:
        return credentials_from_kubeconfig(Path(env.split(os.pathsep)[0]))
    server = in_cluster_server()
    if server is not None:
        return Credentials(
            server=server,
            token=(SERVICE_ACCOUNT_DIR / "token").read_text().strip(),
            ssl_context=ssl.create_default_context(cafile=str(SERVICE_ACCOUNT_DIR / "ca.crt")),
        )
    return credentials_from_kubeconfig(Path.home() / ".kube" / "config")


def own_namespace() -> str | None:
    """The namespace this process runs in: POD_NAMESPACE (the chart sets it from the downward API),
    else the service account's namespace file; None outside a pod."""
    env = os.environ.get("POD_NAMESPACE", "").strip()
    if env:
        return env
    try:
        return (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip() or None
    except OSError:
        return None


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

    def __init__(self, credentials: Credentials, *, timeout_sec: float = 10.0) -> None:
        self.credentials = credentials
        self._timeout = aiohttp.ClientTimeout(total=timeout_sec)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        headers = {"Authorization": f"Bearer {self.credentials.token}"} if self.credentials.token else {}
        connector = aiohttp.TCPConnector(ssl=self.credentials.ssl_context if self.credentials.ssl_context
                                         is not None else True)
        self._session = aiohttp.ClientSession(headers=headers, connector=connector)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("KubeApi used outside 'async with'")
        return self._session

    async def request(self, method: str, path: str, *, body: Any = None,
                      content_type: str = "application/json", params: Mapping[str, str] | None = None) -> Any:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(method, self.credentials.server + path, data=data, headers=headers,
                                        params=params, timeout=self._timeout) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise ApiError(resp.status, text[:500])
            return json.loads(text) if text else None

    async def get(self, path: str) -> dict[str, Any]:
        return await self.request("GET", path)  # type: ignore[no-any-return]

    async def get_or_none(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, path: str, *, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """List objects; the label filter is also applied here, for servers that ignore `labelSelector`."""
        params = {"labelSelector": ",".join(f"{k}={v}" for k, v in labels.items())} if labels else None
        body = await self.request("GET", path, params=params)
        items = (body or {}).get("items") or []
        return [item for item in items if not labels or matches_labels(item, labels)]

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
        async with self.session.get(self.credentials.server + path, params={**(params or {}), "watch": "true"},
                                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
            if resp.status >= 400:
                raise ApiError(resp.status, (await resp.text())[:500])
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
