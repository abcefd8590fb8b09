"""stt-client's exits and output: errors carry the server's code; info prints GetServerInfo."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import wave
from pathlib import Path

from grpc_harness import running_server, tone
from stt_server.client_cli import EXIT_LOCAL, EXIT_REJECTED, EXIT_RETRYABLE
from stt_server.client_cli import main as client_main


def write_wav(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(tone(seconds).pcm)
    return path


async def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(client_main, list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def test_transcribe_prints_final_and_partials(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", 1.2)
    async with running_server() as server:
        code, out, err = await run_cli("transcribe", str(wav), "--server", server.target)
    assert code == 0, err
    assert out.strip() == "fake 19200 samples"
    assert "partial: sec 0.5" in err


async def test_rejections_exit_with_the_server_code(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", 0.5)
    async with running_server({"auth": {"api_keys": ["k"]}, "limits": {"max_sessions": 1}}) as server:
        code, _, err = await run_cli("transcribe", str(wav), "--server", server.target)
        assert code == EXIT_REJECTED
        assert "ERR1018 UNAUTHENTICATED" in err
        async with server.client("k") as client:
            from stt_server.client import streaming_config

            await client.create_session(streaming_config())  # takes the only session
        code, _, err = await run_cli("transcribe", str(wav), "--server", server.target, "--api-key", "k")
        assert code == EXIT_RETRYABLE
        assert "ERR1011 RESOURCE_EXHAUSTED" in err and "retry after 5s" in err


async def test_local_and_connection_problems(tmp_path: Path) -> None:
    code, _, err = await run_cli("transcribe", str(tmp_path / "missing.wav"), "--server", "127.0.0.1:1")
    assert code == EXIT_LOCAL and "cannot read" in err
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: nothing answers
        code, _, err = await run_cli("info", "--server", f"127.0.0.1:{port}", "--timeout", "0.5")
    assert code == EXIT_RETRYABLE and "cannot reach" in err


async def test_info_prints_json() -> None:
    async with running_server() as server:
        code, out, _ = await run_cli("info", "--server", server.target)
    body = json.loads(out)
    assert code == 0
    assert body["models"][0]["name"] == "fake"
    assert body["limits"]["max_sessions"] == 32
