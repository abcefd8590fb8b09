"""The hostile inputs of the soak run, each with the answers it may get.

An answer is a catalogue code (``ERR1025``), ``OK``, a bare gRPC status name when the server sent no
code (``UNKNOWN`` is never allowed), ``HTTP<status>`` for the control plane (``-nonjson`` appended
when the body is not JSON), ``CANCELLED`` for a client that vanished on purpose, or ``closed`` when
the server hung up on junk bytes.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import grpc

from stt_server.client import metadata_dict, streaming_config
from stt_server.errors import ERROR_CODE_KEY
from stt_server.proto_gen import stt_pb2

CORRUPT: Final = b"\xff\xff\xff\xff\x0f"  # a varint that never ends: no protobuf parser accepts it
SECRET_TOKEN: Final = "soak-secret-bearer-token-must-never-be-echoed"
_SERVICE: Final = "/sttfleet.v1.SpeechToText/"
_Req = stt_pb2.StreamingRecognizeRequest
# the last slot can be taken by the overflow probe for a moment
_FULL: Final = frozenset({"ERR1011"})


@dataclass(frozen=True)
class Outcome:
    answer: str
    detail: str = ""


Runner = Callable[..., Awaitable[Outcome]]


@dataclass(frozen=True)
class HostileCase:
    name: str
    allowed: frozenset[str]
    run: Runner


def _answer(error: grpc.aio.AioRpcError) -> Outcome:
    code = metadata_dict(error.trailing_metadata()).get(ERROR_CODE_KEY)
    return Outcome(code or error.code().name, error.details() or "")


def pcm(seconds: float, *, rng: random.Random) -> bytes:
    """Low noise as LINEAR16 (the server only needs samples; VAD may ignore it)."""
    return bytes(rng.getrandbits(8) & 0x0F if i % 2 == 0 else 0 for i in range(int(seconds * 32000)))


async def stream_bytes(channel: grpc.aio.Channel, messages: Sequence[bytes], *,
                       cancel_after: int | None = None) -> Outcome:
    """One StreamingRecognize whose messages are exactly these bytes."""
    method = channel.stream_stream(_SERVICE + "StreamingRecognize", request_serializer=None,
                                   response_deserializer=stt_pb2.StreamingRecognizeResponse.FromString)
    sent = asyncio.Event()

    async def generate() -> AsyncIterator[bytes]:
        for message in messages:
            yield message
        sent.set()
        if cancel_after is not None:
            await asyncio.sleep(3600)  # stay open: the client vanishes instead of half-closing

    call = method(generate())
    try:
        if cancel_after is not None:
            await sent.wait()
            await asyncio.sleep(0.2)
            call.cancel()
            return Outcome("CANCELLED")
        async for _ in call:
            pass
        code = metadata_dict(await call.trailing_metadata()).get(ERROR_CODE_KEY)
        status = await call.code()
        return Outcome(code or status.name, await call.details() or "")
    except grpc.aio.AioRpcError as exc:
        return _answer(exc)
    except asyncio.CancelledError:
        if cancel_after is not None:
            return Outcome("CANCELLED")
        raise


async def unary_bytes(channel: grpc.aio.Channel, method: str, payload: bytes) -> Outcome:
    call = channel.unary_unary(_SERVICE + method, request_serializer=None, response_deserializer=None)
    try:
        await call(payload, timeout=120)
    except grpc.aio.AioRpcError as exc:
        return _answer(exc)
    return Outcome("OK")


def _config(**kwargs: object) -> bytes:
    return _Req(streaming_config=streaming_config(**kwargs)).SerializeToString()  # type: ignore[arg-type]


def _audio(data: bytes) -> bytes:
    return _Req(audio_content=data).SerializeToString()


async def raw_http(http: str, request: bytes, *, timeout: float = 15.0) -> Outcome:
    """Send raw bytes to the control plane; the answer is its status and whether the body is JSON."""
    host, port = http.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65536), timeout=timeout)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    if not data:
        return Outcome("closed")
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode(errors="replace") if head.count(b" ") else "?"
    if SECRET_TOKEN.encode()[:8] in data:
        return Outcome(f"HTTP{status}-echoed-token", data[:200].decode(errors="replace"))
    try:
        json.loads(body)
    except ValueError:
        return Outcome(f"HTTP{status}-nonjson", body[:200].decode(errors="replace"))
    return Outcome(f"HTTP{status}")


async def raw_tcp(target: str, payload: bytes) -> Outcome:
    """Junk to the gRPC port: the server must hang up (not crash, not echo)."""
    host, port = target.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(payload)
        await writer.drain()
        await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    return Outcome("closed")


def _http_junk(rng: random.Random) -> bytes:
    long_auth = f"Authorization: Bearer {SECRET_TOKEN}{'A' * 12000}\r\n"
    many = "".join(f"X-H{i}: v\r\n" for i in range(200))
    choices = [
        f"GET /metrics HTTP/1.1\r\nHost: x\r\n{long_auth}\r\n",
        f"GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n",
        "BREW /health HTTP/1.1\r\nHost: x\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + "\x00" * 40,
    ]
    return rng.choice(choices).encode("latin-1")


async def _corrupt_mid_stream(*, channel: grpc.aio.Channel, rng: random.Random, **_: object) -> Outcome:
    return await stream_bytes(channel, [_config(), _audio(pcm(0.5, rng=rng)), CORRUPT, _audio(pcm(0.5, rng=rng))])


async def _random_stream(*, channel: grpc.aio.Channel, rng: random.Random, **_: object) -> Outcome:
    messages = [rng.randbytes(rng.randint(0, 64)) for _n in range(rng.randint(1, 5))]
    return await stream_bytes(channel, messages)


async def _mutated_stream(*, channel: grpc.aio.Channel, rng: random.Random, **_: object) -> Outcome:
    messages = [_config(), _audio(pcm(0.3, rng=rng))]
    target = bytearray(messages[rng.randrange(2)][:200])
    for _flip in range(rng.randint(1, 4)):
        target[rng.randrange(len(target))] = rng.getrandbits(8)
    return await stream_bytes(channel, [bytes(target), *messages[1:]])


async def _vanish(*, channel: grpc.aio.Channel, rng: random.Random, **_: object) -> Outcome:
    return await stream_bytes(channel, [_config(), _audio(pcm(1.0, rng=rng))], cancel_after=2)


async def _small_recognize(*, channel: grpc.aio.Channel, rng: random.Random, **_: object) -> Outcome:
    request = stt_pb2.RecognizeRequest(config=stt_pb2.RecognitionConfig(), audio_content=pcm(1.0, rng=rng))
    return await unary_bytes(channel, "Recognize", request.SerializeToString())


def _endpointing_session() -> bytes:
    config = streaming_config()
    config.config.endpointing.end_silence_ms = 60_000
    return stt_pb2.CreateSessionRequest(streaming_config=config).SerializeToString()


def _stream(messages: Callable[[random.Random], list[bytes]]) -> Runner:
    async def run(*, channel: grpc.aio.Channel, rng: random.Random, **_: object) -> Outcome:
        return await stream_bytes(channel, messages(rng))
    return run


def _unary(method: str, payload: Callable[[], bytes]) -> Runner:
    async def run(*, channel: grpc.aio.Channel, **_: object) -> Outcome:
        return await unary_bytes(channel, method, payload())
    return run


async def _http(*, http: str, rng: random.Random, **_: object) -> Outcome:
    return await raw_http(http, _http_junk(rng))


async def _grpc_junk(*, target: str, rng: random.Random, **_: object) -> Outcome:
    return await raw_tcp(target, rng.choice([b"GET / HTTP/1.1\r\n\r\n", rng.randbytes(300),
                                             b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + rng.randbytes(100)]))


# A random message may parse as a valid one: any catalogued client-side code is a fine answer,
# but never UNKNOWN, INTERNAL, the model-error code or OK with nothing said.
ANY_CLIENT_ERROR: Final = frozenset({
    "ERR1001", "ERR1002", "ERR1003", "ERR1004", "ERR1005", "ERR1007", "ERR1008", "ERR1011", "ERR1022",
    "ERR1023", "ERR1024", "ERR1025"})

HOSTILE_CASES: Final[tuple[HostileCase, ...]] = (
    HostileCase("corrupt_mid_stream", frozenset({"ERR1025"}) | _FULL, _corrupt_mid_stream),
    HostileCase("corrupt_first_message", frozenset({"ERR1025"}), _stream(lambda rng: [CORRUPT])),
    HostileCase("random_stream_bytes", ANY_CLIENT_ERROR, _random_stream),
    HostileCase("mutated_stream", ANY_CLIENT_ERROR | {"OK"}, _mutated_stream),
    HostileCase("malformed_recognize", frozenset({"ERR1025"}), _unary("Recognize", lambda: CORRUPT)),
    HostileCase("malformed_create_session", frozenset({"ERR1025"}), _unary("CreateSession", lambda: CORRUPT)),
    HostileCase("endpointing_out_of_range", frozenset({"ERR1022"}), _unary("CreateSession", _endpointing_session)),
    HostileCase("huge_language_code", frozenset({"ERR1022"}),
                _stream(lambda rng: [_config(language_code="x" * 10_000), _audio(b"\0" * 3200)])),
    HostileCase("odd_byte_count", frozenset({"ERR1003"}) | _FULL,
                _stream(lambda rng: [_config(), _audio(b"\1" * 3201)])),
    HostileCase("audio_before_config", frozenset({"ERR1002"}), _stream(lambda rng: [_audio(b"\0" * 3200)])),
    HostileCase("unknown_session", frozenset({"ERR1008"}),
                _stream(lambda rng: [_Req(session_id="no-such-session").SerializeToString()])),
    HostileCase("config_only", frozenset({"ERR1007"}) | _FULL, _stream(lambda rng: [_config()])),
    HostileCase("client_vanishes", frozenset({"CANCELLED"}) | _FULL, _vanish),
    HostileCase("small_recognize", frozenset({"OK"}), _small_recognize),
    HostileCase("http_junk", frozenset({"HTTP400", "HTTP404", "HTTP405", "HTTP401", "HTTP501"}), _http),
    HostileCase("grpc_port_junk", frozenset({"closed"}), _grpc_junk),
)
