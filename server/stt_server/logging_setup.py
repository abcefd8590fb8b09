"""Structured logs: one JSON object per line (or console text), tagged with the call's ids.

``session_id`` and ``request_id`` live in context variables, set once per gRPC call with
``log_context``; every record logged inside that call carries them without passing them around.
API keys and audio are never put into a log record by the server, and the formatter only emits the
fields listed here plus ``extra=`` fields the code chose.

Libraries log client data we do not control (aiohttp quotes a malformed request, gRPC core prints a
peer's GOAWAY debug text straight to file descriptor 2). Records from ``aiohttp`` and ``grpc``
loggers are escaped, truncated and stripped of tracebacks; ``route_native_stderr`` turns what native
code writes to fd 2 into records of logger ``grpc.core``, so stderr stays one JSON object per line.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.handlers
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final, TextIO

from stt_server.echo import clip_echo

_SESSION_ID: Final = contextvars.ContextVar[str | None]("stt_session_id", default=None)
_REQUEST_ID: Final = contextvars.ContextVar[str | None]("stt_request_id", default=None)
# Attributes every LogRecord has; anything else was passed with ``extra=`` and is emitted as a field.
_STANDARD_ATTRS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# loggers of libraries that may quote client bytes; their records are escaped and truncated
FOREIGN_LOGGERS: Final = ("aiohttp", "grpc")
FOREIGN_MAX_CHARS: Final = 300
_CREDENTIAL: Final = re.compile(
    r"(?i)((?:bearer|basic|token|api[-_]?key|authorization)[\s:=\"']+)[^\s\"',;]+")
_NATIVE_LEVELS: Final = {"D": logging.DEBUG, "I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR,
                         "F": logging.CRITICAL}


@contextlib.contextmanager
def log_context(*, session_id: str | None = None, request_id: str | None = None) -> Iterator[None]:
    """Tag every record logged inside the block (and tasks started from it) with these ids."""
    tokens = []
    if session_id is not None:
        tokens.append((_SESSION_ID, _SESSION_ID.set(session_id)))
    if request_id:
        tokens.append((_REQUEST_ID, _REQUEST_ID.set(request_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def set_log_ids(*, session_id: str | None = None, request_id: str | None = None) -> None:
    """Set the ids for the rest of the current task (a gRPC call runs in its own task)."""
    if session_id is not None:
        _SESSION_ID.set(session_id)
    if request_id:
        _REQUEST_ID.set(request_id)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "session_id"):
            record.session_id = _SESSION_ID.get()
        if not hasattr(record, "request_id"):
            record.request_id = _REQUEST_ID.get()
        return True


def redact_credentials(text: str) -> str:
    """``text`` with anything after ``Bearer``/``Basic``/an API-key or token name replaced, prefix included."""
    return _CREDENTIAL.sub(lambda m: f"{m.group(1)}<redacted>", text)


class _ForeignFilter(logging.Filter):
    """Escape and truncate records of ``FOREIGN_LOGGERS``; keep only the exception's type, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(FOREIGN_LOGGERS) or getattr(record, "_stt_clipped", False):
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        message = clip_echo(redact_credentials(message), limit=FOREIGN_MAX_CHARS)
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message} ({type(record.exc_info[1]).__name__})"
        record.msg, record.args = message, None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        record._stt_clipped = True
        return True


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "session_id", "request_id", ...extra}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and value is not None and not key.startswith("_stt"):
                payload[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """Human-readable line with the ids appended when known."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [f"{key}={getattr(record, key)}" for key in ("session_id", "request_id") if getattr(record, key, None)]
        return f"{line} [{' '.join(ids)}]" if ids else line


def configure_logging(*, fmt: str = "json", level: str = "INFO", stream: TextIO | None = None,
                      file: str | None = None, file_max_bytes: int = 50 * 1024 * 1024, file_backups: int = 3) -> None:
    """Install our handlers on the root logger (replacing earlier ones from this function).

    ``stream`` (default stderr) gets ``fmt``; ``file``, when set, always gets JSON lines, rotated
    at ``file_max_bytes`` with ``file_backups`` old files kept (``stt_service.log.1``, ...).
    """
    console = logging.StreamHandler(stream if stream is not None else sys.stderr)
    console.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handlers: list[logging.Handler] = [console]
    if file:
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        rotating = logging.handlers.RotatingFileHandler(
            file, maxBytes=file_max_bytes, backupCount=file_backups, encoding="utf-8")
        rotating.setFormatter(JsonFormatter())
        handlers.append(rotating)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "stt-server"]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.addFilter(_ForeignFilter())
        handler.addFilter(_ContextFilter())
        handler.set_name("stt-server")
        root.addHandler(handler)
    root.setLevel(level)
    # grpc/aiohttp access chatter is not ours to keep at INFO
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.captureWarnings(True)  # numpy/runtime warnings as records, not bare stderr lines


def route_native_stderr(*, logger_name: str = "grpc.core") -> None:
    """Make native writes to fd 2 (gRPC core, C libraries) log records; call before ``configure_logging``.

    fd 2 becomes a pipe read by a daemon thread that logs each line (escaped, truncated, with the level
    of gRPC core's ``I``/``W``/``E`` prefix) on ``logger_name``; ``sys.stderr`` keeps the real stderr,
    so our own handler writes there directly (``stt_server.grpc_env`` keeps gRPC core at ERROR).
    """
    sys.stderr.flush()
    real = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    sys.stderr = open(real, "w", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    log = logging.getLogger(logger_name)

    def pump() -> None:
        with open(read_fd, "rb") as pipe:
            for raw in pipe:
                line = raw.decode("utf-8", "backslashreplace").rstrip("\n")
                if not line.strip():
                    continue
                level = _NATIVE_LEVELS.get(line[:1], logging.WARNING) if line[1:2].isdigit() else logging.WARNING
                log.log(level, clip_echo(line, limit=FOREIGN_MAX_CHARS), extra={"_stt_clipped": True})

    threading.Thread(target=pump, name="stt-native-stderr", daemon=True).start()
