"""Small HTTP helpers the tools share: GET JSON from the control plane with an optional token."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Fetched:
    """One answer: status, parsed JSON (or ``None``) and the raw text."""

    status: int
    body: Any
    text: str


def client_session(*, insecure: bool = False, timeout_sec: float = 5.0) -> aiohttp.ClientSession:
    """A session for the tools; ``insecure`` skips certificate checks (self-signed test certs)."""
    connector = aiohttp.TCPConnector(ssl=False) if insecure else aiohttp.TCPConnector(ssl=ssl.create_default_context())
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_sec))


async def fetch(session: aiohttp.ClientSession, url: str, *, token: str | None = None) -> Fetched:
    """GET ``url``; the body is parsed as JSON when the server says it is JSON."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.get(url, headers=headers) as response:
        text = await response.text()
        body: Any = None
        if response.content_type == "application/json":
            body = await response.json()
        return Fetched(response.status, body, text)


async def fetch_json(session: aiohttp.ClientSession, url: str, *, token: str | None = None) -> Any:
    """GET JSON or raise ``RuntimeError`` naming the URL and the status."""
    got = await fetch(session, url, token=token)
    if got.status != 200 or got.body is None:
        raise RuntimeError(f"GET {url}: HTTP {got.status}: {got.text[:200]}")
    return got.body


def endpoint_urls(metrics_url: str | None, system_url: str | None, *, base_url: str) -> tuple[str, str]:
    """``/metrics.json`` and ``/system`` URLs, each defaulting to ``base_url``."""
    base = base_url.rstrip("/")
    return metrics_url or f"{base}/metrics.json", system_url or f"{base}/system"
