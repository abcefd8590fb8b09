"""Reconcile one SttServer: parse, build, adopt, create-or-patch, prune, then status and Events.

One `Reconciler` per operator process. Runs for the same SttServer never overlap (a lock per
object); requests that arrive while one runs (a child changed, the spec changed, the resync)
collapse into one follow-up run, so a burst of events costs one extra pass. Passes run in the
background: a failed one is retried with exponential backoff (conflicts, 5xx, timeouts); an
invalid spec is not retried until the SttServer's generation or labels move (`server_changed`).

A pass reads what it needs at once (the object, the monitoring APIs, the Deployment), applies the
ConfigMaps first (the pods mount them) and the other children together, and creates without
reading first when the SttServer is new. After a clean pass it remembers what it left (`Known`):
the object's generation and labels, the monitoring APIs, every owned child's resourceVersion,
generation and our labels, and the status inputs.

That record decides what a watch event costs (pass_record.py): nothing for our own writes, a
status refresh a second later for a Deployment whose status alone moved (the controller's next
steps within that second share it), a full pass for a new spec, drift or a deletion.

Events that arrive while a pass runs are judged when it has finished, against what it left. The
safety-net resync (resync.py) lists the fleet and asks `in_record` for each SttServer; only those
no longer as recorded get a full pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, cast

import aiohttp
import kopf

from stt_operator import events, status
from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, resource_path
from stt_operator.builders import build_children
from stt_operator.crd import GROUP, PLURAL, VERSION
from stt_operator.pass_record import (
    Cause,
    ChildEvent,
    ChildVersion,
    Identity,
    Known,
    ServerEvent,
    Verdict,
    absorb,
    identity,
    slim_deployment,
    slim_service,
    verdict,
)
from stt_operator.reconcile import (
    CHILD_KINDS,
    Applied,
    apply_child,
    desired_replicas,
    owned_children,
)
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
# A Deployment's status moves in steps (observedGeneration, then replicas, then conditions): one
# status refresh this long after the first step covers them all.
STATUS_REFRESH_DELAY_SEC: Final = 1.0
# How long one answer about the monitoring APIs serves (installing the prometheus-operator CRDs is
# noticed within this plus the next pass).
DISCOVERY_TTL_SEC: Final = 5.0

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
    def __init__(self, api: KubeApi, *, operator_namespace: str | None = None,
                 passes_at_once: int = PASSES_AT_ONCE,
                 status_refresh_delay_sec: float = STATUS_REFRESH_DELAY_SEC) -> None:
        self.api = api
        self._idle = asyncio.Event()  # set while no pass runs: Events wait for it (events.py)
        self._idle.set()
        self._running = 0
        self.events = events.EventQueue(api, quiet=self._idle)
        self._turns = asyncio.Semaphore(passes_at_once)
        self._status_refresh_delay_sec = status_refresh_delay_sec
        self.operator_namespace = operator_namespace  # the NetworkPolicy lets this namespace scrape
        self._locks: dict[Key, asyncio.Lock] = {}
        self._queued: dict[Key, asyncio.Task[None]] = {}
        # Events behind a queued pass; None: the pass runs whatever they say (a retry, the resync).
        self._causes: dict[Key, list[Cause] | None] = {}
        self._fresh: dict[Key, Mapping[str, Any]] = {}  # the SttServer as its latest event carried it
        self._known: dict[Key, Known] = {}  # after each clean pass
        self._invalid: dict[Key, Identity] = {}  # the spec that failed to parse, by `identity`
        self._discovery: tuple[float, asyncio.Future[tuple[frozenset[str], str | None]]] | None = None

    # ---- scheduling --------------------------------------------------------------------------

    def request(self, namespace: str, name: str, *, delay: float = 0.0, attempt: int = 0,
                cause: Cause | None = None) -> None:
        """Ask for a background pass; collapses with one already waiting for the same object.

        `cause`: the watch event behind the request; the pass then does only what the events
        waiting for it need (`verdict`), judged when it starts.
        """
        key = (namespace, name)
        waiting = key in self._queued and not self._queued[key].done()
        causes = self._causes.get(key) if waiting else []
        self._causes[key] = None if cause is None or causes is None else [*causes, cause]
        if waiting:
            return
        self._queued[key] = asyncio.create_task(self._background(key, delay=delay, attempt=attempt))

    def server_changed(self, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        """A watch event of the SttServer (the initial listing too): a pass when its spec or labels
        moved since the last clean pass, nothing for our own status writes. A new SttServer's pass
        is built from `body` without reading it again."""
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            return  # going: the garbage collector removes the children
        self._fresh[namespace, name] = body
        self._cause(namespace, name, ServerEvent(identity=identity(body)))

    def child_changed(self, namespace: str, owner: str, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """A watch event of one of `owner`'s children: queue what it needs (often nothing)."""
        meta = body.get("metadata") or {}
        kind = str(body.get("kind"))
        # Only a Deployment's status is kept (for a status refresh): not the whole object while it waits.
        kept = (slim_deployment(body) or {}) if kind == "Deployment" else {}
        self._cause(namespace, owner, ChildEvent(kind=kind, name=str(meta.get("name")),
                                                 version=ChildVersion.of(body), body=kept, deleted=deleted))

    def _busy(self, key: Key) -> bool:
        """A pass for `key` runs or waits: it will judge newer events and leave a new record."""
        lock = self._locks.get(key)
        return (lock is not None and lock.locked()) or (key in self._queued and not self._queued[key].done())

    def _cause(self, namespace: str, name: str, event: Cause) -> None:
        key = (namespace, name)
        if not self._busy(key):
            verdict = self.verdict(key, [event])
            if verdict == "none":
                self._absorb(key, [event])
                self._fresh.pop(key, None)
                return
            if verdict == "status":  # the controller's next status writes follow within a second
                self.request(namespace, name, cause=event, delay=self._status_refresh_delay_sec)
                return
        self.request(namespace, name, cause=event)

    def verdict(self, key: Key, events: list[Cause]) -> Verdict:
        """What `events` need, against what the last clean pass left."""
        return verdict(self._known.get(key), events, invalid=self._invalid.get(key))

    def _absorb(self, key: Key, events: list[Cause]) -> None:
        """Remember the versions of child events that needed no full pass (the resync compares them)."""
        known = self._known.get(key)
        if known is not None:
            absorb(known, events)

    async def _background(self, key: Key, *, delay: float, attempt: int) -> None:
        await asyncio.sleep(delay)
        self._queued.pop(key, None)  # from here on, a new request queues another pass
        causes = self._causes.pop(key, None)
        try:
            async with self._locks.setdefault(key, asyncio.Lock()), self._turn():
                fresh = self._fresh.pop(key, None)
                if causes is not None:
                    verdict = self.verdict(key, causes)
                    if verdict != "full":
                        self._absorb(key, causes)
                        if verdict == "status":
                            await self._refresh_status(*key)
                        return
                await self._reconcile_locked(*key, fresh=fresh)
        except asyncio.CancelledError:
            raise
        except SpecError as exc:
            # Already in status and Events; nothing to retry until the spec changes (server_changed).
            logger.warning("invalid spec of %s/%s: %s: %s", *key, exc.field, exc.message)
        except Exception as exc:  # noqa: BLE001 - any failure of a background pass is retried
            retry_in = backoff(attempt)
            logger.warning("reconcile of %s/%s failed (%s); retrying in %.1fs", *key, exc, retry_in)
            self.request(*key, delay=retry_in, attempt=attempt + 1)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """One of the PASSES_AT_ONCE places; `_idle` is clear while any is taken."""
        async with self._turns:
            self._running += 1
            self._idle.clear()
            try:
                yield
            finally:
                self._running -= 1
                if not self._running:
                    self._idle.set()

    async def close(self) -> None:
        tasks = list(self._queued.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.events.close()

    # ---- one pass ----------------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str, *, fresh: Mapping[str, Any] | None = None) -> None:
        """One pass, now. `fresh`: the object as the event that asked for the pass carried it; a new
        SttServer (no status yet) is then built from it without reading anything first."""
        async with self._locks.setdefault((namespace, name), asyncio.Lock()), self._turn():
            await self._reconcile_locked(namespace, name, fresh=fresh)

    async def _reconcile_locked(self, namespace: str, name: str, *, fresh: Mapping[str, Any] | None = None) -> None:
        self._known.pop((namespace, name), None)  # set again only by a clean pass
        await self._reconcile(namespace, name, fresh=fresh)

    def forget(self, namespace: str, name: str) -> None:
        """The SttServer is gone: drop what was kept about it."""
        key = (namespace, name)
        self._known.pop(key, None)
        self._invalid.pop(key, None)
        self._fresh.pop(key, None)
        lock = self._locks.get(key)
        if lock is not None and not lock.locked() and key not in self._queued:
            self._locks.pop(key, None)

    def in_record(self, key: Key, body: Mapping[str, Any], *, apis: frozenset[str],
                  children: Mapping[tuple[str, str], str | None]) -> bool:
        """True when `body` and its `children` ((kind, name) -> resourceVersion, as listed) are as
        the last clean pass left them, or a pass for it is under way or waiting (it will leave a
        new record), or it is the spec that failed to parse (nothing to try until it changes)."""
        if body["metadata"].get("deletionTimestamp"):
            return True  # going: the garbage collector removes the children
        if self._busy(key):
            return True
        known = self._known.get(key)
        if known is None:
            return self._invalid.get(key) == identity(body)
        return known.same_object(body, apis) and dict(children) == {
            child: version.resource_version for child, version in known.children.items()}

    async def _refresh_status(self, namespace: str, name: str) -> None:
        """Status from the remembered inputs and the Deployment's latest status, no child reads or writes."""
        known = self._known.get((namespace, name))
        body = await self.api.get_or_none(server_path(namespace, name))
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        if known is None or body["metadata"].get("generation") != known.generation:
            await self._reconcile_locked(namespace, name)  # the spec moved on meanwhile: a full pass
            return
        await self._publish_status(body, known.observed)

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

    async def _reconcile(self, namespace: str, name: str, *, fresh: Mapping[str, Any] | None = None) -> None:
        deploy_path = resource_path("apps/v1", "deployments", namespace=namespace, name=name)
        service_path = resource_path("v1", "services", namespace=namespace, name=name)
        if fresh is not None and not fresh.get("status") and not fresh["metadata"].get("deletionTimestamp"):
            # New (we have written no status yet), as its ADDED event carried it: nothing of ours can
            # be there but what an earlier failed attempt left, which a 409 on create finds.
            body: dict[str, Any] | None = dict(fresh)
            (apis, note), current_deployment = await self.monitoring_apis(), None
        else:
            body, (apis, note), current_deployment = await asyncio.gather(
                self.api.get_or_none(server_path(namespace, name)), self.monitoring_apis(),
                self.api.get_or_none(deploy_path))
        if body is None or body["metadata"].get("deletionTimestamp"):
            return  # gone or going: the garbage collector removes the children
        try:
            spec = parse_spec(body)
        except SpecError as exc:
            self._invalid[namespace, name] = identity(body)
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
            # ConfigMaps first (the pods mount them), then the rest together; a new server's all at
            # once (its pods wait for the ConfigMap's volume, which comes in the same round trip).
            batches = [children] if new else [[c for c in children if c["kind"] == "ConfigMap"],
                                              [c for c in children if c["kind"] != "ConfigMap"]]
            for batch in batches:
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
                                             instance=name, kinds=child_kinds(apis))
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
        for type_, reason, message in notes:
            self.events.post(body, type_=type_, reason=reason, message=message)
        await self._publish_status(body, observed)
        if apply_error is not None:
            raise apply_error
        self._invalid.pop((namespace, name), None)
        if not deleted:  # after a deletion the listing is out of date: the next resync does a full pass
            generation, labels = identity(body)
            self._known[namespace, name] = Known(
                generation=generation, labels=labels,
                apis=apis, children={(c["kind"], c["metadata"]["name"]): ChildVersion.of(c) for c in owned},
                observed=dataclasses.replace(observed, deployment=slim_deployment(deployment),
                                             service=slim_service(service)))

    async def _publish_status(self, body: Mapping[str, Any], observed: status.Observed) -> None:
        """Write status when it changed (status_writer: precondition, re-read on 409) and post transitions."""
        written = await write_status(self.api, body,
                                     lambda current: status.compute_status(observed, previous=current, now=_now()))
        if written is None:
            return
        for type_, reason, message in events.transition_events(written.before, written.after):
            self.events.post(written.body, type_=type_, reason=reason, message=message)


def child_kinds(apis: frozenset[str]) -> dict[str, tuple[str, str]]:
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
