"""The error catalogue: complete, consistent with its documentation, and on the wire as promised."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry
from stt_server.errors import CATALOGUE, ERROR_CODE_KEY, RETRY_AFTER_KEY, ErrorCode, SttError
from stt_server.metrics import ServerMetrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def test_every_code_has_one_entry_and_unique_value() -> None:
    assert set(CATALOGUE) == set(ErrorCode)
    values = [code.value for code in ErrorCode]
    assert len(values) == len(set(values))
    assert all(re.fullmatch(r"ERR\d{4}", value) for value in values)


def test_max_sessions_is_the_seed_code() -> None:
    error = SttError(ErrorCode.MAX_SESSIONS, limit=32)
    assert error.code.value == "ERR1011"
    assert error.status is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.message == "ERR1011: max sessions reached (32)"
    assert dict(error.trailing_metadata()) == {ERROR_CODE_KEY: "ERR1011", RETRY_AFTER_KEY: "5"}


def test_no_retry_hint_where_retrying_cannot_help() -> None:
    error = SttError(ErrorCode.ODD_BYTE_COUNT, index=2, nbytes=3)
    assert dict(error.trailing_metadata()) == {ERROR_CODE_KEY: "ERR1003"}
    assert "3 bytes" in error.message


def test_retry_hint_can_be_overridden() -> None:
    error = SttError(ErrorCode.API_KEY_RATE_LIMIT, limit=10).with_retry_after(2.5)
    assert dict(error.trailing_metadata())[RETRY_AFTER_KEY] == "2.5"


def test_missing_detail_keeps_message_readable() -> None:
    assert SttError(ErrorCode.INTERNAL).message == "ERR1099: internal error: <reason>"


@pytest.mark.parametrize("code", list(ErrorCode))
def test_documentation_lists_every_code(code: ErrorCode) -> None:
    text = DOC.read_text()
    entry = CATALOGUE[code]
    row = next((line for line in text.splitlines() if line.startswith(f"| `{code.value}`")), None)
    assert row is not None, f"{code.value} missing from docs/errors.md"
    assert f"`{entry.status.name}`" in row


def test_record_counts_code_and_status() -> None:
    from stt_server.errors import record

    metrics = ServerMetrics(CollectorRegistry())
    record(SttError(ErrorCode.MAX_SESSIONS, limit=1), metrics)
    value = metrics.registry.get_sample_value(
        "stt_errors_total", {"code": "ERR1011", "grpc_status": "RESOURCE_EXHAUSTED"}
    )
    assert value == 1.0
