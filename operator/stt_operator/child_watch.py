"""Watch the children we make without kopf: one label-selected LIST + WATCH per kind and scope.

A new SttServer's children bring about eight watch events (the ADDED of each, then the Deployment
and PodDisruptionBudget controllers' status writes), and most of them need nothing. Through kopf,
each event costs its full machinery: a deep copy of the body for the diff base, cause detection,
handler invocation, a worker task and a memory record per object; in a burst of 50 new SttServers
that was about a third of the operator's CPU, on the same two cores the API server needs to create
the children. Here an event costs one JSON decode and `Reconciler.child_changed`'s comparison.

Each stream: LIST (labelSelector = our managed-by label), hand every item over, then WATCH from
the list's resourceVersion with bookmarks; a 410 (the version is too old) lists again, other
failures retry with backoff from the last version seen. A kind the cluster does not serve (the
prometheus-operator kinds before their CRDs are installed) is looked for again every
NOT_SERVED_RETRY_SEC. Deletions missed between a stream's end and the next LIST are caught by the
reconciler's resync.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, resource_path
from stt_operator.reconcile import CHILD_KINDS, MANAGED_BY

logger = logging.getLogger(__name__)

SELECTOR: Final = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
NOT_SERVED_RETRY_SEC: Final = 30.0
MAX_RETRY_SEC: Final = 30.0
GLOB_CHARS: Final = frozenset("*?[")

# (event type: "ADDED" | "MODIFIED" | "DELETED", the object with its `kind` set)
OnEvent = Callable[[str, Mapping[str, Any]], None]


@dataclass(frozen=True)
class Scope:
    """The namespaces the operator serves, as `stt-operator run --namespace` gave them (none: all).

    Plain names are watched one by one (a namespaced Role is enough, as the chart's
    `watchNamespaces` grants); a glob (kopf allows them) needs the cluster-wide watch, filtered here.
    """

    namespaces: tuple[str, ...] = ()

    @property
    def cluster_wide(self) -> bool:
        return not self.namespaces or any(GLOB_CHARS & set(ns) for ns in self.namespaces)

    def paths(self, api_version: str, plural: str) -> list[str]:
        if self.cluster_wide:
            return [resource_path(api_version, plural)]
        return [resource_path(api_version, plural, namespace=ns) for ns in self.namespaces]

    def admits(self, namespace: str | None) -> bool:
        if not self.namespaces:
            return True
        return namespace is not None and any(fnmatch.fnmatchcase(namespace, ns) for ns in self.namespaces)


async def watch_children(api: KubeApi, *, scope: Scope, on_event: OnEvent, timeout_sec: int,
                         kinds: Mapping[str, tuple[str, str]] = CHILD_KINDS) -> None:
    """Run every stream until cancelled."""
    streams = [watch_kind(api, path=path, kind=kind, scope=scope, on_event=on_event, timeout_sec=timeout_sec)
               for kind, (api_version, plural) in kinds.items() for path in scope.paths(api_version, plural)]
    await asyncio.gather(*streams)


async def watch_kind(api: KubeApi, *, path: str, kind: str, scope: Scope, on_event: OnEvent, timeout_sec: int,
                     not_served_retry_sec: float = NOT_SERVED_RETRY_SEC) -> None:
    """LIST then WATCH one kind at one path, for ever (until cancelled)."""
    failures = 0
    version: str | None = None  # None: list (again) first
    while True:
        try:
            if version is None:
                version = await _list(api, path=path, kind=kind, scope=scope, on_event=on_event)
            version = await _watch(api, path=path, kind=kind, scope=scope, on_event=on_event,
                                   version=version, timeout_sec=timeout_sec)
            failures = 0
        except asyncio.CancelledError:
            raise
        except ApiError as exc:
            if exc.status in (404, 410):
                version = None  # not served (yet, or any more), or too old: list again
            if exc.status == 404:
                logger.debug("%s not served here; looking again in %.0fs", path, not_served_retry_sec)
                await asyncio.sleep(not_served_retry_sec)
            elif exc.status != 410:
                failures += 1
                await _pause(path, exc, failures)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            failures += 1
            await _pause(path, exc, failures)


async def _pause(path: str, exc: BaseException, failures: int) -> None:
    delay = min(MAX_RETRY_SEC, 0.5 * 2 ** (failures - 1))
    logger.warning("watch of %s failed (%s); again in %.1fs", path, exc, delay)
    await asyncio.sleep(delay)


async def _list(api: KubeApi, *, path: str, kind: str, scope: Scope, on_event: OnEvent) -> str:
    listing = await api.request("GET", path, params={"labelSelector": SELECTOR})
    for item in listing.get("items") or ():
        if scope.admits((item.get("metadata") or {}).get("namespace")):
            on_event("ADDED", {**item, "kind": kind})  # a list's items carry no kind
    return str(listing["metadata"]["resourceVersion"])


async def _watch(api: KubeApi, *, path: str, kind: str, scope: Scope, on_event: OnEvent, version: str,
                 timeout_sec: int) -> str:
    """Events from `version` until the server ends the stream; the last version seen."""
    params = {"labelSelector": SELECTOR, "resourceVersion": version, "allowWatchBookmarks": "true",
              "timeoutSeconds": str(timeout_sec)}
    async for event in api.watch(path, params=params):
        type_, obj = event.get("type"), event.get("object") or {}
        if type_ == "ERROR":  # a Status object: 410 Gone when `version` is too old
            raise ApiError(int(obj.get("code") or 500), str(obj.get("message") or obj))
        version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
        if type_ in ("ADDED", "MODIFIED", "DELETED") and scope.admits((obj.get("metadata") or {}).get("namespace")):
            on_event(str(type_), {**obj, "kind": obj.get("kind") or kind})
    return version
