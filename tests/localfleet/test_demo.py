"""The demo's own logic: the `kubectl get stt` table, the event lines, the load size, a missing manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
from stt_localfleet.demo import default_workers, main
from stt_localfleet.fleet import event_lines
from stt_localfleet.printing import json_path, printer_table

CRD = {"spec": {"versions": [{"name": "v1alpha1", "served": True, "additionalPrinterColumns": [
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Replicas", "type": "string", "jsonPath": ".status.replicasSummary"},
    {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoints[0].grpc"},
    {"name": "Hidden", "type": "string", "jsonPath": ".spec.x", "priority": 1},
]}]}}


def test_printer_table_renders_the_crd_columns_like_kubectl() -> None:
    obj = {"metadata": {"name": "demo"}, "status": {
        "conditions": [{"type": "Progressing", "status": "False"}, {"type": "Ready", "status": "True"}],
        "replicasSummary": "1/1", "endpoints": [{"grpc": "127.0.0.1:32051"}]}}
    assert printer_table(CRD, [obj, {"metadata": {"name": "new"}}]).splitlines() == [
        "NAME   READY    REPLICAS   ENDPOINT",
        "demo   True     1/1        127.0.0.1:32051",
        "new    <none>   <none>     <none>",
    ]


def test_json_path_subset() -> None:
    obj = {"a": {"b": [{"k": "x", "v": 1}, {"k": "y", "v": 2}]}}
    assert json_path(obj, '.a.b[?(@.k=="y")].v') == 2
    assert json_path(obj, ".a.b[1].k") == "y"
    assert json_path(obj, ".a.missing.deeper") is None
    assert json_path(obj, ".a.b[*].k") == ["x", "y"]


def test_event_lines_are_oldest_first_with_reason_and_object() -> None:
    events = [
        {"type": "Normal", "reason": "SuccessfulRescale", "message": "New size: 1; reason: All metrics below target",
         "lastTimestamp": "2026-11-22T23:10:09Z", "involvedObject": {"kind": "SttServer", "name": "demo"}},
        {"type": "Normal", "reason": "SuccessfulRescale", "message": "New size: 2; reason: decode_pending above target",
         "lastTimestamp": "2026-11-22T23:09:01Z", "involvedObject": {"kind": "SttServer", "name": "demo"}},
    ]
    lines = event_lines(events)
    assert lines[0].startswith("23:09:01") and "New size: 2" in lines[0] and "SttServer/demo" in lines[0]
    assert "New size: 1" in lines[1]


def test_load_size_follows_the_sessions_target() -> None:
    assert default_workers({"targetActiveSessionsPerReplica": 2}) == 4
    assert default_workers({}) == 6


def test_a_missing_manifest_is_a_clear_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--manifest", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml not found" in capsys.readouterr().err
