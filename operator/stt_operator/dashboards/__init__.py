"""Grafana dashboards as code (grafana-foundation-sdk): one stt-server dashboard, row by row.

`build_dashboard()` gives Grafana's JSON model; `dashboards/stt-server.json` is its committed copy,
the operator ships a per-SttServer copy in a ConfigMap (`builders/grafana_dashboard.py`) and
`stt-operator dashboard` prints it. docs/dashboards.md shows each row rendered from a real Prometheus.
"""

from __future__ import annotations

from stt_operator.dashboards.dashboard import ROWS, UID, build_dashboard, dashboard_json, instance_uid

__all__ = ["ROWS", "UID", "build_dashboard", "dashboard_json", "instance_uid"]
