"""``/metrics`` (Prometheus text) and ``/metrics.json`` (seed 000's JSON), both token-protected."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stt_server.control.auth import is_authorized, unauthorized
from stt_server.control.context import context_of
from stt_server.control.metrics_json import build_metrics_json


async def metrics_text(request: web.Request) -> web.Response:
    ctx = context_of(request)
    if not is_authorized(request, ctx.token):
        return unauthorized()
    body = generate_latest(ctx.metrics.registry)
    # CONTENT_TYPE_LATEST carries its own charset parameter, which aiohttp wants in the header itself.
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def metrics_json(request: web.Request) -> web.Response:
    ctx = context_of(request)
    if not is_authorized(request, ctx.token):
        return unauthorized()
    now = time.time()
    return web.json_response({
        "timestamp": now,
        "uptime_seconds": round(now - ctx.view.started_at, 3),
        "metrics": build_metrics_json(ctx.metrics, extra=ctx.view.metrics_json_extra()),
    })


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics_text)
    app.router.add_get("/metrics.json", metrics_json)
