"""The scraper against real aiohttp servers on loopback: healthy, unhealthy, hanging, token-protected."""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from serving_certs import ServingCert, issue, service_dns_names
from stt_operator.autoscaling.scraper import PodTarget, ScrapeTls, pod_targets, scrape_pods, tls_context

TOKEN = "s3cret-token"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def fake_pod(health: Handler, metrics: Handler, *, ssl_context: ssl.SSLContext | None = None
                   ) -> AsyncIterator[int]:
    """A control plane on 127.0.0.1:<port> with the given handlers (HTTPS with `ssl_context`); yields the port."""
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/metrics.json", metrics)
    runner = web.AppRunner(app, shutdown_timeout=0.2)  # the hanging handler must not hold teardown
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def authed(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "unauthorized"}, status=401)
        return await handler(request)
    return wrapped


def metrics_of(pending: float, sessions: float) -> Handler:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.json_response({"metrics": {"decode_pending": pending, "active_sessions": sessions,
                                              "buffer_bytes_total": 0}})
    return handler


async def healthy(_: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok", "reasons": []})


async def sick(_: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "unhealthy", "reasons": ["model not loaded"]}, status=503)


def hanging(started: asyncio.Event) -> Handler:
    async def handler(_: web.Request) -> web.StreamResponse:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")
    return handler


def target(name: str, port: int, *, ready: bool = True, deleting: bool = False) -> PodTarget:
    return PodTarget(name=name, ip="127.0.0.1", http_port=port, ready=ready, being_deleted=deleting)


async def test_scrape_reads_metrics_reports_unhealthy_and_survives_a_hanging_pod() -> None:
    started = asyncio.Event()
    async with (
        fake_pod(authed(healthy), authed(metrics_of(3, 2))) as good,
        fake_pod(authed(sick), authed(metrics_of(0, 0))) as ill,
        fake_pod(authed(hanging(started)), authed(metrics_of(0, 0))) as stuck,
    ):
        t0 = time.monotonic()
        result = await scrape_pods(
            [target("good", good), target("ill", ill), target("stuck", stuck),
             target("warming", good, ready=False), target("leaving", good, deleting=True)],
            token=TOKEN, timeout_sec=0.5, concurrency=4,
        )
        elapsed = time.monotonic() - t0
    assert started.is_set()
    assert elapsed < 2.0, "one hanging pod must cost one timeout, not stall the loop"
    by_name = {s.name: s for s in result.samples}
    assert by_name["good"].healthy and by_name["good"].decode_pending == 3 and by_name["good"].active_sessions == 2
    assert not by_name["ill"].healthy and by_name["ill"].decode_pending is None
    assert not by_name["stuck"].healthy
    assert not by_name["warming"].ready
    assert by_name["leaving"].being_deleted
    reasons = {u.name: u.reason for u in result.unhealthy}
    assert set(reasons) == {"ill", "stuck"}
    assert "model not loaded" in reasons["ill"]
    assert "no answer within 0.5 s" in reasons["stuck"]


async def test_wrong_token_is_reported_as_refused() -> None:
    async with fake_pod(authed(healthy), authed(metrics_of(1, 1))) as port:
        result = await scrape_pods([target("p", port)], token="wrong", timeout_sec=1.0)
    assert result.unhealthy and "token was refused" in result.unhealthy[0].reason


async def test_unreachable_and_malformed_pods_count_as_missing_metrics() -> None:
    async def garbage(_: web.Request) -> web.StreamResponse:
        return web.Response(text="not json")
    async with fake_pod(healthy, garbage) as port:
        # a closed port: bind then release one
        async with fake_pod(healthy, garbage) as closed_port:
            pass
        result = await scrape_pods([target("garbage", port), target("gone", closed_port)], token=None,
                                   timeout_sec=1.0)
    reasons = {u.name: u.reason for u in result.unhealthy}
    assert "decode_pending" in reasons["garbage"]
    assert reasons["gone"].startswith("unreachable")
    assert all(not s.healthy for s in result.samples)


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_concurrency_is_bounded(concurrency: int) -> None:
    in_flight = 0
    peak = 0

    async def slow_health(_: web.Request) -> web.StreamResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return await healthy(_)

    async with fake_pod(slow_health, metrics_of(1, 1)) as port:
        result = await scrape_pods([target(f"p{i}", port) for i in range(5)], token=None,
                                   concurrency=concurrency)
    assert peak == concurrency
    assert len(result.samples) == 5 and not result.unhealthy


def test_pod_targets_reads_ready_ip_port_and_deletion() -> None:
    pod = {
        "metadata": {"name": "a", "deletionTimestamp": None},
        "spec": {"containers": [{"ports": [{"name": "grpc", "containerPort": 50051},
                                           {"name": "http", "containerPort": 8123}]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.2",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }
    pending = {"metadata": {"name": "b", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Pending"}}
    assert pod_targets([pod, pending]) == [
        PodTarget("a", "127.0.0.2", 8123, ready=True, being_deleted=False),
        PodTarget("b", None, 8000, ready=False, being_deleted=True),
    ]


def server_context(cert: ServingCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as chain:
        chain.write(cert.cert_pem + cert.key_pem)
        chain.flush()
        context.load_cert_chain(chain.name)
    return context


async def test_tls_scrape_dials_the_pod_ip_and_verifies_the_service_name() -> None:
    # The certificate names the Service only (as cert-manager's would), not the pod IP we dial.
    cert = issue(dns_names=service_dns_names("demo", "speech"))
    async with fake_pod(authed(healthy), authed(metrics_of(5, 1)), ssl_context=server_context(cert)) as port:
        tls = ScrapeTls(context=tls_context(cert.ca_pem), server_name="demo.speech.svc", trust="ca.crt")
        good = await scrape_pods([target("p", port)], token=TOKEN, tls=tls, timeout_sec=2.0)
        plain = await scrape_pods([target("p", port)], token=TOKEN, timeout_sec=2.0)
        wrong_name = await scrape_pods([target("p", port)], token=TOKEN, timeout_sec=2.0,
                                       tls=ScrapeTls(tls.context, "other.speech.svc", "ca.crt"))
        other_ca = issue(dns_names=["demo.speech.svc"]).ca_pem
        wrong_ca = await scrape_pods([target("p", port)], token=TOKEN, timeout_sec=2.0,
                                     tls=ScrapeTls(tls_context(other_ca), "demo.speech.svc", "ca.crt of Secret x"))
    assert not good.unhealthy and good.samples[0].decode_pending == 5
    assert plain.unhealthy, "plain HTTP to an HTTPS control plane gets no metrics"
    assert "TLS handshake failed verifying other.speech.svc" in wrong_name.unhealthy[0].reason
    assert "against ca.crt of Secret x" in wrong_ca.unhealthy[0].reason
