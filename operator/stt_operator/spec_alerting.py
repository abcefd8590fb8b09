"""`spec.monitoring.alertmanagerConfig`: where this SttServer's alerts are delivered.

When enabled the operator renders an `AlertmanagerConfig` (prometheus-operator): `critical`
alerts go to the `critical` webhook (pages), `warning` alerts to the `warning` webhook (tickets),
and a firing critical alert mutes the warnings of the same SttServer. Each webhook is a URL or a
key of a Secret in the SttServer's namespace that holds the URL (the usual home of a pager's
integration URL, which carries its key).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from stt_operator.spec_reader import Reader, SpecError

# Alertmanager's duration syntax, as the AlertmanagerConfig CRD checks it
DURATION_PATTERN: Final = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
SEVERITIES: Final = ("critical", "warning")


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook receiver: `url`, or the Secret key `secret_name`/`secret_key` that holds it."""

    url: str | None = None
    secret_name: str | None = None
    secret_key: str | None = None


@dataclass(frozen=True)
class AlertmanagerConfigSpec:
    enabled: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    critical: WebhookTarget | None = None
    warning: WebhookTarget | None = None
    repeat_interval: str = "4h"


def _webhook(r: Reader) -> WebhookTarget | None:
    url, secret = r.optional_string("webhookURL"), r.child("webhookURLSecret")
    has_secret = bool(secret.data)
    if url is None and not has_secret:
        return None
    if url is not None and has_secret:
        raise SpecError(r.path, "set webhookURL or webhookURLSecret, not both")
    if url is not None:
        if not re.match(r"^https?://[^\s]+$", url):
            raise SpecError(f"{r.path}.webhookURL", f"must be an http(s) URL, got {url!r}")
        return WebhookTarget(url=url)
    return WebhookTarget(secret_name=secret.string("name", required=True),
                         secret_key=secret.string("key", required=True))


def parse_alertmanager_config(r: Reader, *, labels: Mapping[str, str]) -> AlertmanagerConfigSpec:
    """The section at `r`; `labels` are its already-checked `labels`."""
    enabled = r.boolean("enabled", False)
    targets = {severity: _webhook(r.child(severity)) for severity in SEVERITIES}
    if enabled and not any(targets.values()):
        raise SpecError(r.path, "enabled without a receiver: set critical or warning webhookURL(Secret)")
    repeat = r.string("repeatInterval", AlertmanagerConfigSpec().repeat_interval)
    if not repeat or not re.match(DURATION_PATTERN, repeat):
        raise SpecError(f"{r.path}.repeatInterval", f"must be a duration like 4h or 30m, got {repeat!r}")
    return AlertmanagerConfigSpec(enabled=enabled, labels=dict(labels), critical=targets["critical"],
                                  warning=targets["warning"], repeat_interval=repeat)
