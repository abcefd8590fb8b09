"""Issue 13: does RSS creep over repeated maximum-size Recognize calls because of a leak or the allocator?

Two experiments, written as one JSON file (default docs/benchmarks/recognize-rss.json):

1. ``servers``: a real ``stt-server`` subprocess per allocator setting (glibc default,
   ``MALLOC_ARENA_MAX=2``, jemalloc by ``LD_PRELOAD`` when installed) gets ``--calls`` Recognize
   calls of the largest upload (30 min of 16 kHz PCM, 57.6 MB: speech at a few places, silence
   elsewhere); the server's RSS is read after start-up and after every call.
2. ``in_process``: the same calls through ``decode_whole`` + ``Engine.recognize`` in this process,
   with ``tracemalloc`` (numpy's buffers are traced too) and RSS after each call, then RSS after
   glibc's ``malloc_trim(0)``. Traced memory flat while RSS grows, and RSS falling back on
   ``malloc_trim``, means freed memory the allocator kept (fragmentation), not a leak.

    .venv/bin/python scripts/recognize_rss.py [--calls 9] [--out docs/benchmarks/recognize-rss.json]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from stt_server.bench.workload import SAMPLE_RATE, SENTENCES, synthesize, to_pcm16

MB = 1024 * 1024
JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
UPLOAD_SEC = 1800.0  # 57.6 MB of 16 kHz PCM16: the "maximum-size" request


def max_upload() -> bytes:
    """30 minutes: one sentence every 5 minutes, silence (with faint noise) elsewhere."""
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal(int(UPLOAD_SEC * SAMPLE_RATE)) * 0.001).astype(np.float32)
    clips = synthesize(SENTENCES[:6])
    for index, clip in enumerate(clips):
        start = int((30 + index * 300) * SAMPLE_RATE)
        samples[start: start + clip.size] += clip
    return to_pcm16(samples)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _calls(target: str, pcm: bytes, calls: int, pid: int) -> tuple[list[float], list[float]]:
    """RSS after start-up and after each call, and the peak RSS during each call (sampled every 20 ms)."""
    from stt_server.client import SttClient, WavAudio

    process = psutil.Process(pid)
    rss = [process.memory_info().rss / MB]
    peaks: list[float] = []
    async with SttClient(target, max_message_bytes=len(pcm) + MB) as client:
        for _ in range(calls):
            call = asyncio.ensure_future(client.recognize(WavAudio(pcm, SAMPLE_RATE)))
            peak = 0.0
            while not call.done():
                peak = max(peak, process.memory_info().rss / MB)
                await asyncio.wait([call], timeout=0.02)
            call.result()
            rss.append(process.memory_info().rss / MB)
            peaks.append(max(peak, rss[-1]))
    return rss, peaks


def server_run(name: str, env_extra: dict[str, str], pcm: bytes, calls: int) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, **env_extra, "STT_SERVER__MAX_MESSAGE_BYTES": str(64 * MB), "STT_LOGGING__LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "stt_server.cli", "--grpc-host", "127.0.0.1", "--grpc-port", str(port),
         "--http-host", "127.0.0.1", "--http-port", "0", "--rest-port", "0", "--device", "cpu"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from stt_server.client import SttClient

        async def ready() -> None:
            async with SttClient(f"127.0.0.1:{port}") as client:
                await client.wait_ready(timeout=120)
                deadline = time.monotonic() + 120
                while not (await client.server_info()).ready:
                    if time.monotonic() > deadline:
                        raise TimeoutError("server never became ready")
                    await asyncio.sleep(0.2)

        asyncio.run(ready())
        started = time.perf_counter()
        rss, peaks = asyncio.run(_calls(f"127.0.0.1:{port}", pcm, calls, server.pid))
        return {"allocator": name, "env": env_extra, "rss_mb": [round(v, 1) for v in rss],
                "peak_during_call_mb": [round(v, 1) for v in peaks],
                "growth_after_first_call_mb": round(rss[-1] - rss[1], 1),
                "seconds": round(time.perf_counter() - started, 1)}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def in_process_run(pcm: bytes, calls: int) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry
    from stt_server.config import ServerConfig
    from stt_server.engine import Engine, StreamOptions
    from stt_server.grpc_service.audio_input import decode_whole
    from stt_server.grpc_service.stream_config import AudioFormat
    from stt_server.metrics import ServerMetrics

    process = psutil.Process()
    fmt = AudioFormat(encoding="linear16", sample_rate_hz=SAMPLE_RATE, channels=1)

    async def run() -> dict[str, Any]:
        engine = Engine(config=ServerConfig(), metrics=ServerMetrics(CollectorRegistry()))
        await engine.start()
        try:
            await engine.recognize(np.zeros(SAMPLE_RATE, np.float32), options=StreamOptions())  # warm-up
            tracemalloc.start()
            base_traced = tracemalloc.get_traced_memory()[0]
            rss, traced, peaks = [process.memory_info().rss / MB], [0.0], []
            for _ in range(calls):
                tracemalloc.reset_peak()
                audio = decode_whole(bytes(pcm), fmt, max_duration_sec=UPLOAD_SEC)
                await engine.recognize(audio, options=StreamOptions())
                del audio
                gc.collect()
                current, peak = tracemalloc.get_traced_memory()
                traced.append((current - base_traced) / MB)
                peaks.append(peak / MB)
                rss.append(process.memory_info().rss / MB)
            tracemalloc.stop()
        finally:
            await engine.stop()
        trimmed = None
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            trimmed = process.memory_info().rss / MB
        except OSError:
            pass
        return {"rss_mb": [round(v, 1) for v in rss], "traced_growth_mb": [round(v, 2) for v in traced],
                "traced_peak_per_call_mb": [round(v, 1) for v in peaks],
                "rss_after_malloc_trim_mb": None if trimmed is None else round(trimmed, 1)}

    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=9)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/recognize-rss.json"))
    parser.add_argument("--before-ref", help="also run the server of this git ref (e.g. the commit before the "
                                             "chunked Recognize) for --before-calls calls, for its peak RSS")
    parser.add_argument("--before-calls", type=int, default=1)
    args = parser.parse_args()
    pcm = max_upload()
    load_before = os.getloadavg()
    variants: list[tuple[str, dict[str, str]]] = [("glibc", {}), ("glibc MALLOC_ARENA_MAX=2", {"MALLOC_ARENA_MAX": "2"})]
    if JEMALLOC.exists():
        variants.append(("jemalloc", {"LD_PRELOAD": str(JEMALLOC)}))
    servers = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.before_ref:
            subprocess.run(f"git archive {args.before_ref} server | tar -x -C {tmp}", shell=True, check=True)
            before = server_run(f"before ({args.before_ref}), glibc", {"PYTHONPATH": f"{tmp}/server"}, pcm,
                                args.before_calls)
            servers.append(before)
        servers += [server_run(name, env, pcm, args.calls) for name, env in variants]
    report = {
        "benchmark": "recognize-rss", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "upload_bytes": len(pcm), "upload_sec": UPLOAD_SEC, "calls": args.calls,
        "host": {"cpu_count": os.cpu_count(), "loadavg_before": [round(v, 2) for v in load_before]},
        "servers": servers,
        "in_process": in_process_run(pcm, args.calls),
    }
    report["host"]["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
