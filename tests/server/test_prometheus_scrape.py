"""The real Prometheus (Debian package) scrapes the control plane with the bearer token and answers
``histogram_quantile`` over our latency histograms.

First with observations recorded into ``ServerMetrics`` directly while Prometheus scrapes every
second (fast, deterministic; ``rate()`` needs increases between two scrapes, hence the background
recorder). A second scrape job without the token must see ``up == 0``: the protection holds for
Prometheus too. Then against the whole server (real model) while ``stt-bench load`` streams
synthesized speech at real time: the first-partial and final latency quantiles come back as
numbers and agree with what the clients measured.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from monitoring_stack import HealthyView, Processes, free_port
from stt_server.config import build_config
from stt_server.control import ControlPlane
from stt_server.metrics import DecodeTiming, ServerMetrics

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
OPERATIONS_DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
TOKEN = "prom-scrape-token"
QUERY_TIMEOUT_SEC = 60.0

pytestmark = pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="prometheus binary not installed")

QUERIES = {
    "decode_p99": 'histogram_quantile(0.99, sum by (le) (rate(stt_decode_phase_seconds_bucket{phase="total"}[1m])))',
    "inference_p50": 'histogram_quantile(0.5, sum by (le) (rate(stt_decode_phase_seconds_bucket{phase="inference"}[1m])))',
    "first_partial_p99": "histogram_quantile(0.99, sum by (le) (rate(stt_first_partial_latency_seconds_bucket[1m])))",
    "final_p99": "histogram_quantile(0.99, sum by (le) (rate(stt_final_latency_seconds_bucket[1m])))",
    "create_session_p99": "histogram_quantile(0.99, sum by (le) (rate(stt_create_session_seconds_bucket[1m])))",
}


def _prometheus_config(target_port: int) -> str:
    target = f"['127.0.0.1:{target_port}']"
    return f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: stt
    scrape_interval: 1s
    authorization: {{type: Bearer, credentials: {TOKEN}}}
    static_configs: [{{targets: {target}}}]
  - job_name: stt-no-token
    scrape_interval: 1s
    static_configs: [{{targets: {target}}}]
"""


@pytest.fixture
async def control_plane() -> AsyncIterator[tuple[ControlPlane, ServerMetrics]]:
    config = build_config({"server": {"http_host": "127.0.0.1", "http_port": 0}, "auth": {"control_token": TOKEN}})
    metrics = ServerMetrics()
    plane = ControlPlane(config=config, metrics=metrics, view=HealthyView())
    await plane.start()
    try:
        yield plane, metrics
    finally:
        await plane.stop()


@pytest.fixture
def prometheus_factory(tmp_path: Path, processes: Processes) -> Any:
    """``start(target_port) -> base_url``; the process is always stopped afterwards."""

    def start(target_port: int) -> str:
        config = tmp_path / "prometheus.yml"
        config.write_text(_prometheus_config(target_port))
        port = free_port()
        processes.start(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
            log=tmp_path / "prometheus.log")
        return f"http://127.0.0.1:{port}"

    return start


async def _query(session: aiohttp.ClientSession, promql: str, *, base: str) -> float | None:
    """The single value of an instant query, or ``None`` while Prometheus has no number yet."""
    try:
        async with session.get(f"{base}/api/v1/query", params={"query": promql}) as response:
            body = await response.json()
    except aiohttp.ClientError:
        return None  # not listening yet
    result = body.get("data", {}).get("result", [])
    if body.get("status") != "success" or len(result) != 1:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


async def _until_number(session: aiohttp.ClientSession, promql: str, *, base: str, deadline: float) -> float:
    while time.monotonic() < deadline:
        value = await _query(session, promql, base=base)
        if value is not None:
            return value
        await asyncio.sleep(0.5)
    raise AssertionError(f"Prometheus gave no number for {promql!r} within {QUERY_TIMEOUT_SEC} s")


def _doc_section(title: str) -> list[str]:
    lines = OPERATIONS_DOC.read_text().splitlines()
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start:end]


def _documented_panel_queries() -> list[str]:
    """The backticked PromQL in the second column of the dashboard table."""
    queries = []
    for line in _doc_section("### Dashboard panels (seed 002, with real histograms)"):
        cells = line.split(" | ")
        if line.startswith("| ") and len(cells) >= 2 and "`" in cells[1]:
            queries += re.findall(r"`([^`]+)`", cells[1])
    return queries


