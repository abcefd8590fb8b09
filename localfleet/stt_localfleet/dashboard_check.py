"""`python -m stt_localfleet.dashboard_check [--out docs/dashboards]`: the dashboard, drawn from data.

Starts stt-server and Prometheus (scraped_server), runs the dashboard load (dashboard_load), then
draws every row of the dashboard from what Prometheus recorded (dashboard_render) and writes
`render.json`: the machine's load while it ran, how the load's side calls ended, and how many
series each panel had. Re-run it after changing the dashboard; the PNGs land next to the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from stt_operator.dashboards import build_dashboard

from stt_localfleet.dashboard_load import drive
from stt_localfleet.dashboard_render import fetch, render_row, rows
from stt_localfleet.scraped_server import NAMESPACE, STTSERVER, scraped_server


async def check(out: Path) -> dict[str, object]:
    """Load a server, render each row to `out`, and return the summary written to render.json."""
    out.mkdir(parents=True, exist_ok=True)
    model = build_dashboard()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="stt-dashboard-") as work:
        async with scraped_server(Path(work)) as stack:
            window, outcomes = await drive(stack)
            end = time.time()
            start = window.start - 5
            images, counts = [], {}
            async with aiohttp.ClientSession() as http:
                for title, panels in rows(model):
                    data = [await fetch(http, stack.prometheus_url, p, namespace=NAMESPACE, sttserver=STTSERVER,
                                        start=start, end=end) for p in panels]
                    counts.update({d.panel["title"]: len(d.series) for d in data})
                    images.append(render_row(title, data, out, start=start).name)
    summary: dict[str, object] = {
        "load_seconds": round(window.end - window.start, 1), "side_call_outcomes": outcomes,
        "series_per_panel": counts, "images": images, "cpu_count": os.cpu_count(),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    }
    (out / "render.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stt_localfleet.dashboard_check", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/dashboards"))
    args = parser.parse_args(argv)
    summary = asyncio.run(check(args.out))
    print(json.dumps(summary["images"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
