"""Catalogue errors as OpenAI-shaped HTTP errors: ``{"error": {"message", "type", "param", "code"}}``.

``code`` carries our stable ERR code, ``message`` the same text as the gRPC status message, and the
HTTP status follows the catalogue's gRPC status (one table, ``HTTP_STATUS``) with a few codes that
HTTP has a sharper word for (413, 405). A retry hint becomes a ``Retry-After`` header.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

import grpc
from aiohttp import web

from stt_server.errors import ErrorCode, SttError

_S = grpc.StatusCode
HTTP_STATUS: Final[dict[grpc.StatusCode, int]] = {
    _S.INVALID_ARGUMENT: 400,
    _S.OUT_OF_RANGE: 400,
    _S.FAILED_PRECONDITION: 409,
    _S.NOT_FOUND: 404,
    _S.RESOURCE_EXHAUSTED: 429,
    _S.UNAUTHENTICATED: 401,
    _S.PERMISSION_DENIED: 403,
    _S.CANCELLED: 499,  # nginx's "client closed request": nobody reads it, but logs and metrics do
    _S.DEADLINE_EXCEEDED: 504,
    _S.UNIMPLEMENTED: 501,
    _S.UNAVAILABLE: 503,
    _S.INTERNAL: 500,
}
HTTP_STATUS_OVERRIDES: Final[dict[ErrorCode, int]] = {
    ErrorCode.UPLOAD_TOO_LARGE: 413,
    ErrorCode.MESSAGE_TOO_LARGE: 413,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
}
# the error field each code is about, when it is always the same one
_PARAM: Final[dict[ErrorCode, str]] = {
    ErrorCode.UPLOAD_MISSING_FILE: "file",
    ErrorCode.UPLOAD_TOO_LARGE: "file",
    ErrorCode.EMPTY_STREAM: "file",
    ErrorCode.INVALID_AUDIO: "file",
    ErrorCode.UNSUPPORTED_AUDIO: "file",
    ErrorCode.STREAM_TOO_LONG: "file",
    ErrorCode.UNKNOWN_MODEL: "model",
}


def http_status(error: SttError) -> int:
    """The HTTP status for a catalogue error."""
    return HTTP_STATUS_OVERRIDES.get(error.code, HTTP_STATUS.get(error.status, 500))


def error_type(status: int) -> str:
    """OpenAI's ``type`` for an HTTP status."""
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_body(error: SttError) -> dict[str, Any]:
    """The OpenAI error object for ``error`` (pure)."""
    param = error.details.get("param") if isinstance(error.details.get("param"), str) else _PARAM.get(error.code)
    return {"error": {"message": error.message, "type": error_type(http_status(error)), "param": param,
                      "code": error.code.value}}


def error_response(error: SttError, *, close: bool = False) -> web.Response:
    """A JSON error response; ``close`` ends the connection (an upload we stopped reading)."""
    headers = {"X-Stt-Error-Code": error.code.value}
    if error.retry_after_sec is not None:
        headers["Retry-After"] = str(max(0, math.ceil(error.retry_after_sec)))
    if close:
        headers["Connection"] = "close"
    return web.Response(status=http_status(error), text=json.dumps(error_body(error)),
                        content_type="application/json", headers=headers)
