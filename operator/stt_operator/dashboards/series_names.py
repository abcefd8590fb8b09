"""Which metric names the dashboard's queries read, and which of them come from outside stt-server.

`metric_names` is a small PromQL scanner (no PromQL parser ships for Python): it drops strings,
label matchers, ranges and grouping clauses, then keeps identifiers that are not functions,
keywords or aggregations. Tests hold every name to the server's real `/metrics`, except the
`EXTERNAL` ones, which other exporters provide (docs/dashboards.md, "Series from elsewhere"), and
the `GPU_ONLY` ones, which a CPU server does not export.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from stt_operator.dashboards.fleet import AUTOSCALER_DESIRED

EXTERNAL: Final[Mapping[str, str]] = {
    "kube_deployment_spec_replicas": "kube-state-metrics",
    "kube_deployment_status_replicas_ready": "kube-state-metrics",
    "kube_pod_container_status_restarts_total": "kube-state-metrics",
    AUTOSCALER_DESIRED: "kube-state-metrics custom resource state (fleet.KUBE_STATE_METRICS_CONFIG)",
    "up": "Prometheus itself (one per scraped target)",
}

# The server's own series that exist only on a GPU node with metrics.enable_gpu_metrics (NVML answers).
GPU_ONLY: Final[Mapping[str, str]] = {
    "stt_gpu_memory_used_bytes": "NVML, per visible GPU",
    "stt_gpu_memory_total_bytes": "NVML, per visible GPU",
}

_KEYWORDS: Final = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                              "group_left", "group_right", "inf", "nan", "le"})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names one PromQL expression selects."""
    text = _GROUPING.sub(" ", _RANGE.sub(" ", _MATCHERS.sub(" ", _STRING.sub('""', expr))))
    names = set()
    for match in _IDENT.finditer(text):
        rest = text[match.end():].lstrip()
        word = match.group()
        if rest.startswith("(") or word.lower() in _KEYWORDS:
            continue  # a function or aggregation call, or a keyword
        names.add(word)
    return names


def panel_queries(dashboard: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(panel title, expression) for every target of every panel."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets") or ():
            yield panel["title"], target["expr"]
