"""A real SttServerApp with its REST API on a free loopback port, plus small HTTP helpers."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from grpc_harness import RunningServer, running_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RestServer:
    server: RunningServer

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.app.rest_port}"

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.server.gauge(name, labels) or 0.0


@contextlib.asynccontextmanager
async def rest_server(overrides: dict[str, Any] | None = None, *, engine: Any = None) -> AsyncIterator[RestServer]:
    """The app with ``server.rest_port`` on a free port (retried: another process may take it first)."""
    for attempt in range(3):
        merged = {section: dict(values) for section, values in (overrides or {}).items()}
        merged.setdefault("server", {}).update({"rest_host": "127.0.0.1", "rest_port": free_port()})
        async with contextlib.AsyncExitStack() as stack:
            try:
                server = await stack.enter_async_context(running_server(merged, engine=engine))
            except OSError:
                if attempt == 2:
                    raise
                continue
            yield RestServer(server)
            return


def form(audio: bytes | None, *, filename: str = "speech.wav", content_type: str = "audio/wav",
         **fields: str | list[str]) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    if audio is not None:
        data.add_field("file", audio, filename=filename, content_type=content_type)
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            data.add_field(name, item)
    return data


async def post_transcription(base_url: str, data: Any, *, headers: dict[str, str] | None = None,
                             ) -> tuple[int, dict[str, Any] | str, dict[str, str]]:
    async with aiohttp.ClientSession() as http, \
            http.post(f"{base_url}/v1/audio/transcriptions", data=data, headers=headers or {}) as reply:
        body: dict[str, Any] | str
        if reply.content_type == "application/json":
            body = await reply.json()
        else:
            body = await reply.text()
        return reply.status, body, dict(reply.headers)
