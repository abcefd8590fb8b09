"""The security smoke check passes a protected control plane and finds planted holes."""

from __future__ import annotations

import asyncio

import pytest
from stt_server.tools import security_smoke_check
from tools_harness import TOKEN, StartPlane


async def test_protected_plane_passes(start_plane: StartPlane, capsys: pytest.CaptureFixture[str]) -> None:
    plane = await start_plane(auth={"control_token": TOKEN})
    code = await asyncio.to_thread(security_smoke_check.main, [plane.url, "--token", TOKEN])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "no holes found" in out and out.count("ok  ") == 10


async def test_minimal_public_health_passes(start_plane: StartPlane) -> None:
    plane = await start_plane(auth={"control_token": TOKEN, "public_health": "minimal"})
    findings = await security_smoke_check.run_checks(plane.url)
    assert all(f.ok for f in findings)
    assert [f.detail for f in findings if f.path == "/health"] == ["minimal public health only (HTTP 200)"]


async def test_plane_without_token_is_a_hole(start_plane: StartPlane, capsys: pytest.CaptureFixture[str]) -> None:
    plane = await start_plane()
    code = await asyncio.to_thread(security_smoke_check.main, [plane.url])
    out = capsys.readouterr().out
    assert code == 1
    assert out.count("FAIL") == 5 and "5 hole(s) found" in out


async def test_leaky_health_is_a_hole(leaky_app: str) -> None:
    findings = await security_smoke_check.run_checks(leaky_app)
    health = [f for f in findings if f.path == "/health"]
    assert health[0].ok is False and "detailed health" in health[0].detail


async def test_wrong_token_is_reported(start_plane: StartPlane) -> None:
    plane = await start_plane(auth={"control_token": TOKEN})
    code = await asyncio.to_thread(security_smoke_check.main, [plane.url, "--token", "wrong"])
    assert code == 1


def test_unreachable_server_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    assert security_smoke_check.main(["http://127.0.0.1:1"]) == 2
    assert "cannot reach" in capsys.readouterr().err


async def test_tls_plane_passes_with_insecure(start_plane: StartPlane, tmp_path) -> None:
    from stt_server.tools.self_signed_cert import write_self_signed

    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    write_self_signed(cert, key, days=1)
    plane = await start_plane(auth={"control_token": TOKEN},
                              server={"tls": {"cert_file": str(cert), "key_file": str(key)}})
    assert plane.url.startswith("https://")
    assert await asyncio.to_thread(security_smoke_check.main, [plane.url, "--insecure", "--token", TOKEN]) == 0
    # Without --insecure the self-signed certificate is (rightly) not trusted: unreachable, exit 2.
    assert await asyncio.to_thread(security_smoke_check.main, [plane.url]) == 2
