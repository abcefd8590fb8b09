"""Every panel of the dashboard returns data from a real Prometheus scraping a real, loaded stt-server.

A stt-server process (tiny.en on CPU, small limits) under stt_localfleet.dashboard_load's load:
real-time synthesized speech streams plus the refusals, errors, cut streams, unary calls and
control-plane requests an on-call engineer looks for. Prometheus scrapes it every second with
the labels a ServiceMonitor gives; each panel query, variables replaced as Grafana replaces them,
must return at least one finite value. `NO_DATA_HERE` lists the only exceptions and why.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Final

import aiohttp
import pytest
from stt_localfleet.dashboard_load import drive
from stt_localfleet.dashboard_queries import grafana_expr, instant
from stt_localfleet.scraped_server import NAMESPACE, STTSERVER, scraped_server
from stt_operator.dashboards import build_dashboard
from stt_operator.dashboards.series_names import EXTERNAL, GPU_ONLY, metric_names, panel_queries

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
# Panels that cannot show data on one CPU machine without a cluster, and why (docs/dashboards.md).
NO_DATA_HERE: Final = {
    "GPU memory": "NVML answers on GPU nodes only (metrics.enable_gpu_metrics)",
    "Replicas": "kube-state-metrics needs a cluster (the 'ready (scraped)' query is checked on its own)",
    "Autoscaler decisions": "kube-state-metrics needs a cluster",
    "Container restarts": "kube-state-metrics needs a cluster",
}

# Panels the load must move, not only fill: each needs a value above zero (a query that silently
# matched nothing useful, or a counter whose first burst Prometheus never saw, would read 0).
MOVED_BY_THE_LOAD: Final = ("Sessions created, streams started", "Results sent", "Decode latency",
                            "CreateSession refusals by code", "Rate-limit blocks", "Shed calls", "Resident memory",
                            "CPU", "Final latency", "First partial latency", "Transcription results")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240),
              pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="prometheus not installed (Debian package)")]


async def test_every_panel_returns_data_from_a_loaded_server(tmp_path: Path) -> None:
    model = build_dashboard()
    async with scraped_server(tmp_path) as stack:
        window, outcomes = await drive(stack)
        # the load did reach each limit the Limits row shows
        assert {"ERR1011", "ERR1012"} <= set(outcomes), outcomes
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{stack.http_url}/metrics", ssl=stack.ssl_context(),
                                headers={"Authorization": f"Bearer {stack.token}"}) as response:
                exposition = await response.text()
            at = time.time()
            empty, unknown, moved = [], [], set()
            for title, expr in panel_queries(model):
                names = metric_names(expr) - set(EXTERNAL) - set(GPU_ONLY)
                unknown += [f"{title}: {n}" for n in sorted(names) if not _exported(n, exposition)]
                if title in NO_DATA_HERE and (set(EXTERNAL) | set(GPU_ONLY)) & metric_names(expr):
                    continue
                query = grafana_expr(expr, namespace=NAMESPACE, sttserver=STTSERVER, rate_interval="1m", range_="5m")
                series = await instant(http, stack.prometheus_url, query, at=at)
                if not any(s.finite for s in series):
                    empty.append(f"{title}: {query} -> {[(s.labels, s.points) for s in series]}")
                if any(v > 0 for s in series for _, v in s.points if math.isfinite(v)):
                    moved.add(title)
    assert not unknown, "metric names no /metrics line has:\n" + "\n".join(unknown)
    flat = [title for title in MOVED_BY_THE_LOAD if title not in moved]
    assert not flat, f"panels the load should have moved read 0: {flat}"
    assert not empty, f"load {window.end - window.start:.0f}s, outcomes {outcomes}; panels without data:\n" + \
        "\n".join(empty)


def _exported(name: str, exposition: str) -> bool:
    """`name` has a sample line in the text exposition (histogram/summary suffixes included)."""
    return any(line.startswith((name + "{", name + " ")) for line in exposition.splitlines())
