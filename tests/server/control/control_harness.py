"""A fake ``ServerView`` and a running ``ControlPlane`` on loopback for the control-plane tests.

A uniquely named module (not conftest) so that `import` finds it unambiguously; conftest re-exports
the fixture.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from stt_server.config import ServerConfig, build_config
from stt_server.control import ControlPlane, HealthReport
from stt_server.metrics import ServerMetrics

HEALTHY = HealthReport(grpc_running=True, model_loaded=True, workers_healthy=True, loading=False, draining=False)


@dataclass
class FakeView:
    """A server whose health the test sets directly."""

    report: HealthReport = HEALTHY
    started_at: float = field(default_factory=lambda: time.time() - 12.0)
    extra: dict[str, Any] = field(default_factory=dict)

    def health(self) -> HealthReport:
        return self.report

    def info(self) -> dict[str, Any]:
        return {"version": "0.1.0", "model": "tiny.en", "device": "cpu", "compute_type": "int8",
                "limits": {"max_sessions": 32}}

    def metrics_json_extra(self) -> dict[str, Any]:
        return self.extra


def loopback_config(**sections: dict[str, Any]) -> ServerConfig:
    data: dict[str, Any] = {"server": {"http_host": "127.0.0.1", "http_port": 0}}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return build_config(data)


@dataclass
class Running:
    plane: ControlPlane
    view: FakeView
    metrics: ServerMetrics
    session: aiohttp.ClientSession
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.plane.port}"

    async def get(self, path: str, *, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.get(self.url + path, headers=headers) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()


StartPlane = Callable[..., Any]


@pytest.fixture
async def start_plane() -> AsyncIterator[StartPlane]:
    """``await start_plane(auth={...})`` -> a ``Running`` control plane; all stopped at teardown."""
    started: list[Running] = []

    async def start(*, view: FakeView | None = None, ssl: Any = None, **sections: dict[str, Any]) -> Running:
        config = loopback_config(**sections)
        metrics = ServerMetrics()
        view = view or FakeView()
        plane = ControlPlane(config=config, metrics=metrics, view=view)
        await plane.start()
        connector = aiohttp.TCPConnector(ssl=ssl) if ssl is not None else None
        running = Running(plane, view, metrics, aiohttp.ClientSession(connector=connector),
                          scheme="https" if config.server.tls.enabled else "http")
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            await running.session.close()
            await running.plane.stop()
