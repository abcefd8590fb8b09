"""The scraper against real aiohttp servers on loopback: healthy, unhealthy, hanging, token-protected."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from stt_operator.autoscaling.scraper import PodTarget, pod_targets, scrape_pods

TOKEN = "s3cret-token"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def fake_pod(health: Handler, metrics: Handler) -> AsyncIterator[int]:
    """A control plane on 127.0.0.1:<port> with the given handlers; yields the port."""
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/metrics.json", metrics)
    runner = web.AppRunner(app, shutdown_timeout=0.2)  # the hanging handler must not hold teardown
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
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
