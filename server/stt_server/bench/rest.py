"""``stt-bench rest``: OpenAI-compatible REST transcriptions next to gRPC ``Recognize``, same audio.

``clients`` concurrent callers each send one long clip per round (a request, wait for its answer);
rounds alternate gRPC, REST, gRPC, REST, ... after one untimed warm-up of each, so a busy
neighbour on a shared host slows both protocols alike. Per protocol: requests per second over its
rounds' wall time, and P50/P90/P99 of the per-request latency. The JSON records the load average
and the CPU count before and after.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from stt_server.bench.stats import Summary, summarize
from stt_server.bench.workload import SAMPLE_RATE, SENTENCES, compose, synthesize
from stt_server.client import SttClient, WavAudio

PROTOCOLS: Final = ("grpc", "rest")


@dataclass(frozen=True)
class ProtocolFigures:
    protocol: str
    requests: int
    wall_sec: float
    latency: Summary
    transcript: str

    @property
    def requests_per_sec(self) -> float:
        return self.requests / self.wall_sec if self.wall_sec else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "requests": self.requests, "wall_sec": round(self.wall_sec, 3),
                "requests_per_sec": round(self.requests_per_sec, 4), "latency_sec": self.latency.to_dict(),
                "transcript": self.transcript}


def long_clip(repeats: int = 2) -> WavAudio:
    """``long``-style audio: the four workload sentences, ``repeats`` times, with the workload's pauses (~50 s at 2)."""
    texts = list(SENTENCES) * repeats
    clips = synthesize(SENTENCES) * repeats
    return WavAudio(compose(clips, texts=texts).pcm, SAMPLE_RATE)


def wav_bytes(audio: WavAudio) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as handle:
        handle.setnchannels(audio.channels)
        handle.setsampwidth(2)
        handle.setframerate(audio.sample_rate_hz)
        handle.writeframes(audio.pcm)
    return buf.getvalue()


async def _round(call: Callable[[], Awaitable[str]], clients: int) -> tuple[float, list[float], str]:
    async def one() -> tuple[float, str]:
        started = time.perf_counter()
        text = await call()
        return time.perf_counter() - started, text

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one() for _ in range(clients)))
    return time.perf_counter() - started, [o[0] for o in outcomes], outcomes[0][1]


async def measure(*, grpc_target: str, rest_url: str, clients: int, rounds: int, audio: WavAudio,
                  api_key: str | None = None) -> dict[str, ProtocolFigures]:
    """Interleaved rounds of ``clients`` concurrent requests per protocol (pure I/O, no printing)."""
    payload = wav_bytes(audio)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    grpc_client = SttClient(grpc_target, api_key=api_key)
    # one connection per client, as ten separate callers would have
    connector = aiohttp.TCPConnector(limit=clients)
    http = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600))

    async def via_grpc() -> str:
        response = await grpc_client.recognize(audio)
        return " ".join(r.alternatives[0].transcript for r in response.results)

    async def via_rest() -> str:
        form = aiohttp.FormData()
        form.add_field("file", payload, filename="long.wav", content_type="audio/wav")
        form.add_field("model", "whisper-1")
        async with http.post(f"{rest_url}/v1/audio/transcriptions", data=form, headers=headers) as reply:
            body = await reply.json()
            if reply.status != 200:
                raise RuntimeError(f"REST call failed: HTTP {reply.status} {body}")
            return str(body["text"])

    calls = {"grpc": via_grpc, "rest": via_rest}
    walls: dict[str, float] = dict.fromkeys(PROTOCOLS, 0.0)
    latencies: dict[str, list[float]] = {p: [] for p in PROTOCOLS}
    texts: dict[str, str] = {}
    try:
        await grpc_client.wait_ready()
        for protocol in PROTOCOLS:  # warm-up, untimed
            texts[protocol] = await calls[protocol]()
        for _ in range(rounds):
            for protocol in PROTOCOLS:
                wall, lat, text = await _round(calls[protocol], clients)
                walls[protocol] += wall
                latencies[protocol] += lat
                texts[protocol] = text
    finally:
        await http.close()
        await grpc_client.close()
    return {p: ProtocolFigures(p, len(latencies[p]), walls[p], summarize(latencies[p]), texts[p]) for p in PROTOCOLS}


def machine() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def render_markdown(result: dict[str, Any]) -> str:
    lines = [
        "# REST transcriptions vs gRPC Recognize",
        "",
        (f"{result['clients']} concurrent clients, {result['rounds']} interleaved rounds per protocol, one "
         f"{result['audio_sec']:.1f} s clip per request (long-style: four sentences twice, with pauses); "
         f"model {result.get('model', 'tiny.en')}. CPUs {result['machine_before']['cpu_count']}, load average "
         f"{result['machine_before']['loadavg']} before and {result['machine_after']['loadavg']} after "
         "(1/5/15 min; a shared machine)."),
        "",
        "| protocol | requests | requests/s | P50 latency (s) | P90 (s) | P99 (s) | max (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for figures in result["protocols"]:
        lat = figures["latency_sec"]
        lines.append(f"| {figures['protocol']} | {figures['requests']} | {figures['requests_per_sec']:.3f} | "
                     f"{lat['p50']:.2f} | {lat['p90']:.2f} | {lat['p99']:.2f} | {lat['max']:.2f} |")
    lines += ["", f"Same transcript over both protocols: {result['same_transcript']}.", ""]
    return "\n".join(lines)
