"""The whole alerting path, with the real Debian binaries on loopback: the operator's rendered
PrometheusRule loaded into Prometheus, Prometheus scraping a server control plane (bearer token)
whose decode queue is full, the alert sent to Alertmanager, and Alertmanager delivering it to a
webhook receiver with the labels and annotations the rule promises.

One change to the rendered rules, for time only: every `for:` becomes 1s, so the test does not
wait out the production 5 to 10 minutes (promtool unit tests check those durations).
Expressions, labels and annotations are used exactly as rendered.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from monitoring_stack import HealthyView, Processes, free_port
from stt_operator.builders import build_prometheusrule
from stt_operator.spec import SttServerSpec, parse_spec
from stt_server.config import build_config
from stt_server.control import ControlPlane
from stt_server.metrics import ServerMetrics

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
TOKEN = "alert-path-token"
DELIVERY_TIMEOUT_SEC = 60.0

pytestmark = pytest.mark.skipif(
    not (Path(PROMETHEUS).exists() and Path(ALERTMANAGER).exists()),
    reason="prometheus / prometheus-alertmanager not installed (Debian packages; `make deps` installs them)")


def rendered_rules(spec: SttServerSpec) -> dict[str, Any]:
    """The PrometheusRule's groups as a Prometheus rule file, `for:` shortened to 1s."""
    groups = build_prometheusrule(spec)["spec"]["groups"]
    for group in groups:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    return {"groups": groups}


@pytest.fixture
async def saturated_server() -> AsyncIterator[int]:
    """A control plane whose metrics say: decode queue at its cap of 16. Yields its port."""
    config = build_config({"server": {"http_host": "127.0.0.1", "http_port": 0}, "auth": {"control_token": TOKEN}})
    metrics = ServerMetrics()
    metrics.ready.set(1)  # what SttServerApp sets once the model is loaded and gRPC serves
    metrics.model_loaded.set(1)
    metrics.decode_pending_cap.set(16)
    metrics.decode_pending.set(16)
    plane = ControlPlane(config=config, metrics=metrics, view=HealthyView())
    await plane.start()
    try:
        yield plane.port
    finally:
        await plane.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, asyncio.Queue[dict[str, Any]]]]:
    """A webhook receiver (what a pager integration would be): yields its URL and what it gets."""
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await received.put(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/alerts", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/alerts", received
    finally:
        await runner.cleanup()


async def test_a_full_decode_queue_pages_through_alertmanager(
        tmp_path: Path, processes: Processes, saturated_server: int,
        receiver: tuple[str, asyncio.Queue[dict[str, Any]]]) -> None:
    spec = parse_spec({"metadata": {"name": "stt-a", "namespace": "speech"},
                       "spec": {"image": "img", "monitoring": {"prometheusRule": {
                           "runbookBaseURL": "https://runbooks.example/stt/"}}}})
    hook_url, received = receiver
    am_port, prom_port = free_port(), free_port()

    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump({
        "route": {"receiver": "pager", "group_by": ["alertname", "sttserver"], "group_wait": "0s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "pager", "webhook_configs": [{"url": hook_url, "send_resolved": False}]}],
    }))
    processes.start(
        [ALERTMANAGER, f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am'}",
         f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],  # no gossip port
        log=tmp_path / "alertmanager.log")

    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rendered_rules(spec)))
    # The labels a ServiceMonitor's scrape would give the pod: job (the Service), namespace, pod.
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{
            "job_name": "stt-a", "authorization": {"type": "Bearer", "credentials": TOKEN},
            "static_configs": [{"targets": [f"127.0.0.1:{saturated_server}"],
                                "labels": {"namespace": "speech", "pod": "stt-a-7d9f-x2k4p"}}],
        }],
    }))
    processes.start(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        log=tmp_path / "prometheus.log")

    deadline = time.monotonic() + DELIVERY_TIMEOUT_SEC
    delivered: dict[str, dict[str, Any]] = {}
    while "SttDecodeQueueSaturated" not in delivered:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            logs = {name: (tmp_path / name).read_text()[-1500:] for name in ("prometheus.log", "alertmanager.log")}
            raise AssertionError(f"no SttDecodeQueueSaturated at the receiver after {DELIVERY_TIMEOUT_SEC:g}s; "
                                 f"got {sorted(delivered)}; logs: {logs}")
        try:
            payload = await asyncio.wait_for(received.get(), timeout=remaining)
        except TimeoutError:
            continue
        for alert in payload["alerts"]:
            delivered[alert["labels"]["alertname"]] = alert

    alert = delivered["SttDecodeQueueSaturated"]
    assert alert["status"] == "firing"
    assert alert["labels"]["severity"] == "warning" and alert["labels"]["sttserver"] == "stt-a"
    assert alert["labels"]["pod"] == "stt-a-7d9f-x2k4p" and alert["labels"]["namespace"] == "speech"
    assert alert["annotations"]["runbook_url"] == "https://runbooks.example/stt#sttdecodequeuesaturated"
    assert "stt-a-7d9f-x2k4p" in alert["annotations"]["description"]  # {{ $labels.pod }} expanded

    # The healthy signals of the same server page nobody: Prometheus itself has nothing else firing.
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{prom_port}/api/v1/alerts") as response:
        firing = {a["labels"]["alertname"] for a in (await response.json())["data"]["alerts"]
                  if a["state"] == "firing"}
    assert firing == {"SttDecodeQueueSaturated"}, firing
