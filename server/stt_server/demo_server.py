"""Server-only demo: start stt-server, speak a synthesized sentence into it in real time, stop it.

``python -m stt_server.demo_server`` starts ``stt-server`` as a child process on free loopback
ports with the bundled model, synthesizes a sentence (hibari-tts, voice ``heart``), streams it
through the same client code ``stt-client --realtime`` uses, prints the partials as they arrive and
the final transcript, then sends SIGTERM (a graceful drain) and exits 0 when all of it worked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stt_server.client import SttClient, WavAudio, streaming_config
from stt_server.proto_gen import stt_pb2

DEFAULT_TEXT: Final = "Streaming speech recognition turns live audio into live text for many clients at once."
READY_TIMEOUT_SEC: Final = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def synthesize(text: str) -> WavAudio:
    """``text`` spoken by hibari-tts, 16 kHz mono 16-bit, with a little silence around it."""
    from hibari import Hibari

    from stt_server.engine.audio import resample

    speech = resample(np.asarray(Hibari()(text), dtype=np.float32).reshape(-1), source_rate=24000)
    padded = np.concatenate([np.zeros(8000, np.float32), speech, np.zeros(16000, np.float32)])
    return WavAudio(pcm=(np.clip(padded, -1, 1) * 32767).astype("<i2").tobytes(), sample_rate_hz=16000)


async def wait_serving(target: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SEC
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"stt-server exited with status {process.returncode} during start-up")
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"stt-server was not ready within {READY_TIMEOUT_SEC:g}s")
            await asyncio.sleep(0.2)


async def run_demo(text: str, *, realtime: bool, log_path: Path) -> int:
    grpc_port, http_port = free_port(), free_port()
    target = f"127.0.0.1:{grpc_port}"
    print(f"synthesizing: {text!r}")
    audio = synthesize(text)
    print(f"starting stt-server on {target} (control plane http://127.0.0.1:{http_port}, log {log_path})")
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "stt_server.cli", "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
            "--http-host", "127.0.0.1", "--http-port", str(http_port), "--rest-port", "0", "--log-format", "console",
            stdout=log_file, stderr=subprocess.STDOUT,
        )
        try:
            await wait_serving(target, process)
            print(f"streaming {audio.duration_sec:.1f}s of speech{' in real time' if realtime else ''}:")

            def show(response: stt_pb2.StreamingRecognizeResponse) -> None:
                for result in response.results:
                    label = "final  " if result.is_final else "partial"
                    print(f"  [{time.monotonic() - started:5.2f}s] {label} {result.alternatives[0].transcript}")

            started = time.monotonic()
            async with SttClient(target) as client:
                outcome = await client.stream(audio, realtime=realtime, on_response=show,
                                              config=streaming_config(request_id="demo"))
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            try:
                status = await asyncio.wait_for(process.wait(), timeout=60)
            except TimeoutError:
                process.kill()
                raise
    if outcome.error is not None:
        print(f"stream failed: {outcome.error}", file=sys.stderr)
        return 1
    print(f"transcript: {outcome.transcript}")
    print(f"partials: {len(outcome.partials)}, decode timing: "
          f"{float(outcome.trailing.get('stt-decode-inference-sec', 0)):.2f}s inference over "
          f"{outcome.trailing.get('stt-decode-count', '0')} decodes")
    print(f"stt-server stopped (exit status {status})")
    return 0 if status == 0 and outcome.transcript else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stt_server.demo_server", description=__doc__.splitlines()[0])
    parser.add_argument("--text", default=DEFAULT_TEXT, help="sentence to synthesize")
    parser.add_argument("--no-realtime", action="store_true", help="send the audio as fast as possible")
    parser.add_argument("--log", type=Path, help="stt-server log file (default: a temporary file)")
    args = parser.parse_args(argv)
    log_path = args.log or Path(tempfile.mkdtemp(prefix="stt-demo-")) / "stt-server.log"
    return asyncio.run(run_demo(args.text, realtime=not args.no_realtime, log_path=log_path))


if __name__ == "__main__":
    sys.exit(main())
