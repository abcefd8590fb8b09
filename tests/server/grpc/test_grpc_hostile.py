"""Issue 13: hostile input and drain. Corrupt bytes, oversized echoes, truncation, nothing lost silently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import grpc
import numpy as np
import pytest
from grpc_calls import Request, audio_request, config_request, raw_stream, wait_for
from grpc_fakes import FakeEngine
from grpc_harness import assert_no_leaks, make_config, running_server, tone
from stt_server.app import SttServerApp
from stt_server.client import metadata_dict, streaming_config
from stt_server.engine.types import RecognitionResult, StreamOptions
from stt_server.proto_gen import stt_pb2

INVALID = grpc.StatusCode.INVALID_ARGUMENT
CORRUPT = b"\xff\xff\xff\xff\x0f"  # a varint tag that never ends: not a protobuf message
_STREAM = "/sttfleet.v1.SpeechToText/StreamingRecognize"


async def raw_bytes_stream(target: str, messages: Sequence[bytes]) -> tuple[grpc.StatusCode, str, dict[str, str],
                                                                            list[stt_pb2.StreamingRecognizeResponse]]:
    """One StreamingRecognize whose messages are these exact bytes (identity serializer)."""
    async with grpc.aio.insecure_channel(target) as channel:
        method = channel.stream_stream(_STREAM, request_serializer=None,
                                       response_deserializer=stt_pb2.StreamingRecognizeResponse.FromString)

        async def generate() -> AsyncIterator[bytes]:
            for message in messages:
                yield message

        call = method(generate())
        responses = []
        try:
            async for response in call:
                responses.append(response)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or "", metadata_dict(exc.trailing_metadata()), responses
        return (await call.code(), await call.details() or "", metadata_dict(await call.trailing_metadata()),
                responses)


async def raw_unary(target: str, method: str, payload: bytes) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(f"/sttfleet.v1.SpeechToText/{method}", request_serializer=None,
                                   response_deserializer=None)
        try:
            await call(payload)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or "", metadata_dict(exc.trailing_metadata())
        return grpc.StatusCode.OK, "", {}


def _finals(responses: Sequence[stt_pb2.StreamingRecognizeResponse]) -> list[stt_pb2.StreamingRecognitionResult]:
    return [r for resp in responses for r in resp.results if r.is_final]


# --- defect 1: a corrupt message mid-stream is an error, not a half-close ---------------------------

async def test_corrupt_message_mid_stream_is_err1025_without_final() -> None:
    pcm = tone(4.0).pcm
    cut = int(2.4 * 16000) * 2
    messages = [config_request().SerializeToString(), Request(audio_content=pcm[:cut]).SerializeToString(),
                CORRUPT, Request(audio_content=pcm[cut:]).SerializeToString()]
    async with running_server() as server:
        code, details, trailing, responses = await raw_bytes_stream(server.target, messages)
        assert (code, trailing.get("stt-error-code")) == (INVALID, "ERR1025"), details
        assert "malformed message" in details and "message 3" in details
        assert not _finals(responses), "nothing may be finalised after a malformed message"
        assert server.gauge("stt_errors_total", {"code": "ERR1025", "grpc_status": "INVALID_ARGUMENT"}) == 1
        assert server.gauge("stt_grpc_requests_total",
                            {"method": "StreamingRecognize", "grpc_status": "INVALID_ARGUMENT", "protocol": "grpc"}) == 1
        assert not server.gauge("stt_grpc_requests_total", {"method": "StreamingRecognize", "grpc_status": "OK", "protocol": "grpc"})
        await assert_no_leaks(server)


async def test_corrupt_first_message_is_err1025_not_err1007() -> None:
    async with running_server() as server:
        code, details, trailing, _ = await raw_bytes_stream(server.target, [CORRUPT])
        assert (code, trailing.get("stt-error-code")) == (INVALID, "ERR1025"), details
        await assert_no_leaks(server)


# --- defect 5: malformed unary requests ------------------------------------------------------------

@pytest.mark.parametrize("method", ["Recognize", "CreateSession", "GetServerInfo"])
async def test_malformed_unary_is_err1025_one_warning_and_counted(
    method: str, caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_server() as server:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            code, details, trailing = await raw_unary(server.target, method, CORRUPT)
        assert (code, trailing.get("stt-error-code")) == (INVALID, "ERR1025"), details
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
        line = warnings[0].getMessage() + str(getattr(warnings[0], "reason", ""))
        assert warnings[0].exc_info is None and "malformed" in line
        assert server.gauge("stt_errors_total", {"code": "ERR1025", "grpc_status": "INVALID_ARGUMENT"}) == 1
        assert server.gauge("stt_grpc_requests_total", {"method": method, "grpc_status": "INVALID_ARGUMENT", "protocol": "grpc"}) == 1


# --- defect 2: a drain lets unary Recognize calls in flight finish ---------------------------------

class SlowRecognizeEngine(FakeEngine):
    """Recognize takes ``seconds`` (a long clip on a busy CPU)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.recognize_started = asyncio.Event()

    async def recognize(self, audio: np.ndarray, *, options: StreamOptions) -> list[RecognitionResult]:
        self.recognize_started.set()
        await asyncio.sleep(self.seconds)
        return await super().recognize(audio, options=options)


