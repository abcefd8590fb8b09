"""Issue 13: what the HTTP parser rejects is answered in JSON, quotes nothing, and slow heads time out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import pytest
from control_harness import FakeView, loopback_config
from stt_server.control import ControlPlane
from stt_server.metrics import ServerMetrics

TOKEN = "s3cr3t-bearer-token-value"


@pytest.fixture
async def plane() -> AsyncIterator[ControlPlane]:
    control = ControlPlane(config=loopback_config(auth={"control_token": "right-token"}), metrics=ServerMetrics(),
                           view=FakeView(), header_timeout_sec=1.0)
    await control.start()
    try:
        yield control
    finally:
        await control.stop()


async def exchange(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes (or ``timeout``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):  # the server may have reset it already
            await writer.wait_closed()


def split(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in headers.items()}, body


MALFORMED = {
    "long-authorization": b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                          + b"A" * 12000 + b"\r\n\r\n",
    "too-many-headers": b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
                        + b"\r\n",
    "unknown-method": b"BR\x1bEW /health HTTP/1.1\r\nHost: x\r\n\r\n",
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "tls-on-plain-port": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
}


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
async def test_parser_errors_are_json_and_quote_nothing(
    plane: ControlPlane, request_bytes: bytes, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        status, headers, body = split(await exchange(plane.port, request_bytes))
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    answer = json.loads(body)
    assert answer["code"] == "ERR1027" and answer["error"] == "bad_request"
    assert TOKEN[:6].encode() not in body and b"AAAA" not in body
    records = [r for r in caplog.records if r.name.startswith(("aiohttp", "stt_server.control"))]
    assert [r.levelno for r in records if r.levelno >= logging.WARNING] == [logging.WARNING]
    assert all(r.exc_info is None for r in records)
    assert not any(TOKEN[:6] in r.getMessage() or "AAAA" in r.getMessage() for r in caplog.records)


async def test_slow_request_head_gets_408_and_is_closed(plane: ControlPlane) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", plane.port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")

        async def drip() -> None:  # slowloris: one header byte at a time, never the blank line
            while True:
                writer.write(b"X")
                await asyncio.sleep(0.1)

        dripping = asyncio.create_task(drip())
        try:
            reply = await asyncio.wait_for(reader.read(), timeout=10)
        finally:
            dripping.cancel()
    finally:
        writer.close()
    status, headers, body = split(reply)
    assert status == 408 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["code"] == "ERR1028"


async def test_connection_that_sends_nothing_is_closed(plane: ControlPlane) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", plane.port)
    try:
        reply = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    assert split(reply)[0] == 408


async def test_idle_keepalive_connection_survives_the_header_timeout(plane: ControlPlane) -> None:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        async with session.get(f"http://127.0.0.1:{plane.port}/health/live") as first:
            assert first.status == 200
        await asyncio.sleep(1.5)  # idle between requests, past header_timeout_sec (1 s)
        async with session.get(f"http://127.0.0.1:{plane.port}/health/live") as second:
            assert second.status == 200
