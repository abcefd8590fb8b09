"""Fixtures for the local API server's own tests: a served emulator and a JSON HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from localfleet_http import Http
from stt_localfleet.apiserver import LocalApiServer


@pytest_asyncio.fixture
async def server() -> AsyncIterator[LocalApiServer]:
    async with LocalApiServer(namespaces=["test"]) as srv:
        yield srv


@pytest_asyncio.fixture
async def http(server: LocalApiServer) -> AsyncIterator[Http]:
    async with aiohttp.ClientSession(server.url) as session:
        yield Http(session)
