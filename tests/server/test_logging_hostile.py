"""Issue 13: client bytes that reach library logs stay escaped, short and on JSON lines."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from stt_server.logging_setup import FOREIGN_MAX_CHARS, configure_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h.get_name() == "stt-server"]:
        root.removeHandler(handler)
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_library_records_are_escaped_truncated_and_have_no_traceback() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", level="INFO", stream=out)
    client_bytes = "Bearer tok" + "A" * 10_000 + "\n\x1b[31m{\"level\": \"CRITICAL\"}"
    try:
        raise ValueError(client_bytes)
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request: %s", client_bytes)
    logging.getLogger("stt_server.test").info("ours is untouched: %s", "x" * 400)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    library, ours = (json.loads(line) for line in lines)
    assert library["logger"] == "aiohttp.server" and "exc" not in library
    assert len(library["msg"]) <= FOREIGN_MAX_CHARS + 30 and "(ValueError)" in library["msg"]
    assert "\x1b" not in library["msg"] and "\n" not in library["msg"]
    assert "tok" not in library["msg"] and "<redacted>" in library["msg"]  # not even a token prefix
    assert len(ours["msg"]) > 400


_GOAWAY_SCRIPT = textwrap.dedent('''
    import asyncio, socket, struct, sys
    from stt_server.logging_setup import configure_logging, route_native_stderr
    route_native_stderr()
    configure_logging(fmt="json", level="INFO")
    import grpc

    def frame(kind, payload):
        return struct.pack(">I", len(payload))[1:] + bytes([kind, 0]) + struct.pack(">I", 0) + payload

    async def main():
        server = grpc.aio.server()
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        with socket.create_connection(("127.0.0.1", port)) as peer:
            peer.sendall(b"PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n" + frame(4, b""))
            peer.sendall(frame(7, struct.pack(">II", 0, 2) + b"EVIL\\x1b[31m client debug data"))
            peer.settimeout(5)
            try:
                while peer.recv(4096):
                    pass
            except OSError:
                pass
        await server.stop(0)
        print("not json: our own print goes to the real stdout", flush=True)
    asyncio.run(main())
''')


def test_grpc_core_goaway_debug_text_becomes_an_escaped_json_record() -> None:
    env = {**os.environ, "GRPC_VERBOSITY": "INFO"}  # make gRPC core log the GOAWAY line it logs at INFO
    result = subprocess.run([sys.executable, "-c", _GOAWAY_SCRIPT], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every stderr line is a JSON object
    goaway = [r for r in records if "client debug data" in r["msg"]]
    assert goaway and goaway[0]["logger"] == "grpc.core"
    assert "\x1b" not in goaway[0]["msg"] and "\\x1b" in goaway[0]["msg"]
