"""Every malformed input gets its catalogue code, and leaves nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_calls import Request, audio_request, config_request, raw_stream, wait_for
from grpc_harness import assert_no_leaks, running_server, tone
from stt_server.client import SttClientError, streaming_config
from stt_server.proto_gen import stt_pb2

INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def _talk_until(release: asyncio.Event) -> AsyncIterator[Request]:
    yield config_request()
    while not release.is_set():
        yield audio_request(3200)
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("requests", "code", "status"),
    [
        ([Request()], "ERR1001", INVALID),
        ([audio_request(3200)], "ERR1002", INVALID),
        ([config_request(), audio_request(3200), audio_request(3201)], "ERR1003", INVALID),
        ([config_request(sample_rate_hz=12345), audio_request(3200)], "ERR1004", INVALID),
        ([config_request(channels=9)], "ERR1004", INVALID),
        ([config_request(language_code="de")], "ERR1022", INVALID),
        ([config_request()], "ERR1007", INVALID),
        ([], "ERR1007", INVALID),
        ([Request(session_id="no-such-session")], "ERR1008", grpc.StatusCode.NOT_FOUND),
        ([config_request(), audio_request(3200), config_request()], "ERR1024", INVALID),
    ],
    ids=["no-oneof", "audio-first", "odd-bytes", "bad-rate", "bad-channels", "bad-language",
         "config-only", "nothing", "unknown-session", "config-after-audio"],
)
async def test_malformed_stream(requests: list[Request], code: str, status: grpc.StatusCode) -> None:
    async with running_server() as server:
        release = asyncio.Event()
        bystander = asyncio.create_task(raw_stream(server.target, _talk_until(release)))
        await wait_for(lambda: server.app.servicer.streams)
        outcome = await raw_stream(server.target, requests)
        release.set()
        assert (await bystander).code is grpc.StatusCode.OK  # another session is unaffected
        assert (outcome.code, outcome.error_code) == (status, code)
        assert outcome.details.startswith(code)
        assert "stt-decode-total-sec" in outcome.trailing  # timing trailers on errors too
        assert "stt-retry-after-sec" not in outcome.trailing  # fixing the request is the remedy
        assert server.gauge("stt_errors_total", {"code": code, "grpc_status": status.name}) == 1
        await assert_no_leaks(server)


async def test_wav_stream_is_accepted_and_bad_wav_rejected() -> None:
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(22050)
        handle.writeframes(tone(1.0, rate=22050).pcm)
    data = buffer.getvalue()
    wav_config = stt_pb2.StreamingRecognitionConfig(config=stt_pb2.RecognitionConfig(encoding=stt_pb2.WAV))
    # the header is split across messages and a sample straddles two messages
    chunks = [data[:30], data[30:1001], data[1001:]]
    async with running_server() as server:
        ok = await raw_stream(server.target, [Request(streaming_config=wav_config)]
                              + [Request(audio_content=c) for c in chunks])
        assert ok.code is grpc.StatusCode.OK
        assert abs(server.engine.all_streams[0].samples - 16000) <= 200
        bad = await raw_stream(server.target, [Request(streaming_config=wav_config), audio_request(3200)])
        assert (bad.code, bad.error_code) == (INVALID, "ERR1023")


async def test_oversized_message() -> None:
    async with running_server({"server": {"max_message_bytes": 65536}}) as server:
        outcome = await raw_stream(server.target, [config_request(), audio_request(3200), audio_request(65538)])
        assert (outcome.code, outcome.error_code) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "ERR1005")
        # far past the limit gRPC refuses the message itself, still RESOURCE_EXHAUSTED
        huge = await raw_stream(server.target, [config_request(), audio_request(65536 + 2 * 1024 * 1024)])
        assert huge.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        await assert_no_leaks(server)


async def test_stream_too_long() -> None:
    async with running_server({"server": {"max_stream_duration_sec": 1.0}}) as server, server.client() as client:
        outcome = await client.stream(tone(1.5))
        assert outcome.error is not None
        assert (outcome.error.status, outcome.error.error_code) == (grpc.StatusCode.OUT_OF_RANGE, "ERR1006")
        assert outcome.partials  # results before the limit were delivered
        await assert_no_leaks(server)


async def test_expired_and_reused_sessions() -> None:
    async with running_server({"limits": {"session_ttl_sec": 10}}) as server, server.client() as client:
        registry = server.app.servicer.sessions
        now = [1000.0]
        registry.clock = lambda: now[0]
        stale = await client.create_session(streaming_config())
        now[0] += 11
        outcome = await raw_stream(server.target, [Request(session_id=stale.session_id), audio_request(3200)])
        assert (outcome.code, outcome.error_code) == (grpc.StatusCode.NOT_FOUND, "ERR1009")
        assert len(registry) == 0  # the expired session no longer counts against limits
        fresh = await client.create_session(streaming_config())

        used = await raw_stream(server.target, [Request(session_id=fresh.session_id), audio_request(3200)])
        assert used.code is grpc.StatusCode.OK
        again = await raw_stream(server.target, [Request(session_id=fresh.session_id), audio_request(3200)])
        assert again.error_code == "ERR1008"  # one stream per session
        await assert_no_leaks(server)


async def test_create_session_rejects_bad_config() -> None:
    async with running_server() as server, server.client() as client:
        with pytest.raises(SttClientError) as caught:
            await client.create_session(streaming_config(sample_rate_hz=7000))
        assert caught.value.error_code == "ERR1004"
        assert caught.value.status is INVALID
        await assert_no_leaks(server)


async def test_recognize_rejections() -> None:
    async with running_server() as server, server.client() as client:
        from stt_server.client import WavAudio

        with pytest.raises(SttClientError) as empty:
            await client.recognize(WavAudio(b"", 16000))
        assert empty.value.error_code == "ERR1007"
        with pytest.raises(SttClientError) as odd:
            await client.recognize(WavAudio(b"\x00" * 321, 16000))
        assert odd.value.error_code == "ERR1003"
