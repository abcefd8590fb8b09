"""Kubernetes Events about an SttServer: pure builders, and the one call that posts them.

Events are how `kubectl describe stt x` tells a person what the operator did and why. One Event
per meaningful action: a child created, updated or deleted; the resource turning Degraded or
recovering; Ready flipping. Posting is best effort: a failed post is logged, never retried, and
never fails a reconcile (the status conditions carry the same facts durably).
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Mapping
from typing import Any, Final, Literal

from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, resource_path

logger = logging.getLogger(__name__)

COMPONENT: Final = "stt-operator"
EventType = Literal["Normal", "Warning"]


def build_event(owner: Mapping[str, Any], *, type_: EventType, reason: str, message: str,
                now: datetime.datetime) -> dict[str, Any]:
    """A core/v1 Event whose involvedObject is `owner` (an SttServer or any other object)."""
    meta = owner.get("metadata") or {}
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}", "namespace": meta.get("namespace")},
        "involvedObject": {"apiVersion": owner.get("apiVersion"), "kind": owner.get("kind"),
                           "name": meta.get("name"), "namespace": meta.get("namespace"),
                           "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")},
        "type": type_, "reason": reason, "message": message[:1024],
        "firstTimestamp": stamp, "lastTimestamp": stamp, "eventTime": None, "count": 1,
        "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
    }


def child_event(kind: str, name: str, action: str) -> tuple[EventType, str, str]:
    """(type, reason, message) for a child that was created, updated or deleted."""
    reason = {"created": "Created", "updated": "Updated", "deleted": "Deleted"}[action]
    return "Normal", f"{reason}{kind}", f"{action} {kind} {name}"


def transition_events(previous: Mapping[str, Any] | None, current: Mapping[str, Any]
                      ) -> list[tuple[EventType, str, str]]:
    """Events for condition flips: Degraded on/off, Ready on/off."""
    def status(conds: Mapping[str, Any] | None, type_: str) -> tuple[str | None, str]:
        for cond in (conds or {}).get("conditions") or ():
            if cond.get("type") == type_:
                return cond.get("status"), cond.get("message") or ""
        return None, ""

    events: list[tuple[EventType, str, str]] = []
    (was_degraded, _), (is_degraded, why) = status(previous, "Degraded"), status(current, "Degraded")
    if is_degraded == "True" and (was_degraded != "True" or status(previous, "Degraded")[1] != why):
        events.append(("Warning", "Degraded", why))
    elif was_degraded == "True" and is_degraded == "False":
        events.append(("Normal", "Recovered", "the problems are gone"))
    (was_ready, _), (is_ready, detail) = status(previous, "Ready"), status(current, "Ready")
    if is_ready == "True" and was_ready != "True":
        events.append(("Normal", "Ready", detail))
    elif was_ready == "True" and is_ready != "True":
        if _scaling_up(previous, current):
            # Expected while new pods start: the existing ones still serve. Not a warning.
            events.append(("Normal", "ScalingUp", f"{detail}; new pods are starting"))
        else:
            events.append(("Warning", "NotReady", detail))
    return events


def _scaling_up(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    """More replicas are wanted than before and none of the ready ones were lost."""
    before, now = previous or {}, current
    return (int(now.get("desiredReplicas") or 0) > int(before.get("desiredReplicas") or 0)
            and int(now.get("readyReplicas") or 0) >= int(before.get("readyReplicas") or 0) > 0)


async def post_event(api: KubeApi, owner: Mapping[str, Any], *, type_: EventType, reason: str,
                     message: str) -> None:
    event = build_event(owner, type_=type_, reason=reason, message=message,
                        now=datetime.datetime.now(datetime.UTC))
    namespace = (owner.get("metadata") or {}).get("namespace")
    try:
        await api.create(resource_path("v1", "events", namespace=namespace), event)
    except (ApiError, OSError, TimeoutError) as exc:
        logger.warning("could not post event %s for %s: %s", reason, (owner.get("metadata") or {}).get("name"), exc)