async def test_drain_lets_inflight_recognize_finish() -> None:
    engine = SlowRecognizeEngine(seconds=2.5)
    app = SttServerApp(make_config({"server": {"drain_grace_sec": 8.0}}), engine=engine)
    serving = asyncio.create_task(app.serve())
    try:
        await asyncio.wait_for(app.state.ready.wait(), timeout=10)
        async with app_client(app) as client:
            call = asyncio.create_task(client.recognize(tone(1.0)))
            await asyncio.wait_for(engine.recognize_started.wait(), timeout=10)
            app.request_shutdown()
            reply = await asyncio.wait_for(call, timeout=15)
        assert reply.results and reply.results[0].alternatives[0].transcript.startswith("fake ")
        await asyncio.wait_for(serving, timeout=15)
    finally:
        if not serving.done():
            serving.cancel()
        await app.stop()


def app_client(app: SttServerApp):  # type: ignore[no-untyped-def]
    from stt_server.client import SttClient

    return SttClient(f"127.0.0.1:{app.grpc_port}")


# --- defect 7: a stream cut by a drain says so ------------------------------------------------------

async def test_drain_cut_stream_gets_final_then_err1026_with_resume_point() -> None:
    engine = FakeEngine()
    app = SttServerApp(make_config({"server": {"drain_grace_sec": 1.0}}), engine=engine)
    keep_talking = asyncio.Event()
    keep_talking.set()
    serving = asyncio.create_task(app.serve())
    try:
        await asyncio.wait_for(app.state.ready.wait(), timeout=10)

        async def endless() -> AsyncIterator[Request]:
            yield config_request()
            while keep_talking.is_set():
                yield audio_request(3200)
                await asyncio.sleep(0.05)

        stream = asyncio.create_task(raw_stream(f"127.0.0.1:{app.grpc_port}", endless()))
        await wait_for(lambda: engine.all_streams and engine.all_streams[0].samples > 0)
        app.request_shutdown()
        outcome = await asyncio.wait_for(stream, timeout=10)
        keep_talking.clear()
        assert (outcome.code, outcome.error_code) == (grpc.StatusCode.UNAVAILABLE, "ERR1026"), outcome.details
        at_sec = float(outcome.trailing["stt-drain-truncated-at-sec"])
        finals = _finals(outcome.responses)
        assert len(finals) == 1, "the final for what was heard comes before the error"
        assert at_sec == pytest.approx(engine.all_streams[0].samples / 16000, abs=1e-3) and at_sec > 0
        await asyncio.wait_for(serving, timeout=10)
    finally:
        keep_talking.clear()
        if not serving.done():
            serving.cancel()
        await app.stop()


# --- defect 8: too much audio still gets its final -------------------------------------------------

async def test_stream_too_long_finalises_then_err1006() -> None:
    async with running_server({"server": {"max_stream_duration_sec": 1.0}}) as server:
        requests = [config_request()] + [audio_request(6400) for _ in range(8)]  # 1.6 s of audio
        outcome = await raw_stream(server.target, requests)
        assert (outcome.code, outcome.error_code) == (grpc.StatusCode.OUT_OF_RANGE, "ERR1006")
        finals = _finals(outcome.responses)
        assert len(finals) == 1 and finals[0].alternatives[0].transcript.startswith("fake ")
        await assert_no_leaks(server)


# --- defect 9: CreateSession refuses what the stream would refuse ----------------------------------

@pytest.mark.parametrize(("field", "value"), [("speech_start_ms", 5001), ("end_silence_ms", 10_001),
                                              ("max_utterance_sec", 31.0), ("max_utterance_sec", float("nan"))])
async def test_create_session_validates_endpointing(field: str, value: float) -> None:
    config = streaming_config()
    setattr(config.config.endpointing, field, value)
    async with running_server() as server:
        code, details, trailing = await raw_unary(
            server.target, "CreateSession", stt_pb2.CreateSessionRequest(streaming_config=config).SerializeToString())
        assert (code, trailing.get("stt-error-code")) == (INVALID, "ERR1022"), details
        assert field in details
        assert len(server.app.servicer.sessions) == 0


def test_create_session_bounds_match_the_engine() -> None:
    """Every endpointing value stream_config accepts, the engine accepts too (and the edges agree)."""
    from prometheus_client import CollectorRegistry
    from stt_server.config import build_config
    from stt_server.engine.engine import Engine
    from stt_server.errors import SttError
    from stt_server.grpc_service import stream_config
    from stt_server.metrics import ServerMetrics

    server_config = build_config({})
    engine = Engine(config=server_config, metrics=ServerMetrics(CollectorRegistry()))
    for field, values in (("speech_start_ms", (0, 5000, 5001)), ("end_silence_ms", (50, 10_000, 10_001)),
                          ("max_utterance_sec", (1.0, 30.0, 30.5))):
        for value in values:
            config = stt_pb2.RecognitionConfig()
            setattr(config.endpointing, field, value)
            try:
                parsed = stream_config.parse_recognition_config(config, server_config)
            except SttError:
                parsed = None
            if parsed is not None:
                engine.stream_settings(parsed.options)  # raises if the stream would refuse it later
            assert (parsed is None) == (value in (5001, 10_001, 30.5)), (field, value)


# --- defect 10: client strings echoed are capped ---------------------------------------------------

async def test_long_language_code_is_not_echoed_in_full(caplog: pytest.LogCaptureFixture) -> None:
    huge = "x" * 10_000 + "\n\x1b[31m"
    async with running_server() as server:
        with caplog.at_level(logging.INFO):
            outcome = await raw_stream(server.target, [config_request(language_code=huge), audio_request(3200)])
        assert (outcome.code, outcome.error_code) == (INVALID, "ERR1022")
        assert len(outcome.details) < 400 and "chars)" in outcome.details
        assert all(len(r.getMessage()) < 500 for r in caplog.records)
        assert not any("\x1b" in r.getMessage() for r in caplog.records)
