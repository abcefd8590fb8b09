"""The stt-server dashboard, assembled from its rows; JSON out for files, ConfigMaps and the CLI."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Final

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, Panel

from stt_operator.dashboards import fleet, limits, performance, quality, resources, seed_panels, slo, traffic
from stt_operator.dashboards.variables import variables
from stt_operator.spec_sections import Thresholds

UID: Final = "stt-server"
TITLE: Final = "stt-server"
TAGS: Final = ["stt-fleet", "speech-to-text"]

# (row title, its panels), top to bottom: what on-call checks first comes first.
ROWS: Final[tuple[tuple[str, Callable[[Thresholds], list[Builder[Panel]]]], ...]] = (
    ("SLO", slo.panels),
    ("Traffic", traffic.panels),
    ("Performance", performance.panels),
    ("Quality", quality.panels),
    ("Resources", resources.panels),
    ("Limits", limits.panels),
    ("Fleet", fleet.panels),
    ("Whisper API (seed 003)", seed_panels.whisper_api),
    ("HTTP, gRPC and business (seed 004)", seed_panels.http_and_business),
)


def instance_uid(namespace: str, sttserver: str) -> str:
    """A stable dashboard uid (<= 40 characters) for one SttServer's copy."""
    digest = hashlib.sha256(f"{namespace}/{sttserver}".encode()).hexdigest()[:12]
    return f"{UID}-{digest}"


def build_dashboard(*, namespace: str | None = None, sttserver: str | None = None,
                    thresholds: Thresholds | None = None) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (a dict).

    Without arguments: the shared dashboard (`dashboards/stt-server.json`), whose variables list
    every scraped SttServer, with docs/slo.md's default objectives. With `namespace`, `sttserver`
    and the spec's `thresholds`: that instance's copy (own uid and title, variables preselected,
    its own objectives), which the operator ships in a ConfigMap.
    """
    limits = thresholds if thresholds is not None else Thresholds()
    instance = namespace is not None and sttserver is not None
    builder = (Dashboard(f"{TITLE}: {namespace}/{sttserver}" if instance else TITLE)
               .uid(instance_uid(namespace, sttserver) if namespace and sttserver else UID)
               .description("Streaming Whisper speech-to-text: SLOs, traffic, latency, quality, resources, "
                            "limits, fleet (docs/dashboards.md)")
               .tags(TAGS).editable().tooltip(DashboardCursorSync.CROSSHAIR)
               .time("now-1h", "now").refresh("30s").timezone("browser")
               .variables(variables(namespace=namespace, sttserver=sttserver)))
    for title, panels in ROWS:
        builder = builder.with_row(Row(title))
        for panel in panels(limits):
            builder = builder.with_panel(panel)
    model: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    for number, panel in enumerate(model["panels"], start=1):
        panel["id"] = number  # Grafana keys panel links and repeats on ids
    return model


def dashboard_json(*, namespace: str | None = None, sttserver: str | None = None,
                   thresholds: Thresholds | None = None, indent: int | None = 2) -> str:
    """`build_dashboard` as text: indented for the committed file, compact for a ConfigMap."""
    separators = (",", ": ") if indent is not None else (",", ":")
    model = build_dashboard(namespace=namespace, sttserver=sttserver, thresholds=thresholds)
    return json.dumps(model, indent=indent,
                      sort_keys=True, separators=separators) + ("\n" if indent is not None else "")
