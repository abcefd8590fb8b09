"""The whole alerting path, with the real Debian binaries on loopback: the operator's rendered
PrometheusRule loaded into Prometheus, Prometheus scraping a server control plane (bearer token)
whose decode queue is full, the alert sent to Alertmanager, and Alertmanager delivering it to a
webhook receiver with the labels and annotations the rule promises.

The second test routes with the example Alertmanager policy (stt_operator.alertmanager_example,
loopback webhooks instead of PagerDuty and Slack): critical alerts reach the `page` receiver,
warnings the `ticket` receiver, and warnings of an SttServer with a firing critical alert reach
none (Alertmanager reports them inhibited). SttAvailabilityLow, SttMemoryHigh,
SttDecodeLatencyHigh and SttTlsCertExpiringSoon fire there from real scrapes.

One change to the rendered rules, for time only: every `for:` becomes 1s, so the test does not
wait out the production 5 to 10 minutes (promtool unit tests check those durations).
Expressions, labels and annotations are used exactly as rendered.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from monitoring_stack import HealthyView, Processes, free_port
from stt_operator.alertmanager_example import alertmanager_config
from stt_operator.builders import build_prometheusrule
from stt_operator.spec import SttServerSpec, parse_spec
from stt_server.config import build_config
from stt_server.control import ControlPlane
from stt_server.metrics import DecodeTiming, ServerMetrics

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


# --- severity routing, inhibition and the newer alerts, through the example Alertmanager policy ---

@contextlib.asynccontextmanager
async def control_plane(metrics: ServerMetrics) -> AsyncIterator[int]:
    """A control plane serving `metrics` (bearer token TOKEN) on loopback; yields its port."""
    config = build_config({"server": {"http_host": "127.0.0.1", "http_port": 0}, "auth": {"control_token": TOKEN}})
    plane = ControlPlane(config=config, metrics=metrics, view=HealthyView())
    await plane.start()
    try:
        yield plane.port
    finally:
        await plane.stop()


@pytest.fixture
async def receivers() -> AsyncIterator[dict[str, tuple[str, asyncio.Queue[dict[str, Any]]]]]:
    """Two webhook receivers on one loopback server: `page` and `ticket` (URL, what each gets)."""
    queues: dict[str, asyncio.Queue[dict[str, Any]]] = {"page": asyncio.Queue(), "ticket": asyncio.Queue()}

    async def hook(request: web.Request) -> web.Response:
        await queues[request.match_info["receiver"]].put(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/{receiver}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield {name: (f"http://127.0.0.1:{port}/{name}", queue) for name, queue in queues.items()}
    finally:
        await runner.cleanup()


class Deliveries:
    """Every alert each receiver got, as (receiver, sttserver, alertname, alert)."""

    def __init__(self, queues: dict[str, asyncio.Queue[dict[str, Any]]]) -> None:
        self.queues = queues
        self.seen: list[tuple[str, str, str, dict[str, Any]]] = []

    def drain(self) -> None:
        for receiver, queue in self.queues.items():
            while not queue.empty():
                for alert in queue.get_nowait()["alerts"]:
                    self.seen.append((receiver, alert["labels"]["sttserver"], alert["labels"]["alertname"], alert))

    def names(self, receiver: str, sttserver: str) -> set[str]:
        self.drain()
        return {name for r, s, name, _ in self.seen if r == receiver and s == sttserver}


async def until(probe: Callable[[], Awaitable[bool]], *, what: str, logs: Path) -> None:
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SEC
    while not await probe():
        if time.monotonic() > deadline:
            tails = {name: (logs / name).read_text()[-1500:] for name in ("prometheus.log", "alertmanager.log")}
            raise AssertionError(f"not within {DELIVERY_TIMEOUT_SEC:g}s: {what}; logs: {tails}")
        await asyncio.sleep(0.2)


async def test_critical_pages_warning_tickets_and_a_critical_mutes_its_servers_warnings(
        tmp_path: Path, processes: Processes,
        receivers: dict[str, tuple[str, asyncio.Queue[dict[str, Any]]]]) -> None:
    """stt-a fails calls (critical: error rate, availability) and later also turns slow, saturated and
    near its certificate's expiry (warnings, muted by its critical); stt-b has only warnings (decode
    queue, memory over its small limit), which reach the ticket receiver. The policy is the example
    Alertmanager configuration's, with loopback webhooks and short timings."""
    from stt_server.tools.self_signed_cert import write_self_signed

    def spec(name: str, **extra: Any) -> SttServerSpec:
        return parse_spec({"metadata": {"name": name, "namespace": "speech"},
                           "spec": {"image": "img", "monitoring": {"prometheusRule": {
                               "runbookBaseURL": "https://runbooks.example/stt/"}}, **extra}})

    spec_a, spec_b = spec("stt-a"), spec("stt-b", resources={"limits": {"memory": "16Mi"}})
    metrics_a, metrics_b = ServerMetrics(), ServerMetrics()
    for metrics in (metrics_a, metrics_b):
        metrics.ready.set(1)
        metrics.model_loaded.set(1)
        metrics.decode_pending_cap.set(16)
    metrics_b.decode_pending.set(16)
    slow_phase = asyncio.Event()

    async def traffic() -> None:  # counters must keep rising for rate()
        while True:
            for status in ("OK", "INTERNAL"):
                metrics_a.grpc_requests.labels(method="StreamingRecognize", grpc_status=status, protocol="grpc").inc()
            if slow_phase.is_set():
                metrics_a.record_decode(kind="final", timing=DecodeTiming(0.0, 0.5, 2.5, 0.0), audio_seconds=3.0)
            await asyncio.sleep(0.2)

    page_url, ticket_url = receivers["page"][0], receivers["ticket"][0]
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(
        receivers={"page": {"webhook_configs": [{"url": page_url, "send_resolved": False}]},
                   "ticket": {"webhook_configs": [{"url": ticket_url, "send_resolved": False}]}},
        group_wait="0s", group_interval="1s", repeat_interval="1h")))
    am_port, prom_port = free_port(), free_port()
    processes.start(
        [ALERTMANAGER, f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am'}",
         f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
        log=tmp_path / "alertmanager.log")
    groups = rendered_rules(spec_a)["groups"] + rendered_rules(spec_b)["groups"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    deliveries = Deliveries({name: queue for name, (_, queue) in receivers.items()})
    recorder = asyncio.create_task(traffic())
    try:
        async with control_plane(metrics_a) as port_a, control_plane(metrics_b) as port_b, \
                aiohttp.ClientSession() as http:
            (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp_path / "rules.yml")],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
                "scrape_configs": [{
                    "job_name": name, "authorization": {"type": "Bearer", "credentials": TOKEN},
                    "static_configs": [{"targets": [f"127.0.0.1:{port}"],
                                        "labels": {"namespace": "speech", "pod": f"{name}-0"}}],
                } for name, port in (("stt-a", port_a), ("stt-b", port_b))],
            }))
            processes.start(
                [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                log=tmp_path / "prometheus.log")

            async def firing(sttserver: str) -> set[str]:
                async with http.get(f"http://127.0.0.1:{prom_port}/api/v1/alerts") as response:
                    alerts = (await response.json())["data"]["alerts"]
                return {a["labels"]["alertname"] for a in alerts
                        if a["state"] == "firing" and a["labels"].get("sttserver") == sttserver}

            critical_a = {"SttGrpcErrorRateHigh", "SttAvailabilityLow"}
            warnings_b = {"SttDecodeQueueSaturated", "SttMemoryHigh"}

            async def first_phase_delivered() -> bool:
                return (critical_a <= deliveries.names("page", "stt-a")
                        and warnings_b <= deliveries.names("ticket", "stt-b"))
            await until(first_phase_delivered, what=f"{critical_a} paged for stt-a and {warnings_b} ticketed "
                        f"for stt-b; got {deliveries.seen}", logs=tmp_path)

            # Now stt-a also turns slow, saturated and near its certificate's expiry: warnings under a critical.
            write_self_signed(tmp_path / "a.crt", tmp_path / "a.key", days=1)
            metrics_a.tls_cert.set_cert_file(tmp_path / "a.crt")
            metrics_a.decode_pending.set(16)
            slow_phase.set()
            warnings_a = {"SttDecodeLatencyHigh", "SttTlsCertExpiringSoon", "SttDecodeQueueSaturated"}

            async def warnings_fire() -> bool:
                return warnings_a <= await firing("stt-a")
            await until(warnings_fire, what=f"{warnings_a} firing in Prometheus for stt-a", logs=tmp_path)

            async def muted_in_alertmanager() -> bool:
                async with http.get(f"http://127.0.0.1:{am_port}/api/v2/alerts",
                                    params={"filter": 'sttserver="stt-a"'}) as response:
                    alerts = await response.json()
                muted = {a["labels"]["alertname"] for a in alerts
                         if a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]}
                return warnings_a <= muted
            await until(muted_in_alertmanager, what=f"{warnings_a} inhibited in Alertmanager", logs=tmp_path)
            # A muted alert would be sent on the group's next flush (group_wait 0s, group_interval 1s):
            # watch a few flushes go by.
            quiet_until = time.monotonic() + 4.0
            while time.monotonic() < quiet_until:
                await asyncio.sleep(0.5)
            deliveries.drain()
    finally:
        recorder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await recorder

    by_receiver = {(r, s) for r, s, _, _ in deliveries.seen}
    assert by_receiver == {("page", "stt-a"), ("ticket", "stt-b")}, deliveries.seen
    assert deliveries.names("page", "stt-a") == critical_a  # nothing but criticals pages
    assert deliveries.names("ticket", "stt-b") == warnings_b
    assert not warnings_a & deliveries.names("ticket", "stt-a")  # muted: reached no receiver
    for receiver, sttserver, name, alert in deliveries.seen:
        assert alert["labels"]["severity"] == {"page": "critical", "ticket": "warning"}[receiver]
        assert alert["annotations"]["runbook_url"] == f"https://runbooks.example/stt#{name.lower()}"
        assert alert["labels"]["namespace"] == "speech" and alert["labels"]["sttserver"] == sttserver
