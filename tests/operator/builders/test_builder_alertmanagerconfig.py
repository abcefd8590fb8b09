"""The AlertmanagerConfig child: rendered only when asked for and served, valid against the
prometheus-operator schema, and routing like the example Alertmanager configuration."""

from __future__ import annotations

from typing import Any

import pytest
from builder_specs import ALL_APIS, make, sample
from schema_validation import SchemaViolation, validate_manifest
from stt_operator.alertmanager_example import example_config
from stt_operator.builders import build_alertmanagerconfig, build_children
from stt_operator.spec import SpecError, parse_spec

WEBHOOKS = {"critical": {"webhookURL": "http://pager.example:8080/page"},
            "warning": {"webhookURLSecret": {"name": "tickets", "key": "url"}}}


def amc_spec(**section: Any) -> Any:
    return parse_spec({"metadata": {"name": "stt-a", "namespace": "speech"},
                       "spec": {"image": "img", "monitoring": {"alertmanagerConfig": section}}})


def test_only_when_enabled_and_served() -> None:
    assert "AlertmanagerConfig" not in [c["kind"] for c in build_children(make(), monitoring_apis=ALL_APIS)]
    spec = amc_spec(enabled=True, **WEBHOOKS)
    assert [c["kind"] for c in build_children(spec, monitoring_apis=ALL_APIS)][-1] == "AlertmanagerConfig"
    served = frozenset({"servicemonitors", "prometheusrules"})
    assert "AlertmanagerConfig" not in [c["kind"] for c in build_children(spec, monitoring_apis=served)]


def test_routes_by_severity_groups_per_server_and_inhibits_warnings() -> None:
    amc = build_alertmanagerconfig(amc_spec(enabled=True, labels={"team": "speech"}, repeatInterval="2h",
                                            **WEBHOOKS))
    validate_manifest(amc)
    assert amc["metadata"]["labels"]["team"] == "speech" and amc["metadata"]["namespace"] == "speech"
    route = amc["spec"]["route"]
    assert route["groupBy"] == ["namespace", "sttserver"] and route["repeatInterval"] == "2h"
    assert route["matchers"] == [{"name": "sttserver", "value": "stt-a", "matchType": "="}]
    by_severity = {r["matchers"][0]["value"]: r["receiver"] for r in route["routes"]}
    assert by_severity == {"critical": "page", "warning": "ticket"}
    receivers = {r["name"]: r.get("webhookConfigs") for r in amc["spec"]["receivers"]}
    assert receivers == {"none": None,
                         "page": [{"sendResolved": True, "url": "http://pager.example:8080/page"}],
                         "ticket": [{"sendResolved": True, "urlSecret": {"name": "tickets", "key": "url"}}]}
    [inhibit] = amc["spec"]["inhibitRules"]
    assert inhibit["sourceMatch"][0]["value"] == "critical" and inhibit["targetMatch"][0]["value"] == "warning"
    assert inhibit["equal"] == ["namespace", "sttserver"]


def test_same_policy_as_the_example_configuration() -> None:
    amc = build_alertmanagerconfig(amc_spec(enabled=True, **WEBHOOKS))["spec"]
    example = example_config()
    assert example["route"]["group_by"] == amc["route"]["groupBy"]
    assert [(r["matchers"], r["receiver"]) for r in example["route"]["routes"]] == [
        ([f'{m["name"]}="{m["value"]}"' for m in r["matchers"]], r["receiver"]) for r in amc["route"]["routes"]]
    [rule] = example["inhibit_rules"]
    assert rule["source_matchers"] == ['severity="critical"'] and rule["target_matchers"] == ['severity="warning"']
    assert rule["equal"] == amc["inhibitRules"][0]["equal"]


def test_only_a_critical_receiver_leaves_warnings_undelivered() -> None:
    amc = build_alertmanagerconfig(amc_spec(enabled=True, critical=WEBHOOKS["critical"]))
    validate_manifest(amc)
    assert {r["name"]: "webhookConfigs" in r for r in amc["spec"]["receivers"]} == {
        "none": False, "page": True, "ticket": False}


def test_sample_renders_a_valid_alertmanagerconfig() -> None:
    [amc] = [c for c in build_children(sample("gpu-production.yaml"), monitoring_apis=ALL_APIS)
             if c["kind"] == "AlertmanagerConfig"]
    validate_manifest(amc)


@pytest.mark.parametrize(("section", "message"), [
    ({"enabled": True}, "without a receiver"),
    ({"enabled": True, "critical": {"webhookURL": "http://a/b", "webhookURLSecret": {"name": "s", "key": "k"}}},
     "not both"),
    ({"enabled": True, "critical": {"webhookURL": "ftp://pager"}}, "http(s) URL"),
    ({"enabled": True, "critical": {"webhookURLSecret": {"name": "s"}}}, "key: is required"),
    ({"enabled": True, "critical": {"webhookURL": "http://a/b"}, "repeatInterval": "soon"}, "duration"),
    ({"labels": {"bad key!": "x"}}, "labels"),
])
def test_bad_sections_name_the_field(section: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        amc_spec(**section)
    assert "spec.monitoring.alertmanagerConfig" in str(caught.value) and message in str(caught.value)


@pytest.mark.parametrize("mutate", [
    lambda amc: amc["spec"]["route"].update(groupWait="soon"),
    lambda amc: amc["spec"]["route"].update(groupby=["sttserver"]),  # misspelt: undeclared field
    lambda amc: amc["spec"]["route"]["routes"][0].update(matchers=[{"value": "critical"}]),  # child route: no name
    lambda amc: amc["spec"]["receivers"][1]["webhookConfigs"][0].update(maxAlerts=-1),
    lambda amc: amc["spec"]["inhibitRules"][0]["sourceMatch"][0].update(matchType="=="),
])
def test_schema_validation_would_catch_a_broken_object(mutate: Any) -> None:
    amc = build_alertmanagerconfig(amc_spec(enabled=True, **WEBHOOKS))
    mutate(amc)
    with pytest.raises(SchemaViolation):
        validate_manifest(amc)
