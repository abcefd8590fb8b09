"""Async client library for stt-server: sessions, streaming a WAV (optionally at real time), info.

Used by ``stt-client``, the demo, the bench and the tests. Errors come back as ``SttClientError``
with the server's catalogue code (``stt-error-code``) and retry hint; a stream's responses,
arrival times and trailing metadata (decode timing totals) are collected in ``StreamOutcome``.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import grpc

from stt_server.errors import ERROR_CODE_KEY, RETRY_AFTER_KEY
from stt_server.proto_gen import stt_pb2, stt_pb2_grpc

DEFAULT_CHUNK_MS: Final = 100


@dataclass(frozen=True)
class WavAudio:
    """16-bit PCM from a WAV file."""

    pcm: bytes
    sample_rate_hz: int
    channels: int = 1

    @property
    def duration_sec(self) -> float:
        return len(self.pcm) / (2 * self.channels * self.sample_rate_hz)


def read_wav(path: Path | str) -> WavAudio:
    """Read a 16-bit PCM WAV file (raises ``ValueError`` for anything else)."""
    with wave.open(str(path), "rb") as handle:
        if handle.getsampwidth() != 2:
            raise ValueError(f"{path}: need 16-bit PCM, got {8 * handle.getsampwidth()}-bit")
        return WavAudio(handle.readframes(handle.getnframes()), handle.getframerate(), handle.getnchannels())


class SttClientError(Exception):
    """A failed call: gRPC status, catalogue code (when the server sent one), message, retry hint."""

    def __init__(self, status: grpc.StatusCode, message: str, *, error_code: str | None,
                 retry_after_sec: float | None) -> None:
        self.status = status
        self.message = message
        self.error_code = error_code
        self.retry_after_sec = retry_after_sec
        super().__init__(f"{status.name}: {message}")

    @classmethod
    def from_rpc_error(cls, error: grpc.aio.AioRpcError) -> SttClientError:
        trailing = metadata_dict(error.trailing_metadata())
        retry = trailing.get(RETRY_AFTER_KEY)
        return cls(error.code(), error.details() or "", error_code=trailing.get(ERROR_CODE_KEY),
                   retry_after_sec=float(retry) if retry else None)


def metadata_dict(metadata: Sequence[tuple[str, str | bytes]] | None) -> dict[str, str]:
    return {key: value.decode() if isinstance(value, bytes) else value for key, value in metadata or ()}


@dataclass
class StreamOutcome:
    """Everything one StreamingRecognize call returned."""

    responses: list[stt_pb2.StreamingRecognizeResponse] = field(default_factory=list)
    arrival_sec: list[float] = field(default_factory=list)  # per response, since the first audio was sent
    trailing: dict[str, str] = field(default_factory=dict)
    error: SttClientError | None = None
    session_id: str = ""

    @property
    def finals(self) -> list[stt_pb2.StreamingRecognitionResult]:
        return [r for resp in self.responses for r in resp.results if r.is_final]

    @property
    def partials(self) -> list[stt_pb2.StreamingRecognitionResult]:
        return [r for resp in self.responses for r in resp.results if not r.is_final]

    @property
    def transcript(self) -> str:
        return " ".join(r.alternatives[0].transcript.strip() for r in self.finals if r.alternatives).strip()


def streaming_config(
    *, sample_rate_hz: int = 16000, channels: int = 1, interim_results: bool = True,
    single_utterance: bool = False, language_code: str = "", request_id: str = "",
    word_time_offsets: bool = False,
) -> stt_pb2.StreamingRecognitionConfig:
    """A LINEAR16 streaming config with the usual knobs."""
    return stt_pb2.StreamingRecognitionConfig(
        config=stt_pb2.RecognitionConfig(
            encoding=stt_pb2.LINEAR16, sample_rate_hertz=sample_rate_hz, audio_channel_count=channels,
            language_code=language_code, request_id=request_id, enable_word_time_offsets=word_time_offsets,
        ),
        interim_results=interim_results,
        single_utterance=single_utterance,
    )


def audio_chunks(audio: WavAudio, *, chunk_ms: int = DEFAULT_CHUNK_MS) -> list[bytes]:
    step = max(1, audio.sample_rate_hz * chunk_ms // 1000) * 2 * audio.channels
    return [audio.pcm[i:i + step] for i in range(0, len(audio.pcm), step)]


class SttClient:
    """One channel to one server; use as ``async with SttClient("host:port") as client``."""

    def __init__(self, target: str, *, api_key: str | None = None,
                 root_certificates: bytes | None = None, max_message_bytes: int = 8 * 1024 * 1024) -> None:
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes)]
        if root_certificates is not None:
            creds = grpc.ssl_channel_credentials(root_certificates)
            self._channel = grpc.aio.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        self.stub = stt_pb2_grpc.SpeechToTextStub(self._channel)
        self.metadata: tuple[tuple[str, str], ...] = (("x-api-key", api_key),) if api_key else ()

    async def __aenter__(self) -> SttClient:  # noqa: PYI034
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self._channel.channel_ready(), timeout)

    async def create_session(self, config: stt_pb2.StreamingRecognitionConfig) -> stt_pb2.CreateSessionResponse:
        try:
            return await self.stub.CreateSession(stt_pb2.CreateSessionRequest(streaming_config=config),
                                                 metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            raise SttClientError.from_rpc_error(exc) from None

    async def server_info(self) -> stt_pb2.GetServerInfoResponse:
        try:
            return await self.stub.GetServerInfo(stt_pb2.GetServerInfoRequest(), metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            raise SttClientError.from_rpc_error(exc) from None

    async def recognize(self, audio: WavAudio, *, language_code: str = "") -> stt_pb2.RecognizeResponse:
        config = stt_pb2.RecognitionConfig(encoding=stt_pb2.LINEAR16, sample_rate_hertz=audio.sample_rate_hz,
                                           audio_channel_count=audio.channels, language_code=language_code)
        try:
            return await self.stub.Recognize(stt_pb2.RecognizeRequest(config=config, audio_content=audio.pcm),
                                             metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            raise SttClientError.from_rpc_error(exc) from None

    async def stream(
        self,
        audio: WavAudio,
        *,
        config: stt_pb2.StreamingRecognitionConfig | None = None,
        realtime: bool = False,
        use_session: bool = True,
        chunk_ms: int = DEFAULT_CHUNK_MS,
        on_response: Callable[[stt_pb2.StreamingRecognizeResponse], None] | None = None,
    ) -> StreamOutcome:
        """Stream ``audio`` (paced at real time when asked) and collect what comes back."""
        config = config or streaming_config(sample_rate_hz=audio.sample_rate_hz, channels=audio.channels)
        outcome = StreamOutcome()
        if use_session:
            session = await self.create_session(config)
            outcome.session_id = session.session_id
            first = stt_pb2.StreamingRecognizeRequest(session_id=session.session_id)
        else:
            first = stt_pb2.StreamingRecognizeRequest(streaming_config=config)
        started = time.monotonic()

        async def requests() -> AsyncIterator[stt_pb2.StreamingRecognizeRequest]:
            nonlocal started
            yield first
            started = time.monotonic()
            sent = 0.0
            for chunk in audio_chunks(audio, chunk_ms=chunk_ms):
                if realtime:
                    await asyncio.sleep(max(0.0, started + sent - time.monotonic()))
                yield stt_pb2.StreamingRecognizeRequest(audio_content=chunk)
                sent += len(chunk) / (2 * audio.channels * audio.sample_rate_hz)

        call = self.stub.StreamingRecognize(requests(), metadata=self.metadata)
        try:
            async for response in call:
                outcome.responses.append(response)
                outcome.arrival_sec.append(time.monotonic() - started)
                if on_response is not None:
                    on_response(response)
            outcome.trailing = metadata_dict(await call.trailing_metadata())
        except grpc.aio.AioRpcError as exc:
            outcome.error = SttClientError.from_rpc_error(exc)
            outcome.trailing = metadata_dict(exc.trailing_metadata())
        except asyncio.CancelledError:
            call.cancel()  # tell the server at once, so it frees the stream
            raise
        return outcome
