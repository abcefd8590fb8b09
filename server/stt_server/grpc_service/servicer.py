"""``sttfleet.v1.SpeechToText``: sessions, streaming and offline recognition over gRPC.

The handlers stay thin: admission (auth, rate limit, serving state), wire parsing and conversion
live in pure helpers next door; the engine does the recognition. Every failure becomes a catalogue
error with its status and trailing metadata; every ``StreamingRecognize`` ends with the decode timing
trailers, errors included; and whatever way a stream ends (finished, failed, client gone, drained)
its recognizer is closed and its session released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Final, Protocol

import grpc

from stt_server.capture.storage import AudioCapture
from stt_server.config import ServerConfig
from stt_server.engine.types import RecognitionResult
from stt_server.errors import ErrorCode, SttError, abort, record
from stt_server.grpc_service import stream_config
from stt_server.grpc_service.audio_input import StreamAudioDecoder, decode_whole
from stt_server.grpc_service.auth import ApiKeyAuthenticator, Principal
from stt_server.grpc_service.inbox import Inbox
from stt_server.grpc_service.rate_limit import RateLimiter
from stt_server.grpc_service.recognize_budget import RecognizeBudget, check_upload
from stt_server.grpc_service.responses import (
    result_message,
    server_info_message,
    stream_response,
    timing_metadata,
)
from stt_server.grpc_service.sessions import Session, SessionRegistry
from stt_server.grpc_service.state import ServingState
from stt_server.grpc_service.streaming import SingleUtteranceTracker, StreamRun
from stt_server.grpc_service.wire import MalformedMessage
from stt_server.logging_setup import set_log_ids
from stt_server.metrics import ServerMetrics
from stt_server.metrics_compat import GRPC_SERVICE
from stt_server.proto_gen import stt_pb2, stt_pb2_grpc

log = logging.getLogger(__name__)
_Request = stt_pb2.StreamingRecognizeRequest
_Incoming = stt_pb2.StreamingRecognizeRequest | MalformedMessage
# how long a stream the server ends early keeps reading, so a client about to half-close sees our
# status rather than grpc.aio's INTERNAL (grpc/grpc#36066)
_END_DRAIN_SEC: Final = 0.5


class EngineLike(Protocol):
    """The parts of ``stt_server.engine.Engine`` the servicer uses (a fake in tests)."""

    loaded: bool

    def open_stream(self, *, session_id: str, options: Any) -> Any: ...
    async def recognize(self, audio: Any, *, options: Any) -> list[RecognitionResult]: ...
    def info(self) -> dict[str, Any]: ...


def internal_error(exc: BaseException) -> SttError:
    """An unexpected exception as a catalogue error (details stay in the server log)."""
    return SttError(ErrorCode.INTERNAL, reason=type(exc).__name__)


def malformed(message: MalformedMessage, *, what: str, logged: bool = True) -> SttError:
    """ERR1025 for a request that did not parse, logged as one WARNING line (no traceback, no bytes).

    ``logged=False`` where the caller already logs every refusal in one line of its own.
    """
    if logged:
        log.warning("malformed %s: %d bytes are not a valid %s", what, message.nbytes, message.type_name)
    return SttError(ErrorCode.MALFORMED_MESSAGE, what=what, type_name=message.type_name, nbytes=message.nbytes)


class SpeechToTextServicer(stt_pb2_grpc.SpeechToTextServicer):
    """One instance per server; holds no per-call state."""

    def __init__(
        self,
        *,
        config: ServerConfig,
        engine: EngineLike,
        metrics: ServerMetrics,
        state: ServingState,
        authenticator: ApiKeyAuthenticator,
        capture: AudioCapture | None = None,
    ) -> None:
        self._config = config
        self._engine = engine
        self._metrics = metrics
        self._state = state
        self._auth = authenticator
        self._capture = capture
        self.sessions = SessionRegistry(config.limits, metrics=metrics)
        self._rate = RateLimiter(requests_per_minute=config.limits.requests_per_minute_per_api_key)
        self._recognize_budget = RecognizeBudget(limit=config.limits.max_recognize_inflight_bytes)
        self.streams: set[StreamRun] = set()
        self._streams_idle = asyncio.Event()
        self._streams_idle.set()
        # unary calls in flight, so a drain lets them finish within the grace like streams
        self._unary_in_flight = 0
        self._unary_idle = asyncio.Event()
        self._unary_idle.set()

    # --- admission -------------------------------------------------------------------------------

    def _admit(self, context: grpc.aio.ServicerContext) -> Principal:
        return self.admit(context.invocation_metadata())

    def admit(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Principal:
        """Authenticate, take a rate token, and refuse while loading or draining.

        Public for the REST API, which passes its HTTP headers as ``metadata`` so both protocols
        share the API keys, the per-key rate limit and the serving state.
        """
        principal = self._auth.authenticate(metadata)
        try:
            self._rate.acquire(principal.key_id)
        except SttError:
            self._metrics.record_rate_limit_block("requests_per_key")
            raise
        self._state.check_accepting()
        return principal

    def _finish(self, method: str, status: grpc.StatusCode, *, started: float) -> None:
        self.record_call(method, status, started=started)

    def record_call(self, method: str, status: grpc.StatusCode, *, started: float, protocol: str = "grpc",
                    service: str = GRPC_SERVICE) -> None:
        """Count a finished call and its duration (``started``: ``time.perf_counter()`` at its start)."""
        self._metrics.grpc_requests.labels(method=method, grpc_status=status.name, protocol=protocol).inc()
        self._metrics.grpc_request_seconds.labels(service=service, method=method, protocol=protocol).observe(
            time.perf_counter() - started)

    def unary_call(self) -> contextlib.AbstractContextManager[None]:
        """Hold a REST call open for the drain, as gRPC's unary calls are held."""
        return self._unary_call()

    # --- unary calls -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _unary_call(self) -> Iterator[None]:
        self._unary_in_flight += 1
        self._unary_idle.clear()
        try:
            yield
        finally:
            self._unary_in_flight -= 1
            if not self._unary_in_flight:
                self._unary_idle.set()

    async def CreateSession(
        self, request: stt_pb2.CreateSessionRequest | MalformedMessage, context: grpc.aio.ServicerContext
    ) -> stt_pb2.CreateSessionResponse:
        started = time.perf_counter()
        try:
            principal = self._admit(context)
            if isinstance(request, MalformedMessage):
                raise malformed(request, what="CreateSession request", logged=False)
            session_config = stream_config.parse_streaming_config(request.streaming_config, self._config)
            set_log_ids(request_id=session_config.request_id)
            session = self.sessions.create(key_id=principal.key_id, config=session_config)
        except SttError as exc:
            # one structured line per refusal, so a burst of ERR1011s is visible in logs as in metrics
            log.warning("CreateSession refused", extra={
                "code": exc.code.value, "grpc_status": exc.status.name, "reason": exc.message})
            self._metrics.record_create_session_refused(exc.code.value)
            self._finish("CreateSession", exc.status, started=started)
            await abort(context, exc, metrics=self._metrics)
        set_log_ids(session_id=session.session_id)
        log.info("Created session_id=%s", session.session_id, extra={"key_id": principal.key_id})
        self._metrics.sessions_created.inc()
        self._metrics.create_session_seconds.observe(time.perf_counter() - started)
        self._finish("CreateSession", grpc.StatusCode.OK, started=started)
        return stt_pb2.CreateSessionResponse(
            session_id=session.session_id,
            expires_in_sec=self._config.limits.session_ttl_sec,
            limits=stream_config.limits_message(self._config),
            request_id=session_config.request_id,
        )

    async def Recognize(
        self, request: stt_pb2.RecognizeRequest | MalformedMessage, context: grpc.aio.ServicerContext
    ) -> stt_pb2.RecognizeResponse:
        with self._unary_call():
            return await self._recognize(request, context)

    async def _recognize(
        self, request: stt_pb2.RecognizeRequest | MalformedMessage, context: grpc.aio.ServicerContext
    ) -> stt_pb2.RecognizeResponse:
        started = time.perf_counter()
        try:
            self._admit(context)
            self._metrics.recognize_requests.inc()
            if isinstance(request, MalformedMessage):
                raise malformed(request, what="Recognize request")
            session_config = stream_config.parse_recognition_config(request.config, self._config)
            set_log_ids(request_id=session_config.request_id)
            content = request.audio_content  # one copy out of the message, not one per access
            limits = self._config.limits
            check_upload(len(content), limit=limits.max_recognize_bytes)
            if request.ByteSize() > self._config.server.max_message_bytes:
                raise SttError(ErrorCode.MESSAGE_TOO_LARGE, nbytes=request.ByteSize(),
                               limit=self._config.server.max_message_bytes)
            with self._recognize_budget.hold(len(content)):
                loading = time.perf_counter()
                audio = await asyncio.to_thread(decode_whole, content, session_config.audio,
                                                max_duration_sec=limits.max_recognize_duration_sec)
                del content
                self._metrics.audio_load_seconds.labels(kind="offline").observe(time.perf_counter() - loading)
                if audio.size == 0:
                    raise SttError(ErrorCode.EMPTY_STREAM, what="Recognize request")
                results = await self._engine.recognize(audio, options=session_config.options)
        except SttError as exc:
            self._finish("Recognize", exc.status, started=started)
            await abort(context, exc, metrics=self._metrics)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("Recognize failed")
            error = internal_error(exc)
            self._finish("Recognize", error.status, started=started)
            await abort(context, error, metrics=self._metrics)
        self._finish("Recognize", grpc.StatusCode.OK, started=started)
        return stt_pb2.RecognizeResponse(
            results=[result_message(r) for r in results],
            audio_duration_sec=audio.size / stream_config.TARGET_RATE,
            request_id=session_config.request_id,
        )

    async def GetServerInfo(
        self, request: stt_pb2.GetServerInfoRequest | MalformedMessage, context: grpc.aio.ServicerContext
    ) -> stt_pb2.GetServerInfoResponse:
        started = time.perf_counter()
        try:
            self._auth.authenticate(context.invocation_metadata())
            if isinstance(request, MalformedMessage):
                raise malformed(request, what="GetServerInfo request")
        except SttError as exc:
            self._finish("GetServerInfo", exc.status, started=started)
            await abort(context, exc, metrics=self._metrics)
        info = self._engine.info()
        self._finish("GetServerInfo", grpc.StatusCode.OK, started=started)
        return server_info_message(info, config=self._config, ready=self._state.ready.is_set(),
                                   api_key_required=self._auth.required)

    # --- streaming -------------------------------------------------------------------------------

    async def _open(self, inbox: Inbox[_Incoming], principal: Principal) -> Session:
        first = await inbox.next()
        if first is None:
            raise SttError(ErrorCode.EMPTY_STREAM, what="StreamingRecognize call")
        if isinstance(first, MalformedMessage):
            raise malformed(first, what="StreamingRecognize message 1")
        which = first.WhichOneof("streaming_request")
        if which == "audio_content":
            raise SttError(ErrorCode.AUDIO_BEFORE_CONFIG)
        if which == "session_id":
            return self.sessions.claim(first.session_id, key_id=principal.key_id)
        if which == "streaming_config":
            parsed = stream_config.parse_streaming_config(first.streaming_config, self._config)
            return self.sessions.create(key_id=principal.key_id, config=parsed, streaming=True)
        raise SttError(ErrorCode.INVALID_FIRST_MESSAGE, got="an empty message")

    async def StreamingRecognize(
        self, request_iterator: AsyncIterator[_Incoming], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[stt_pb2.StreamingRecognizeResponse]:
        started = time.perf_counter()
        error: SttError | None = None
        run: StreamRun | None = None
        inbox: Inbox[_Incoming] | None = None
        session: Session | None = None
        try:
            inbox = Inbox[_Incoming](request_iterator, idle_timeout_sec=self._config.limits.session_idle_timeout_sec)
            principal = self._admit(context)
            session = await self._open(inbox, principal)
            self._state.check_accepting()  # a drain may have begun while we waited for the first message
            set_log_ids(session_id=session.session_id, request_id=session.config.request_id)
            recognizer = self._engine.open_stream(session_id=session.session_id, options=session.config.options)
            decoder = StreamAudioDecoder(session.config.audio,
                                         max_duration_sec=self._config.server.max_stream_duration_sec)
            capture = self._capture.open(session.session_id) if self._capture is not None else None
            run = StreamRun(inbox=inbox, recognizer=recognizer, decoder=decoder, capture=capture,
                            max_message_bytes=self._config.server.max_message_bytes, metrics=self._metrics)
            self._track(run)
            self._metrics.streams_started.inc()
            log.info("Streaming started for session_id=%s", session.session_id)
            single_done = SingleUtteranceTracker(session.config.options.single_utterance)
            async for item in run.items():
                yield stream_response(item, session_id=session.session_id, request_id=session.config.request_id,
                                      audio_processed_sec=decoder.received_sec)
                if single_done.saw(item):
                    break
        except SttError as exc:
            error = exc
        except asyncio.CancelledError:
            log.info("Client went away mid-stream")
            raise
        except Exception as exc:
            log.exception("StreamingRecognize failed")
            error = internal_error(exc)
        finally:
            await self._end_stream(context, run=run, inbox=inbox, session=session, error=error, started=started)

    async def _end_stream(
        self, context: grpc.aio.ServicerContext, *, run: StreamRun | None, inbox: Inbox[_Incoming] | None,
        session: Session | None, error: SttError | None, started: float,
    ) -> None:
        # shielded: a client that vanished cancels this task, and cleanup must still complete
        cleanup = asyncio.ensure_future(self._cleanup(run=run, inbox=inbox, session=session, error=error))
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(cleanup)
        metadata = timing_metadata(run.timing_totals if run else None, run.decode_count if run else 0)
        if error is not None:
            record(error, self._metrics)
            context.set_code(error.status)
            context.set_details(error.message)
            metadata = (*metadata, *error.trailing_metadata())
            log.info("Stream ended with %s", error.message)
        context.set_trailing_metadata(metadata)
        self._finish("StreamingRecognize", error.status if error else grpc.StatusCode.OK, started=started)

    async def _cleanup(
        self, *, run: StreamRun | None, inbox: Inbox[_Incoming] | None, session: Session | None,
        error: SttError | None,
    ) -> None:
        try:
            if run is not None:
                await run.close()
            if session is not None:
                self.sessions.release(session)
            if inbox is not None and not inbox.ended:
                # we end the call before the client half-closed (error, single utterance, drain)
                await inbox.drain(_END_DRAIN_SEC)
        finally:
            if inbox is not None:
                await inbox.close()
            if run is not None:
                self._untrack(run)

    # --- drain support ---------------------------------------------------------------------------

    def _track(self, run: StreamRun) -> None:
        self.streams.add(run)
        self._streams_idle.clear()
        self._metrics.active_streams.set(len(self.streams))

    def _untrack(self, run: StreamRun) -> None:
        self.streams.discard(run)
        self._metrics.active_streams.set(len(self.streams))
        if not self.streams:
            self._streams_idle.set()

    def finish_all_streams(self) -> int:
        """Drain: end every open stream's input so it finalises; returns how many."""
        for run in list(self.streams):
            run.stop_input()
        return len(self.streams)

    async def wait_streams_done(self, timeout: float) -> bool:
        """True when no stream is open within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                await self._streams_idle.wait()
        except TimeoutError:
            return False
        return True

    @property
    def unary_in_flight(self) -> int:
        """Unary ``Recognize`` calls running now."""
        return self._unary_in_flight

    async def wait_unary_done(self, timeout: float) -> bool:
        """True when no unary ``Recognize`` is running within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                await self._unary_idle.wait()
        except TimeoutError:
            return False
        return True
