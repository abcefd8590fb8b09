"""The rendered PrometheusRule passes `promtool check rules`, and `promtool test rules` shows each
alert firing on bad series and staying quiet on healthy ones (tests/operator/rules_tests/)."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from stt_operator.builders import build_prometheusrule
from stt_operator.builders.prometheusrule import SERVER_ERROR_STATUSES, SHED_STATUSES, memory_limit_bytes
from stt_operator.spec import SttServerSpec, parse_spec

PROMTOOL = shutil.which("promtool")
RULES_TESTS = pathlib.Path(__file__).parent / "rules_tests"
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")


def rules_spec(**thresholds: Any) -> SttServerSpec:
    return parse_spec({"metadata": {"name": "stt-a", "namespace": "speech"},
                       "spec": {"image": "img", "monitoring": {"prometheusRule": {
                           "runbookBaseURL": "https://runbooks.example/stt/", "thresholds": thresholds}}}})


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False)


def expand_labels(text: str, labels: dict[str, str]) -> str:
    """What Prometheus makes of `{{ $labels.x }}` in an annotation."""
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: str(labels.get(m.group(1), "")), text)


def with_annotations(tests: dict[str, Any], rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Fill each expected alert's annotations from the rendered rule ($labels templates expanded)."""
    for case in tests["tests"]:
        for check in case.get("alert_rule_test") or ():
            annotations = rules[check["alertname"]]["annotations"]
            for alert in check["exp_alerts"]:
                alert["exp_annotations"] = {key: expand_labels(text, alert["exp_labels"])
                                            for key, text in annotations.items()}
    return tests


def run_rule_tests(tmp_path: pathlib.Path, spec: SttServerSpec, test_file: str) -> subprocess.CompletedProcess[str]:
    groups = build_prometheusrule(spec)["spec"]["groups"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    alerts = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    tests = with_annotations(yaml.safe_load((RULES_TESTS / test_file).read_text()), alerts)
    (tmp_path / test_file).write_text(yaml.safe_dump(tests, sort_keys=False))
    return promtool("test", "rules", str(tmp_path / test_file))


@pytest.mark.parametrize("thresholds", [{}, {"errorRatePercent": 2, "bufferUsagePercent": 99,
                                              "createSessionP99Seconds": 0.05}])
def test_promtool_check_rules_passes(tmp_path: pathlib.Path, thresholds: dict[str, Any]) -> None:
    rule = build_prometheusrule(rules_spec(**thresholds))
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_each_alert_fires_on_bad_series_and_stays_quiet_on_healthy_ones(tmp_path: pathlib.Path) -> None:
    result = run_rule_tests(tmp_path, rules_spec(), "sttserver_alerts_test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_spec_thresholds_reach_the_alerts(tmp_path: pathlib.Path) -> None:
    result = run_rule_tests(tmp_path, rules_spec(errorRatePercent=2, bufferUsagePercent=99),
                            "sttserver_thresholds_test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_unit_tests_would_notice_a_wrong_threshold(tmp_path: pathlib.Path) -> None:
    # The default-threshold test file against rules with a far higher error threshold must fail.
    result = run_rule_tests(tmp_path, rules_spec(errorRatePercent=50), "sttserver_alerts_test.yaml")
    assert result.returncode != 0
    assert "SttGrpcErrorRateHigh" in result.stdout + result.stderr


def test_every_alert_is_tested_and_complete() -> None:
    groups = build_prometheusrule(rules_spec())["spec"]["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    tested = {check["alertname"] for case in yaml.safe_load((RULES_TESTS / "sttserver_alerts_test.yaml")
                                                            .read_text())["tests"]
              for check in case.get("alert_rule_test") or ()}
    assert {a["alert"] for a in alerts} == tested
    for alert in alerts:
        assert alert["for"] and alert["labels"]["severity"] in {"info", "warning", "critical"}
        assert {"summary", "description", "runbook_url"} <= alert["annotations"].keys()
        assert alert["annotations"]["runbook_url"] == f"https://runbooks.example/stt#{alert['alert'].lower()}"
        assert 'namespace="speech", job="stt-a"' in alert["expr"]


def test_server_fault_statuses_match_the_error_catalogue() -> None:
    """Only catalogue codes that are the server's fault may land in the availability numerator."""
    from stt_server.errors import CATALOGUE, ErrorCode

    faults = set(SERVER_ERROR_STATUSES.split("|"))
    server_codes = {code for code, entry in CATALOGUE.items() if entry.status.name in faults}
    assert {ErrorCode.MODEL_ERROR, ErrorCode.INTERNAL} <= server_codes
    client_codes = {ErrorCode.IDLE_TIMEOUT} | {code for code, entry in CATALOGUE.items()
                                               if entry.status.name == "INVALID_ARGUMENT"}
    assert len(client_codes) > 5 and not client_codes & server_codes
    assert not set(SHED_STATUSES.split("|")) & faults


def test_memory_alert_follows_the_container_limit_and_threshold() -> None:
    def memory_rule(**spec: Any) -> dict[str, Any] | None:
        parsed = parse_spec({"metadata": {"name": "stt-a", "namespace": "speech"}, "spec": {"image": "img", **spec}})
        return next((r for r in build_prometheusrule(parsed)["spec"]["groups"][1]["rules"]
                     if r["alert"] == "SttMemoryHigh"), None)

    default = memory_rule()
    assert default is not None and default["expr"].endswith("> 3435973836.8")
    custom = memory_rule(resources={"limits": {"memory": "512Mi"}},
                         monitoring={"prometheusRule": {"thresholds": {"memoryUsagePercent": 50}}})
    assert custom is not None and custom["expr"].endswith(f"> {256 * 2**20}")
    assert memory_rule(resources={"requests": {"memory": "1Gi"}}) is None  # no limit, nothing to compare
    assert memory_limit_bytes(rules_spec()) == 4 * 2**30


def test_new_thresholds_reach_the_expressions() -> None:
    rules = {r["alert"]: r for r in build_prometheusrule(rules_spec(
        decodeP99Seconds=0.75, availabilityPercent=99.9, certExpiryDays=30))["spec"]["groups"][1]["rules"]}
    assert rules["SttDecodeLatencyHigh"]["expr"].endswith("> 0.75")
    assert rules["SttAvailabilityLow"]["expr"].endswith("< 0.999")
    assert rules["SttTlsCertExpiringSoon"]["expr"].endswith(f"< {30 * 86400}")
