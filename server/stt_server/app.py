"""``SttServerApp``: one asyncio loop hosting the gRPC server, the control plane and the engine.

Lifecycle: ``start`` binds gRPC (health says NOT_SERVING while the model loads) and the control
plane, loads the engine, then marks ready. ``drain`` (SIGTERM/SIGINT) refuses new sessions and
streams (ERR1020), reports not-ready, lets open streams run to their natural end for most of
``server.drain_grace_sec``, then ends their input so each still gets its final, and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any, Final

import grpc

from stt_server import __version__
from stt_server.capture.storage import AudioCapture
from stt_server.config import ServerConfig
from stt_server.control.view import HealthReport
from stt_server.grpc_service.auth import ApiKeyAuthenticator
from stt_server.grpc_service.server import HealthStatus, build_server
from stt_server.grpc_service.servicer import EngineLike, SpeechToTextServicer
from stt_server.grpc_service.state import ServingState
from stt_server.memory_trim import MemoryTrimmer
from stt_server.metrics import ServerMetrics

log = logging.getLogger(__name__)
# the last part of the grace period is kept for finals of streams whose input drain cut short
_FINAL_RESERVE_SEC: Final = 5.0


def default_engine(config: ServerConfig, metrics: ServerMetrics) -> EngineLike:
    from stt_server.engine.engine import Engine  # the model stack is only imported when serving

    return Engine(config=config, metrics=metrics)


class SttServerApp:
    """The whole server; implements the control plane's ``ServerView``."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        metrics: ServerMetrics | None = None,
        engine: EngineLike | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics if metrics is not None else ServerMetrics()
        self.engine: Any = engine if engine is not None else default_engine(config, self.metrics)
        self.state = ServingState()
        self.started_at = time.time()
        self.capture = AudioCapture(config.storage) if config.storage.persist_audio else None
        self.servicer = SpeechToTextServicer(
            config=config, engine=self.engine, metrics=self.metrics, state=self.state,
            authenticator=ApiKeyAuthenticator.from_settings(config.auth), capture=self.capture,
        )
        self._health = HealthStatus()
        self._grpc: grpc.aio.Server | None = None
        self._control: Any = None
        self._rest: Any = None
        self._grpc_running = False
        self._shutdown = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        self.memory_trimmer = MemoryTrimmer(config.server.malloc_trim_interval_sec)
        self.grpc_port = 0
        self.http_port = 0
        self.rest_port = 0  # stays 0 when server.rest_port is 0 (the REST API is off)

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind gRPC and HTTP, load the model, become ready; raises when any of it fails."""
        limits = self.config.limits
        self.metrics.decode_pending_cap.set(limits.max_decode_pending)
        self.metrics.max_total_buffer_bytes.set(limits.max_total_buffer_bytes)
        self.metrics.max_sessions.set(limits.max_sessions)
        self.metrics.ready.set(0)
        self.metrics.tls_cert.set_cert_file(self.config.server.tls.cert_file)
        self._grpc, self.grpc_port = build_server(self.config, servicer=self.servicer, health_status=self._health)
        await self._health.set_serving(False)
        await self._grpc.start()
        self._grpc_running = True
        log.info("gRPC listening", extra={"host": self.config.server.grpc_host, "port": self.grpc_port})
        await self._start_control_plane()
        await self._start_rest_api()
        self._sweeper = asyncio.create_task(self._sweep_sessions(), name="stt-session-sweeper")
        self.memory_trimmer.start()
        try:
            await self.engine.start()
        except Exception as exc:
            self.state.mark_failed(str(exc))
            raise
        self.state.mark_loaded()
        self.metrics.model_loaded.set(1)
        self.metrics.ready.set(1)
        await self._health.set_serving(True)
        log.info("stt-server ready", extra={"grpc_port": self.grpc_port, "http_port": self.http_port})

    async def _start_control_plane(self) -> None:
        from stt_server.control.server import ControlPlane

        self._control = ControlPlane(config=self.config, metrics=self.metrics, view=self)
        await self._control.start()
        self.http_port = int(self._control.port)

    async def _start_rest_api(self) -> None:
        if self.config.server.rest_port == 0:
            return
        from stt_server.rest.server import RestApi

        self._rest = RestApi(config=self.config, metrics=self.metrics, admission=self.servicer, engine=self.engine,
                             served_model=lambda: self.config.model.name, sessions=self.servicer.sessions,
                             streaming=self.engine)
        await self._rest.start()
        self.rest_port = int(self._rest.port)

    async def _sweep_sessions(self) -> None:
        # expiry also runs on every create/claim; the sweep keeps gauges honest on a quiet server
        interval = min(5.0, self.config.limits.session_ttl_sec / 4)
        while True:
            await asyncio.sleep(interval)
            self.servicer.sessions.expire_stale()

    def request_shutdown(self) -> None:
        """Begin a graceful drain (signal handlers call this)."""
        self._shutdown.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_shutdown)

    async def serve(self) -> None:
        """Start, run until SIGTERM/SIGINT (or ``request_shutdown``), then drain and stop."""
        try:
            await self.start()
            await self._shutdown.wait()
            await self.drain()
        finally:
            await self.stop()

    async def drain(self) -> None:
        """Refuse new work, let open streams end (with finals) within the grace period."""
        grace = self.config.server.drain_grace_sec
        deadline = time.monotonic() + grace
        log.info("draining", extra={"open_streams": len(self.servicer.streams), "grace_sec": grace,
                                    "unary_in_flight": self.servicer.unary_in_flight})
        self.state.mark_draining()
        self.metrics.draining.set(1)
        self.metrics.ready.set(0)
        await self._health.set_serving(False)
        reserve = min(_FINAL_RESERVE_SEC, grace / 2)
        if not await self.servicer.wait_streams_done(grace - reserve):
            cut = self.servicer.finish_all_streams()
            log.info("drain: ended the input of %d open stream(s) so they finalise", cut)
            if not await self.servicer.wait_streams_done(reserve):
                log.warning("drain: %d stream(s) still open at the end of the grace period",
                            len(self.servicer.streams))
        # unary Recognize calls ran meanwhile; they get the rest of the same grace period
        if not await self.servicer.wait_unary_done(deadline - time.monotonic()):
            log.warning("drain: %d Recognize call(s) still running at the end of the grace period; "
                        "they will be cancelled", self.servicer.unary_in_flight)

    async def stop(self) -> None:
        """Stop everything that was started (idempotent)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.memory_trimmer.stop()
        if self._grpc is not None:
            server, self._grpc = self._grpc, None
            await server.stop(1.0)
            self._grpc_running = False
        if self._rest is not None:
            rest, self._rest = self._rest, None
            await rest.stop()
        if self._control is not None:
            control, self._control = self._control, None
            await control.stop()
        try:
            await self.engine.stop()
        except asyncio.CancelledError:
            raise
        except Exception:  # keep stopping the rest; the log says what went wrong
            log.exception("engine did not stop cleanly")
        if self.capture is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.capture.stop)
        self.metrics.model_loaded.set(0)
        log.info("stt-server stopped")

    # --- ServerView ------------------------------------------------------------------------------

    def health(self) -> HealthReport:
        reasons: list[str] = []
        loaded = bool(getattr(self.engine, "loaded", False))
        workers = bool(getattr(self.engine, "healthy", loaded))
        if not self._grpc_running:
            reasons.append("gRPC server is not running")
        if self.state.load_error:
            reasons.append(f"model failed to load: {self.state.load_error}")
        elif self.state.loading:
            reasons.append("model is loading")
        elif not loaded:
            reasons.append("model is not loaded")
        reasons.extend(str(r) for r in getattr(self.engine, "health_reasons", []) or [])
        if self.state.draining:
            reasons.append("draining for shutdown")
        return HealthReport(
            grpc_running=self._grpc_running, model_loaded=loaded, workers_healthy=workers,
            loading=self.state.loading, draining=self.state.draining, reasons=tuple(dict.fromkeys(reasons)),
        )

    def info(self) -> dict[str, Any]:
        engine_info = dict(self.engine.info()) if self.state.load_error is None else {}
        return {
            "version": __version__,
            "model": engine_info.get("model", self.config.model.name),
            "device": engine_info.get("device", self.config.model.device),
            "compute_type": engine_info.get("compute_type", self.config.model.compute_type),
            "engine": engine_info,
            "limits": self.config.limits.model_dump(),
            "max_message_bytes": self.config.server.max_message_bytes,
            "max_stream_duration_sec": self.config.server.max_stream_duration_sec,
            "grpc_port": self.grpc_port,
            "http_port": self.http_port,
            "rest_port": self.rest_port,
            "uptime_sec": round(time.time() - self.started_at, 3),
        }

    def metrics_json_extra(self) -> dict[str, Any]:
        return {
            "api_key_sessions": self.servicer.sessions.per_key_counts(),
            "open_sessions": len(self.servicer.sessions),
            "active_streams": len(self.servicer.streams),
            "draining": self.state.draining,
        }
