"""``GET /v1/realtime?intent=transcription``: OpenAI's realtime transcription WebSocket on the streaming engine.

The connection is one streaming session: it counts against the same session caps as a gRPC stream
(ERR1011 / ERR1012), its audio goes through the same recognizer (VAD endpointing, partials with
LocalAgreement, finals) and buffer limits, and a drain waits for it like a gRPC call. Client events:
``transcription_session.update`` (or ``session.update``), ``input_audio_buffer.append`` (base64
pcm16, 24 kHz mono as OpenAI sends it), ``input_audio_buffer.commit`` (finalise what was sent) and
``input_audio_buffer.clear``. Server events: rest/realtime_events.py. A bad event gets an ``error``
event and the connection stays open; a failure of the stream itself (buffer full, model error)
gets an ``error`` event and the connection closes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Final, Protocol

import grpc
from aiohttp import WSMsgType, web

from stt_server.config import ServerConfig
from stt_server.engine.audio import PcmDecoder
from stt_server.engine.types import StreamOptions
from stt_server.errors import ErrorCode, SttError, record
from stt_server.grpc_service import stream_config
from stt_server.grpc_service.sessions import Session, SessionRegistry
from stt_server.grpc_service.stream_config import AudioFormat, SessionConfig
from stt_server.metrics import ServerMetrics
from stt_server.metrics_compat import REST_SERVICE
from stt_server.proto_gen import stt_pb2
from stt_server.rest.errors import error_type, http_status
from stt_server.rest.forms import model_ids
from stt_server.rest.realtime_events import RealtimeTranscript
from stt_server.rest.transcribe import Admission

log = logging.getLogger(__name__)
RATE: Final = 24_000  # OpenAI's pcm16: 24 kHz, mono, 16-bit little-endian
KEY_PROTOCOL: Final = "openai-insecure-api-key."  # browsers cannot set headers: the key rides as a subprotocol
MAX_EVENT_BYTES: Final = 4 * 1024 * 1024
METHOD: Final = "StreamingRecognize"  # counted with the gRPC streams, labelled protocol="rest"


class StreamingEngine(Protocol):
    def open_stream(self, *, session_id: str, options: Any) -> Any: ...


@dataclass(frozen=True)
class RealtimeContext:
    config: ServerConfig
    metrics: ServerMetrics
    admission: Admission
    sessions: SessionRegistry
    engine: StreamingEngine
    served_model: str
    connections: set[web.WebSocketResponse]


def _metadata(request: web.Request) -> list[tuple[str, str]]:
    pairs = list(request.headers.items())
    for protocol in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        if protocol.strip().startswith(KEY_PROTOCOL):
            pairs.append(("x-api-key", protocol.strip()[len(KEY_PROTOCOL):]))
    return pairs


def error_event(error: SttError, *, event_id: str | None = None) -> dict[str, Any]:
    param = error.details.get("param") if isinstance(error.details.get("param"), str) else None
    return {"type": "error", "error": {"type": error_type(http_status(error)), "code": error.code.value,
                                       "message": error.message, "param": param, "event_id": event_id}}


def _options(language: str, config: ServerConfig) -> StreamOptions:
    try:
        parsed = stream_config.parse_recognition_config(stt_pb2.RecognitionConfig(language_code=language), config,
                                                        interim_results=True)
    except SttError as exc:
        exc.details["param"] = "session.input_audio_transcription.language"
        raise
    return parsed.options


async def handle_realtime(ctx: RealtimeContext, request: web.Request) -> web.StreamResponse:
    """Admit (errors before the upgrade are plain HTTP errors), then serve one connection."""
    if request.query.get("intent", "transcription") != "transcription":
        raise SttError(ErrorCode.INVALID_FIELD, param="intent", reason="only intent=transcription is served")
    principal = ctx.admission.admit(_metadata(request))
    options = _options("", ctx.config)
    session = ctx.sessions.create(key_id=principal.key_id, streaming=True,
                                  config=SessionConfig(audio=AudioFormat("linear16", RATE, 1), options=options))
    started = time.perf_counter()
    status = grpc.StatusCode.OK
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    ws = web.WebSocketResponse(protocols=[p for p in offered if p == "realtime"], heartbeat=30.0,
                               max_msg_size=MAX_EVENT_BYTES)
    try:
        with ctx.admission.unary_call():
            await ws.prepare(request)
            ctx.connections.add(ws)
            ctx.metrics.streams_started.inc()
            connection = _Connection(ctx, ws, session, options)
            status = await connection.run()
    finally:
        ctx.connections.discard(ws)
        ctx.sessions.release(session)
        ctx.admission.record_call(METHOD, status, started=started, protocol="rest", service=REST_SERVICE)
    return ws


class _Connection:
    def __init__(self, ctx: RealtimeContext, ws: web.WebSocketResponse, session: Session,
                 options: StreamOptions) -> None:
        self._ctx = ctx
        self._ws = ws
        self._session = session
        self._options = options
        self._transcript = RealtimeTranscript()
        self._recognizer: Any = None
        self._pump: asyncio.Task[None] | None = None
        self._decoder = PcmDecoder(sample_rate=RATE)
        self._fed = False
        self._events = 0
        self._fatal: SttError | None = None

    async def send(self, event: dict[str, Any]) -> None:
        self._events += 1
        if not self._ws.closed:
            await self._ws.send_json({"event_id": f"event_{self._events:06d}", **event})

    def _session_object(self) -> dict[str, Any]:
        return {"id": self._session.session_id, "object": "realtime.transcription_session",
                "input_audio_format": "pcm16",
                "input_audio_transcription": {"model": self._ctx.served_model,
                                              "language": self._options.language or ""},
                "turn_detection": {"type": "server_vad"}}

    async def run(self) -> grpc.StatusCode:
        self._open()
        await self.send({"type": "transcription_session.created", "session": self._session_object()})
        try:
            async for message in self._ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_text(message.data)
                elif message.type == WSMsgType.BINARY:
                    await self._reject(SttError(ErrorCode.INVALID_FIELD, param="event",
                                                reason="send events as JSON text frames"), None)
                if self._fatal is not None:
                    break
        except SttError as exc:  # a stream failure found while feeding
            self._fatal = exc
        finally:
            await self._close_stream()
        if self._fatal is not None:
            record(self._fatal, self._ctx.metrics)
            await self.send(error_event(self._fatal))
            await self._ws.close(code=1011, message=self._fatal.code.value.encode())
            return self._fatal.status
        return grpc.StatusCode.OK

    def _open(self) -> None:
        self._recognizer = self._ctx.engine.open_stream(session_id=self._session.session_id, options=self._options)
        self._pump = asyncio.create_task(self._forward(self._recognizer), name="stt-realtime-pump")

    async def _forward(self, recognizer: Any) -> None:
        try:
            async for item in recognizer.events():
                for event in self._transcript.events(item):
                    await self.send(event)
        except SttError as exc:  # the model failed or the queue stayed full: the stream is over
            self._fatal = exc
            with contextlib.suppress(ConnectionError):
                await self._ws.close(code=1011)

    async def _close_stream(self) -> None:
        if self._recognizer is not None:
            await self._recognizer.close()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump

    async def _reject(self, error: SttError, event_id: str | None) -> None:
        record(error, self._ctx.metrics)
        await self.send(error_event(error, event_id=event_id))

    async def _on_text(self, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            await self._reject(SttError(ErrorCode.INVALID_FIELD, param="event",
                                        reason="not a JSON object with a string 'type'"), None)
            return
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        try:
            await self._dispatch(event)
        except SttError as exc:
            if exc.code in (ErrorCode.STREAM_BUFFER_FULL, ErrorCode.TOTAL_BUFFER_FULL, ErrorCode.STREAM_TOO_LONG):
                raise  # the stream cannot go on
            await self._reject(exc, event_id)

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("transcription_session.update", "session.update"):
            await self._update(event.get("session") or {})
        elif kind == "input_audio_buffer.append":
            await self._append(event.get("audio"))
        elif kind == "input_audio_buffer.commit":
            await self._commit()
        elif kind == "input_audio_buffer.clear":
            # audio already handed to the VAD cannot be taken back; nothing is buffered before it
            await self.send({"type": "input_audio_buffer.cleared"})
        else:
            raise SttError(ErrorCode.INVALID_FIELD, param="type", reason=f"unknown client event {kind[:64]!r}")

    async def _update(self, session: Any) -> None:
        if not isinstance(session, dict):
            raise SttError(ErrorCode.INVALID_FIELD, param="session", reason="must be an object")
        audio_format = session.get("input_audio_format", "pcm16")
        if audio_format != "pcm16":
            raise SttError(ErrorCode.UNSUPPORTED_AUDIO, reason=f"input_audio_format {str(audio_format)[:32]!r} "
                                                               "(pcm16 at 24 kHz is served)")
        transcription = session.get("input_audio_transcription") or {}
        model = str(transcription.get("model") or self._ctx.served_model)
        if model not in model_ids(self._ctx.served_model):
            raise SttError(ErrorCode.UNKNOWN_MODEL, model=model, served=", ".join(model_ids(self._ctx.served_model)))
        language = str(transcription.get("language") or "")
        options = _options(language, self._ctx.config)
        if options != self._options:
            if self._fed:
                raise SttError(ErrorCode.INVALID_FIELD, param="session.input_audio_transcription.language",
                               reason="can only change before the first audio (or right after a commit)")
            await self._close_stream()
            self._options = options
            self._open()
        await self.send({"type": "transcription_session.updated", "session": self._session_object()})

    async def _append(self, audio: Any) -> None:
        if not isinstance(audio, str):
            raise SttError(ErrorCode.INVALID_FIELD, param="audio", reason="must be base64 text")
        try:
            pcm = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SttError(ErrorCode.INVALID_FIELD, param="audio", reason="is not valid base64") from exc
        samples = self._decoder.decode(pcm)  # ERR1003 on a torn sample
        self._fed = True
        await self._recognizer.feed(samples)

    async def _commit(self) -> None:
        """Finalise everything sent so far; later audio starts a fresh recognizer on the same session."""
        await self._recognizer.feed(self._decoder.flush())
        await self._recognizer.finish()
        if self._pump is not None:
            await self._pump  # ends after the last final
            self._pump = None
        await self._recognizer.close()
        self._recognizer = None
        self._transcript.next_stream()
        self._decoder = PcmDecoder(sample_rate=RATE)
        self._fed = False
        self._open()


async def handle_or_error(ctx: RealtimeContext, request: web.Request, *, to_response: Any) -> web.StreamResponse:
    """Errors before the upgrade as OpenAI error JSON (``to_response``: rest.errors.error_response)."""
    try:
        return await handle_realtime(ctx, request)
    except SttError as exc:
        record(exc, ctx.metrics)
        response: web.StreamResponse = to_response(exc)
        return response

