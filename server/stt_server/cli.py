"""``stt-server``: load the configuration, then serve gRPC and the control plane until SIGTERM.

Exit status: 0 after a graceful drain, 2 for a bad configuration (the message names the key),
1 when start-up fails otherwise (model missing, port taken).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import stt_server.grpc_env  # noqa: F401 - must run before grpc is imported
from stt_server import __version__
from stt_server.config import ConfigError, ServerConfig, load_config
from stt_server.engine.errors import ModelLoadError
from stt_server.logging_setup import configure_logging, route_native_stderr

log = logging.getLogger("stt_server")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stt-server",
        description="Streaming Whisper speech-to-text server (gRPC + HTTP control plane).",
        epilog="Every config key can also be set as STT_<SECTION>__<KEY>; see docs/config.md.",
    )
    parser.add_argument("--config", type=Path, help="YAML configuration file")
    parser.add_argument("--grpc-host", help="gRPC bind address (server.grpc_host)")
    parser.add_argument("--grpc-port", type=int, help="gRPC port, 0 = any free port (server.grpc_port)")
    parser.add_argument("--http-host", help="control plane bind address (server.http_host)")
    parser.add_argument("--http-port", type=int, help="control plane port (server.http_port)")
    parser.add_argument("--rest-host", help="OpenAI-compatible REST API bind address (server.rest_host)")
    parser.add_argument("--rest-port", type=int, help="REST API port, 0 = off (server.rest_port)")
    parser.add_argument("--model", help="model name (model.name) or a CTranslate2 model directory (model.path)")
    parser.add_argument("--device", help="auto | cpu | cuda (model.device)")
    parser.add_argument("--compute-type", help="auto, int8, float16, ... (model.compute_type)")
    parser.add_argument("--log-format", choices=("json", "console"), help="logging.format")
    parser.add_argument("--log-level", help="logging.level")
    parser.add_argument("--version", action="version", version=f"stt-server {__version__}")
    return parser


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line flags as dotted config keys (unset flags are left out)."""
    overrides: dict[str, Any] = {
        "server.grpc_host": args.grpc_host,
        "server.grpc_port": args.grpc_port,
        "server.http_host": args.http_host,
        "server.http_port": args.http_port,
        "server.rest_host": args.rest_host,
        "server.rest_port": args.rest_port,
        "model.device": args.device,
        "model.compute_type": args.compute_type,
        "logging.format": args.log_format,
        "logging.level": args.log_level.upper() if args.log_level else None,
    }
    if args.model:
        key = "model.path" if Path(args.model).is_dir() else "model.name"
        overrides[key] = args.model
    return {key: value for key, value in overrides.items() if value is not None}


def load(argv: list[str] | None = None) -> ServerConfig:
    """Parse flags and build the configuration (raises ``ConfigError``)."""
    args = build_parser().parse_args(argv)
    return load_config(args.config, env=os.environ, overrides=flag_overrides(args))


async def _serve(config: ServerConfig) -> None:
    from stt_server.app import SttServerApp

    app = SttServerApp(config)
    app.install_signal_handlers()
    await app.serve()


def main(argv: list[str] | None = None) -> int:
    try:
        config = load(argv)
    except ConfigError as exc:
        print(f"stt-server: {exc}", file=sys.stderr)
        return 2
    if config.logging.format == "json":
        route_native_stderr()  # gRPC core writes to fd 2 itself: keep stderr JSON lines (issue 13)
    configure_logging(fmt=config.logging.format, level=config.logging.level, file=config.logging.file,
                      file_max_bytes=config.logging.file_max_bytes, file_backups=config.logging.file_backups)
    try:
        asyncio.run(_serve(config))
    except KeyboardInterrupt:  # a second Ctrl-C during the drain
        return 130
    except ConfigError as exc:  # found while building the server, e.g. an unreadable api_keys_file
        print(f"stt-server: {exc}", file=sys.stderr)
        return 2
    except (ModelLoadError, OSError) as exc:  # expected start-up problems: the message says what to do
        log.error("stt-server could not start: %s", exc)
        print(f"stt-server: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        log.exception("stt-server failed to start or stopped with an error")
        print(f"stt-server: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
