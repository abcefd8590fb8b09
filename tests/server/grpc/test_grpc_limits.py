"""Every limit answers with its documented code; other sessions carry on; nothing leaks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_calls import Request, audio_request, config_request, raw_stream, wait_for
from grpc_harness import assert_no_leaks, running_server, tone
from stt_server.client import SttClientError, streaming_config
from stt_server.grpc_service.auth import key_id_for

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_max_sessions_is_err1011_and_others_unaffected() -> None:
    async with running_server({"limits": {"max_sessions": 2}}) as server, server.client() as client:
        first = await client.create_session(streaming_config())
        await client.create_session(streaming_config())
        with pytest.raises(SttClientError) as caught:
            await client.create_session(streaming_config())
        assert (caught.value.status, caught.value.error_code) == (EXHAUSTED, "ERR1011")
        assert caught.value.retry_after_sec == 5
        assert "max sessions reached (2)" in caught.value.message
        assert server.gauge("stt_session_limit_rejects_total") == 1
        inline = await raw_stream(server.target, [config_request(), audio_request(3200)])
        assert inline.error_code == "ERR1011"  # an inline-config stream is a session too
        ok = await raw_stream(server.target, [Request(session_id=first.session_id), audio_request(16000)])
        assert ok.code is grpc.StatusCode.OK and ok.responses
        assert server.gauge("stt_active_sessions") == 1
        assert server.gauge("stt_max_sessions") == 2


async def test_per_key_session_cap_and_hashed_key_metrics(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# mounted secret\nkey-b\n\n")
    overrides = {"auth": {"api_keys": ["key-a"], "api_keys_file": str(keys)},
                 "limits": {"max_sessions_per_api_key": 1}}
    async with running_server(overrides) as server, server.client("key-a") as a, server.client("key-b") as b:
        await a.create_session(streaming_config())
        with pytest.raises(SttClientError) as caught:
            await a.create_session(streaming_config())
        assert (caught.value.status, caught.value.error_code) == (EXHAUSTED, "ERR1012")
        await b.create_session(streaming_config())
        labels = {"key_id": key_id_for("key-a")}
        assert server.gauge("stt_api_key_sessions", labels) == 1
        extra = server.app.metrics_json_extra()["api_key_sessions"]
        assert extra == {key_id_for("key-a"): 1, key_id_for("key-b"): 1}
        assert "key-a" not in str(extra)
        assert server.gauge("stt_rate_limit_blocks_total", {"limit": "sessions_per_key"}) == 1


async def test_rate_limit_per_key() -> None:
    overrides = {"auth": {"api_keys": ["k1", "k2"]}, "limits": {"requests_per_minute_per_api_key": 3}}
    async with running_server(overrides) as server, server.client("k1") as one, server.client("k2") as two:
        for _ in range(3):
            session = await one.create_session(streaming_config())
        with pytest.raises(SttClientError) as caught:
            await one.create_session(streaming_config())
        assert (caught.value.status, caught.value.error_code) == (EXHAUSTED, "ERR1013")
        assert caught.value.retry_after_sec is not None and 0 < caught.value.retry_after_sec <= 20
        await two.create_session(streaming_config())  # another key has its own bucket
        refused = await raw_stream(server.target, [Request(session_id=session.session_id)],
                                   metadata=[("x-api-key", "k1")])
        assert refused.error_code == "ERR1013"


@pytest.mark.parametrize(("metadata", "code"), [([], "ERR1018"), ([("x-api-key", "wrong")], "ERR1019"),
                                                 ([("authorization", "Bearer wrong")], "ERR1019")])
async def test_api_keys_required(metadata: list[tuple[str, str]], code: str) -> None:
    async with running_server({"auth": {"api_keys": ["secret-key"]}}) as server:
        outcome = await raw_stream(server.target, [config_request(), audio_request(3200)], metadata=metadata)
        assert (outcome.code, outcome.error_code) == (grpc.StatusCode.UNAUTHENTICATED, code)
        assert "secret-key" not in outcome.details
        ok = await raw_stream(server.target, [config_request(), audio_request(3200)],
                              metadata=[("authorization", "Bearer secret-key")])
        assert ok.code is grpc.StatusCode.OK
        await assert_no_leaks(server)


async def test_stream_buffer_cap() -> None:
    async with running_server({"limits": {"max_stream_buffer_bytes": 32000}}) as server:
        server.engine.release_buffers = False
        async with server.client() as client:
            outcome = await client.stream(tone(2.0))
            assert outcome.error is not None
            assert (outcome.error.status, outcome.error.error_code) == (EXHAUSTED, "ERR1014")
            assert outcome.error.retry_after_sec == 1
        await assert_no_leaks(server)


async def test_total_buffer_cap_and_recovery() -> None:
    overrides = {"limits": {"max_total_buffer_bytes": 40000}}
    async with running_server(overrides) as server, server.client() as client:
        server.engine.release_buffers = False
        outcome = await client.stream(tone(2.0))
        assert outcome.error is not None and outcome.error.error_code == "ERR1015"
        await assert_no_leaks(server)
        server.engine.release_buffers = True
        assert (await client.stream(tone(2.0))).error is None  # buffers freed: service resumes


async def _hold_open(release: asyncio.Event, first: Request, seconds: float) -> AsyncIterator[Request]:
    yield first
    yield audio_request(int(seconds * 32000))
    await release.wait()


async def test_decode_queue_cap_rejects_final_not_the_other_stream() -> None:
    async with running_server({"limits": {"max_decode_pending": 1}}) as server:
        engine = server.engine
        engine.gate.clear()  # every decode blocks until the gate opens
        release = asyncio.Event()
        holder = asyncio.create_task(raw_stream(server.target, _hold_open(release, config_request(), 0.6)))
        await wait_for(lambda: engine.pending == 1)
        blocked = await raw_stream(server.target, [config_request(), audio_request(3200)])
        assert (blocked.code, blocked.error_code) == (EXHAUSTED, "ERR1016")
        engine.gate.set()
        release.set()
        held = await holder
        assert held.code is grpc.StatusCode.OK and any(r.results for r in held.responses)
        await assert_no_leaks(server)


async def test_idle_timeout() -> None:
    async with running_server({"limits": {"session_idle_timeout_sec": 0.3}}) as server:
        release = asyncio.Event()
        try:
            outcome = await asyncio.wait_for(
                raw_stream(server.target, _hold_open(release, config_request(), 0.1)), timeout=10)
        finally:
            release.set()
        assert (outcome.code, outcome.error_code) == (grpc.StatusCode.DEADLINE_EXCEEDED, "ERR1017")
        await assert_no_leaks(server)


async def test_client_vanishing_mid_decode_frees_everything() -> None:
    async with running_server() as server, grpc.aio.insecure_channel(server.target) as channel:
        from stt_server.proto_gen import stt_pb2_grpc

        engine = server.engine
        engine.gate.clear()
        release = asyncio.Event()
        call = stt_pb2_grpc.SpeechToTextStub(channel).StreamingRecognize(
            _hold_open(release, config_request(), 1.0))
        await wait_for(lambda: engine.pending == 1)  # a decode is in flight
        call.cancel()
        await wait_for(lambda: not server.app.servicer.streams)
        assert engine.all_streams[0].closed
        await assert_no_leaks(server)
        engine.gate.set()
        release.set()
        # the server keeps serving others
        async with server.client() as client:
            assert (await client.stream(tone(0.6))).error is None


async def test_draining_refuses_new_work() -> None:
    async with running_server() as server, server.client() as client:
        server.app.state.mark_draining()
        with pytest.raises(SttClientError) as caught:
            await client.create_session(streaming_config())
        assert (caught.value.status, caught.value.error_code) == (grpc.StatusCode.UNAVAILABLE, "ERR1020")
        assert caught.value.retry_after_sec == 1
        outcome = await client.stream(tone(0.5), use_session=False)
        assert outcome.error is not None and outcome.error.error_code == "ERR1020"
        assert not server.app.health().ready
