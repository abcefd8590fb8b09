"""``/info`` (version, model, device, limits, uptime) and ``/system`` (psutil / GPU figures)."""

from __future__ import annotations

import time

from aiohttp import web

from stt_server.control.auth import is_authorized, unauthorized
from stt_server.control.context import context_of


async def info(request: web.Request) -> web.Response:
    ctx = context_of(request)
    if not is_authorized(request, ctx.token):
        return unauthorized()
    body = dict(ctx.view.info())
    # Uptime is the control plane's to compute, so it is right even if the view forgot it.
    body["uptime_sec"] = round(time.time() - ctx.view.started_at, 3)
    return web.json_response(body)


async def system(request: web.Request) -> web.Response:
    ctx = context_of(request)
    if not is_authorized(request, ctx.token):
        return unauthorized()
    return web.json_response(ctx.sampler.sample())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/info", info)
    app.router.add_get("/system", system)