async def _record_forever(metrics: ServerMetrics) -> None:
    """Steady traffic with known latencies: decode 0.3 s total, first partial 0.8 s, final 1.2 s."""
    while True:
        metrics.record_decode(kind="partial", timing=DecodeTiming(0.05, 0.05, 0.15, 0.05), audio_seconds=1.5)
        metrics.first_partial_seconds.observe(0.8)
        metrics.final_seconds.observe(1.2)
        metrics.create_session_seconds.observe(0.004)
        await asyncio.sleep(0.1)


async def test_prometheus_scrapes_with_token_and_answers_quantiles(control_plane, prometheus_factory) -> None:
    plane, metrics = control_plane
    base = prometheus_factory(plane.port)
    recorder = asyncio.create_task(_record_forever(metrics))
    deadline = time.monotonic() + QUERY_TIMEOUT_SEC
    try:
        async with aiohttp.ClientSession() as session:
            assert await _until_number(session, base=base, promql='up{job="stt"} == 1', deadline=deadline) == 1
            values = {name: await _until_number(session, base=base, promql=q, deadline=deadline) for name, q in QUERIES.items()}
            # Without the token Prometheus is refused: up == 0 for that job.
            assert await _until_number(session, base=base, promql='up{job="stt-no-token"}', deadline=deadline) == 0
            # Seed 002's flattened names work as queries too.
            assert await _until_number(session, base=base, promql="stt_decode_latency_count", deadline=deadline) > 0
            # Every dashboard query in docs/operations.md is valid PromQL against our metrics.
            for promql in _documented_panel_queries():
                async with session.get(f"{base}/api/v1/query", params={"query": promql}) as response:
                    body = await response.json()
                assert body["status"] == "success", (promql, body)
    finally:
        recorder.cancel()
        try:
            await recorder
        except asyncio.CancelledError:
            pass
    # Every observation falls into one bucket, so quantiles interpolate inside that bucket's bounds.
    assert 0.25 < values["decode_p99"] <= 0.5
    assert 0.1 < values["inference_p50"] <= 0.25
    assert 0.75 < values["first_partial_p99"] <= 1.0
    assert 1.0 < values["final_p99"] <= 1.5
    assert 0.0025 < values["create_session_p99"] <= 0.005


@pytest.fixture(scope="module")
def speech_clip() -> Any:
    from stt_server.bench.workload import SENTENCES, compose, synthesize

    texts = list(SENTENCES[:2])
    return compose(synthesize(texts), texts=texts)


@pytest.mark.slow
async def test_prometheus_quantiles_after_real_streams(prometheus_factory, speech_clip) -> None:
    from rich.console import Console
    from stt_server.app import SttServerApp
    from stt_server.bench.load import LoadOptions, run_load

    config = build_config({
        "server": {"grpc_host": "127.0.0.1", "grpc_port": 0, "http_host": "127.0.0.1", "http_port": 0, "rest_port": 0},
        "auth": {"control_token": TOKEN}, "logging": {"format": "console"}, "model": {"device": "cpu"},
    })
    app = SttServerApp(config)
    await app.start()
    try:
        base = prometheus_factory(app.http_port)
        deadline = time.monotonic() + QUERY_TIMEOUT_SEC
        async with aiohttp.ClientSession() as session:
            assert await _until_number(session, base=base, promql='up{job="stt"} == 1', deadline=deadline) == 1
            options = LoadOptions(server=f"127.0.0.1:{app.grpc_port}", sessions=2, duration_sec=1.0, realtime=True,
                                  http_url=f"http://127.0.0.1:{app.http_port}", token=TOKEN)
            report = await run_load(options, console=Console(quiet=True), inputs=[speech_clip])
            deadline = time.monotonic() + QUERY_TIMEOUT_SEC
            first_p99 = await _until_number(session, base=base, promql=QUERIES["first_partial_p99"], deadline=deadline)
            final_p99 = await _until_number(session, base=base, promql=QUERIES["final_p99"], deadline=deadline)
            decode_p99 = await _until_number(session, base=base, promql=QUERIES["decode_p99"], deadline=deadline)
            streams = await _until_number(session, base=base, promql="sum(stt_streams_started_total)", deadline=deadline)
    finally:
        await app.stop()
    assert report.errors.failures == 0
    assert report.final.count == 4 and report.missing_finals == 0
    assert streams == 2
    # Server-side quantiles (bucket-interpolated) and client-side measurements describe the same
    # streams: both well inside the SLO, and of the same order.
    assert 0 < first_p99 <= 2.5 and 0 < final_p99 <= 5.0 and 0 < decode_p99 <= 5.0
    assert report.first_partial.p99 is not None and report.final.p99 is not None
    assert report.first_partial.p99 <= 2.5 and report.final.p99 <= 5.0
    assert abs(final_p99 - report.final.p99) < 1.5
