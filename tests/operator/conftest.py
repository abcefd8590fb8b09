"""Fixtures shared by the operator's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from stt_operator.autoscaling.kubeapi import Credentials, KubeApi

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServeApi = Callable[[str, Handler], Awaitable[KubeApi]]


@pytest.fixture
async def api_on_loopback() -> AsyncIterator[ServeApi]:
    """`await api_on_loopback(PATH, handler)`: a fake API server on 127.0.0.1 answering GET PATH with
    `handler`, and a KubeApi (plain HTTP) for it. The servers stop when the test ends, without
    waiting aiohttp's default 60 s for handlers still streaming (an idle watch)."""
    runners: list[web.AppRunner] = []

    async def start(path: str, handler: Handler) -> KubeApi:
        app = web.Application()
        app.router.add_get(path, handler)
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return KubeApi(Credentials(server=f"http://127.0.0.1:{runner.addresses[0][1]}"))

    yield start
    for runner in runners:
        await runner.cleanup()
