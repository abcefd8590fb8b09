"""One bench stream: CreateSession, then StreamingRecognize paced on the audio clock.

Chunk ``k`` (audio ``[t, t + chunk)``) leaves at ``start + t + chunk`` when real-time, i.e. when a
live microphone would have delivered it; ``SendLog`` keeps those wall times so latencies are
measured from when the speech sample left the client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from stt_server.bench.latency import Received, SendLog, UtteranceLatency, assign, match_utterances
from stt_server.bench.workload import SAMPLE_RATE, StreamAudio
from stt_server.client import SttClient, SttClientError, metadata_dict, streaming_config
from stt_server.errors import ERROR_CODE_KEY
from stt_server.proto_gen import stt_pb2

CHUNK_MS = 100


@dataclass
class StreamRecord:
    """What one stream measured; ``error_status`` is set when CreateSession or the stream failed."""

    create_session_sec: float | None = None
    error_status: str | None = None
    error_code: str | None = None
    error_message: str = ""
    latencies: list[UtteranceLatency] = field(default_factory=list)
    utterances_sent: int = 0
    spurious_finals: int = 0  # finals over no planned speech (noise, silence, hallucinations)
    audio_sent_sec: float = 0.0
    retry_after_sec: float | None = None


def _chunks(pcm: bytes, *, chunk_ms: int = CHUNK_MS) -> list[bytes]:
    step = SAMPLE_RATE * chunk_ms // 1000 * 2
    return [pcm[i:i + step] for i in range(0, len(pcm), step)]


async def run_stream(client: SttClient, audio: StreamAudio, *, realtime: bool, request_id: str = "") -> StreamRecord:
    """Run one session end to end and measure it; never raises for server-side errors."""
    record = StreamRecord()
    config = streaming_config(sample_rate_hz=SAMPLE_RATE, interim_results=True, request_id=request_id)
    started = time.perf_counter()
    try:
        session = await client.create_session(config)
    except SttClientError as exc:
        record.error_status, record.error_code, record.error_message = exc.status.name, exc.error_code, exc.message
        record.retry_after_sec = exc.retry_after_sec
        return record
    record.create_session_sec = time.perf_counter() - started

    sends = SendLog()
    received: list[Received] = []

    async def requests() -> AsyncIterator[stt_pb2.StreamingRecognizeRequest]:
        yield stt_pb2.StreamingRecognizeRequest(session_id=session.session_id)
        start = time.monotonic()
        audio_end = 0.0
        for chunk in _chunks(audio.pcm):
            audio_end += len(chunk) / (2 * SAMPLE_RATE)
            if realtime:
                await asyncio.sleep(max(0.0, start + audio_end - time.monotonic()))
            sends.record(audio_end_sec=audio_end, wall_sec=time.monotonic())
            yield stt_pb2.StreamingRecognizeRequest(audio_content=chunk)

    call = client.stub.StreamingRecognize(requests(), metadata=client.metadata)
    try:
        async for response in call:
            now = time.monotonic()
            for result in response.results:
                text = result.alternatives[0].transcript if result.alternatives else ""
                received.append(Received(now, result.is_final, result.result_start_sec, result.result_end_sec, text))
    except grpc.aio.AioRpcError as exc:
        trailing = metadata_dict(exc.trailing_metadata())
        record.error_status = exc.code().name
        record.error_code = trailing.get(ERROR_CODE_KEY)
        record.error_message = exc.details() or ""
    record.latencies = match_utterances(audio.plan, received, sends=sends)
    record.spurious_finals = sum(1 for r in received if r.is_final and r.text.strip() and assign(r, audio.plan) is None)
    record.utterances_sent = len(record.latencies)
    record.audio_sent_sec = sends.audio_end[-1] if sends.audio_end else 0.0
    return record
