"""Kubernetes Events about an SttServer: pure builders, and the one call that posts them.

Events are how `kubectl describe stt x` tells a person what the operator did and why. One Event
per meaningful action: a child created, updated or deleted; the resource turning Degraded or
recovering; Ready flipping. Posting is best effort: a failed post is logged, never retried, and
never fails a reconcile (the status conditions carry the same facts durably).

The reconciler posts through an `EventQueue`: a few Events at a time in the background, and only
while no pass is writing children (at most QUIET_WAIT_SEC later), so that when fifty SttServers
arrive at once their children are written first and the Events follow, instead of 200 Event
POSTs competing with the next server's children for the API server and etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import uuid
from collections.abc import Mapping
from typing import Any, Final, Literal

from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, resource_path

logger = logging.getLogger(__name__)

COMPONENT: Final = "stt-operator"
QUIET_WAIT_SEC: Final = 5.0  # the longest an Event waits for the reconciler to be quiet
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


class EventQueue:
    """Posts Events in the background, `at_once` at a time, in the order they were queued.

    Each Event is built (and timestamped) when queued. Past `limit` waiting, new ones are dropped
    with a warning: Events are best effort, and an API server that slow needs no more writes.
    """

    def __init__(self, api: KubeApi, *, at_once: int = 2, limit: int = 2000, quiet: asyncio.Event | None = None,
                 quiet_wait_sec: float = QUIET_WAIT_SEC) -> None:
        """`quiet`: set while the caller writes nothing more urgent; each post waits for it (at
        most `quiet_wait_sec`, so a busy operator still posts)."""
        self.api = api
        self._quiet = quiet
        self._quiet_wait_sec = quiet_wait_sec
        self._queue: asyncio.Queue[tuple[str | None, dict[str, Any]]] = asyncio.Queue(maxsize=limit)
        self._at_once = at_once
        self._workers: list[asyncio.Task[None]] = []
        self.dropped = 0

    def post(self, owner: Mapping[str, Any], *, type_: EventType, reason: str, message: str) -> None:
        event = build_event(owner, type_=type_, reason=reason, message=message,
                            now=datetime.datetime.now(datetime.UTC))
        try:
            self._queue.put_nowait(((owner.get("metadata") or {}).get("namespace"), event))
        except asyncio.QueueFull:
            self.dropped += 1
            logger.warning("dropped event %s for %s: %d events are waiting to be posted", reason,
                           (owner.get("metadata") or {}).get("name"), self._queue.qsize())
            return
        if not self._workers:
            self._workers = [asyncio.create_task(self._work(), name=f"stt-operator events {i}")
                             for i in range(self._at_once)]

    async def _work(self) -> None:
        while True:
            namespace, event = await self._queue.get()
            try:
                if self._quiet is not None:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._quiet_wait_sec):
                            await self._quiet.wait()
                await self.api.create(resource_path("v1", "events", namespace=namespace), event)
            except (ApiError, OSError, TimeoutError) as exc:
                logger.warning("could not post event %s for %s: %s", event["reason"],
                               event["involvedObject"].get("name"), exc)
            finally:
                self._queue.task_done()

    async def flush(self) -> None:
        """Until every Event queued so far has been posted (or failed)."""
        await self._queue.join()

    async def close(self, *, timeout: float = 5.0) -> None:
        """Post what is waiting (for at most `timeout` seconds), then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.flush()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
