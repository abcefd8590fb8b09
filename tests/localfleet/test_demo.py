"""The demo's own logic: the load size, the operator pod's process, a missing manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
from stt_localfleet.demo import default_workers, main, operator_pid


def test_load_size_follows_the_sessions_target() -> None:
    assert default_workers({"targetActiveSessionsPerReplica": 2}) == 4
    assert default_workers({}) == 6


def test_operator_pid_comes_from_the_kubelets_container_id() -> None:
    pod = {"status": {"containerStatuses": [{"name": "operator", "containerID": "localfleet://4242"}]}}
    assert operator_pid(pod) == 4242
    assert operator_pid({"status": {"containerStatuses": [{"containerID": "containerd://abc"}]}}) is None
    assert operator_pid({"status": {}}) is None


def test_a_missing_manifest_is_a_clear_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--manifest", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml not found" in capsys.readouterr().err
