"""Scrape the server pods of one SttServer: `/health` and `/metrics.json` of every ready pod.

Each pod gets its own deadline and the number of pods in flight is bounded by a semaphore, so one
pod that hangs costs at most one timeout and never stalls the others or the autoscaling loop. A pod
that answers unhealthy, answers garbage, or does not answer in time is reported as unhealthy with
a reason, and the decision counts it as a pod with missing metrics (the HPA's rule for those).

With TLS on (`spec.secrets.tls`) the control plane serves HTTPS only. The scraper dials the pod IP
but verifies the certificate against a name (`ScrapeTls.server_name`, sent as SNI too), as
Prometheus does with `tls_config.server_name`: pod IPs change with every pod, so no certificate
issued ahead of time can name them, while the Service's DNS name is stable.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from stt_operator.autoscaling.decision import PodSample

DEFAULT_TIMEOUT_SEC: Final = 2.0
DEFAULT_CONCURRENCY: Final = 8
DEFAULT_HTTP_PORT: Final = 8000


@dataclass(frozen=True)
class PodTarget:
    """A pod as the scraper needs it, read from the Pod object."""

    name: str
    ip: str | None
    http_port: int
    ready: bool
    being_deleted: bool


@dataclass(frozen=True)
class UnhealthyPod:
    """A ready pod whose health or metrics could not be used, and why (for status)."""

    name: str
    reason: str


@dataclass(frozen=True)
class ScrapeTls:
    """How to reach control planes that serve HTTPS: whom to trust, and which name to verify."""

    context: ssl.SSLContext
    server_name: str
    trust: str  # where `context`'s CAs came from, for the reason of a failed handshake


def tls_context(ca_pem: str | None) -> ssl.SSLContext:
    """A verifying client context trusting `ca_pem`, or the system's CAs when there is none."""
    return ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()


@dataclass(frozen=True)
class ScrapeResult:
    samples: tuple[PodSample, ...]
    unhealthy: tuple[UnhealthyPod, ...]


def slim_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Pod the autoscaler reads (`pod_targets`, `pod_is_ready`, the label selector,
    scrape_loop's fingerprint), as `KubeApi.list(keep=...)`: a listed Pod is about 60 kB of Python
    objects, mostly the parts below that are dropped."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    containers = (pod.get("spec") or {}).get("containers") or ()
    return {
        "metadata": {key: meta[key] for key in ("name", "namespace", "labels", "deletionTimestamp") if key in meta},
        "spec": {"containers": [{"name": c.get("name"), "ports": c.get("ports") or []} for c in containers]},
        "status": {key: status[key] for key in ("phase", "podIP", "conditions") if key in status},
    }


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    """Running with condition Ready=True, as the endpoints controller requires."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())


def _http_port(pod: Mapping[str, Any], default: int) -> int:
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("name") == "http" and port.get("containerPort"):
                return int(port["containerPort"])
    return default


def pod_targets(pods: Iterable[Mapping[str, Any]], *, default_http_port: int = DEFAULT_HTTP_PORT) -> list[PodTarget]:
    """Turn Pod objects into scrape targets (HTTP port from the container port named `http`)."""
    targets = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        targets.append(PodTarget(
            name=str(meta.get("name", "")),
            ip=(pod.get("status") or {}).get("podIP") or None,
            http_port=_http_port(pod, default_http_port),
            ready=pod_is_ready(pod),
            being_deleted=bool(meta.get("deletionTimestamp")),
        ))
    return targets


async def _get_json(session: aiohttp.ClientSession, url: str, headers: Mapping[str, str],
                    tls: ScrapeTls | None) -> tuple[int, Any]:
    secure: dict[str, Any] = {} if tls is None else {"ssl": tls.context, "server_hostname": tls.server_name}
    async with session.get(url, headers=headers, allow_redirects=False, **secure) as resp:
        text = await resp.text()
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        return resp.status, body


def _number(metrics: Any, key: str) -> float | None:
    value = metrics.get(key) if isinstance(metrics, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


async def _scrape_one(
    session: aiohttp.ClientSession, target: PodTarget, *, token: str | None, tls: ScrapeTls | None
) -> tuple[PodSample, UnhealthyPod | None]:
    base = f"{'https' if tls else 'http'}://{target.ip}:{target.http_port}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def unhealthy(reason: str) -> tuple[PodSample, UnhealthyPod]:
        sample = PodSample(target.name, ready=True, healthy=False)
        return sample, UnhealthyPod(target.name, reason)

    status, body = await _get_json(session, f"{base}/health", headers, tls)
    if status in (401, 403):
        return unhealthy(f"/health answered {status}: the control-plane token was refused")
    if status != 200:
        reasons = body.get("reasons") if isinstance(body, Mapping) else None
        detail = "; ".join(map(str, reasons)) if isinstance(reasons, list) and reasons else "no reason given"
        return unhealthy(f"/health answered {status}: {detail}")
    status, body = await _get_json(session, f"{base}/metrics.json", headers, tls)
    if status != 200:
        return unhealthy(f"/metrics.json answered {status}")
    metrics = body.get("metrics") if isinstance(body, Mapping) else None
    pending = _number(metrics, "decode_pending")
    if pending is None:
        return unhealthy("/metrics.json has no numeric metrics.decode_pending")
    sample = PodSample(target.name, ready=True, healthy=True, decode_pending=pending,
                       active_sessions=_number(metrics, "active_sessions"))
    return sample, None


async def scrape_pods(
    targets: Iterable[PodTarget],
    *,
    token: str | None,
    tls: ScrapeTls | None = None,
    timeout_sec: float = DEFAULT_TIMEOUT_SEC,
    concurrency: int = DEFAULT_CONCURRENCY,
    session: aiohttp.ClientSession | None = None,
) -> ScrapeResult:
    """Sample every target: ready pods are scraped (over HTTPS when `tls` is given), the others are
    passed through as not ready."""
    semaphore = asyncio.Semaphore(concurrency)
    own_session = session is None
    http = session or aiohttp.ClientSession()

    async def one(target: PodTarget) -> tuple[PodSample, UnhealthyPod | None]:
        if target.being_deleted or not target.ready:
            return PodSample(target.name, ready=target.ready, being_deleted=target.being_deleted), None
        if not target.ip:
            return PodSample(target.name, ready=True, healthy=False), UnhealthyPod(target.name, "no podIP yet")
        async with semaphore:
            try:
                # One deadline per pod covers both requests, so a hanging pod costs one timeout.
                return await asyncio.wait_for(_scrape_one(http, target, token=token, tls=tls), timeout_sec)
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                reason = f"no answer within {timeout_sec:g} s"
            except aiohttp.ClientSSLError as exc:
                name, trust = (tls.server_name, tls.trust) if tls else ("?", "?")
                reason = f"TLS handshake failed verifying {name} against {trust}: {exc}"
            except (aiohttp.ClientError, OSError) as exc:
                reason = f"unreachable: {exc.__class__.__name__}: {exc}"
            return PodSample(target.name, ready=True, healthy=False), UnhealthyPod(target.name, reason)

    try:
        results = await asyncio.gather(*(one(t) for t in targets))
    finally:
        if own_session:
            await http.close()
    return ScrapeResult(
        samples=tuple(sample for sample, _ in results),
        unhealthy=tuple(bad for _, bad in results if bad is not None),
    )
