"""Reconcile one SttServer: parse, build, adopt, create-or-patch, prune, then status and Events.

One `Reconciler` per operator process. Runs for the same SttServer never overlap (a lock per
object); requests that arrive while one runs (a child changed, a timer fired) collapse into one
follow-up run, so a burst of child events costs one extra pass. Failed background passes are
retried with exponential backoff; kopf's own handlers get the exception instead and turn it into
kopf.TemporaryError / kopf.PermanentError.

A pass reads what it needs at once (the object, the monitoring APIs, the Deployment), applies the
ConfigMaps first (the pods mount them) and the other children together, and creates without
reading first when the SttServer is new. After a clean pass it remembers a fingerprint: the
object's resourceVersion, the monitoring APIs and every owned child's resourceVersion. The
safety-net resync asks for a checked pass (`request(..., check_first=True)`): it lists the
children and runs the full pass only when that fingerprint changed (an event was missed), so an
unchanged fleet costs the resync a few LISTs per object and no builds.
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
from stt_operator.reconcile import CHILD_KINDS, Applied, apply_child, desired_replicas, owned_children
from stt_operator.spec import SpecError, parse_spec
from stt_operator.status_writer import write_status

logger = logging.getLogger(__name__)

API_VERSION: Final = f"{GROUP}/{VERSION}"
MONITORING_KINDS: Final = {"servicemonitors": "ServiceMonitor", "prometheusrules": "PrometheusRule"}
# Rendered only when the spec asks (spec.monitoring.alertmanagerConfig) and the cluster serves it.
OPTIONAL_MONITORING_KINDS: Final = {"alertmanagerconfigs": "monitoring.coreos.com/v1alpha1"}
TRANSIENT: Final = (ApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError)
MAX_BACKOFF_SEC: Final = 30.0
# Passes that run at once; the others wait their turn. Each pass in flight holds its object, its
# children and their answers in memory (the burst's peak stays in the process's RSS after it), but
# on a busy machine every API round trip is slow, and only passes in parallel hide that: with 8 at
# once the last of 50 new SttServers waited 40 s for its children (load average 15-20 on 2 cores).
PASSES_AT_ONCE: Final = 64
# How long one answer about the monitoring APIs serves (installing the prometheus-operator CRDs is
# noticed within this plus the next pass).
DISCOVERY_TTL_SEC: Final = 5.0

Key = tuple[str, str]
Fingerprint = tuple[object, ...]


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
    def __init__(self, api: KubeApi, *, operator_namespace: str | None = None,
                 passes_at_once: int = PASSES_AT_ONCE) -> None:
        self.api = api
        self._turns = asyncio.Semaphore(passes_at_once)
        self.operator_namespace = operator_namespace  # the NetworkPolicy lets this namespace scrape
        self._locks: dict[Key, asyncio.Lock] = {}
        self._queued: dict[Key, asyncio.Task[None]] = {}
        self._check_only: dict[Key, bool] = {}  # the queued pass may stop when the fingerprint holds
        self._fingerprints: dict[Key, Fingerprint] = {}  # after each clean pass
        self._discovery: tuple[float, asyncio.Future[tuple[frozenset[str], str | None]]] | None = None

    # ---- scheduling --------------------------------------------------------------------------

    def request(self, namespace: str, name: str, *, delay: float = 0.0, attempt: int = 0,
                check_first: bool = False) -> None:
        """Ask for a background pass; collapses with one already waiting for the same object.

        `check_first`: skip the pass when nothing changed since the last clean one (the resync).
        """
        key = (namespace, name)
        if key in self._queued and not self._queued[key].done():
            self._check_only[key] = self._check_only.get(key, False) and check_first
            return
        self._check_only[key] = check_first
        self._queued[key] = asyncio.create_task(self._background(key, delay=delay, attempt=attempt))

    async def _background(self, key: Key, *, delay: float, attempt: int) -> None:
        await asyncio.sleep(delay)
        self._queued.pop(key, None)  # from here on, a new request queues another pass
        check_first = self._check_only.pop(key, False)
        try:
            if check_first and await self.unchanged(*key):
                return
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
        async with lock, self._turns:
            self._fingerprints.pop((namespace, name), None)  # set again only by a clean pass
            await self._reconcile(namespace, name)

    async def unchanged(self, namespace: str, name: str) -> bool:
        """True when the object and its children are as the last clean pass left them."""
        remembered = self._fingerprints.get((namespace, name))
        if remembered is None:
            return False
        async with self._locks.setdefault((namespace, name), asyncio.Lock()), self._turns:
            body, (apis, _) = await asyncio.gather(self.api.get_or_none(server_path(namespace, name)),
                                                   self.monitoring_apis())
            if body is None or body["metadata"].get("deletionTimestamp"):
                return False
            owned = await owned_children(self.api, owner_uid=body["metadata"]["uid"], namespace=namespace,
                                         instance=name, kinds=_child_kinds(apis))
            return fingerprint(body, apis, owned) == self._fingerprints.get((namespace, name))

    async def monitoring_apis(self) -> tuple[frozenset[str], str | None]:
        """Which prometheus-operator kinds the cluster serves, and a note when some are missing.

        One answer serves every pass for DISCOVERY_TTL_SEC (a burst of new SttServers asks once).
        """
        loop = asyncio.get_running_loop()
        if self._discovery is None or self._discovery[0] < loop.time():
            task = asyncio.ensure_future(self._discover())
            self._discovery = (loop.time() + DISCOVERY_TTL_SEC, task)
        try:
            return await asyncio.shield(self._discovery[1])
        except Exception:
            self._discovery = None  # asked again by the next pass
            raise

    async def _discover(self) -> tuple[frozenset[str], str | None]:
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
        deploy_path = resource_path("apps/v1", "deployments", namespace=namespace, name=name)
        service_path = resource_path("v1", "services", namespace=namespace, name=name)
        body, (apis, note), current_deployment = await asyncio.gather(
            self.api.get_or_none(server_path(namespace, name)), self.monitoring_apis(),
            self.api.get_or_none(deploy_path))
        if body is None or body["metadata"].get("deletionTimestamp"):
            return  # gone or going: the garbage collector removes the children
        try:
            spec = parse_spec(body)
        except SpecError as exc:
            # Children stay as they are; status still reports what they really do.
            await self._publish_status(body, status.Observed(
                generation=body["metadata"].get("generation", 1),
                desired_replicas=int(((current_deployment or {}).get("spec") or {}).get("replicas") or 0),
                deployment=current_deployment, service=await self.api.get_or_none(service_path),
                selector=((body.get("status") or {}).get("selector") or ""),
                spec_error=f"{exc.field}: {exc.message}"))
            raise
        children = build_children(spec, monitoring_apis=apis, operator_namespace=self.operator_namespace)
        by_kind = {c["kind"]: c for c in children}
        # Two children may share a kind (the server's ConfigMap and the dashboard's): match by name too.
        wanted = {(c["kind"], c["metadata"]["name"]) for c in children}
        replicas = desired_replicas(spec, current_deployment)
        for child in children:
            child.setdefault("metadata", {})["namespace"] = namespace
            if child["kind"] == "Deployment":
                child["spec"]["replicas"] = replicas
            kopf.adopt(child, owner=kopf.Body(cast(kopf.RawBody, body)))
        notes: list[tuple[events.EventType, str, str]] = []
        apply_error: BaseException | None = None
        applied: dict[str, Applied] = {}
        results: list[Applied] = []
        owned: list[dict[str, Any]] = []
        deleted = False
        new = current_deployment is None and not body.get("status")  # nothing of ours can be there yet
        try:
            # ConfigMaps first (the pods mount them), then the rest together.
            for batch in ([c for c in children if c["kind"] == "ConfigMap"],
                          [c for c in children if c["kind"] != "ConfigMap"]):
                for result in await asyncio.gather(*(apply_child(self.api, c, create_first=new) for c in batch)):
                    results.append(result)
                    applied.setdefault(result.kind, result)
                    if result.action != "unchanged":
                        notes.append(events.child_event(result.kind, result.name, result.action))
            if new and all(r.action == "created" for r in results):
                # Children are matched by owner uid: a new object owns exactly what we just made.
                owned = [{**r.obj, "kind": r.kind} for r in results]
            else:
                owned = await owned_children(self.api, owner_uid=body["metadata"]["uid"], namespace=namespace,
                                             instance=name, kinds=_child_kinds(apis))
            for stale in owned:
                if (stale["kind"], stale["metadata"]["name"]) not in wanted:
                    api_version, plural = CHILD_KINDS[stale["kind"]]
                    await self.api.delete(resource_path(api_version, plural, namespace=namespace,
                                                        name=stale["metadata"]["name"]))
                    notes.append(events.child_event(stale["kind"], stale["metadata"]["name"], "deleted"))
                    deleted = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_transient(exc):
                raise
            apply_error = exc
        # Each child as the API server answered our apply: newer changes come as events of their own.
        deployment, service = await asyncio.gather(_answered(self.api, applied.get("Deployment"), deploy_path),
                                                   _answered(self.api, applied.get("Service"), service_path))
        match_labels = (by_kind["Deployment"]["spec"].get("selector") or {}).get("matchLabels") or {}
        observed = status.Observed(
            generation=body["metadata"].get("generation", 1), desired_replicas=replicas,
            deployment=deployment, service=service,
            selector=",".join(f"{k}={v}" for k, v in sorted(match_labels.items())),
            model=_model_name(spec), autoscaling_enabled=_autoscaling_enabled(spec),
            apply_error=None if apply_error is None else _describe(apply_error), monitoring_note=note)
        await asyncio.gather(*(events.post_event(self.api, body, type_=type_, reason=reason, message=message)
                               for type_, reason, message in notes))
        await self._publish_status(body, observed)
        if apply_error is not None:
            raise apply_error
        if not deleted:  # after a deletion the listing is out of date: the next resync does a full pass
            self._fingerprints[namespace, name] = fingerprint(body, apis, owned)

    async def _publish_status(self, body: Mapping[str, Any], observed: status.Observed) -> None:
        """Write status when it changed (status_writer: precondition, re-read on 409) and post transitions."""
        written = await write_status(self.api, body,
                                     lambda current: status.compute_status(observed, previous=current, now=_now()))
        if written is None:
            return
        for type_, reason, message in events.transition_events(written.before, written.after):
            await events.post_event(self.api, written.body, type_=type_, reason=reason, message=message)


def fingerprint(body: Mapping[str, Any], apis: frozenset[str], owned: list[dict[str, Any]]) -> Fingerprint:
    """What a pass depends on: the object's version, the monitoring APIs, each owned child's version."""
    return (body["metadata"].get("resourceVersion"), tuple(sorted(apis)), *sorted(
        (c["kind"], c["metadata"]["name"], c["metadata"].get("resourceVersion")) for c in owned))


def _child_kinds(apis: frozenset[str]) -> dict[str, tuple[str, str]]:
    return {k: v for k, v in CHILD_KINDS.items() if not v[0].startswith("monitoring.coreos.com/") or v[1] in apis}


async def _answered(api: KubeApi, applied: Applied | None, path: str) -> dict[str, Any] | None:
    return applied.obj if applied is not None else await api.get_or_none(path)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _model_name(spec: Any) -> str | None:
    model = getattr(spec, "model", None)
    name = getattr(model, "name", model)
    return name if isinstance(name, str) else None


def _autoscaling_enabled(spec: Any) -> bool:
    return bool(getattr(getattr(spec, "autoscaling", None), "enabled", False))
