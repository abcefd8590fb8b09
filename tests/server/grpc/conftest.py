"""Fixtures: a real grpc.aio server (SttServerApp) on 127.0.0.1:0 around a fake or the real engine."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
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
        "server": {"grpc_host": "127.0.0.1", "grpc_port": 0, "http_host": "127.0.0.1", "http_port": 0},
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


@pytest.fixture
def server_factory() -> Callable[..., contextlib.AbstractAsyncContextManager[RunningServer]]:
    return running_server


def tone(seconds: float, *, rate: int = 16000) -> WavAudio:
    """A quiet tone as 16-bit PCM (the fake engine only counts samples)."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * 220 * t) * 3000).astype("<i2").tobytes()
    return WavAudio(pcm=pcm, sample_rate_hz=rate)


def assert_no_leaks(server: RunningServer) -> None:
    """Sessions, streams, buffers and pending decodes all back to zero."""
    app = server.app
    assert len(app.servicer.sessions) == 0
    assert len(app.servicer.streams) == 0
    assert server.engine.pending == 0
    assert server.engine.buffer_bytes_total == 0
    assert server.gauge("stt_active_sessions") == 0
    assert server.gauge("stt_active_streams") in (0, None)
    if hasattr(server.engine, "open_streams"):
        assert not server.engine.open_streams
