"""The error catalogue: every rejection the server makes, with a stable code.

Each ``ErrorCode`` maps to exactly one gRPC status, a message template and a retry hint (seconds,
``None`` when retrying the same request cannot help). ``SttError`` carries a code plus the details
that fill its template; the servicer turns it into a gRPC status with trailing metadata
``stt-error-code`` and ``stt-retry-after-sec``. ``docs/errors.md`` lists the same table (a test
keeps the two in step).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NoReturn

import grpc

from stt_server.echo import clip_echo

if TYPE_CHECKING:
    from stt_server.metrics import ServerMetrics

ERROR_CODE_KEY: Final = "stt-error-code"
RETRY_AFTER_KEY: Final = "stt-retry-after-sec"


class ErrorCode(str, enum.Enum):
    """Stable codes clients may switch on; never renumber one."""

    INVALID_FIRST_MESSAGE = "ERR1001"
    AUDIO_BEFORE_CONFIG = "ERR1002"
    ODD_BYTE_COUNT = "ERR1003"
    UNSUPPORTED_AUDIO = "ERR1004"
    MESSAGE_TOO_LARGE = "ERR1005"
    STREAM_TOO_LONG = "ERR1006"
    EMPTY_STREAM = "ERR1007"
    UNKNOWN_SESSION = "ERR1008"
    EXPIRED_SESSION = "ERR1009"
    SESSION_IN_USE = "ERR1010"
    MAX_SESSIONS = "ERR1011"
    API_KEY_SESSION_CAP = "ERR1012"
    API_KEY_RATE_LIMIT = "ERR1013"
    STREAM_BUFFER_FULL = "ERR1014"
    TOTAL_BUFFER_FULL = "ERR1015"
    DECODE_QUEUE_FULL = "ERR1016"
    IDLE_TIMEOUT = "ERR1017"
    MISSING_API_KEY = "ERR1018"
    INVALID_API_KEY = "ERR1019"
    DRAINING = "ERR1020"
    NOT_READY = "ERR1021"
    INVALID_CONFIG = "ERR1022"
    INVALID_AUDIO = "ERR1023"
    UNEXPECTED_MESSAGE = "ERR1024"
    MALFORMED_MESSAGE = "ERR1025"
    DRAIN_TRUNCATED = "ERR1026"
    HTTP_BAD_REQUEST = "ERR1027"
    HTTP_HEADER_TIMEOUT = "ERR1028"
    MODEL_ERROR = "ERR1030"
    NON_FINITE_AUDIO = "ERR1031"
    RECOGNIZE_TOO_LARGE = "ERR1032"
    RECOGNIZE_TOO_LONG = "ERR1033"
    RECOGNIZE_BUSY = "ERR1034"
    CUDA_LIBRARY_MISSING = "ERR1035"
    CUDA_DEVICE_UNAVAILABLE = "ERR1036"
    UPLOAD_MISSING_FILE = "ERR1040"
    UPLOAD_TOO_LARGE = "ERR1041"
    UNKNOWN_MODEL = "ERR1042"
    INVALID_FIELD = "ERR1043"
    NOT_MULTIPART = "ERR1044"
    UPLOAD_INCOMPLETE = "ERR1045"
    UNKNOWN_ROUTE = "ERR1046"
    METHOD_NOT_ALLOWED = "ERR1047"
    INTERNAL = "ERR1099"


@dataclass(frozen=True)
class CatalogueEntry:
    """What one code means on the wire."""

    status: grpc.StatusCode
    template: str
    retry_after_sec: float | None
    summary: str


_S = grpc.StatusCode
CATALOGUE: Final[dict[ErrorCode, CatalogueEntry]] = {
    ErrorCode.INVALID_FIRST_MESSAGE: CatalogueEntry(
        _S.INVALID_ARGUMENT, "first message must carry session_id or streaming_config, got {got}", None,
        "The first StreamingRecognize message was neither a session id nor a config."),
    ErrorCode.AUDIO_BEFORE_CONFIG: CatalogueEntry(
        _S.INVALID_ARGUMENT, "audio_content arrived before session_id or streaming_config", None,
        "Audio was sent as the first StreamingRecognize message."),
    ErrorCode.ODD_BYTE_COUNT: CatalogueEntry(
        _S.INVALID_ARGUMENT, "LINEAR16 audio needs whole samples; message {index} has {nbytes} bytes", None,
        "A LINEAR16 message held a byte count that is not a whole number of samples."),
    ErrorCode.UNSUPPORTED_AUDIO: CatalogueEntry(
        _S.INVALID_ARGUMENT, "unsupported audio: {reason}", None,
        "Encoding, sample rate or channel count the server does not accept."),
    ErrorCode.MESSAGE_TOO_LARGE: CatalogueEntry(
        _S.RESOURCE_EXHAUSTED, "message of {nbytes} bytes exceeds max_message_bytes={limit}", None,
        "A request message was larger than server.max_message_bytes."),
    ErrorCode.STREAM_TOO_LONG: CatalogueEntry(
        _S.OUT_OF_RANGE, "stream exceeded max_stream_duration_sec={limit} of audio", None,
        "A StreamingRecognize call sent more audio than server.max_stream_duration_sec."),
    ErrorCode.EMPTY_STREAM: CatalogueEntry(
        _S.INVALID_ARGUMENT, "{what} carried no audio", None,
        "A stream or Recognize request ended without any audio."),
    ErrorCode.UNKNOWN_SESSION: CatalogueEntry(
        _S.NOT_FOUND, "unknown session_id {session_id}", None,
        "The session id was never issued by this server (or was already used)."),
    ErrorCode.EXPIRED_SESSION: CatalogueEntry(
        _S.NOT_FOUND, "session {session_id} expired after session_ttl_sec={ttl}", None,
        "The session was not used within limits.session_ttl_sec; create a new one."),
    ErrorCode.SESSION_IN_USE: CatalogueEntry(
        _S.FAILED_PRECONDITION, "session {session_id} is already streaming", None,
        "A second StreamingRecognize call named a session that is already streaming."),
    ErrorCode.MAX_SESSIONS: CatalogueEntry(
        _S.RESOURCE_EXHAUSTED, "max sessions reached ({limit})", 5.0,
        "limits.max_sessions sessions are open; retry later or on another replica."),
    ErrorCode.API_KEY_SESSION_CAP: CatalogueEntry(
        _S.RESOURCE_EXHAUSTED, "this API key already holds max_sessions_per_api_key={limit} sessions", 5.0,
        "The API key holds limits.max_sessions_per_api_key open sessions."),
    ErrorCode.API_KEY_RATE_LIMIT: CatalogueEntry(
        _S.RESOURCE_EXHAUSTED, "rate limit of {limit} requests per minute for this API key", 1.0,
        "The API key exceeded limits.requests_per_minute_per_api_key."),
    ErrorCode.STREAM_BUFFER_FULL: CatalogueEntry(
        _S.RESOURCE_EXHAUSTED, "stream buffer full ({limit} bytes); send audio no faster than real time", 1.0,
        "The stream buffered more than limits.max_stream_buffer_bytes of unprocessed audio."),
    ErrorCode.TOTAL_BUFFER_FULL: CatalogueEntry(
        _S.RESOURCE_EXHAUSTED, "server audio buffers full ({limit} bytes)", 2.0,
        "All streams together buffered more than limits.max_total_buffer_bytes."),
    ErrorCode.DECODE_QUEUE_FULL: CatalogueEntry(
        _S.RESOURCE_EXHAUSTED, "decode queue full ({limit} pending)", 1.0,
        "limits.max_decode_pending decodes are queued; a final could not be scheduled."),
    ErrorCode.IDLE_TIMEOUT: CatalogueEntry(
        _S.DEADLINE_EXCEEDED, "no audio for session_idle_timeout_sec={limit}", None,
        "The stream sent no message for limits.session_idle_timeout_sec."),
    ErrorCode.MISSING_API_KEY: CatalogueEntry(
        _S.UNAUTHENTICATED, "an API key is required (metadata x-api-key)", None,
        "The server has API keys configured and the call carried none."),
    ErrorCode.INVALID_API_KEY: CatalogueEntry(
        _S.UNAUTHENTICATED, "invalid API key", None,
        "The API key does not match any configured key."),
    ErrorCode.DRAINING: CatalogueEntry(
        _S.UNAVAILABLE, "server is draining for shutdown", 1.0,
        "The server is shutting down and accepts no new sessions or streams."),
    ErrorCode.NOT_READY: CatalogueEntry(
        _S.UNAVAILABLE, "server is not ready: {reason}", 5.0,
        "The model is still loading (or failed to load)."),
    ErrorCode.INVALID_CONFIG: CatalogueEntry(
        _S.INVALID_ARGUMENT, "invalid recognition config: {reason}", None,
        "A recognition config field has a value the server cannot honour."),
    ErrorCode.INVALID_AUDIO: CatalogueEntry(
        _S.INVALID_ARGUMENT, "invalid audio: {reason}", None,
        "The audio could not be decoded (bad WAV header, not 16-bit PCM, ...)."),
    ErrorCode.UNEXPECTED_MESSAGE: CatalogueEntry(
        _S.INVALID_ARGUMENT, "only audio_content may follow the first message; message {index} carried {got}", None,
        "A StreamingRecognize message after the first one carried a session id or a config."),
    ErrorCode.MALFORMED_MESSAGE: CatalogueEntry(
        _S.INVALID_ARGUMENT, "malformed message: {what} is not a valid {type_name} ({nbytes} bytes)", None,
        "A request's bytes could not be parsed as its protobuf message; a stream is not finalised after one."),
    ErrorCode.DRAIN_TRUNCATED: CatalogueEntry(
        _S.UNAVAILABLE, "server drained for shutdown: the stream was cut after {at_sec} s of audio; "
        "send the rest to another replica", 0.0,
        "A drain ended the stream's input before the client finished; the final for the audio received was "
        "sent first and trailer stt-drain-truncated-at-sec says where to resume."),
    ErrorCode.HTTP_BAD_REQUEST: CatalogueEntry(
        _S.INVALID_ARGUMENT, "malformed HTTP request: {reason}", None,
        "Control plane: the HTTP parser rejected the request (header too long, too many headers, bad method, "
        "an HTTP/2 preface); answered 400 with a JSON body."),
    ErrorCode.HTTP_HEADER_TIMEOUT: CatalogueEntry(
        _S.DEADLINE_EXCEEDED, "HTTP request headers not received within {limit} s", None,
        "Control plane: a connection did not finish sending its request headers in time (slowloris); "
        "answered 408 with a JSON body and closed."),
    ErrorCode.NON_FINITE_AUDIO: CatalogueEntry(
        _S.INVALID_ARGUMENT, "audio holds {count} non-finite samples (NaN or infinity)", None,
        "A float WAV carried NaN or infinite samples; they cannot be decoded. (Finite samples outside "
        "[-1, 1] are scaled and clipped, not refused.)"),
    ErrorCode.RECOGNIZE_TOO_LARGE: CatalogueEntry(
        _S.RESOURCE_EXHAUSTED, "Recognize audio of {nbytes} bytes exceeds limits.max_recognize_bytes={limit}; "
        "split the file or send it with StreamingRecognize", None,
        "A Recognize request's audio_content was larger than limits.max_recognize_bytes."),
    ErrorCode.RECOGNIZE_TOO_LONG: CatalogueEntry(
        _S.OUT_OF_RANGE, "Recognize audio of {seconds} s exceeds limits.max_recognize_duration_sec={limit}; "
        "split the file or send it with StreamingRecognize", None,
        "A Recognize request held more audio than limits.max_recognize_duration_sec (checked from the "
        "header, before decoding)."),
    ErrorCode.RECOGNIZE_BUSY: CatalogueEntry(
        _S.RESOURCE_EXHAUSTED, "Recognize calls in progress already hold {inflight} bytes of audio "
        "(limits.max_recognize_inflight_bytes={limit})", 2.0,
        "Concurrent Recognize calls together would hold more audio than limits.max_recognize_inflight_bytes; "
        "retry shortly or on another replica."),
    ErrorCode.MODEL_ERROR: CatalogueEntry(
        _S.INTERNAL, "model error: {reason}", 1.0,
        "The Whisper model failed on this audio."),
    ErrorCode.CUDA_LIBRARY_MISSING: CatalogueEntry(
        _S.FAILED_PRECONDITION, "model.device is cuda but a CUDA library is missing: {problem}", None,
        "Start-up: model.device is cuda and a library CTranslate2 needs (the NVIDIA driver's libcuda.so.1, "
        "CUDA 12 cuBLAS, cuDNN 9) cannot be loaded; the message names it. stt-server exits 1."),
    ErrorCode.CUDA_DEVICE_UNAVAILABLE: CatalogueEntry(
        _S.FAILED_PRECONDITION, "model.device is cuda but no CUDA device is usable: {problem}", None,
        "Start-up: model.device is cuda, the CUDA libraries load, but CTranslate2 sees no GPU. "
        "stt-server exits 1."),
    ErrorCode.UPLOAD_MISSING_FILE: CatalogueEntry(
        _S.INVALID_ARGUMENT, "the multipart form has no 'file' field with the audio", None,
        "A REST transcription request carried no 'file' part."),
    ErrorCode.UPLOAD_TOO_LARGE: CatalogueEntry(
        _S.RESOURCE_EXHAUSTED, "upload of more than {limit} bytes (server.rest_max_upload_bytes)", None,
        "A REST upload was larger than server.rest_max_upload_bytes (HTTP 413)."),
    ErrorCode.UNKNOWN_MODEL: CatalogueEntry(
        _S.NOT_FOUND, "model {model!r} is not served here; use one of {served}", None,
        "A REST request named a model that is neither the served model nor one of its aliases."),
    ErrorCode.INVALID_FIELD: CatalogueEntry(
        _S.INVALID_ARGUMENT, "invalid {param}: {reason}", None,
        "A REST form field (response_format, temperature, language, ...) has a value the server cannot honour."),
    ErrorCode.NOT_MULTIPART: CatalogueEntry(
        _S.INVALID_ARGUMENT, "the request body must be multipart/form-data: {reason}", None,
        "A REST transcription request was not a readable multipart/form-data body."),
    ErrorCode.UPLOAD_INCOMPLETE: CatalogueEntry(
        _S.CANCELLED, "the upload ended early: {reason}", None,
        "The client closed the connection before its upload was complete."),
    ErrorCode.UNKNOWN_ROUTE: CatalogueEntry(
        _S.NOT_FOUND, "no such endpoint: {method} {path}", None,
        "A REST request named a path the API does not have."),
    ErrorCode.METHOD_NOT_ALLOWED: CatalogueEntry(
        _S.UNIMPLEMENTED, "{method} is not allowed on {path} (allowed: {allowed})", None,
        "A REST request used a method the endpoint does not accept (HTTP 405)."),
    ErrorCode.INTERNAL: CatalogueEntry(
        _S.INTERNAL, "internal error: {reason}", None,
        "An unexpected server error; the server logs carry the details."),
}


# Client-supplied strings (a language code, a session id) end up in status messages and logs: keep
# each one short and printable so a 10 KB or binary value cannot flood either. Every string detail
# of an SttError is clipped to MAX_DETAIL_CHARS (room for our own reasons); code that quotes a client
# value inside a longer reason clips it to MAX_ECHO_CHARS first.
MAX_DETAIL_CHARS: Final = 240


class _LenientDetails(dict[str, Any]):
    """Leaves a placeholder readable when a caller did not supply that detail."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


