"""Raw gRPC calls for malformed-input tests (the client library only sends well-formed streams)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import grpc
from stt_server.client import metadata_dict, streaming_config
from stt_server.proto_gen import stt_pb2, stt_pb2_grpc

Request = stt_pb2.StreamingRecognizeRequest


@dataclass
class RawOutcome:
    code: grpc.StatusCode
    details: str
    trailing: dict[str, str]
    responses: list[stt_pb2.StreamingRecognizeResponse] = field(default_factory=list)

    @property
    def error_code(self) -> str | None:
        return self.trailing.get("stt-error-code")


def config_request(**kwargs: object) -> Request:
    return Request(streaming_config=streaming_config(**kwargs))  # type: ignore[arg-type]


def audio_request(nbytes: int) -> Request:
    return Request(audio_content=b"\x01\x00" * (nbytes // 2) + b"\x01" * (nbytes % 2))


async def raw_stream(
    target: str, requests: Sequence[Request] | AsyncIterator[Request], *,
    metadata: Sequence[tuple[str, str]] = (),
) -> RawOutcome:
    """Run one StreamingRecognize with exactly these messages; never raises for a gRPC error."""
    async def generate() -> AsyncIterator[Request]:
        if isinstance(requests, Sequence):
            for request in requests:
                yield request
        else:
            async for request in requests:
                yield request

    async with grpc.aio.insecure_channel(target) as channel:
        call = stt_pb2_grpc.SpeechToTextStub(channel).StreamingRecognize(generate(), metadata=tuple(metadata))
        responses = []
        try:
            async for response in call:
                responses.append(response)
        except grpc.aio.AioRpcError as exc:
            return RawOutcome(exc.code(), exc.details() or "", metadata_dict(exc.trailing_metadata()), responses)
        return RawOutcome(await call.code(), await call.details() or "",
                          metadata_dict(await call.trailing_metadata()), responses)


async def wait_for(predicate: object, timeout: float = 5.0) -> None:
    """Poll ``predicate()`` until true (cleanup runs on the server's loop after the call ends)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
