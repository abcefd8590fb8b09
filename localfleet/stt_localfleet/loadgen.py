"""Concurrent real-time speech streams through the NodePort, built from stt-bench's workload code.

Each worker has its own gRPC channel, hence its own TCP connection, so the NodePort proxy spreads
workers over the ready pods the way kube-proxy spreads clients. Workers run stt-bench streams
(CreateSession, then the clip on the audio clock) back to back until told to stop; a stream that
is running when `stop()` is called is finished, not cut, so every stream ends with its finals.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Final

import grpc
from stt_server.bench.streams import StreamRecord, run_stream
from stt_server.bench.workload import StreamAudio, speech_variants
from stt_server.client import SttClient, SttClientError
from stt_server.proto_gen import stt_pb2_grpc

CHANNEL_LIMITS: Final = (("grpc.max_send_message_length", 8 * 2**20), ("grpc.max_receive_message_length", 8 * 2**20))


class OwnConnectionClient(SttClient):
    """An SttClient whose channel opens its own TCP connection.

    gRPC shares connections ("subchannels") between all channels of a process that have the same
    target and arguments, so N SttClients in one process would be one connection, pinned to one
    pod by the proxy. Real clients are separate processes with separate connections; a local
    subchannel pool per channel gives each worker that too.
    """

    def __init__(self, target: str, *, api_key: str | None = None) -> None:
        super().__init__(target, api_key=api_key)
        shared: grpc.aio.Channel = self._channel  # type: ignore[has-type]
        self._channel = grpc.aio.insecure_channel(target, options=[
            ("grpc.use_local_subchannel_pool", 1), *CHANNEL_LIMITS])
        self.stub = stt_pb2_grpc.SpeechToTextStub(self._channel)
        self._unused = shared  # never connected; closed with the client

    async def close(self) -> None:
        await self._unused.close()
        await super().close()


async def wait_serving(target: str, *, timeout: float, api_key: str | None = None) -> None:
    """Until GetServerInfo answers through `target`: a new pod reaches the proxy's endpoints a
    moment after it turns Ready (as with kube-proxy), and clients meanwhile see UNAVAILABLE."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with OwnConnectionClient(target, api_key=api_key) as client:
                await asyncio.wait_for(client.server_info(), 2.0)
            return
        except (SttClientError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


@dataclass
class LoadTally:
    """What the workers saw: completed streams, failures (gRPC status name -> count), finals."""

    completed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    finals: int = 0
    messages: list[str] = field(default_factory=list)

    def add(self, record: StreamRecord) -> None:
        if record.error_status:
            self.failures[record.error_status] = self.failures.get(record.error_status, 0) + 1
            if len(self.messages) < 5:
                self.messages.append(f"{record.error_status} {record.error_code or ''} {record.error_message}".strip())
        else:
            self.completed += 1
            self.finals += sum(1 for lat in record.latencies if lat.final_sec is not None)


class LoadGenerator:
    """`workers` concurrent real-time streams against `target` until `stop()`."""

    def __init__(self, target: str, *, workers: int, api_key: str | None = None,
                 inputs: list[StreamAudio] | None = None) -> None:
        self.target = target
        self.workers = workers
        self.api_key = api_key
        self.inputs = inputs
        self.tally = LoadTally()
        self.started_at = 0.0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self.inputs is None:
            # Synthesis is CPU work: keep it off the loop that drives the streams.
            self.inputs = await asyncio.to_thread(speech_variants, streams=self.workers)
        self.started_at = time.monotonic()
        self._tasks = [asyncio.create_task(self._worker(i)) for i in range(self.workers)]

    async def _worker(self, index: int) -> None:
        assert self.inputs
        await asyncio.sleep(0.3 * index)  # staggered, like clients arriving
        async with OwnConnectionClient(self.target, api_key=self.api_key) as client:
            turn = 0
            while not self._stop.is_set():
                audio = self.inputs[(index + turn) % len(self.inputs)]
                record = await run_stream(client, audio, realtime=True, request_id=f"load-{index}-{turn}")
                self.tally.add(record)
                turn += 1
                if record.error_status:
                    # Back off as a polite client does (retry hint, else 1 s) before the next try.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(record.retry_after_sec or 1.0):
                            await self._stop.wait()

    async def stop(self, *, timeout: float = 60.0) -> None:
        """Let running streams finish (they are at most one clip long), then stop the workers."""
        self._stop.set()
        done, pending = await asyncio.wait(self._tasks, timeout=timeout) if self._tasks else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                self.tally.messages.append(f"worker crashed: {task.exception()!r}")
