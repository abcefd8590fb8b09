"""A load that gives every stt-server dashboard panel something to show, in about half a minute.

Real-time speech streams (stt-bench's workload: synthesized sentences, audio-clock pacing) carry
the traffic, latency, decode and quality panels. Around them, the calls an on-call engineer wants
to see counted: a fifth session on one API key (ERR1012, sessions_per_key), sessions past
max_sessions (ERR1011), a burst past the per-key request rate (requests_per_key), a bad stream
config (INVALID_ARGUMENT), a stream cut off mid-utterance, unary Recognize calls and control-plane
requests. Every refusal is expected: what the caller learns is only what the server counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Final

import aiohttp
from stt_server.bench.streams import run_stream
from stt_server.bench.workload import StreamAudio, speech_variants
from stt_server.client import SttClient, SttClientError, WavAudio, streaming_config

from stt_localfleet.scraped_server import ScrapedServer

STREAMS: Final = 4
ROUNDS: Final = 2
BURST: Final = 36  # past requests_per_minute_per_api_key (30)


@dataclass(frozen=True)
class LoadWindow:
    """Wall-clock seconds (Unix time) the load ran between."""

    start: float
    end: float


def _client(stack: ScrapedServer, api_key: str) -> SttClient:
    """A TLS client on its own API key (limits are per key)."""
    return SttClient(stack.grpc_target, root_certificates=stack.ca_pem, api_key=api_key)


async def _try(call: Awaitable[object]) -> str:
    """Await one call and name how it ended (OK, or the catalogue code / status it was refused with)."""
    try:
        await call
    except SttClientError as exc:
        return exc.error_code or exc.status.name
    return "OK"


async def _streams(stack: ScrapedServer, clips: list[StreamAudio]) -> None:
    async def worker(index: int) -> None:
        async with _client(stack, "load") as client:
            for round_ in range(ROUNDS):
                await run_stream(client, clips[(index + round_) % len(clips)], realtime=True)

    await asyncio.gather(*(worker(i) for i in range(STREAMS)))


async def _refusals(stack: ScrapedServer) -> list[str]:
    """The per-key cap, max_sessions and a bad config, while the streams hold their sessions."""
    outcomes = []
    config = streaming_config()
    async with _client(stack, "load") as load, _client(stack, "hold") as hold:
        outcomes.append(await _try(load.create_session(config)))  # fifth on the key: ERR1012
        for _ in range(3):  # 4 streams + 2 held = max_sessions, the third: ERR1011
            outcomes.append(await _try(hold.create_session(config)))
        outcomes.append(await _try(hold.create_session(streaming_config(sample_rate_hz=1))))
    return outcomes


async def _cut_stream(stack: ScrapedServer, clip: StreamAudio) -> None:
    """A stream abandoned mid-utterance: its queued decodes are cancelled or finish orphaned."""
    async with _client(stack, "cut") as client:
        task = asyncio.create_task(run_stream(client, clip, realtime=True))
        await asyncio.sleep(2.5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _unary_and_http(stack: ScrapedServer, clip: StreamAudio) -> None:
    async with _client(stack, "unary") as client:
        audio = WavAudio(pcm=clip.pcm[: 16000 * 2 * 4], sample_rate_hz=16000)
        for _ in range(2):
            await _try(client.recognize(audio))
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for path in ("/health", "/system", "/metrics.json", "/info", "/nope"):
            async with http.get(stack.http_url + path, ssl=stack.ssl_context()) as response:
                await response.read()


async def _burst(stack: ScrapedServer) -> list[str]:
    async with _client(stack, "burst") as client:
        return [await _try(client.create_session(streaming_config())) for _ in range(BURST)]


async def drive(stack: ScrapedServer) -> tuple[LoadWindow, dict[str, int]]:
    """Run the whole load; returns when it ran and how the side calls ended (outcome -> count)."""
    clips = speech_variants(streams=STREAMS)
    start = time.time()
    streams = asyncio.create_task(_streams(stack, clips))
    await asyncio.sleep(3.0)  # the streams hold their four sessions by now
    outcomes = await _refusals(stack)
    await asyncio.gather(_cut_stream(stack, clips[0]), _unary_and_http(stack, clips[1]))
    outcomes += await _burst(stack)
    await streams
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    return LoadWindow(start=start, end=time.time()), counts
