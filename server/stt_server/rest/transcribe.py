"""``POST /v1/audio/transcriptions``: one upload through the same admission and engine as gRPC Recognize.

Admission is the servicer's (API keys from ``Authorization: Bearer``, the per-key rate limit, the
serving state), the call is held open for the drain like a gRPC unary call, audio decoding runs in
a worker thread, and the decode is the engine's offline ``recognize`` on the shared decode
scheduler. ``stream=true`` answers with Server-Sent Events: one ``transcript.text.delta`` per
Whisper segment as the model finishes it, then ``transcript.text.done``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import numpy as np
from aiohttp import web

from stt_server.config import ServerConfig
from stt_server.engine.types import SAMPLE_RATE, RecognitionResult, StreamOptions
from stt_server.errors import ErrorCode, SttError, record
from stt_server.grpc_service import stream_config
from stt_server.grpc_service.auth import Principal
from stt_server.metrics import ServerMetrics
from stt_server.metrics_compat import REST_SERVICE
from stt_server.proto_gen import stt_pb2
from stt_server.rest import formats
from stt_server.rest.errors import error_body, error_response
from stt_server.rest.forms import TranscriptionParams, drain_body, parse_fields, read_form
from stt_server.rest.media import decode_upload

log = logging.getLogger(__name__)
METHOD = "Recognize"  # REST transcriptions count as Recognize calls, labelled protocol="rest"


class Admission(Protocol):
    """The servicer's shared admission and call accounting (``SpeechToTextServicer``)."""

    def admit(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Principal: ...
    def record_call(self, method: str, status: grpc.StatusCode, *, started: float, protocol: str = ...,
                    service: str = ...) -> None: ...
    def unary_call(self) -> Any: ...


class Transcriber(Protocol):
    """The engine's offline decode (``Engine.recognize``)."""

    async def recognize(self, audio: np.ndarray, *, options: StreamOptions, **extra: Any) -> list[RecognitionResult]: ...


@dataclass
class _Call:
    """How the call ended, for the request metrics (an SSE error goes out after a 200)."""

    status: grpc.StatusCode = grpc.StatusCode.OK


@dataclass(frozen=True)
class RestContext:
    config: ServerConfig
    metrics: ServerMetrics
    admission: Admission
    engine: Transcriber
    served_model: Callable[[], str]


async def handle(ctx: RestContext, request: web.Request) -> web.StreamResponse:
    """The whole request; every outcome is counted once in the request metrics."""
    started = time.perf_counter()
    call = _Call()
    with ctx.admission.unary_call():
        try:
            return await _transcribe(ctx, request, call)
        except SttError as exc:
            call.status = exc.status
            record(exc, ctx.metrics)
            if exc.code is not ErrorCode.UPLOAD_INCOMPLETE:
                log.info("REST transcription refused: %s", exc.message)
            else:
                log.info("REST client went away mid-upload")
            if not request.content.at_eof() and exc.code is not ErrorCode.UPLOAD_INCOMPLETE:
                await drain_body(request, request.content_length)
            return error_response(exc, close=not request.content.at_eof())
        except asyncio.CancelledError:
            call.status = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            log.exception("REST transcription failed")
            error = SttError(ErrorCode.INTERNAL, reason=type(exc).__name__)
            call.status = error.status
            record(error, ctx.metrics)
            return error_response(error)
        finally:
            ctx.admission.record_call(METHOD, call.status, started=started, protocol="rest", service=REST_SERVICE)


def _options(params: TranscriptionParams, config: ServerConfig) -> StreamOptions:
    """The gRPC config parser validates the language, so both protocols accept the same codes."""
    wire = stt_pb2.RecognitionConfig(language_code=params.language, enable_word_time_offsets=params.words)
    try:
        return stream_config.parse_recognition_config(wire, config).options
    except SttError as exc:
        exc.details["param"] = "language"
        raise


async def _transcribe(ctx: RestContext, request: web.Request, call: _Call) -> web.StreamResponse:
    ctx.admission.admit(list(request.headers.items()))
    form = await read_form(request, max_upload_bytes=ctx.config.server.rest_max_upload_bytes)
    params = parse_fields(form.fields, served_model=ctx.served_model())
    if form.file is None:
        raise SttError(ErrorCode.UPLOAD_MISSING_FILE)
    options = _options(params, ctx.config)
    ctx.metrics.recognize_requests.inc()
    loading = time.perf_counter()
    audio = await asyncio.to_thread(decode_upload, form.file,
                                    max_duration_sec=ctx.config.server.max_stream_duration_sec)
    ctx.metrics.audio_load_seconds.labels(kind="offline").observe(time.perf_counter() - loading)
    extra: dict[str, Any] = {"prompt": params.prompt} if params.prompt else {}
    if params.stream:
        return await _stream(ctx, request, call, audio, options=options, extra=extra)
    results = await ctx.engine.recognize(audio, options=options, **extra)
    language = next((r.language for r in results if r.language), options.language or "")
    body = formats.render(results, response_format=params.response_format, duration_sec=audio.size / SAMPLE_RATE,
                          language=language, words=params.words)
    if isinstance(body, dict):
        return web.json_response(body)
    return web.Response(text=body, content_type=formats.CONTENT_TYPES[params.response_format])


async def _stream(ctx: RestContext, request: web.Request, call: _Call, audio: np.ndarray, *,
                  options: StreamOptions, extra: dict[str, Any]) -> web.StreamResponse:
    """SSE: a delta per decoded segment; errors before the first event are plain HTTP errors."""
    loop = asyncio.get_running_loop()
    segments: asyncio.Queue[str] = asyncio.Queue()

    def on_segment(segment: Any) -> None:  # decode worker thread
        loop.call_soon_threadsafe(segments.put_nowait, str(segment.text).strip())

    decode = asyncio.ensure_future(ctx.engine.recognize(audio, options=options, on_segment=on_segment, **extra))
    response: web.StreamResponse | None = None
    sent: list[str] = []
    try:
        while True:
            getter = asyncio.ensure_future(segments.get())
            await asyncio.wait([getter, decode], return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                if segments.empty():
                    break
                text = segments.get_nowait()
            else:
                text = getter.result()
            if not text:
                continue
            if response is None:
                response = await _open_sse(request)
            await response.write(formats.sse_event(
                {"type": "transcript.text.delta", "delta": text if not sent else " " + text}))
            sent.append(text)
        results = decode.result()  # raises the decode's SttError (before any event: an HTTP error)
    except SttError as exc:
        if response is None:
            raise
        call.status = exc.status
        record(exc, ctx.metrics)  # the stream is open: OpenAI's SDK raises on an error event
        await response.write(formats.sse_event(error_body(exc)))
        await response.write_eof()
        return response
    except ConnectionError:
        call.status = grpc.StatusCode.CANCELLED
        log.info("REST client went away while its transcript streamed")
        return response if response is not None else web.Response(status=499)
    finally:
        if not decode.done():
            decode.cancel()
    if response is None:
        response = await _open_sse(request)
    await response.write(formats.sse_event({"type": "transcript.text.done", "text": formats.transcript_text(results)}))
    await response.write_eof()
    return response


async def _open_sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    return response
