"""A real ``ControlPlane`` on loopback with a fake view, for the tools' tests.

Tools run their own event loop (``asyncio.run`` in ``main``), so tests call ``main`` through
``asyncio.to_thread`` while the control plane serves from the test's loop.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from stt_server.config import build_config
from stt_server.control import ControlPlane, HealthReport
from stt_server.metrics import DecodeTiming, ServerMetrics

TOKEN = "tools-test-token"


@dataclass
class FakeView:
    started_at: float = field(default_factory=time.time)

    def health(self) -> HealthReport:
        return HealthReport(grpc_running=True, model_loaded=True, workers_healthy=True, loading=False,
                            draining=False)

    def info(self) -> dict[str, Any]:
        return {"version": "0.1.0", "model": "tiny.en", "device": "cpu", "compute_type": "int8", "limits": {}}

    def metrics_json_extra(self) -> dict[str, Any]:
        return {}


@dataclass
class Plane:
    url: str
    metrics: ServerMetrics


StartPlane = Callable[..., Any]


@pytest.fixture
async def start_plane() -> AsyncIterator[StartPlane]:
    """``await start_plane(auth={...}, server={...})`` -> ``Plane``; stopped at teardown."""
    planes: list[ControlPlane] = []

    async def start(**sections: dict[str, Any]) -> Plane:
        data: dict[str, Any] = {"server": {"http_host": "127.0.0.1", "http_port": 0, **sections.pop("server", {})}}
        config = build_config({**data, **sections})
        metrics = ServerMetrics()
        metrics.active_sessions.set(4)
        metrics.decode_pending.set(2)
        metrics.record_decode(kind="partial", timing=DecodeTiming(0.05, 0.01, 0.2, 0.001), audio_seconds=2.0)
        plane = ControlPlane(config=config, metrics=metrics, view=FakeView())
        await plane.start()
        planes.append(plane)
        scheme = "https" if config.server.tls.enabled else "http"
        return Plane(f"{scheme}://127.0.0.1:{plane.port}", metrics)

    try:
        yield start
    finally:
        for plane in planes:
            await plane.stop()


@pytest.fixture
async def leaky_app() -> AsyncIterator[str]:
    """A tiny server that answers everything without asking for a token: a planted hole."""

    async def leak(request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy", "model": {"name": "tiny.en"}, "secret_figures": 42})

    app = web.Application()
    app.router.add_get("/{tail:.*}", leak)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
