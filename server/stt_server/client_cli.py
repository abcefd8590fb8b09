"""``stt-client``: transcribe a WAV file through stt-server, or show what a server offers.

``stt-client transcribe FILE --server HOST:PORT [--api-key K] [--realtime] [--json]`` prints
partials to stderr and each final to stdout (``--json``: every response as one JSON line on
stdout, then one line with the trailing metadata). ``stt-client info --server HOST:PORT`` prints
``GetServerInfo``. Exit status: 0 ok, 1 local problem (file), 2 request rejected, 3 retryable
(server busy, draining, unreachable); the server's error code and message go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Final, TextIO

import grpc
from google.protobuf.json_format import MessageToDict

from stt_server.client import SttClient, SttClientError, read_wav, streaming_config
from stt_server.proto_gen import stt_pb2

EXIT_LOCAL: Final = 1
EXIT_REJECTED: Final = 2
EXIT_RETRYABLE: Final = 3
_RETRYABLE: Final = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stt-client", description="Client for stt-server.")
    commands = parser.add_subparsers(dest="command", required=True)
    transcribe = commands.add_parser("transcribe", help="stream a WAV file and print the transcript")
    transcribe.add_argument("file", help="16-bit PCM WAV file (any common rate, mono or stereo)")
    info = commands.add_parser("info", help="print the server's models, languages, encodings and limits")
    for sub in (transcribe, info):
        sub.add_argument("--server", default="127.0.0.1:50051", help="HOST:PORT (default 127.0.0.1:50051)")
        sub.add_argument("--api-key", default=os.environ.get("STT_API_KEY"), help="API key (or STT_API_KEY)")
        sub.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
        sub.add_argument("--ca-cert", help="PEM CA certificate: connect with TLS, trusting this CA")
    transcribe.add_argument("--realtime", action="store_true", help="pace the audio at real time")
    transcribe.add_argument("--json", action="store_true", help="print every response as one JSON line")
    transcribe.add_argument("--language", default="", help="language code (default: the server's)")
    transcribe.add_argument("--inline", action="store_true", help="inline config instead of CreateSession")
    return parser


def exit_code_for(error: SttClientError) -> int:
    return EXIT_RETRYABLE if error.retry_after_sec is not None or error.status in _RETRYABLE else EXIT_REJECTED


def describe(error: SttClientError) -> str:
    code = f"{error.error_code} " if error.error_code else ""
    retry = f" (retry after {error.retry_after_sec:g}s)" if error.retry_after_sec is not None else ""
    return f"stt-client: {code}{error.status.name}: {error.message}{retry}"


class TranscriptPrinter:
    """Partials to ``err`` (rewritten in place on a terminal), finals to ``out``."""

    def __init__(self, *, out: TextIO, err: TextIO, as_json: bool) -> None:
        self._out, self._err, self._json = out, err, as_json
        self._tty = err.isatty()
        self._partial_shown = False

    def __call__(self, response: stt_pb2.StreamingRecognizeResponse) -> None:
        if self._json:
            print(json.dumps(MessageToDict(response, preserving_proto_field_name=True)), file=self._out, flush=True)
            return
        for result in response.results:
            text = result.alternatives[0].transcript if result.alternatives else ""
            if result.is_final:
                self._clear_partial()
                print(text, file=self._out, flush=True)
            elif self._tty:
                print(f"\r\033[K… {text}", end="", file=self._err, flush=True)
                self._partial_shown = True
            else:
                print(f"partial: {text}", file=self._err, flush=True)

    def _clear_partial(self) -> None:
        if self._partial_shown:
            print("\r\033[K", end="", file=self._err, flush=True)
            self._partial_shown = False


async def transcribe(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    try:
        audio = read_wav(args.file)
    except (OSError, ValueError, EOFError) as exc:
        print(f"stt-client: cannot read {args.file}: {exc}", file=err)
        return EXIT_LOCAL
    printer = TranscriptPrinter(out=out, err=err, as_json=args.json)
    config = streaming_config(sample_rate_hz=audio.sample_rate_hz, channels=audio.channels,
                              language_code=args.language)
    async with _client(args) as client:
        if not await _connect(client, args, err):
            return EXIT_RETRYABLE
        try:
            outcome = await client.stream(audio, config=config, realtime=args.realtime,
                                          use_session=not args.inline, on_response=printer)
        except SttClientError as exc:  # CreateSession refused
            print(describe(exc), file=err)
            return exit_code_for(exc)
    if args.json:
        print(json.dumps({"trailing_metadata": outcome.trailing}), file=out, flush=True)
    if outcome.error is not None:
        print(describe(outcome.error), file=err)
        return exit_code_for(outcome.error)
    return 0


async def info(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    async with _client(args) as client:
        if not await _connect(client, args, err):
            return EXIT_RETRYABLE
        try:
            reply = await client.server_info()
        except SttClientError as exc:
            print(describe(exc), file=err)
            return exit_code_for(exc)
    try:
        print(json.dumps(MessageToDict(reply, preserving_proto_field_name=True), indent=2), file=out)
    except BrokenPipeError:  # piped into head: the reader has what it wanted
        pass
    return 0


def _client(args: argparse.Namespace) -> SttClient:
    roots = Path(args.ca_cert).read_bytes() if args.ca_cert else None
    return SttClient(args.server, api_key=args.api_key, root_certificates=roots)


async def _connect(client: SttClient, args: argparse.Namespace, err: TextIO) -> bool:
    try:
        await client.wait_ready(args.timeout)
    except TimeoutError:
        print(f"stt-client: cannot reach {args.server} within {args.timeout:g}s", file=err)
        return False
    return True


def main(argv: list[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = transcribe if args.command == "transcribe" else info
    try:
        return asyncio.run(command(args, out=out or sys.stdout, err=err or sys.stderr))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
