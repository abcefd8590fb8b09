"""The dashboard as built: the committed JSON is current, every query parses (promtool), the layout
is a Grafana grid, the SLO budgets count from real bucket bounds, and the operator's ConfigMap
is a valid child whose last-applied record still fits the API server's annotation limit."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from schema_validation import validate_manifest
from stt_operator.builders import build_children, build_grafana_dashboard
from stt_operator.cli import main as operator_main
from stt_operator.dashboards import ROWS, build_dashboard, dashboard_json, instance_uid
from stt_operator.dashboards.series_names import EXTERNAL, GPU_ONLY, metric_names, panel_queries
from stt_operator.dashboards.slo import FAST_BOUNDS, LATENCY_BOUNDS, objectives
from stt_operator.reconcile import with_last_applied
from stt_operator.spec import SttServerSpec, parse_spec
from stt_operator.spec_sections import Thresholds
from stt_server import metrics as server_metrics

REPO = pathlib.Path(__file__).resolve().parents[3]
COMMITTED = REPO / "dashboards" / "stt-server.json"
PROMTOOL = shutil.which("promtool")
ANNOTATIONS_LIMIT = 256 * 1024  # the API server's limit on all annotations of one object
ALL_APIS = frozenset({"servicemonitors", "prometheusrules"})


def make(**spec: Any) -> SttServerSpec:
    return parse_spec({"metadata": {"name": "s1", "namespace": "ns"}, "spec": {"image": "img:1", **spec}})


def sample(name: str) -> SttServerSpec:
    return parse_spec(yaml.safe_load((REPO / "crds" / "samples" / name).read_text()))


def test_committed_json_is_what_the_builder_renders() -> None:
    assert COMMITTED.read_text() == dashboard_json(), \
        "dashboards/stt-server.json is stale: run `stt-operator dashboard > dashboards/stt-server.json`"


def test_the_cli_prints_the_committed_json(capsys: pytest.CaptureFixture[str]) -> None:
    operator_main(["dashboard"])
    assert capsys.readouterr().out == COMMITTED.read_text()


def test_every_row_is_there_with_the_four_variables() -> None:
    model = build_dashboard()
    rows = [p["title"] for p in model["panels"] if p["type"] == "row"]
    assert rows == [title for title, _ in ROWS]
    assert {"SLO", "Traffic", "Performance", "Quality", "Resources", "Limits", "Fleet"} <= set(rows)
    assert [v["name"] for v in model["templating"]["list"]] == ["datasource", "namespace", "sttserver", "pod"]
    for title, expr in panel_queries(model):
        assert 'namespace="$namespace"' in expr, title  # every panel shows one SttServer, never all


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_every_panel_query_parses(tmp_path: pathlib.Path) -> None:
    """promtool parses each expression (variables replaced as Grafana would) as a recording rule."""
    from stt_localfleet.dashboard_queries import grafana_expr

    rules = [{"record": f"panel:query_{i}", "expr": grafana_expr(expr, namespace="ns", sttserver="stt",
                                                                 rate_interval="1m", range_="1h")}
             for i, (_, expr) in enumerate(panel_queries(build_dashboard()))]
    assert len(rules) > 60
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run([str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "p", "rules": [{"record": "r", "expr": "sum(rate(x[1m])"}]}]}))
    assert subprocess.run([str(PROMTOOL), "check", "rules", str(broken)], capture_output=True,
                          timeout=60, check=False).returncode != 0  # promtool does reject a bad query


def test_metric_name_scanner() -> None:
    assert metric_names('sum by (le, pod) (rate(a_bucket{x="y{z}"}[5m])) / on(pod) b or vector(0)') == {"a_bucket", "b"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(c[1m]))) > bool 2") == {"c"}


def test_layout_is_a_grafana_grid_without_overlaps() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in build_dashboard()["panels"]:
        g = panel["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, panel["title"]
        cells = {(g["x"] + dx, g["y"] + dy) for dx in range(g["w"]) for dy in range(g["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
    ids = [p["id"] for p in build_dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def test_budget_bounds_are_the_servers_buckets() -> None:
    assert LATENCY_BOUNDS == server_metrics.LATENCY_BUCKETS
    assert FAST_BOUNDS == server_metrics.FAST_BUCKETS
    for objective in objectives(Thresholds()):  # the default objectives are bucket bounds themselves
        assert objective.budget_bound == objective.seconds
    odd = objectives(Thresholds(final_p99_seconds=4.5))[2]
    assert odd.budget_bound == 4.0  # between bounds: the stricter one


def test_external_series_are_only_the_documented_ones() -> None:
    used = set().union(*(metric_names(e) for _, e in panel_queries(build_dashboard())))
    assert used & set(EXTERNAL) == set(EXTERNAL), "an EXTERNAL entry no panel uses"
    doc = (REPO / "docs" / "dashboards.md").read_text()
    for name in (*EXTERNAL, *GPU_ONLY):
        assert name in doc, f"{name} is not documented in docs/dashboards.md"
    assert used & set(GPU_ONLY) == set(GPU_ONLY)


def test_configmap_only_when_enabled_and_valid() -> None:
    assert all(c["metadata"]["name"] == "s1" for c in build_children(make(), monitoring_apis=ALL_APIS)
               if c["kind"] == "ConfigMap")
    spec = make(monitoring={"grafanaDashboard": {"enabled": True, "folder": "Speech", "labels": {"team": "asr"}},
                            "prometheusRule": {"thresholds": {"finalP99Seconds": 4}}})
    maps = [c for c in build_children(spec, monitoring_apis=frozenset()) if c["kind"] == "ConfigMap"]
    assert [m["metadata"]["name"] for m in maps] == ["s1", "s1-grafana-dashboard"]
    child = maps[1]
    validate_manifest(child)
    assert child["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert child["metadata"]["labels"]["team"] == "asr"
    assert child["metadata"]["annotations"] == {"grafana_folder": "Speech"}
    model = json.loads(child["data"]["stt-server.json"])
    assert model["uid"] == instance_uid("ns", "s1") != build_dashboard()["uid"]
    current = {v["name"]: v.get("current", {}).get("value") for v in model["templating"]["list"]}
    assert (current["namespace"], current["sttserver"]) == ("ns", "s1")
    final = next(p for p in model["panels"] if p["title"] == "Final P99")
    assert final["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 4  # the spec's objective
    annotations = with_last_applied(child)["metadata"]["annotations"]
    assert sum(len(k) + len(v) for k, v in annotations.items()) < ANNOTATIONS_LIMIT


def test_production_sample_ships_its_dashboard() -> None:
    children = build_children(sample("gpu-production.yaml"), monitoring_apis=ALL_APIS)
    dashboard = next(c for c in children if c["metadata"]["name"].endswith("-grafana-dashboard"))
    assert dashboard == build_grafana_dashboard(sample("gpu-production.yaml"))


def test_the_cli_prints_the_configmap_the_operator_renders(capsys: pytest.CaptureFixture[str]) -> None:
    operator_main(["dashboard", "--namespace", "ns", "--name", "s1", "--configmap"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == build_grafana_dashboard(make(monitoring={"grafanaDashboard": {"enabled": True}}))
    with pytest.raises(SystemExit):
        operator_main(["dashboard", "--configmap"])  # which SttServer? a clear refusal, not a guess
