"""`heap.trim_every`: the operator trims its heap on a period, with glibc's real malloc_trim.
`heap.small_tls_read_buffers`: TLS connections get a 64 KiB read buffer and still read large answers."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import os
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from serving_certs import issue
from stt_operator.heap import TLS_READ_BUFFER_BYTES, malloc_trim, small_tls_read_buffers, trim_every


async def test_trim_every_calls_the_trim_on_its_period_until_cancelled() -> None:
    calls = 0
    thrice = asyncio.Event()

    def trim() -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            thrice.set()
        return 1

    task = asyncio.create_task(trim_every(0.01, trim=trim))
    await asyncio.wait_for(thrice.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stopped_at = calls
    await asyncio.sleep(0.05)
    assert calls == stopped_at


def test_glibc_malloc_trim_is_found_and_answers() -> None:
    trim = malloc_trim()
    if trim is None:
        pytest.skip("this C library has no malloc_trim (not glibc)")
    assert trim() in (0, 1)  # 1: memory was released, 0: there was none to release


async def test_tls_connections_get_the_small_read_buffer_and_read_large_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asyncio.sslproto.SSLProtocol, "max_size", asyncio.sslproto.SSLProtocol.max_size)  # restored after
    small_tls_read_buffers()
    cert = issue(dns_names=["localhost"], ips=["127.0.0.1"])
    (tmp_path / "tls.crt").write_text(cert.cert_pem)
    (tmp_path / "tls.key").write_text(cert.key_pem)
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    body = os.urandom(1024 * 1024)  # an answer 16 times the buffer

    async def large(_: web.Request) -> web.Response:
        return web.Response(body=body)

    app = web.Application()
    app.router.add_get("/large", large)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=serving).start()
        url = f"https://127.0.0.1:{runner.addresses[0][1]}/large"
        async with aiohttp.ClientSession() as session, \
                session.get(url, ssl=ssl.create_default_context(cadata=cert.ca_pem)) as resp:
            protocol = resp.connection.transport._ssl_protocol  # type: ignore[union-attr]
            assert len(protocol._ssl_buffer) == TLS_READ_BUFFER_BYTES < 256 * 1024
            assert await resp.read() == body
    finally:
        await runner.cleanup()
