"""Reconcile one SttServer: parse, build, adopt, create-or-patch, prune, then status and Events.

One `Reconciler` per operator process. Runs for the same SttServer never overlap (a lock per
object); requests that arrive while one runs (a child changed, a timer fired) collapse into one
follow-up run, so a burst of child events costs one extra pass. Failed background passes are
retried with exponential backoff; kopf's own handlers get the exception instead and turn it into
kopf.TemporaryError / kopf.PermanentError.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Mapping
from typing import Any, Final, cast

import aiohttp
import kopf

from stt_operator import events, status
from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, resource_path
from stt_operator.builders import build_children
from stt_operator.crd import GROUP, PLURAL, VERSION
from stt_operator.reconcile import CHILD_KINDS, apply_child, desired_replicas, owned_children
from stt_operator.spec import SpecError, parse_spec
from stt_operator.status_writer import write_status

logger = logging.getLogger(__name__)

API_VERSION: Final = f"{GROUP}/{VERSION}"
MONITORING_KINDS: Final = {"servicemonitors": "ServiceMonitor", "prometheusrules": "PrometheusRule"}
# Rendered only when the spec asks (spec.monitoring.alertmanagerConfig) and the cluster serves it.
OPTIONAL_MONITORING_KINDS: Final = {"alertmanagerconfigs": "monitoring.coreos.com/v1alpha1"}
TRANSIENT: Final = (ApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError)
MAX_BACKOFF_SEC: Final = 30.0

Key = tuple[str, str]


def server_path(namespace: str, name: str | None = None, *, subresource: str | None = None) -> str:
    return resource_path(API_VERSION, PLURAL, namespace=namespace, name=name, subresource=subresource)


def is_transient(exc: BaseException) -> bool:
    """Conflicts, throttling, 5xx and network trouble are worth retrying; a 4xx verdict is not."""
    if isinstance(exc, ApiError):
        return exc.status in (409, 429) or exc.status >= 500
    return isinstance(exc, TRANSIENT)


def backoff(attempt: int) -> float:
    return min(MAX_BACKOFF_SEC, 0.5 * 2 ** attempt)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reconciler:
    def __init__(self, api: KubeApi, *, operator_namespace: str | None = None) -> None:
        self.api = api
        self.operator_namespace = operator_namespace  # the NetworkPolicy lets this namespace scrape
        self._locks: dict[Key, asyncio.Lock] = {}
        self._queued: dict[Key, asyncio.Task[None]] = {}

    # ---- scheduling --------------------------------------------------------------------------

    def request(self, namespace: str, name: str, *, delay: float = 0.0, attempt: int = 0) -> None:
        """Ask for a background pass; collapses with one already waiting for the same object."""
        key = (namespace, name)
        if key in self._queued and not self._queued[key].done():
            return
        self._queued[key] = asyncio.create_task(self._background(key, delay=delay, attempt=attempt))

    async def _background(self, key: Key, *, delay: float, attempt: int) -> None:
        await asyncio.sleep(delay)
        self._queued.pop(key, None)  # from here on, a new request queues another pass
        try:
            await self.reconcile(*key)
        except asyncio.CancelledError:
            raise
        except SpecError:
            pass  # already in status and Events; the next spec change triggers kopf again
        except Exception as exc:  # noqa: BLE001 - any failure of a background pass is retried
            retry_in = backoff(attempt)
            logger.warning("reconcile of %s/%s failed (%s); retrying in %.1fs", *key, exc, retry_in)
            self.request(*key, delay=retry_in, attempt=attempt + 1)

    async def close(self) -> None:
        tasks = list(self._queued.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- one pass ----------------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str) -> None:
        lock = self._locks.setdefault((namespace, name), asyncio.Lock())
        async with lock:
            await self._reconcile(namespace, name)

    async def monitoring_apis(self) -> tuple[frozenset[str], str | None]:
        """Which prometheus-operator kinds the cluster serves, and a note when some are missing."""
        documents = await asyncio.gather(
            self.api.get_or_none("/apis/monitoring.coreos.com/v1"),
            *(self.api.get_or_none(f"/apis/{version}") for version in OPTIONAL_MONITORING_KINDS.values()))
        served = {r.get("name") for document in documents for r in (document or {}).get("resources") or ()}
        found = frozenset(kind for kind in (*MONITORING_KINDS, *OPTIONAL_MONITORING_KINDS) if kind in served)
        if found >= frozenset(MONITORING_KINDS):
            return found, None
        missing = ", ".join(sorted(set(MONITORING_KINDS) - found))
        return found, (f"skipped: the cluster does not serve monitoring.coreos.com/v1 {missing} "
                       "(install the prometheus-operator CRDs to get them)")

    async def _reconcile(self, namespace: str, name: str) -> None:
        body = await self.api.get_or_none(server_path(namespace, name))
        if body is None or body["metadata"].get("deletionTimestamp"):
            return  # gone or going: the garbage collector removes the children
        deploy_path = resource_path("apps/v1", "deployments", namespace=namespace, name=name)
        service_path = resource_path("v1", "services", namespace=namespace, name=name)
        try:
            spec = parse_spec(body)
        except SpecError as exc:
            # Children stay as they are; status still reports what they really do.
            deployment = await self.api.get_or_none(deploy_path)
            await self._publish_status(body, status.Observed(
                generation=body["metadata"].get("generation", 1),
                desired_replicas=int(((deployment or {}).get("spec") or {}).get("replicas") or 0),
                deployment=deployment, service=await self.api.get_or_none(service_path),
                selector=((body.get("status") or {}).get("selector") or ""),
                spec_error=f"{exc.field}: {exc.message}"))
            raise
        apis, note = await self.monitoring_apis()
        children = build_children(spec, monitoring_apis=apis, operator_namespace=self.operator_namespace)
        by_kind = {c["kind"]: c for c in children}
        # Two children may share a kind (the server's ConfigMap and the dashboard's): match by name too.
        wanted = {(c["kind"], c["metadata"]["name"]) for c in children}
        current_deployment = await self.api.get_or_none(deploy_path)
        replicas = desired_replicas(spec, current_deployment)
        for child in children:
            child.setdefault("metadata", {})["namespace"] = namespace
            if child["kind"] == "Deployment":
                child["spec"]["replicas"] = replicas
            kopf.adopt(child, owner=kopf.Body(cast(kopf.RawBody, body)))
        notes: list[tuple[events.EventType, str, str]] = []
        apply_error: BaseException | None = None
        try:
            for child in children:
                applied = await apply_child(self.api, child)
                if applied.action != "unchanged":
                    notes.append(events.child_event(applied.kind, applied.name, applied.action))
            kinds = {k: v for k, v in CHILD_KINDS.items()
                     if not v[0].startswith("monitoring.coreos.com/") or v[1] in apis}
            for stale in await owned_children(self.api, owner_uid=body["metadata"]["uid"], namespace=namespace,
                                              instance=name, kinds=kinds):
                if (stale["kind"], stale["metadata"]["name"]) not in wanted:
                    api_version, plural = CHILD_KINDS[stale["kind"]]
                    await self.api.delete(resource_path(api_version, plural, namespace=namespace,
                                                        name=stale["metadata"]["name"]))
                    notes.append(events.child_event(stale["kind"], stale["metadata"]["name"], "deleted"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_transient(exc):
                raise
            apply_error = exc
        deployment = await self.api.get_or_none(deploy_path)
        service = await self.api.get_or_none(service_path)
        match_labels = (by_kind["Deployment"]["spec"].get("selector") or {}).get("matchLabels") or {}
        observed = status.Observed(
            generation=body["metadata"].get("generation", 1), desired_replicas=replicas,
            deployment=deployment, service=service,
            selector=",".join(f"{k}={v}" for k, v in sorted(match_labels.items())),
            model=_model_name(spec), autoscaling_enabled=_autoscaling_enabled(spec),
            apply_error=None if apply_error is None else _describe(apply_error), monitoring_note=note)
        for type_, reason, message in notes:
            await events.post_event(self.api, body, type_=type_, reason=reason, message=message)
        await self._publish_status(body, observed)
        if apply_error is not None:
            raise apply_error

    async def _publish_status(self, body: Mapping[str, Any], observed: status.Observed) -> None:
        """Write status when it changed (status_writer: precondition, re-read on 409) and post transitions."""
        written = await write_status(self.api, body,
                                     lambda current: status.compute_status(observed, previous=current, now=_now()))
        if written is None:
            return
        for type_, reason, message in events.transition_events(written.before, written.after):
            await events.post_event(self.api, written.body, type_=type_, reason=reason, message=message)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _model_name(spec: Any) -> str | None:
    model = getattr(spec, "model", None)
    name = getattr(model, "name", model)
    return name if isinstance(name, str) else None


def _autoscaling_enabled(spec: Any) -> bool:
    return bool(getattr(getattr(spec, "autoscaling", None), "enabled", False))