class SttError(Exception):
    """A catalogued rejection; ``details`` fill the message template."""

    def __init__(self, code: ErrorCode, **details: Any) -> None:
        self.code = code
        self.entry = CATALOGUE[code]
        self.details = {k: clip_echo(v, limit=MAX_DETAIL_CHARS) if isinstance(v, str) else v for k, v in details.items()}
        self.retry_after_sec: float | None = self.entry.retry_after_sec
        self.extra_metadata: tuple[tuple[str, str], ...] = ()
        super().__init__(self.message)

    def with_retry_after(self, seconds: float) -> SttError:
        """Replace the catalogue's retry hint with a computed one (e.g. the rate limiter's wait)."""
        self.retry_after_sec = seconds
        return self

    def with_metadata(self, *pairs: tuple[str, str]) -> SttError:
        """Add trailing metadata of this error's own (e.g. ``stt-drain-truncated-at-sec``)."""
        self.extra_metadata = (*self.extra_metadata, *pairs)
        return self

    @property
    def status(self) -> grpc.StatusCode:
        return self.entry.status

    @property
    def message(self) -> str:
        return f"{self.code.value}: {self.entry.template.format_map(_LenientDetails(self.details))}"

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        """``stt-error-code`` always, ``stt-retry-after-sec`` when a retry makes sense."""
        pairs = [(ERROR_CODE_KEY, self.code.value)]
        if self.retry_after_sec is not None:
            pairs.append((RETRY_AFTER_KEY, f"{self.retry_after_sec:g}"))
        pairs.extend(self.extra_metadata)
        return tuple(pairs)


def record(error: SttError, metrics: ServerMetrics | None) -> None:
    """Count one error sent to a client."""
    if metrics is not None:
        metrics.record_error(code=error.code.value, grpc_status=error.status.name)


async def abort(
    context: grpc.aio.ServicerContext,
    error: SttError,
    *,
    metrics: ServerMetrics | None,
    extra_metadata: Sequence[tuple[str, str]] = (),
) -> NoReturn:
    """End the call with ``error``: its status, message and trailing metadata (plus ``extra_metadata``)."""
    record(error, metrics)
    await context.abort(error.status, error.message, trailing_metadata=(*extra_metadata, *error.trailing_metadata()))
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


def from_rpc_error(error: grpc.RpcError) -> tuple[str | None, str]:
    """Client side: the catalogue code (or ``None``) and the message of a failed call."""
    code = None
    trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == ERROR_CODE_KEY:
            code = str(value)
    details = error.details() if hasattr(error, "details") else str(error)
    return code, details or ""
