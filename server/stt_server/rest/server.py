"""``RestApi``: the OpenAI-compatible HTTP API on ``server.rest_host:rest_port``, in the server's loop.

Routes: ``POST /v1/audio/transcriptions`` (rest/transcribe.py), ``GET /v1/models`` and
``GET /v1/models/{id}`` (the served model and its aliases). Every error, unknown paths and wrong
methods included, is OpenAI's error JSON with a catalogue code. TLS follows ``server.tls`` like
the other ports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from stt_server.config import ServerConfig
from stt_server.control.server import build_ssl_context
from stt_server.errors import ErrorCode, SttError, record
from stt_server.grpc_service.sessions import SessionRegistry
from stt_server.metrics import ServerMetrics
from stt_server.rest.errors import error_response
from stt_server.rest.forms import model_ids
from stt_server.rest.realtime import RealtimeContext, StreamingEngine, handle_or_error
from stt_server.rest.transcribe import Admission, RestContext, Transcriber, handle

log = logging.getLogger(__name__)
CONTEXT: Final = web.AppKey("stt_rest_context", RestContext)
STARTED: Final = web.AppKey("stt_rest_started", float)
REALTIME: Final = web.AppKey("stt_rest_realtime", RealtimeContext)
OWNER: Final = "stt-fleet"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def openai_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """aiohttp's own 404/405 (and anything unexpected) as OpenAI error JSON with a catalogue code."""
    ctx = request.app[CONTEXT]
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status == 405:
            allowed = exc.headers.get("Allow", "")
            error = SttError(ErrorCode.METHOD_NOT_ALLOWED, method=request.method, path=request.path, allowed=allowed)
        elif exc.status == 404:
            error = SttError(ErrorCode.UNKNOWN_ROUTE, method=request.method, path=request.path[:200])
        else:
            raise
        record(error, ctx.metrics)
        response = error_response(error)
        if exc.status == 405:
            response.headers["Allow"] = exc.headers.get("Allow", "")
        return response
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("REST request failed", extra={"path": request.path})
        error = SttError(ErrorCode.INTERNAL, reason="see the server log")
        record(error, ctx.metrics)
        return error_response(error)


def model_list(served: str, *, created: int) -> dict[str, Any]:
    """``GET /v1/models``: the served model first, then its aliases (pure)."""
    return {"object": "list",
            "data": [{"id": name, "object": "model", "created": created, "owned_by": OWNER} for name in model_ids(served)]}


async def _transcriptions(request: web.Request) -> web.StreamResponse:
    return await handle(request.app[CONTEXT], request)


async def _models(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    ctx.admission.admit(list(request.headers.items()))
    return web.json_response(model_list(ctx.served_model(), created=int(request.app[STARTED])))


async def _model(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    ctx.admission.admit(list(request.headers.items()))
    served = ctx.served_model()
    wanted = request.match_info["model"]
    if wanted not in model_ids(served):
        raise SttError(ErrorCode.UNKNOWN_MODEL, model=wanted, served=", ".join(model_ids(served)))
    return web.json_response({"id": wanted, "object": "model", "created": int(request.app[STARTED]),
                              "owned_by": OWNER})


async def _realtime(request: web.Request) -> web.StreamResponse:
    return await handle_or_error(request.app[REALTIME], request, to_response=error_response)


def _guarded(handler: _Handler) -> _Handler:
    """Admission errors of the models routes as OpenAI errors (transcriptions handle their own)."""
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SttError as exc:
            record(exc, request.app[CONTEXT].metrics)
            return error_response(exc)
    return wrapped


def build_app(ctx: RestContext, realtime: RealtimeContext | None = None) -> web.Application:
    """The aiohttp application; separate from binding so tests can use it alone."""
    # client_max_size bounds request.read()/post(); the transcription route streams its body and
    # applies server.rest_max_upload_bytes itself
    app = web.Application(middlewares=[openai_errors], client_max_size=1024 * 1024)
    app[CONTEXT] = ctx
    app[STARTED] = time.time()
    app.router.add_post("/v1/audio/transcriptions", _transcriptions)
    app.router.add_get("/v1/models", _guarded(_models))
    app.router.add_get("/v1/models/{model}", _guarded(_model))
    if realtime is not None:
        app[REALTIME] = realtime
        app.router.add_get("/v1/realtime", _realtime)
    return app


class RestApi:
    """Starts and stops the REST API next to the gRPC server."""

    def __init__(self, *, config: ServerConfig, metrics: ServerMetrics, admission: Admission,
                 engine: Transcriber, served_model: Callable[[], str],
                 sessions: SessionRegistry | None = None, streaming: StreamingEngine | None = None) -> None:
        self._config = config
        self._ctx = RestContext(config=config, metrics=metrics, admission=admission, engine=engine,
                                served_model=served_model)
        # the realtime WebSocket needs the session registry and the streaming engine
        self._realtime = (RealtimeContext(config=config, metrics=metrics, admission=admission, sessions=sessions,
                                          engine=streaming, served_model=served_model(), connections=set())
                          if sessions is not None and streaming is not None else None)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        """Bind and serve; raises ``OSError`` when the address is taken."""
        ssl_context = build_ssl_context(self._config)
        runner = web.AppRunner(build_app(self._ctx, self._realtime), access_log=None)
        await runner.setup()
        host, port = self._config.server.rest_host, self._config.server.rest_port
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("REST API listening", extra={"host": host, "port": self.port, "tls": ssl_context is not None})

    async def stop(self) -> None:
        if self._realtime is not None:  # open WebSockets would hold the runner's shutdown
            for ws in list(self._realtime.connections):
                await ws.close(code=1001, message=b"server shutting down")
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
