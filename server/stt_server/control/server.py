"""``ControlPlane``: the aiohttp app on ``server.http_host:http_port``, in the gRPC server's loop.

Port 0 picks a free port (read it back from ``port``). When ``server.tls`` names a cert and key the
control plane serves HTTPS with them, like the gRPC port. Every error answer is JSON, including
unknown paths (404) and wrong methods (405), so tools and people get the same shape everywhere;
requests the HTTP parser rejects and slow request heads are answered in JSON too (``http_protocol``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from stt_server.config import ServerConfig
from stt_server.control import routes_health, routes_info, routes_metrics
from stt_server.control.auth import load_control_token
from stt_server.control.context import CONTEXT_KEY, ControlContext
from stt_server.control.http_protocol import DEFAULT_HEADER_TIMEOUT_SEC, JsonErrorAppRunner
from stt_server.control.system_info import SystemSampler
from stt_server.control.view import ServerView
from stt_server.metrics import ServerMetrics
from stt_server.metrics_gpu import register_gpu_metrics

log = logging.getLogger(__name__)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Turn aiohttp's plain-text HTTP errors (and our own failures) into JSON bodies."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response(
            {"error": exc.reason.lower().replace(" ", "_"), "message": f"{exc.reason}: {request.method} {request.path}"},
            status=exc.status,
            headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
        )
    except asyncio.CancelledError:
        raise
    except Exception:
        # A failing view must not take the control plane down; the details go to the log only.
        log.exception("control plane request failed", extra={"path": request.path})
        return web.json_response(
            {"error": "internal_error", "message": f"{request.path} failed; see the server log"}, status=500)


@web.middleware
async def http_metrics(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Seed 004's http_* metrics for every control-plane request (endpoint = route, never raw path)."""
    metrics = request.app[CONTEXT_KEY].metrics
    resource = request.match_info.route.resource
    endpoint = resource.canonical if resource is not None else "unmatched"
    started = time.perf_counter()
    metrics.http_in_progress.inc()
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)  # json_errors (inside) turns failures into responses
        return response
    finally:
        metrics.http_in_progress.dec()
        # No response: the client went away (json_errors turns every failure into one), nginx's 499.
        status = str(response.status) if response is not None else "499"
        metrics.http_requests.labels(endpoint=endpoint, method=request.method, status=status).inc()
        metrics.http_request_seconds.labels(endpoint=endpoint, method=request.method).observe(
            time.perf_counter() - started)
        metrics.http_request_size.labels(endpoint=endpoint).observe(request.content_length or 0)
        if response is not None:
            metrics.http_response_size.labels(endpoint=endpoint).observe(response.content_length or 0)


def build_ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    """A server TLS context from ``server.tls``, or ``None`` when TLS is off."""
    tls = config.server.tls
    if tls.cert_file is None or tls.key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=str(tls.cert_file), keyfile=str(tls.key_file))
    return context


def build_app(ctx: ControlContext) -> web.Application:
    """The aiohttp application with every route; separate from binding so tests can use it alone."""
    app = web.Application(middlewares=[http_metrics, json_errors])
    app[CONTEXT_KEY] = ctx
    routes_metrics.add_routes(app)
    routes_health.add_routes(app)
    routes_info.add_routes(app)
    return app


class ControlPlane:
    """Starts and stops the HTTP control plane next to the gRPC server."""

    def __init__(self, *, config: ServerConfig, metrics: ServerMetrics, view: ServerView,
                 header_timeout_sec: float = DEFAULT_HEADER_TIMEOUT_SEC) -> None:
        self._config = config
        self._header_timeout_sec = header_timeout_sec
        self._ctx = ControlContext(
            config=config,
            metrics=metrics,
            view=view,
            token=load_control_token(config),
            sampler=SystemSampler(enable_gpu=config.metrics.enable_gpu_metrics),
        )
        # metrics.enable_gpu_metrics (STT_ENABLE_GPU_METRICS) also puts the VRAM gauges on /metrics
        register_gpu_metrics(metrics.registry, enabled=config.metrics.enable_gpu_metrics)
        self._runner: web.AppRunner | None = None
        self.port: int = 0
        self.tls: bool = False

    async def start(self) -> None:
        """Bind and serve; raises ``OSError`` when the address is taken."""
        ssl_context = build_ssl_context(self._config)
        runner = JsonErrorAppRunner(build_app(self._ctx), access_log=None, header_timeout_sec=self._header_timeout_sec)
        await runner.setup()
        host, port = self._config.server.http_host, self._config.server.http_port
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.tls = ssl_context is not None
        if self._ctx.token is None:
            log.warning("control plane has no control token: /metrics, /system and /info are public")
        log.info("control plane listening", extra={"host": host, "port": self.port, "tls": self.tls})

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
