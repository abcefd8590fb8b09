"""Alert routing: the `AlertmanagerConfig` child, and the policy it shares with the example
Alertmanager configuration (`stt_operator.alertmanager_example`).

The policy: `critical` pages, `warning` tickets, `info` goes nowhere (dashboards only);
notifications are grouped per SttServer (`namespace`, `sttserver`); while a critical alert fires
for an SttServer, its warnings are muted (inhibited), since the page already covers them.
"""

from __future__ import annotations

from typing import Any, Final

from stt_operator.builders.labels import metadata
from stt_operator.spec import SttServerSpec
from stt_operator.spec_alerting import WebhookTarget

GROUP_BY: Final = ("namespace", "sttserver")
# severity -> receiver; anything else falls through to NO_RECEIVER
SEVERITY_RECEIVERS: Final = (("critical", "page"), ("warning", "ticket"))
NO_RECEIVER: Final = "none"
GROUP_WAIT: Final = "30s"
GROUP_INTERVAL: Final = "5m"
INHIBIT_SOURCE_SEVERITY: Final = "critical"
INHIBIT_TARGET_SEVERITY: Final = "warning"


def _match(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value, "matchType": "="}


def _webhook_config(target: WebhookTarget) -> dict[str, Any]:
    config: dict[str, Any] = {"sendResolved": True}
    if target.url is not None:
        config["url"] = target.url
    else:
        config["urlSecret"] = {"name": target.secret_name, "key": target.secret_key}
    return config


def build_alertmanagerconfig(spec: SttServerSpec) -> dict[str, Any]:
    """The AlertmanagerConfig `<name>`: this SttServer's alerts routed by severity to its webhooks.

    prometheus-operator scopes every route and inhibit rule to the object's namespace; the
    `sttserver` matchers scope them to this SttServer, so two SttServers in one namespace each
    route (and inhibit) only their own alerts.
    """
    amc = spec.monitoring.alertmanager_config
    targets = {"page": amc.critical, "ticket": amc.warning}
    receivers: list[dict[str, Any]] = [{"name": NO_RECEIVER}]
    for _, receiver in SEVERITY_RECEIVERS:
        target = targets[receiver]
        receivers.append({"name": receiver, **({"webhookConfigs": [_webhook_config(target)]} if target else {})})
    routes = [{"receiver": receiver, "matchers": [_match("severity", severity)]}
              for severity, receiver in SEVERITY_RECEIVERS]
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1", "kind": "AlertmanagerConfig",
        "metadata": metadata(spec, extra_labels=dict(amc.labels)),
        "spec": {
            "route": {"receiver": NO_RECEIVER, "groupBy": list(GROUP_BY), "groupWait": GROUP_WAIT,
                      "groupInterval": GROUP_INTERVAL, "repeatInterval": amc.repeat_interval,
                      "matchers": [_match("sttserver", spec.name)], "routes": routes},
            "receivers": receivers,
            "inhibitRules": [{
                "sourceMatch": [_match("severity", INHIBIT_SOURCE_SEVERITY), _match("sttserver", spec.name)],
                "targetMatch": [_match("severity", INHIBIT_TARGET_SEVERITY), _match("sttserver", spec.name)],
                "equal": list(GROUP_BY),
            }],
        },
    }

