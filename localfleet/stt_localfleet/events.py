"""core/v1 Events about pods, from component `kubelet` on host `localfleet` (Pulled, Started, Killing...).

`build_event` is the object the kubelet's recorder writes; `EventRecorder` posts it and, like
client-go's correlator, turns a repeat of the same reason and message for the same object into a
count bump on the existing Event instead of a new one. Failing to record an Event is logged, never
raised: Events are a courtesy to people, not part of the node's job.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, resource_path

from stt_localfleet.pods import now_iso

log = logging.getLogger("stt_localfleet.events")
COMPONENT: Final = "kubelet"
REPEAT_WINDOW_SEC: Final = 600.0


def build_event(pod: Mapping[str, Any], *, reason: str, message: str, kind: str = "Normal",
                container: str | None = None, host: str, name_suffix: str | None = None) -> dict[str, Any]:
    meta = pod.get("metadata") or {}
    now = now_iso()
    involved: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "name": meta.get("name"),
                                "namespace": meta.get("namespace"), "uid": meta.get("uid")}
    if meta.get("resourceVersion"):
        involved["resourceVersion"] = meta["resourceVersion"]
    if container:
        involved["fieldPath"] = f"spec.containers{{{container}}}"
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{meta.get('name')}.{name_suffix or secrets.token_hex(8)}",
                     "namespace": meta.get("namespace")},
        "involvedObject": involved, "reason": reason, "message": message, "type": kind,
        "source": {"component": COMPONENT, "host": host}, "reportingComponent": COMPONENT,
        "reportingInstance": host, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }


class EventRecorder:
    """Posts Events for pods; repeats within 10 minutes bump `count` on the first one."""

    def __init__(self, api: KubeApi, *, host: str) -> None:
        self.api = api
        self.host = host
        self._seen: dict[tuple[str, str, str, str], tuple[str, int, float]] = {}  # -> (name, count, at)
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, pod: Mapping[str, Any], *, reason: str, message: str, kind: str = "Normal",
               container: str | None = None) -> None:
        """Post in the background (the caller never waits on it)."""
        task = asyncio.get_running_loop().create_task(
            self._post(pod, reason=reason, message=message, kind=kind, container=container))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, pod: Mapping[str, Any], *, reason: str, message: str, kind: str,
                    container: str | None) -> None:
        meta = pod.get("metadata") or {}
        namespace = str(meta.get("namespace"))
        key = (str(meta.get("uid")), reason, message, container or "")
        seen = self._seen.get(key)
        try:
            if seen and time.monotonic() - seen[2] < REPEAT_WINDOW_SEC:
                name, count, _ = seen
                self._seen[key] = (name, count + 1, time.monotonic())
                await self.api.merge_patch(resource_path("v1", "events", namespace=namespace, name=name),
                                           {"count": count + 1, "lastTimestamp": now_iso()})
                return
            event = build_event(pod, reason=reason, message=message, kind=kind, container=container, host=self.host)
            self._seen[key] = (event["metadata"]["name"], 1, time.monotonic())
            await self.api.create(resource_path("v1", "events", namespace=namespace), event)
        except asyncio.CancelledError:
            raise
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._seen.pop(key, None)  # the next repeat posts a new Event rather than patching a missing one
            log.warning("could not record event %s for pod %s/%s: %s", reason, namespace, meta.get("name"),
                        str(exc)[:200])

    async def flush(self) -> None:
        """Wait for the Events still being posted."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def forget(self, uid: str) -> None:
        for key in [k for k in self._seen if k[0] == uid]:
            del self._seen[key]
