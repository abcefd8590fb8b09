"""Terminal dashboard: ``python -m stt_server.tools.dashboard [--base-url URL] [--once]``.

Polls ``/metrics.json`` and ``/system`` every ``--interval`` seconds and shows traffic, decode
timing, shedding and process figures in ``rich`` tables (seed 000's backpressure checklist).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import aiohttp
from rich.console import Console, Group
from rich.table import Table

from stt_server.tools.http_fetch import client_session, endpoint_urls
from stt_server.tools.snapshot import take_snapshot


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 1048576:.1f} MiB"


def _table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left", min_width=40)
    table.add_column("what", style="cyan")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    return table


def render(snapshot: dict[str, Any]) -> Group:
    """The dashboard for one snapshot (pure: tests render it to text)."""
    m = snapshot["metrics"]["metrics"]
    system = snapshot["system"]
    process = system.get("process", {})
    timing = m.get("decode_timing", {})
    phases = timing.get("phases", {})
    traffic = _table("Traffic", [
        ("active sessions", f"{m.get('active_sessions', 0)} / {m.get('max_sessions') or '-'}"),
        ("active streams", str(m.get("active_streams", 0))),
        ("sessions created", str(m.get("sessions_created", 0))),
        ("ready / draining", f"{m.get('ready')} / {m.get('draining')}"),
    ])
    decode = _table("Decode", [
        ("pending", f"{m.get('decode_pending', 0)} / {m.get('decode_pending_cap') or '-'}"),
        ("decodes", str(timing.get("count", 0))),
        ("latency avg / max", f"{timing.get('latency_avg_sec', 0):.3f} s / {timing.get('latency_max_sec', 0):.3f} s"),
        *[(f"  {p} avg", f"{phases[p]['avg_sec'] * 1000:.1f} ms") for p in phases],
        ("RTF avg / max", f"{m.get('rtf', {}).get('avg', 0):.3f} / {m.get('rtf', {}).get('max', 0):.3f}"),
    ])
    blocks = m.get("rate_limit_blocks", {})
    shedding = _table("Shedding", [
        ("buffer bytes", f"{_mib(m.get('buffer_bytes_total'))} / {_mib(m.get('max_total_buffer_bytes'))}"),
        ("partial drops", str(m.get("partial_drop_count", 0))),
        ("session-limit rejects", str(m.get("session_limit_rejects", 0))),
        *[(f"rate limit: {k}", str(v)) for k, v in blocks.items()],
        *[(f"error {k}", str(v)) for k, v in sorted(m.get("error_counts", {}).items())],
    ])
    gpu = system.get("gpu", {})
    proc = _table("Process", [
        ("CPU", f"{process.get('cpu_percent', '-')} %"),
        ("RSS", _mib(process.get("rss_bytes"))),
        ("threads", str(process.get("num_threads", "-"))),
        ("open fds", str(process.get("open_fds", "-"))),
        ("GPU", "available" if gpu.get("available") else f"unavailable: {gpu.get('reason', '-')}"),
    ])
    return Group(traffic, decode, shedding, proc)


async def run(args: argparse.Namespace, console: Console) -> int:
    metrics_url, system_url = endpoint_urls(args.metrics_url, args.system_url, base_url=args.base_url)
    async with client_session(insecure=args.insecure) as session:
        while True:
            try:
                snapshot = await take_snapshot(session, metrics_url=metrics_url, system_url=system_url,
                                               token=args.token)
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
                console.print(f"[red]poll failed:[/red] {exc}")
                if args.once:
                    return 1
            else:
                if not args.no_clear:
                    console.clear()
                console.print(render(snapshot))
                if args.once:
                    return 0
            await asyncio.sleep(args.interval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Terminal dashboard for an stt-server control plane.")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--metrics-url", help="default: <base-url>/metrics.json")
    parser.add_argument("--system-url", help="default: <base-url>/system")
    parser.add_argument("--token", help="control token (Authorization: Bearer)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    parser.add_argument("--once", action="store_true", help="fetch one snapshot and exit")
    parser.add_argument("--no-clear", action="store_true", help="do not clear the screen between updates")
    parser.add_argument("--insecure", action="store_true", help="skip TLS certificate verification")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args, Console()))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
