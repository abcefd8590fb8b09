"""Structured logs: JSON and console lines carry the call's ids; the optional file is JSON and rotates."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from stt_server.logging_setup import configure_logging, log_context

log = logging.getLogger("stt_server.test")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h.get_name() == "stt-server"]:
        root.removeHandler(handler)
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_session_and_request_ids_only_inside_the_call() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", level="INFO", stream=out)
    with log_context(session_id="sess-1", request_id="req-9"):
        log.info("stream opened", extra={"sample_rate_hz": 16000})
    log.info("outside")
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    assert inside["msg"] == "stream opened" and inside["level"] == "INFO" and inside["logger"] == "stt_server.test"
    assert (inside["session_id"], inside["request_id"], inside["sample_rate_hz"]) == ("sess-1", "req-9", 16000)
    assert "session_id" not in outside and "request_id" not in outside


def test_console_lines_append_the_ids() -> None:
    out = io.StringIO()
    configure_logging(fmt="console", level="INFO", stream=out)
    with log_context(session_id="sess-2"):
        log.warning("slow decode")
    assert out.getvalue().rstrip().endswith("slow decode [session_id=sess-2]")


def test_log_file_is_json_and_rotates_while_console_stays_readable(tmp_path: Path) -> None:
    out, path = io.StringIO(), tmp_path / "logs" / "stt_service.log"
    configure_logging(fmt="console", level="INFO", stream=out, file=str(path), file_max_bytes=1024, file_backups=2)
    configure_logging(fmt="console", level="INFO", stream=out, file=str(path), file_max_bytes=1024, file_backups=2)
    for i in range(60):
        log.info("line %d", i)
    console = out.getvalue().splitlines()
    assert len(console) == 60 and not console[0].startswith("{")  # reconfiguring did not double handlers
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["stt_service.log", "stt_service.log.1", "stt_service.log.2"]
    last = [json.loads(line) for line in path.read_text().splitlines()]
    assert last[-1]["msg"] == "line 59" and all(path.stat().st_size <= 1024 for path in path.parent.iterdir())
