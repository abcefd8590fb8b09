"""The reconciler against an in-memory API: a new SttServer's children are created without reads,
and a resync round (one LIST per kind) does nothing while nothing changed, a full pass for each
SttServer whose object or children moved."""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from stt_operator.autoscaling.kubeapi import ApiError, matches_labels
from stt_operator.child_watch import Scope
from stt_operator.reconciler import Reconciler, child_kinds, server_path
from stt_operator.resync import resync_round
from stt_operator.status_writer import apply_merge_patch

NS = "ns"


class MemoryApi:
    """Objects by path, resourceVersions that move on each write, and a log of every call."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self._versions = itertools.count(100)

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("metadata", {})["resourceVersion"] = str(next(self._versions))
        return copy.deepcopy(obj)

    async def get_or_none(self, path: str) -> dict[str, Any] | None:
        self.calls.append(("GET", path))
        obj = self.objects.get(path)
        return copy.deepcopy(obj) if obj is not None else None

    async def list(self, path: str, *, labels: Mapping[str, str] | None = None,
                   keep: Callable[[dict[str, Any]], Any] | None = None) -> list[Any]:
        self.calls.append(("LIST", path))
        listed = [copy.deepcopy(o) for p, o in self.objects.items()
                  if p.rsplit("/", 1)[0] == path and matches_labels(o, labels or {})]
        kept = listed if keep is None else [keep(o) for o in listed]
        return [o for o in kept if o is not None]

    async def create(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("POST", path))
        if path.endswith("/events"):
            return dict(obj)
        key = f"{path}/{obj['metadata']['name']}"
        if key in self.objects:
            raise ApiError(409, "already exists")
        self.objects[key] = copy.deepcopy(dict(obj))
        if "/deployments" in path or "/poddisruptionbudgets" in path:  # kinds the API server counts generations of
            self.objects[key]["metadata"]["generation"] = 1
        return self._stamp(self.objects[key])

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("PATCH", path))
        key = path.removesuffix("/status")
        self.objects[key] = apply_merge_patch(self.objects[key], patch)
        return self._stamp(self.objects[key])

    async def delete(self, path: str, *, grace_period: int | None = None) -> None:
        self.calls.append(("DELETE", path))
        self.objects.pop(path, None)



def writes(api: MemoryApi) -> list[tuple[str, str]]:
    return [c for c in api.calls if c[0] in ("POST", "PATCH", "DELETE")]


def add_server(api: MemoryApi, name: str = "a") -> None:
    api.objects[server_path(NS, name)] = api._stamp({
        "apiVersion": "sttfleet.io/v1alpha1", "kind": "SttServer",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1},
        "spec": {"image": "ghcr.io/stt-fleet/stt-server:0.1.0"}})


async def settle(reconciler: Reconciler) -> None:
    """Until the background passes asked for so far have run (a pass leaves the queue when it starts)."""
    async with asyncio.timeout(5):
        await asyncio.gather(*reconciler._queued.values())
        await reconciler.events.flush()


async def test_a_new_server_gets_its_children_without_reading_them_first() -> None:
    api = MemoryApi()
    add_server(api)
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    await reconciler.reconcile(NS, "a")
    await settle(reconciler)
    created = [p for verb, p in writes(api) if verb == "POST" and not p.endswith("/events")]
    assert {p.rsplit("/", 1)[1] for p in created} == {"configmaps", "deployments", "services"}
    child_reads = [p for verb, p in api.calls if verb == "GET" and ("/configmaps/" in p or "/services/" in p)]
    assert child_reads == []  # created at once: nothing of a new SttServer can be there yet


async def test_a_new_server_from_its_event_is_built_without_any_read_and_its_children_made_at_once() -> None:
    api = MemoryApi()
    add_server(api)
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    await reconciler.reconcile(NS, "a", fresh=copy.deepcopy(api.objects[server_path(NS, "a")]))
    await settle(reconciler)
    object_reads = [p for verb, p in api.calls if verb == "GET" and "/monitoring.coreos.com" not in p
                    and "/apis/monitoring" not in p]
    assert object_reads == []  # not the SttServer, not the Deployment: the event said it is new
    posts = [p for verb, p in api.calls if verb == "POST" and not p.endswith("/events")]
    assert {p.rsplit("/", 1)[1] for p in posts} >= {"configmaps", "deployments", "services"}
    assert api.objects[server_path(NS, "a")]["status"]["observedGeneration"] == 1

    # With a status (not new), the same event body is not trusted: the pass reads the object.
    api.calls.clear()
    await reconciler.reconcile(NS, "a", fresh=copy.deepcopy(api.objects[server_path(NS, "a")]))
    assert ("GET", server_path(NS, "a")) in api.calls


async def resync(reconciler: Reconciler) -> tuple[int, list[tuple[str, str]]]:
    """One resync round over the namespace, then the passes it asked for."""
    checked, stale = await resync_round(reconciler, scope=Scope((NS,)))
    for key in stale:
        reconciler.request(*key)
    await settle(reconciler)
    return checked, stale


async def test_a_resync_round_lists_each_kind_once_and_repairs_only_what_moved() -> None:
    api = MemoryApi()
    for name in ("a", "b", "c"):
        add_server(api, name)
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    for name in ("a", "b", "c"):
        await reconciler.reconcile(NS, name)
    await settle(reconciler)

    api.calls.clear()
    assert await resync(reconciler) == (3, [])
    assert writes(api) == []
    assert all(verb == "LIST" for verb, path in api.calls if "/monitoring" not in path)  # no per-object reads
    assert len([c for c in api.calls if c[0] == "LIST"]) == 1 + len(child_kinds(frozenset()))  # SttServers, each child kind

    # A change whose event was missed: the round sees the new resourceVersion and repairs it.
    configmap = f"/api/v1/namespaces/{NS}/configmaps/b"
    wanted = copy.deepcopy(api.objects[configmap]["data"])
    api.objects[configmap]["data"] = {"config.yaml": "edited by hand"}
    api._stamp(api.objects[configmap])
    assert await resync(reconciler) == (3, [(NS, "b")])
    assert api.objects[configmap]["data"] == wanted

    # A deleted child and a spec change the watch never reported: both repaired.
    del api.objects[f"{DEPLOYMENTS}/c"]
    api.objects[server_path(NS, "a")]["spec"]["replicas"] = 2
    api.objects[server_path(NS, "a")]["metadata"]["generation"] += 1
    assert sorted((await resync(reconciler))[1]) == [(NS, "a"), (NS, "c")]
    assert f"{DEPLOYMENTS}/c" in api.objects
    assert api.objects[f"{DEPLOYMENTS}/a"]["spec"]["replicas"] == 2
    assert await resync(reconciler) == (3, [])  # and then all is as recorded again


def child(api: MemoryApi, kind_path: str, name: str = "a") -> dict[str, Any]:
    """The child as the API server holds it now, with its kind (as a watch event carries it)."""
    plural = kind_path.rsplit("/", 1)[1]
    kind = {"configmaps": "ConfigMap", "deployments": "Deployment", "services": "Service",
            "poddisruptionbudgets": "PodDisruptionBudget", "networkpolicies": "NetworkPolicy"}[plural]
    return {**copy.deepcopy(api.objects[f"{kind_path}/{name}"]), "kind": kind}


DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
CONFIGMAPS = f"/api/v1/namespaces/{NS}/configmaps"


async def test_the_events_of_our_own_writes_cost_nothing_even_when_they_arrive_during_the_pass() -> None:
    api = MemoryApi()
    add_server(api)
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    lock = reconciler._locks.setdefault((NS, "a"), asyncio.Lock())
    await lock.acquire()  # as if the creating pass were still running when the ADDED events come
    pass_done = asyncio.Event()

    async def creating_pass() -> None:
        await reconciler._reconcile_locked(NS, "a")
        pass_done.set()
    task = asyncio.create_task(creating_pass())
    await asyncio.wait_for(pass_done.wait(), 5)
    api.calls.clear()
    for path in (CONFIGMAPS, DEPLOYMENTS, f"/api/v1/namespaces/{NS}/services"):
        reconciler.child_changed(NS, "a", child(api, path))
    lock.release()
    await task
    await settle(reconciler)
    assert api.calls == []  # judged after the pass against what it created: our own versions

    reconciler.child_changed(NS, "a", child(api, CONFIGMAPS))  # and with no pass running
    assert api.calls == [] and not reconciler._queued


async def test_a_deployment_status_update_refreshes_status_without_touching_children() -> None:
    api = MemoryApi()
    add_server(api)
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    await reconciler.reconcile(NS, "a")
    await settle(reconciler)
    api.calls.clear()
    deployment = api.objects[f"{DEPLOYMENTS}/a"]
    deployment["status"] = {"observedGeneration": deployment["metadata"]["generation"], "replicas": 1,
                            "readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
    api._stamp(deployment)
    reconciler.child_changed(NS, "a", child(api, DEPLOYMENTS))
    await settle(reconciler)
    server = api.objects[server_path(NS, "a")]
    assert server["status"]["readyReplicas"] == 1 and server["status"]["replicaSummary"] == "1/1"
    # One read of the SttServer, its status write, and the Event of Ready turning True: no child read or written.
    assert api.calls == [("GET", server_path(NS, "a")), ("PATCH", f"{server_path(NS, 'a')}/status"),
                         ("POST", f"/api/v1/namespaces/{NS}/events")]

    # The resync afterwards finds everything as recorded: no full pass.
    api.calls.clear()
    assert await resync(reconciler) == (1, [])
    assert writes(api) == []


async def test_drift_and_deletion_of_a_child_still_get_a_full_pass() -> None:
    api = MemoryApi()
    add_server(api)
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    await reconciler.reconcile(NS, "a")
    await settle(reconciler)
    wanted = copy.deepcopy(api.objects[f"{CONFIGMAPS}/a"]["data"])
    api.objects[f"{CONFIGMAPS}/a"]["data"] = {"config.yaml": "edited by hand"}
    api._stamp(api.objects[f"{CONFIGMAPS}/a"])
    reconciler.child_changed(NS, "a", child(api, CONFIGMAPS))
    await settle(reconciler)
    assert api.objects[f"{CONFIGMAPS}/a"]["data"] == wanted

    # A Deployment whose spec someone changed (its generation moved) is put back.
    deployment = api.objects[f"{DEPLOYMENTS}/a"]
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    deployment["metadata"]["generation"] += 1
    api._stamp(deployment)
    reconciler.child_changed(NS, "a", child(api, DEPLOYMENTS))
    await settle(reconciler)
    assert api.objects[f"{DEPLOYMENTS}/a"]["spec"]["template"]["spec"]["containers"][0]["image"] == image

    gone = child(api, CONFIGMAPS)
    del api.objects[f"{CONFIGMAPS}/a"]
    reconciler.child_changed(NS, "a", gone, deleted=True)
    await settle(reconciler)
    assert api.objects[f"{CONFIGMAPS}/a"]["data"] == wanted


async def test_server_events_run_a_pass_only_when_the_spec_or_labels_moved() -> None:
    api = MemoryApi()
    add_server(api)
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    reconciler.server_changed(NS, "a", copy.deepcopy(api.objects[server_path(NS, "a")]))  # its ADDED event
    await settle(reconciler)
    assert ("GET", server_path(NS, "a")) not in api.calls  # built from the event's body
    assert f"{DEPLOYMENTS}/a" in api.objects

    # The MODIFIED event of our own status write: same generation and labels, nothing to do.
    api.calls.clear()
    reconciler.server_changed(NS, "a", copy.deepcopy(api.objects[server_path(NS, "a")]))
    assert not reconciler._queued
    await settle(reconciler)
    assert api.calls == []

    # A new spec (the API server moves the generation) and new labels: a full pass each.
    for change in ({"spec": {"replicas": 2}}, {"metadata": {"labels": {"team": "x"}}}):
        server = api.objects[server_path(NS, "a")]
        server["spec"].update(change.get("spec", {}))
        server["metadata"].setdefault("labels", {}).update(change.get("metadata", {}).get("labels", {}))
        server["metadata"]["generation"] += "spec" in change
        api._stamp(server)
        reconciler.server_changed(NS, "a", copy.deepcopy(server))
        await settle(reconciler)
    assert api.objects[f"{DEPLOYMENTS}/a"]["spec"]["replicas"] == 2
    assert api.objects[f"{DEPLOYMENTS}/a"]["metadata"]["labels"]["team"] == "x"

    # Being deleted: the garbage collector takes the children, no pass.
    api.calls.clear()
    going = copy.deepcopy(api.objects[server_path(NS, "a")])
    going["metadata"]["deletionTimestamp"] = "2026-12-03T00:00:00Z"
    going["metadata"]["generation"] += 1
    reconciler.server_changed(NS, "a", going)
    await settle(reconciler)
    assert api.calls == []


async def test_a_deployments_status_steps_within_the_delay_share_one_refresh() -> None:
    api = MemoryApi()
    add_server(api)
    reconciler = Reconciler(api, status_refresh_delay_sec=0.2)  # type: ignore[arg-type]
    await reconciler.reconcile(NS, "a")
    await settle(reconciler)
    api.calls.clear()
    deployment = api.objects[f"{DEPLOYMENTS}/a"]
    for step in ({"observedGeneration": deployment["metadata"]["generation"]},
                 {"replicas": 1, "updatedReplicas": 1}, {"readyReplicas": 1, "availableReplicas": 1}):
        deployment["status"] = {**deployment.get("status", {}), **step}
        api._stamp(deployment)
        reconciler.child_changed(NS, "a", child(api, DEPLOYMENTS))
    assert api.calls == []  # nothing before the delay
    await settle(reconciler)
    assert api.calls.count(("GET", server_path(NS, "a"))) == 1
    assert api.calls.count(("PATCH", f"{server_path(NS, 'a')}/status")) == 1
    assert api.objects[server_path(NS, "a")]["status"]["readyReplicas"] == 1
