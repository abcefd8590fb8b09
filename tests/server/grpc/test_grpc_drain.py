"""Graceful drain in-process: refuse new work, report not-ready, finalise open streams, stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import grpc
from grpc_calls import Request, audio_request, config_request, raw_stream, wait_for
from grpc_fakes import FakeEngine
from grpc_harness import make_config
from stt_server.app import SttServerApp


async def test_drain_finalises_open_stream_and_stops() -> None:
    engine = FakeEngine()
    app = SttServerApp(make_config({"server": {"drain_grace_sec": 1.0}}), engine=engine)
    keep_talking = asyncio.Event()
    keep_talking.set()
    serving = asyncio.create_task(app.serve())
    try:
        await asyncio.wait_for(app.state.ready.wait(), timeout=10)
        target = f"127.0.0.1:{app.grpc_port}"

        async def endless() -> AsyncIterator[Request]:
            yield config_request()
            while keep_talking.is_set():  # a live microphone: never half-closes by itself
                yield audio_request(3200)
                await asyncio.sleep(0.05)

        stream = asyncio.create_task(raw_stream(target, endless()))
        await wait_for(lambda: app.servicer.streams and engine.all_streams and engine.all_streams[0].samples > 0)
        app.request_shutdown()
        await wait_for(lambda: app.state.draining)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{app.http_port}/health/ready") as reply:
            assert reply.status == 503
        refused = await raw_stream(target, [config_request(), audio_request(3200)])
        assert (refused.code, refused.error_code) == (grpc.StatusCode.UNAVAILABLE, "ERR1020")
        outcome = await asyncio.wait_for(stream, timeout=10)
        keep_talking.clear()
        # the client never half-closed: its final comes first, then ERR1026 says where to resume
        assert (outcome.code, outcome.error_code) == (grpc.StatusCode.UNAVAILABLE, "ERR1026")
        assert float(outcome.trailing["stt-drain-truncated-at-sec"]) > 0
        finals = [r for resp in outcome.responses for r in resp.results if r.is_final]
        assert len(finals) == 1 and finals[0].alternatives[0].transcript.startswith("fake ")
        await asyncio.wait_for(serving, timeout=10)
        assert not app.servicer.streams and len(app.servicer.sessions) == 0
        assert engine.all_streams[0].closed
    finally:
        keep_talking.clear()
        if not serving.done():
            serving.cancel()
        await app.stop()


async def test_drain_without_streams_is_immediate() -> None:
    app = SttServerApp(make_config({"server": {"drain_grace_sec": 30.0}}), engine=FakeEngine())
    serving = asyncio.create_task(app.serve())
    try:
        await asyncio.wait_for(app.state.ready.wait(), timeout=10)
        app.request_shutdown()
        await asyncio.wait_for(serving, timeout=5)  # no open stream: no need to wait the grace out
    finally:
        if not serving.done():
            serving.cancel()
        await app.stop()
