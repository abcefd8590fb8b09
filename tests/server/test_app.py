"""stt-server as a process: bad configuration stops start-up; SIGTERM drains with finals and exits 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from audio_fixtures import synthesize
from grpc_health.v1 import health_pb2, health_pb2_grpc
from stt_server.client import SttClient, SttClientError, WavAudio, streaming_config
from stt_server.proto_gen import stt_pb2

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_bad_config_stops_startup_naming_the_key() -> None:
    env = {**os.environ, "STT_LIMITS__MAX_SESSIONS": "-3"}
    result = subprocess.run([sys.executable, "-m", "stt_server.cli"], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2
    assert "limits.max_sessions" in result.stderr and "greater than or equal to 1" in result.stderr


def test_unknown_key_in_file_is_rejected(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "c.yaml"
    path.write_text("streaming:\n  partial_interval: 0.5\n")
    result = subprocess.run([sys.executable, "-m", "stt_server.cli", "--config", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "streaming.partial_interval: unknown key" in result.stderr


def test_unreadable_api_keys_file_is_a_config_error(tmp_path: object) -> None:
    env = {**os.environ, "STT_AUTH__API_KEYS_FILE": f"{tmp_path}/missing-keys"}
    result = subprocess.run([sys.executable, "-m", "stt_server.cli", "--grpc-port", "0", "--http-port", "0"],
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "auth.api_keys_file" in result.stderr and "cannot read" in result.stderr


def test_missing_model_fails_startup_with_advice() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stt_server.cli", "--grpc-host", "127.0.0.1", "--grpc-port", "0",
         "--http-host", "127.0.0.1", "--http-port", "0", "--rest-port", "0", "--model", "large-v9"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "large-v9" in result.stderr and "model.path" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("which", ["--grpc-port", "--http-port", "--rest-port"])
def test_port_in_use_fails_startup(which: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = {"--grpc-port": "0", "--http-port": "0", "--rest-port": "0", which: str(busy.getsockname()[1])}
        result = subprocess.run(
            [sys.executable, "-m", "stt_server.cli", "--grpc-host", "127.0.0.1", "--http-host", "127.0.0.1",
             "--rest-host", "127.0.0.1",
             *(arg for pair in ports.items() for arg in pair)],
            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "address already in use" in result.stderr.lower() or "errno 98" in result.stderr.lower()


@pytest.fixture
def server_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    grpc_port, http_port = free_port(), free_port()
    env = {**os.environ, "STT_SERVER__DRAIN_GRACE_SEC": "4", "STT_LOGGING__FORMAT": "json"}
    process = subprocess.Popen(
        [sys.executable, "-m", "stt_server.cli", "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
         "--http-host", "127.0.0.1", "--http-port", str(http_port), "--rest-port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        yield process, grpc_port
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


async def wait_serving(target: str, timeout: float = 120.0) -> None:
    import grpc

    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service="sttfleet.v1.SpeechToText"),
                                         timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("stt-server did not become ready")
            await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_sigterm_mid_stream_gets_final_and_exits_zero(
    server_process: tuple[subprocess.Popen[str], int],
) -> None:
    process, grpc_port = server_process
    target = f"127.0.0.1:{grpc_port}"
    await wait_serving(target)
    speech = np.concatenate([np.zeros(8000, np.float32), synthesize(SENTENCE), np.zeros(16000, np.float32)])
    audio = WavAudio((np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes(), 16000)
    first_partial = asyncio.Event()

    def on_response(response: stt_pb2.StreamingRecognizeResponse) -> None:
        if any(not r.is_final for r in response.results):
            first_partial.set()

    async with SttClient(target) as client, SttClient(target) as late:
        stream = asyncio.create_task(client.stream(audio, realtime=True, on_response=on_response))
        await asyncio.wait_for(first_partial.wait(), timeout=30)
        process.send_signal(signal.SIGTERM)
        refused = None
        for _ in range(100):  # the signal is handled asynchronously: poll until draining shows
            try:
                await late.create_session(streaming_config())
            except SttClientError as exc:
                refused = exc
                break
            await asyncio.sleep(0.02)
        outcome = await asyncio.wait_for(stream, timeout=30)
    assert refused is not None and refused.error_code == "ERR1020"
    # a stream still sending when the drain ends its input gets its final, then ERR1026 (issue 13)
    assert outcome.error is None or (outcome.error.error_code == "ERR1026"
                                     and "stt-drain-truncated-at-sec" in outcome.trailing)
    assert outcome.finals, "the open utterance must be finalised during the drain"
    assert "quick" in outcome.transcript.lower()
    assert process.wait(timeout=30) == 0
    _, stderr = process.communicate(timeout=10)
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    messages = [line["msg"] for line in lines]
    assert any(m.startswith("Streaming started for session_id=") for m in messages)
    assert "draining" in messages and "stt-server stopped" in messages
    started = next(line for line in lines if line["msg"].startswith("Streaming started"))
    assert started["session_id"] == outcome.session_id


@pytest.mark.slow
def test_demo_server_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    from stt_server.demo_server import main as demo_main

    assert demo_main(["--text", "Good morning, the meeting starts at nine.", "--no-realtime"]) == 0
    printed = capsys.readouterr().out
    assert "final" in printed and "morning" in printed.lower()
    assert "exit status 0" in printed
