"""Golden files: every child of each sample, exactly. `STT_UPDATE_GOLDEN=1` rewrites them after a
deliberate change; review the diff like code."""

from __future__ import annotations

import os
import pathlib

import pytest
import yaml
from builder_specs import ALL_APIS, sample
from stt_operator.builders import build_children

GOLDEN = pathlib.Path(__file__).parent / "golden"


@pytest.mark.parametrize("name", ["minimal-cpu.yaml", "gpu-production.yaml", "network-policy.yaml"])
def test_children_match_golden(name: str) -> None:
    rendered = yaml.safe_dump_all(build_children(sample(name), monitoring_apis=ALL_APIS), sort_keys=True)
    path = GOLDEN / name
    if os.environ.get("STT_UPDATE_GOLDEN") == "1":
        path.write_text(rendered)
    assert path.exists(), f"no golden file {path}; run with STT_UPDATE_GOLDEN=1"
    assert rendered == path.read_text()
