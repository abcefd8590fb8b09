"""What every route handler reads: config, metrics, the server view, the token, the sampler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiohttp import web

from stt_server.config import ServerConfig
from stt_server.control.system_info import SystemSampler
from stt_server.control.view import ServerView
from stt_server.metrics import ServerMetrics


@dataclass(frozen=True)
class ControlContext:
    config: ServerConfig
    metrics: ServerMetrics
    view: ServerView
    token: str | None  # None: no protection configured
    sampler: SystemSampler

    @property
    def minimal_public_health(self) -> bool:
        return self.config.auth.public_health == "minimal"


CONTEXT_KEY: Final = web.AppKey("stt_control_context", ControlContext)


def context_of(request: web.Request) -> ControlContext:
    return request.app[CONTEXT_KEY]
