"""Probes: thresholds, named ports, and each handler against a real local server."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stt_localfleet.probes import Probe, ProbeVerdict, check, container_probes, resolve_port

CONTAINER = {"name": "server", "ports": [{"name": "http", "containerPort": 0}]}


def verdict(kind: str, **thresholds: int) -> ProbeVerdict:
    return ProbeVerdict(Probe(kind=kind, success_threshold=thresholds.get("success", 1),
                              failure_threshold=thresholds.get("failure", 3)))


def test_readiness_flips_after_its_thresholds() -> None:
    ready = verdict("readiness", success=2, failure=2)
    assert not ready.ok
    assert [ready.record(r) for r in (True, False, True, True)] == [False, False, False, True] and ready.ok
    assert [ready.record(r) for r in (False, True, False, False)] == [False, False, False, True] and not ready.ok


def test_liveness_fails_out_after_failure_threshold() -> None:
    live = verdict("liveness", failure=3)
    assert live.ok
    live.record(False)
    live.record(False)
    assert not live.failed_out
    assert live.record(False) and live.failed_out


def test_startup_succeeds_on_the_first_success() -> None:
    startup = verdict("startup", failure=30)
    assert not startup.ok and startup.record(True) and startup.ok


def test_probe_parsing_and_named_ports() -> None:
    probes = container_probes({"readinessProbe": {"httpGet": {"path": "/r", "port": "http"}, "periodSeconds": 5,
                                                  "failureThreshold": 2, "initialDelaySeconds": 1}})
    assert list(probes) == ["readiness"]
    probe = probes["readiness"]
    assert (probe.period, probe.failure_threshold, probe.initial_delay, probe.timeout) == (5.0, 2, 1.0, 1.0)
    assert resolve_port("http", {"ports": [{"name": "http", "containerPort": 8000}]}) == 8000
    assert resolve_port("8080", {}) == 8080
    with pytest.raises(ValueError, match="not a named port"):
        resolve_port("grpc", {"name": "c", "ports": []})


def _self_signed(directory: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe-test")])
    now = datetime.datetime.now(tz=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    return context


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[int, int, aiohttp.ClientSession]]:
    """(http port, https port, a probe session): /ok 200, /moved 302 elsewhere, /bad 500, /slow 2 s."""
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("User-Agent", ""))

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response()

    async def moved(_: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://192.0.2.1/"})

    async def bad(_: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.add_routes([web.get("/ok", ok), web.get("/slow", slow), web.get("/moved", moved), web.get("/bad", bad)])
    runner = web.AppRunner(app)
    await runner.setup()
    plain = web.TCPSite(runner, "127.0.0.1", 0)
    secure = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_self_signed(tmp_path))
    await plain.start()
    await secure.start()
    ports = [site._server.sockets[0].getsockname()[1] for site in (plain, secure)]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as http:
        try:
            yield ports[0], ports[1], http
        finally:
            await runner.cleanup()


async def _no_exec(command: Sequence[str], timeout: float) -> tuple[int, str]:
    raise AssertionError("no exec expected")


async def test_http_probes(server: tuple[int, int, aiohttp.ClientSession]) -> None:
    port, tls_port, http = server

    async def probe(path: str, *, scheme: str = "HTTP", at: int = port, timeout: float = 1.0) -> tuple[bool, str]:
        return await check({"httpGet": {"path": path, "port": at, "scheme": scheme}}, pod_ip="127.0.0.1",
                           container=CONTAINER, timeout=timeout, http=http, run_exec=_no_exec)

    assert await probe("/ok") == (True, "")
    assert await probe("/moved") == (True, "")  # 3xx succeeds; the redirect is not followed
    assert await probe("/bad") == (False, "HTTP probe failed with statuscode: 500")
    assert await probe("/slow", timeout=0.2) == (False, "timeout after 0.2s")
    assert await probe("/ok", scheme="HTTPS", at=tls_port) == (True, "")  # self-signed: not verified
    ok, why = await probe("/ok", at=1)
    assert not ok and why


async def test_tcp_and_exec_probes(server: tuple[int, int, aiohttp.ClientSession]) -> None:
    port, _, http = server
    assert await check({"tcpSocket": {"port": port}}, pod_ip="127.0.0.1", container=CONTAINER, timeout=1,
                       http=http, run_exec=_no_exec) == (True, "")
    assert not (await check({"tcpSocket": {"port": 1}}, pod_ip="127.0.0.1", container=CONTAINER, timeout=1,
                            http=http, run_exec=_no_exec))[0]
    ran: list[tuple[list[str], float]] = []

    async def run_exec(command: Sequence[str], timeout: float) -> tuple[int, str]:
        ran.append((list(command), timeout))
        return (0, "") if command[0] == "true" else (3, "not yet\n")

    assert await check({"exec": {"command": ["true"]}}, pod_ip="x", container=CONTAINER, timeout=2, http=http,
                       run_exec=run_exec) == (True, "")
    assert await check({"exec": {"command": ["check"]}}, pod_ip="x", container=CONTAINER, timeout=2, http=http,
                       run_exec=run_exec) == (False, "command exited with 3: not yet")
    assert ran == [(["true"], 2), (["check"], 2)]
