"""Capture control-plane figures to a file: ``python -m stt_server.tools.metrics_capture --out m.jsonl``.

Polls ``/metrics.json`` and ``/system`` every ``--interval`` seconds for ``--duration-sec`` and
writes one snapshot per line (``.jsonl``) or one flattened row per poll (``.csv``, columns from the
first snapshot). ``plot_metrics`` reads either.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import time
from pathlib import Path
from typing import IO, Any

import aiohttp

from stt_server.tools.http_fetch import client_session, endpoint_urls
from stt_server.tools.snapshot import flatten, take_snapshot


class _Writer:
    """Appends snapshots as JSON lines or CSV rows, chosen by the file extension."""

    def __init__(self, stream: IO[str], *, as_csv: bool) -> None:
        self._stream = stream
        self._csv: csv.DictWriter[str] | None = None
        self._as_csv = as_csv

    def write(self, snapshot: dict[str, Any]) -> None:
        if not self._as_csv:
            self._stream.write(json.dumps(snapshot) + "\n")
        else:
            row = flatten(snapshot)
            if self._csv is None:
                self._csv = csv.DictWriter(self._stream, fieldnames=list(row), extrasaction="ignore")
                self._csv.writeheader()
            self._csv.writerow(row)
        self._stream.flush()


async def capture(
    *, out: Path, duration_sec: float, interval: float, metrics_url: str, system_url: str,
    token: str | None, insecure: bool = False,
) -> int:
    """Poll until ``duration_sec`` has passed (at least once); return the number of rows written."""
    rows = 0
    deadline = time.monotonic() + duration_sec
    with out.open("w", newline="") as stream:
        writer = _Writer(stream, as_csv=out.suffix.lower() == ".csv")
        async with client_session(insecure=insecure) as session:
            while True:
                writer.write(await take_snapshot(session, metrics_url=metrics_url, system_url=system_url,
                                                 token=token))
                rows += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return rows
                await asyncio.sleep(min(interval, remaining))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Capture /metrics.json and /system to JSONL or CSV.")
    parser.add_argument("--out", type=Path, required=True, help="*.jsonl or *.csv")
    parser.add_argument("--duration-sec", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--metrics-url")
    parser.add_argument("--system-url")
    parser.add_argument("--token")
    parser.add_argument("--insecure", action="store_true")
    args = parser.parse_args(argv)
    if args.out.suffix.lower() not in (".jsonl", ".csv"):
        parser.error("--out must end in .jsonl or .csv")
    metrics_url, system_url = endpoint_urls(args.metrics_url, args.system_url, base_url=args.base_url)
    try:
        rows = asyncio.run(capture(out=args.out, duration_sec=args.duration_sec, interval=args.interval,
                                   metrics_url=metrics_url, system_url=system_url, token=args.token,
                                   insecure=args.insecure))
    except (aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {rows} snapshot(s) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
