"""``POST /v1/audio/transcriptions`` input: the multipart form read within limits, then validated.

``read_form`` is the I/O edge: it streams the body, stops at ``server.rest_max_upload_bytes``
(ERR1041, HTTP 413), and tells a client that vanished mid-upload (ERR1045) from a body that is not
multipart at all (ERR1044). ``parse_fields`` is pure: form fields in, a ``TranscriptionParams`` or
a catalogue error naming the field out. Unknown fields (``include[]``, ``chunking_strategy`` and
the like that newer SDKs send) are ignored, as OpenAI's Whisper endpoint does.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from stt_server.errors import ErrorCode, SttError

RESPONSE_FORMATS: Final = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES: Final = ("segment", "word")
MODEL_ALIASES: Final = ("whisper-1",)
MAX_FIELD_BYTES: Final = 64 * 1024  # a text field (the prompt is the longest one OpenAI documents)
MAX_FIELDS: Final = 64
# Past the limit we keep reading (and dropping) this much more, so a client that is still sending
# hears our 413 instead of a reset connection; a larger body is cut off.
DRAIN_AFTER_LIMIT_BYTES: Final = 32 * 1024 * 1024
DRAIN_TIMEOUT_SEC: Final = 10.0
_CHUNK: Final = 64 * 1024


@dataclass(frozen=True)
class UploadedForm:
    """What the body held: text fields (repeated names keep every value) and the file's bytes."""

    fields: Mapping[str, Sequence[str]]
    file: bytes | None
    filename: str


@dataclass(frozen=True)
class TranscriptionParams:
    """The validated request (``model`` already resolved to the served model's name)."""

    model: str
    language: str
    prompt: str
    response_format: str
    temperature: float
    words: bool
    stream: bool


def model_ids(served: str) -> tuple[str, ...]:
    """The names a client may send for the served model: its own, then the aliases."""
    return (served, *(alias for alias in MODEL_ALIASES if alias != served))


def _one(fields: Mapping[str, Sequence[str]], name: str, default: str = "") -> str:
    values = fields.get(name) or ()
    return values[-1].strip() if values else default


def parse_fields(fields: Mapping[str, Sequence[str]], *, served_model: str) -> TranscriptionParams:
    """Validate the text fields of one transcription request (pure)."""
    model = _one(fields, "model", served_model)
    if model not in model_ids(served_model):
        raise SttError(ErrorCode.UNKNOWN_MODEL, model=model, served=", ".join(model_ids(served_model)))
    response_format = _one(fields, "response_format", "json")
    if response_format not in RESPONSE_FORMATS:
        raise SttError(ErrorCode.INVALID_FIELD, param="response_format",
                       reason=f"{response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}")
    raw_temperature = _one(fields, "temperature", "0")
    try:
        temperature = float(raw_temperature)
    except ValueError:
        temperature = math.nan
    if not 0.0 <= temperature <= 1.0:
        raise SttError(ErrorCode.INVALID_FIELD, param="temperature",
                       reason=f"{raw_temperature!r} is not a number from 0 to 1")
    granularities = [*(fields.get("timestamp_granularities[]") or ()), *(fields.get("timestamp_granularities") or ())]
    for value in granularities:
        if value.strip() not in GRANULARITIES:
            raise SttError(ErrorCode.INVALID_FIELD, param="timestamp_granularities[]",
                           reason=f"{value!r} is not one of {', '.join(GRANULARITIES)}")
    raw_stream = _one(fields, "stream", "false").lower()
    if raw_stream not in ("true", "false", "1", "0", ""):
        raise SttError(ErrorCode.INVALID_FIELD, param="stream", reason=f"{raw_stream!r} is not true or false")
    return TranscriptionParams(
        model=served_model, language=_one(fields, "language"), prompt=_one(fields, "prompt"),
        response_format=response_format, temperature=temperature,
        # word timings change the decode (timestamps on), so only when they will be returned
        words=response_format == "verbose_json" and any(v.strip() == "word" for v in granularities),
        stream=raw_stream in ("true", "1"))


async def read_form(request: web.Request, *, max_upload_bytes: int) -> UploadedForm:
    """Stream the multipart body within the upload limit (``SttError`` on every way it can fail)."""
    if request.content_type != "multipart/form-data":
        raise SttError(ErrorCode.NOT_MULTIPART, reason=f"got Content-Type {request.content_type or 'none'!r}")
    limit = max_upload_bytes + MAX_FIELDS * 1024  # room for the form's own headers and small fields
    if request.content_length is not None and request.content_length > limit:
        await drain_body(request, request.content_length)
        raise SttError(ErrorCode.UPLOAD_TOO_LARGE, limit=max_upload_bytes)
    try:
        return await _read_parts(request, max_upload_bytes=max_upload_bytes)
    except (ConnectionError, aiohttp.ClientError, HttpProcessingError) as exc:
        raise SttError(ErrorCode.UPLOAD_INCOMPLETE, reason=type(exc).__name__) from exc
    except (ValueError, RuntimeError, AssertionError) as exc:  # aiohttp's multipart parser on bad syntax
        raise SttError(ErrorCode.NOT_MULTIPART, reason=str(exc) or type(exc).__name__) from exc


async def _read_parts(request: web.Request, *, max_upload_bytes: int) -> UploadedForm:
    reader = await request.multipart()
    fields: dict[str, list[str]] = {}
    file: bytes | None = None
    filename = ""
    count = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise SttError(ErrorCode.NOT_MULTIPART, reason="nested multipart bodies are not accepted")
        count += 1
        if count > MAX_FIELDS:
            raise SttError(ErrorCode.NOT_MULTIPART, reason=f"more than {MAX_FIELDS} form fields")
        if part.name == "file":
            file = await _read_capped(part, max_upload_bytes, request=request)
            filename = part.filename or ""
            continue
        raw = await _read_capped(part, MAX_FIELD_BYTES, field=part.name or "")
        fields.setdefault(part.name or "", []).append(raw.decode("utf-8", errors="replace"))
    return UploadedForm(fields=fields, file=file, filename=filename)


async def _read_capped(part: BodyPartReader, cap: int, *, request: web.Request | None = None,
                       field: str = "file") -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        data += chunk
        if len(data) > cap:
            if request is None:
                raise SttError(ErrorCode.INVALID_FIELD, param=field[:64], reason=f"longer than {cap} bytes")
            await drain_body(request, None)
            raise SttError(ErrorCode.UPLOAD_TOO_LARGE, limit=cap)
    return bytes(data)


async def drain_body(request: web.Request, announced: int | None) -> None:
    """Read and drop the rest of a refused body (bounded), so the client sees the answer."""
    if announced is not None and announced > DRAIN_AFTER_LIMIT_BYTES:
        return  # too much to swallow: the answer goes out with Connection: close
    dropped = 0
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_SEC):
            while dropped <= DRAIN_AFTER_LIMIT_BYTES and (chunk := await request.content.read(_CHUNK)):
                dropped += len(chunk)
    except (TimeoutError, ConnectionError, aiohttp.ClientError, HttpProcessingError):
        pass  # the connection is closed after the answer either way
