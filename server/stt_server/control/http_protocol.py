"""aiohttp's connection handler with JSON parser errors and a header-read timeout.

Requests that never reach a route (a header line over 8 KiB, too many headers, an unknown method,
an HTTP/2 preface, TLS on the plain port) are answered by aiohttp's ``RequestHandler.handle_error``:
plain text that quotes the offending bytes (an ``Authorization`` header included) and an ERROR
traceback per request. Here they get the control plane's JSON error shape with ERR1027, a fixed
description that quotes nothing the client sent, and one WARNING line. A connection that does not
finish its request headers within ``header_timeout_sec`` (slowloris) gets 408 with ERR1028 and is
closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Final, cast

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, BadStatusLine, InvalidHeader, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from stt_server.errors import ErrorCode

log = logging.getLogger(__name__)

DEFAULT_HEADER_TIMEOUT_SEC: Final = 10.0
# keep-alive connections idle longer than this are closed (aiohttp's default is an hour)
KEEPALIVE_TIMEOUT_SEC: Final = 75.0


def parser_error_reason(exc: BaseException | None) -> str:
    """What was wrong, in words of our own: the exception text would quote the client's bytes."""
    if isinstance(exc, LineTooLong):
        return "the request line or a header line is too long"
    if isinstance(exc, BadHttpMethod):
        return "unknown or invalid HTTP method (HTTP/2 and TLS are not served on this port)"
    if isinstance(exc, BadStatusLine):
        return "invalid request line"
    if isinstance(exc, InvalidHeader):
        return "invalid header"
    if exc is not None and "too many headers" in str(exc).lower():
        return "too many headers"
    return "the request could not be parsed"


def error_body(*, code: ErrorCode, error: str, message: str) -> bytes:
    return json.dumps({"error": error, "code": code.value, "message": message}).encode()


class JsonErrorRequestHandler(RequestHandler):
    """One connection: parser errors as JSON, and a deadline for each request's headers."""

    header_timeout_sec: float = DEFAULT_HEADER_TIMEOUT_SEC

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._messages or self._current_request is not None:
            self._disarm_header_timer()  # a whole request head arrived
        else:
            self._arm_header_timer()  # part of a head: the clock runs from its first byte

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = asyncio.get_running_loop().call_later(self.header_timeout_sec, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._messages or self._current_request is not None or self.transport is None:
            return
        limit = f"{self.header_timeout_sec:g}"
        log.warning("HTTP request headers not received in time; closing the connection",
                    extra={"code": ErrorCode.HTTP_HEADER_TIMEOUT.value, "limit_sec": self.header_timeout_sec})
        body = error_body(code=ErrorCode.HTTP_HEADER_TIMEOUT, error="request_timeout",
                          message=f"{ErrorCode.HTTP_HEADER_TIMEOUT.value}: request headers not received "
                                  f"within {limit} s")
        head = (f"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        self.transport.write(head + body)
        self.force_close()

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A JSON answer that quotes nothing the client sent, and one WARNING line (no traceback)."""
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        if status >= 500:
            log.warning("control plane request failed before routing", extra={"status": status,
                                                                              "exc_type": type(exc).__name__})
            body = {"error": "internal_error", "message": "the request failed; see the server log"}
        else:
            reason = parser_error_reason(exc)
            log.warning("malformed HTTP request: %s", reason,
                        extra={"code": ErrorCode.HTTP_BAD_REQUEST.value, "status": status})
            body = {"error": "bad_request", "code": ErrorCode.HTTP_BAD_REQUEST.value,
                    "message": f"{ErrorCode.HTTP_BAD_REQUEST.value}: malformed HTTP request: {reason}"}
        response = web.json_response(body, status=status)
        response.force_close()
        return response


class JsonErrorServer(web.Server):
    """``web.Server`` whose connections use ``JsonErrorRequestHandler``."""

    header_timeout_sec: float = DEFAULT_HEADER_TIMEOUT_SEC

    def __call__(self) -> RequestHandler:
        handler = JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)
        handler.header_timeout_sec = self.header_timeout_sec
        return handler


class JsonErrorAppRunner(web.AppRunner):
    """``web.AppRunner`` serving through ``JsonErrorServer``."""

    def __init__(self, app: web.Application, *, header_timeout_sec: float = DEFAULT_HEADER_TIMEOUT_SEC,
                 **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", KEEPALIVE_TIMEOUT_SEC)
        super().__init__(app, **kwargs)
        self._header_timeout_sec = header_timeout_sec

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds the Server itself (Application._make_handler); only the class of the
        # connection handler it creates needs to change, so the instance is re-classed in place
        server.__class__ = JsonErrorServer
        cast(JsonErrorServer, server).header_timeout_sec = self._header_timeout_sec
        return server
