"""A real grpc.aio server (SttServerApp) on 127.0.0.1:0 around a fake or the real engine, and leak checks.

A plain module (not conftest.py): several test directories have a conftest, and ``from conftest
import ...`` inside a test function would get whichever one pytest loaded last."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from grpc_fakes import FakeEngine
from prometheus_client import CollectorRegistry
from stt_server.app import SttServerApp
from stt_server.client import SttClient, WavAudio
from stt_server.config import build_config
from stt_server.metrics import ServerMetrics


@dataclass
class RunningServer:
    app: SttServerApp
    engine: Any
    metrics: ServerMetrics

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.app.grpc_port}"

    def client(self, api_key: str | None = None) -> SttClient:
        return SttClient(self.target, api_key=api_key)

    def gauge(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels or {})


def make_config(overrides: dict[str, Any] | None = None) -> Any:
    data: dict[str, Any] = {
        # rest_port 0: the REST API stays off unless a test asks for it (8080 would clash across tests)
        "server": {"grpc_host": "127.0.0.1", "grpc_port": 0, "http_host": "127.0.0.1", "http_port": 0,
                   "rest_port": 0},
        "logging": {"format": "console"},
    }
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    return build_config(data)


@contextlib.asynccontextmanager
async def running_server(
    overrides: dict[str, Any] | None = None, *, engine: Any = None, **fake_kwargs: Any
) -> AsyncIterator[RunningServer]:
    """Start an app with ``engine`` (default: a ``FakeEngine`` sized by the config limits)."""
    config = make_config(overrides)
    metrics = ServerMetrics(CollectorRegistry())
    if engine is None:
        fake_kwargs.setdefault("max_stream_buffer_bytes", config.limits.max_stream_buffer_bytes)
        fake_kwargs.setdefault("max_total_buffer_bytes", config.limits.max_total_buffer_bytes)
        fake_kwargs.setdefault("max_pending", config.limits.max_decode_pending)
        engine = FakeEngine(metrics=metrics, **fake_kwargs)
    app = SttServerApp(config, metrics=metrics, engine=engine)
    try:
        await app.start()
        yield RunningServer(app=app, engine=engine, metrics=metrics)
    finally:
        await app.stop()


def tone(seconds: float, *, rate: int = 16000) -> WavAudio:
    """A quiet tone as 16-bit PCM (the fake engine only counts samples)."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * 220 * t) * 3000).astype("<i2").tobytes()
    return WavAudio(pcm=pcm, sample_rate_hz=rate)


def leaks(server: RunningServer) -> list[str]:
    """What is still held: sessions, streams, buffers, pending decodes (empty when all are back to zero)."""
    app, engine = server.app, server.engine
    found = []
    if len(app.servicer.sessions):
        found.append(f"{len(app.servicer.sessions)} sessions")
    if app.servicer.streams:
        found.append(f"{len(app.servicer.streams)} streams")
    if engine.pending:
        found.append(f"{engine.pending} pending decodes")
    if engine.buffer_bytes_total:
        found.append(f"{engine.buffer_bytes_total} buffered bytes")
    if server.gauge("stt_active_sessions"):
        found.append("stt_active_sessions gauge")
    if server.gauge("stt_active_streams"):
        found.append("stt_active_streams gauge")
    open_streams = getattr(engine, "open_streams", 0)
    if open_streams if isinstance(open_streams, int) else len(open_streams):
        found.append("engine streams still open")
    return found


async def assert_no_leaks(server: RunningServer, timeout: float = 10.0) -> None:
    """Wait (cleanup finishes on the server's loop, decodes in flight on worker threads) for zero."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (found := leaks(server)) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    assert not found, f"leaked: {found}"
