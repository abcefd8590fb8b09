"""``/health`` (detailed or minimal), ``/health/live`` and ``/health/ready``.

``/health`` answers 200 only when the gRPC server runs, the model is loaded and the worker pool is
healthy, else 503 with the reasons. The probes stay public for kubelets and say only their verdict
(plus a state word), so they leak nothing about the deployment.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from stt_server.control.auth import is_authorized, unauthorized
from stt_server.control.context import ControlContext, context_of
from stt_server.control.metrics_json import build_metrics_json
from stt_server.control.view import HealthReport


def _status_word(report: HealthReport) -> str:
    return "healthy" if report.healthy else "unhealthy"


def detailed_health(ctx: ControlContext, report: HealthReport) -> dict[str, Any]:
    """The full ``/health`` body (seed 001's shape, with our checks and reasons)."""
    info = ctx.view.info()
    system = ctx.sampler.sample()
    metrics = build_metrics_json(ctx.metrics)
    now = time.time()
    return {
        "status": _status_word(report),
        "ready": report.ready,
        "timestamp": datetime.fromtimestamp(now, tz=UTC).isoformat().replace("+00:00", "Z"),
        "uptime_seconds": round(now - ctx.view.started_at, 3),
        "checks": {
            "grpc_running": report.grpc_running,
            "model_loaded": report.model_loaded,
            "workers_healthy": report.workers_healthy,
            "loading": report.loading,
            "draining": report.draining,
        },
        "reasons": list(report.reasons),
        "model": {
            "loaded": report.model_loaded,
            "backend": "faster-whisper",
            "name": info.get("model"),
            "device": info.get("device"),
            "compute_type": info.get("compute_type"),
        },
        "system": {
            "cpu_percent": system["system"].get("cpu_percent"),
            "memory_percent": system["system"].get("memory_percent"),
            "rss_bytes": system["process"].get("rss_bytes"),
        },
        "metrics": {
            key: metrics[key]
            for key in ("active_sessions", "decode_pending", "buffer_bytes_total", "partial_drop_count",
                        "session_limit_rejects")
        },
    }


async def health(request: web.Request) -> web.Response:
    ctx = context_of(request)
    report = ctx.view.health()
    status = 200 if report.healthy else 503
    if not is_authorized(request, ctx.token):
        if not ctx.minimal_public_health:
            return unauthorized()
        # Minimal public health: the verdict only, no reasons, versions or figures.
        return web.json_response({"status": _status_word(report)}, status=status)
    return web.json_response(detailed_health(ctx, report), status=status)


async def live(request: web.Request) -> web.Response:
    # The process answers, so it is alive; a wedged loop would not answer at all.
    return web.json_response({"status": "alive"})


async def ready(request: web.Request) -> web.Response:
    report = context_of(request).view.health()
    if report.ready:
        return web.json_response({"status": "ready"})
    if report.draining:
        state = "draining"
    elif report.loading:
        state = "loading"
    else:
        state = "unhealthy"
    return web.json_response({"status": "not_ready", "state": state}, status=503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
