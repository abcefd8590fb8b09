"""Bearer-token protection for the control plane's sensitive endpoints."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Final

from aiohttp import web

from stt_server.config import ServerConfig

WWW_AUTHENTICATE: Final = 'Bearer realm="stt-server control plane"'


def load_control_token(config: ServerConfig) -> str | None:
    """The configured token: ``auth.control_token`` or the first line of ``auth.control_token_file``.

    A configured but unreadable or empty token file is an error rather than "no token", because
    silently serving unprotected metrics would be the worse failure.
    """
    if config.auth.control_token:
        return config.auth.control_token
    path: Path | None = config.auth.control_token_file
    if path is None:
        return None
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"auth.control_token_file: cannot read {path}: {exc.strerror}") from exc
    if not token:
        raise ValueError(f"auth.control_token_file: {path} is empty")
    return token


def bearer_token(request: web.Request) -> str | None:
    """The token from ``Authorization: Bearer <token>``, or ``None``."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def is_authorized(request: web.Request, token: str | None) -> bool:
    """True when no token is configured or the request carries the right one (constant time)."""
    if token is None:
        return True
    offered = bearer_token(request)
    return offered is not None and hmac.compare_digest(offered.encode(), token.encode())


def unauthorized() -> web.Response:
    """401 with a JSON body that says what is missing, never what the token is."""
    return web.json_response(
        {"error": "unauthorized", "message": "this endpoint requires Authorization: Bearer <control token>"},
        status=401,
        headers={"WWW-Authenticate": WWW_AUTHENTICATE},
    )
