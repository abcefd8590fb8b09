"""Recognize's own limits and hostile float audio, through a real gRPC server around a fake engine.

Issue 13 defect 3 (NaN/Inf float WAVs) and issue 14 section 3 (upload size, duration and in-flight
limits): each is refused with its catalogue code before the engine sees any audio.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_fakes import FakeEngine
from grpc_harness import running_server, tone
from prometheus_client import CollectorRegistry
from stt_server.client import SttClientError, WavAudio
from stt_server.engine.types import RecognitionResult, StreamOptions
from stt_server.errors import ErrorCode, SttError
from stt_server.grpc_service.audio_input import decode_whole
from stt_server.grpc_service.stream_config import AudioFormat
from stt_server.metrics import ServerMetrics
from stt_server.proto_gen import stt_pb2, stt_pb2_grpc


def float_wav(samples: np.ndarray, *, rate: int = 16_000) -> bytes:
    data = np.asarray(samples, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


async def recognize_wav(target: str, data: bytes) -> stt_pb2.RecognizeResponse:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = stt_pb2_grpc.SpeechToTextStub(channel)
        return await stub.Recognize(stt_pb2.RecognizeRequest(
            config=stt_pb2.RecognitionConfig(encoding=stt_pb2.WAV), audio_content=data))


def code_of(error: grpc.aio.AioRpcError) -> str:
    return dict(error.trailing_metadata() or ()).get("stt-error-code", "")


async def test_a_nan_float_wav_is_refused_before_the_engine() -> None:
    audio = np.zeros(16_000 * 4, np.float32)
    audio[100:200] = np.nan
    async with running_server() as server:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await recognize_wav(server.target, float_wav(audio))
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert code_of(caught.value) == "ERR1031"
        assert "100 non-finite samples" in (caught.value.details() or "")
        assert server.engine.recognized == []
        errors = server.gauge("stt_errors_total", {"code": "ERR1031", "grpc_status": "INVALID_ARGUMENT"})
        assert errors == 1.0


async def test_a_1e30_float_wav_reaches_the_engine_in_range() -> None:
    t = np.arange(16_000) / 16_000
    audio = (np.sin(2 * np.pi * 300 * t) * 1e30).astype(np.float32)
    async with running_server() as server:
        await recognize_wav(server.target, float_wav(audio))
        [decoded] = server.engine.recognized
        assert np.all(np.isfinite(decoded)) and float(np.max(np.abs(decoded))) <= 1.0


async def test_an_upload_over_max_recognize_bytes_is_err1032() -> None:
    async with running_server({"limits": {"max_recognize_bytes": 32_000}}) as server, server.client() as client:
        await client.recognize(tone(1.0))  # exactly 32,000 bytes: accepted
        with pytest.raises(SttClientError) as caught:
            await client.recognize(tone(1.01))
        assert (caught.value.status, caught.value.error_code) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "ERR1032")
        assert "limits.max_recognize_bytes=32000" in caught.value.message
        assert len(server.engine.recognized) == 1


async def test_audio_over_max_recognize_duration_is_err1033_for_pcm_and_wav() -> None:
    async with running_server({"limits": {"max_recognize_duration_sec": 2.0}}) as server, \
            server.client() as client:
        await client.recognize(tone(2.0, rate=8000))
        with pytest.raises(SttClientError) as caught:
            await client.recognize(tone(2.5, rate=8000))
        assert (caught.value.status, caught.value.error_code) == (grpc.StatusCode.OUT_OF_RANGE, "ERR1033")
        assert "2.5 s exceeds limits.max_recognize_duration_sec=2" in caught.value.message
        with pytest.raises(grpc.aio.AioRpcError) as wav_error:
            await recognize_wav(server.target, float_wav(np.zeros(3 * 24_000, np.float32), rate=24_000))
        assert code_of(wav_error.value) == "ERR1033"
        assert len(server.engine.recognized) == 1


def test_the_duration_is_checked_before_any_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    from stt_server.grpc_service import audio_input

    def no_decoding(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decoded an over-long upload")

    monkeypatch.setattr(audio_input, "decode_audio_bytes", no_decoding)
    monkeypatch.setattr(audio_input, "decode_wav", no_decoding)
    with pytest.raises(SttError) as caught:
        decode_whole(bytes(64_002), AudioFormat(encoding="linear16", sample_rate_hz=16_000, channels=1),
                     max_duration_sec=2.0)
    assert caught.value.code is ErrorCode.RECOGNIZE_TOO_LONG


class SlowEngine(FakeEngine):
    """The fake engine, but recognize waits until released (a long decode in progress)."""

    def __init__(self) -> None:
        super().__init__(metrics=ServerMetrics(CollectorRegistry()))
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def recognize(self, audio: np.ndarray, *, options: StreamOptions) -> list[RecognitionResult]:
        self.started.set()
        await self.release.wait()
        return []


async def test_concurrent_uploads_past_the_inflight_budget_get_a_retryable_err1034() -> None:
    engine = SlowEngine()
    async with running_server({"limits": {"max_recognize_inflight_bytes": 100_000}}, engine=engine) as server, \
            server.client() as first, server.client() as second:
        held = asyncio.create_task(first.recognize(WavAudio(bytes(64_000), 16_000)))
        async with asyncio.timeout(10):
            await engine.started.wait()
        with pytest.raises(SttClientError) as caught:
            await second.recognize(WavAudio(bytes(64_000), 16_000))
        assert (caught.value.error_code, caught.value.retry_after_sec) == ("ERR1034", 2.0)
        engine.release.set()
        await held
        await second.recognize(WavAudio(bytes(64_000), 16_000))  # the budget is free again
