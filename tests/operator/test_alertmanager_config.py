"""The example Alertmanager configuration: current with its generator, accepted by `amtool
check-config` (templates included), and its templates put the runbook link into every message."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from stt_operator.alertmanager_example import EXAMPLE_PATH, render_example

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / EXAMPLE_PATH
TEMPLATES = EXAMPLE.parent / "sttfleet.tmpl"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
needs_amtool = pytest.mark.skipif(not Path(AMTOOL).exists(),
                                  reason="amtool not installed (Debian prometheus-alertmanager; make deps)")


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


def test_committed_example_is_current() -> None:
    assert EXAMPLE.read_text() == render_example(), "run: python -m stt_operator.alertmanager_example --write"


@needs_amtool
def test_amtool_accepts_the_example() -> None:
    result = amtool("check-config", str(EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 templates" in result.stdout and "1 inhibit rules" in result.stdout


@needs_amtool
@pytest.mark.parametrize("breakage", ["unknown receiver", "broken template"])
def test_amtool_would_reject_a_broken_example(tmp_path: Path, breakage: str) -> None:
    config = yaml.safe_load(EXAMPLE.read_text())
    template = TEMPLATES.read_text()
    if breakage == "unknown receiver":
        config["route"]["routes"][0]["receiver"] = "pager-typo"
    else:
        template = template.replace('{{- end }}', '{{- ned }}', 1)
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    (tmp_path / "sttfleet.tmpl").write_text(template)
    assert amtool("check-config", str(tmp_path / "alertmanager.yml")).returncode != 0


@needs_amtool
@pytest.mark.parametrize("name", ["sttfleet.slack.text", "sttfleet.runbook", "sttfleet.title",
                                  "sttfleet.pagerduty.description"])
def test_templates_carry_the_runbook_link(tmp_path: Path, name: str) -> None:
    alert = {"status": "firing",
             "labels": {"alertname": "SttGrpcErrorRateHigh", "severity": "critical", "sttserver": "stt-a",
                        "namespace": "speech"},
             "annotations": {"summary": "SttServer speech/stt-a: gRPC server error rate above SLO",
                             "description": "More than 0.5% of gRPC calls fail with a server fault.",
                             "runbook_url": "https://runbooks.example/stt#sttgrpcerrorratehigh"},
             "startsAt": "2026-12-02T20:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom",
             "fingerprint": "1"}
    data = {"receiver": "page", "status": "firing", "alerts": [alert],
            "groupLabels": {"namespace": "speech", "sttserver": "stt-a"},
            "commonLabels": alert["labels"], "commonAnnotations": alert["annotations"], "externalURL": "http://am"}
    (tmp_path / "data.json").write_text(json.dumps(data))
    result = amtool("template", "render", f"--template.glob={TEMPLATES}",
                    f'--template.text={{{{ template "{name}" . }}}}', f"--template.data={tmp_path / 'data.json'}")
    assert result.returncode == 0, result.stderr
    expected = {"sttfleet.slack.text": "Runbook: https://runbooks.example/stt#sttgrpcerrorratehigh",
                "sttfleet.runbook": "https://runbooks.example/stt#sttgrpcerrorratehigh",
                "sttfleet.title": "[FIRING:1] speech/stt-a: SttGrpcErrorRateHigh",
                "sttfleet.pagerduty.description": "SttServer speech/stt-a: gRPC server error rate above SLO"}[name]
    assert expected in result.stdout, result.stdout
