"""CreateSession refusals are logged (one structured line with the code) and counted by code;
the TLS certificate's expiry is exported while TLS is on."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from grpc_harness import running_server
from stt_server.client import SttClientError, streaming_config
from stt_server.logging_setup import JsonFormatter
from stt_server.metrics_process import certificate_not_after
from stt_server.tools.self_signed_cert import write_self_signed

REFUSALS = "stt_create_session_refusals_total"


def _refusal_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(JsonFormatter().format(record)) for record in caplog.records
            if record.getMessage() == "CreateSession refused"]


async def _refused(client: object, code: str) -> None:
    with pytest.raises(SttClientError) as caught:
        await client.create_session(streaming_config())  # type: ignore[attr-defined]
    assert caught.value.error_code == code


async def test_refusals_are_logged_and_counted_by_code(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    overrides = {"limits": {"max_sessions": 1}, "auth": {"api_keys": ["k1"]}}
    async with running_server(overrides) as server, server.client("k1") as client:
        await client.create_session(streaming_config())
        await _refused(client, "ERR1011")
        await _refused(client, "ERR1011")
        server.app.state.mark_draining()
        await _refused(client, "ERR1020")
        async with server.client("wrong") as stranger:
            await _refused(stranger, "ERR1019")
        assert server.gauge(REFUSALS, {"code": "ERR1011"}) == 2
        assert server.gauge(REFUSALS, {"code": "ERR1020"}) == 1
        assert server.gauge(REFUSALS, {"code": "ERR1019"}) == 1
        assert server.gauge(REFUSALS, {"code": "ERR1021"}) == 0
    lines = _refusal_lines(caplog)
    assert [line["code"] for line in lines] == ["ERR1011", "ERR1011", "ERR1020", "ERR1019"]
    first = lines[0]
    assert first["level"] == "WARNING" and first["grpc_status"] == "RESOURCE_EXHAUSTED"
    assert "max sessions reached (1)" in str(first["reason"])
    assert "k1" not in json.dumps(lines)  # never the API key


async def test_not_ready_refusal_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    async with running_server() as server, server.client() as client:
        server.app.state.mark_failed("weights missing")
        await _refused(client, "ERR1021")
        assert server.gauge(REFUSALS, {"code": "ERR1021"}) == 1
    assert [line["code"] for line in _refusal_lines(caplog)] == ["ERR1021"]


async def test_cert_expiry_gauge_with_tls_and_none_without(tmp_path: Path) -> None:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    write_self_signed(cert, key, days=10)
    async with running_server({"server": {"tls": {"cert_file": str(cert), "key_file": str(key)}}}) as server:
        assert server.gauge("stt_tls_cert_expiry_timestamp_seconds") == certificate_not_after(cert)
    async with running_server() as server:
        assert server.gauge("stt_tls_cert_expiry_timestamp_seconds") is None
