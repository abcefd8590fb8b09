"""The in-memory object store behind the local API server, with the API server's write rules.

What it enforces, as kube-apiserver does: a global, increasing `resourceVersion` (unchanged by
no-op writes); `uid` and `creationTimestamp` on create; `metadata.generation` bumped only when
something outside metadata and status changes; the status subresource (main writes keep the old
status, status writes change nothing else); optimistic concurrency (a stale resourceVersion is a
409 Conflict, an existing name a 409 AlreadyExists); namespaces must exist; deletion honours
finalizers (deletionTimestamp first, removal once they are empty) and pods bound to a node get
graceful deletion; removal of an owner deletes its dependents (ownerReference uid) unless
`propagationPolicy: Orphan`, and a dependent created after all its owners are gone is deleted; CRDs register their types and their schema defaults, prunes and
validates custom resources. Every change is an event in a bounded history that watches replay.
"""

from __future__ import annotations

import copy
import datetime
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from stt_localfleet import crdschema, errors
from stt_localfleet.resources import BUILTINS, ResourceType, types_from_crd

ObjectKey = tuple[tuple[str, str, str], str | None, str]
HISTORY_SIZE: Final = 20000
CRD_KEY: Final = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")


@dataclass(frozen=True)
class Change:
    """One stored change: what watches replay and stream. `old` is None for ADDED."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    rtype: ResourceType
    obj: Mapping[str, Any]
    old: Mapping[str, Any] | None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _outside_meta_status(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class Store:
    def __init__(self, *, history_size: int = HISTORY_SIZE, clock: Callable[[], str] = _now) -> None:
        self.types: dict[tuple[str, str, str], ResourceType] = {t.key: t for t in BUILTINS}
        self.objects: dict[ObjectKey, dict[str, Any]] = {}
        self.rv = 0
        self.history: deque[Change] = deque(maxlen=history_size)
        self.listeners: set[Callable[[Change], None]] = set()
        self._clock = clock
        self.create(self.types[("", "v1", "namespaces")], None, {"metadata": {"name": "default"}})

    # ---- reads -------------------------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.objects.get((rtype.key, namespace if rtype.namespaced else None, name))
        if obj is None:
            raise errors.not_found(self._qualified(rtype), name)
        return copy.deepcopy(obj)

    def list(self, rtype: ResourceType, namespace: str | None) -> Iterator[dict[str, Any]]:
        for (key, ns, _), obj in sorted(self.objects.items(), key=lambda kv: (kv[0][1] or "", kv[0][2])):
            if key == rtype.key and (namespace is None or ns == namespace):
                yield copy.deepcopy(obj)

    def oldest_rv(self) -> int:
        return self.history[0].rv if self.history else self.rv + 1

    # ---- writes ------------------------------------------------------------------------------

    def create(self, rtype: ResourceType, namespace: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise errors.invalid(rtype.kind, "", [{"reason": "FieldValueRequired", "field": "metadata.name",
                                                    "message": "name or generateName is required"}])
        ns = (namespace or meta.get("namespace") or "default") if rtype.namespaced else None
        if ns is not None and not self._namespace_exists(ns):
            raise errors.not_found("namespaces", ns)
        key = (rtype.key, ns, name)
        if key in self.objects:
            raise errors.already_exists(self._qualified(rtype), name)
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        for server_owned in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(server_owned, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=self._clock(), generation=1)
        if ns is not None:
            meta["namespace"] = ns
        if rtype.status_subresource and rtype.key != CRD_KEY:
            obj.pop("status", None)  # as Deployment/CRD strategies do on create
        obj = self._admit(rtype, obj)
        if rtype.key == CRD_KEY:
            obj = self._install_crd(obj)
        self._commit(rtype, key, obj, old=None)
        result = copy.deepcopy(obj)
        if self._dangling(obj):
            # The garbage collector deletes dependents whose owners are all gone, also when the
            # dependent is created after its owner was removed (a late write racing a deletion).
            self.delete(rtype, ns, name)
        return result

    def replace(self, rtype: ResourceType, namespace: str | None, name: str, body: Mapping[str, Any], *,
                subresource: str | None = None) -> dict[str, Any]:
        """PUT: the whole object (or the status of it); a stale resourceVersion is a Conflict."""
        old = self.get(rtype, namespace, name)
        given_rv = (body.get("metadata") or {}).get("resourceVersion")
        if given_rv and given_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(self._qualified(rtype), name)
        return self._write(rtype, old, copy.deepcopy(dict(body)), subresource=subresource)

    def write_patched(self, rtype: ResourceType, old: dict[str, Any], new: dict[str, Any], *,
                      subresource: str | None) -> dict[str, Any]:
        """Store the result of a PATCH computed on `old` (a resourceVersion in the patch is a precondition)."""
        new_rv = (new.get("metadata") or {}).get("resourceVersion")
        if new_rv and new_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(self._qualified(rtype), old["metadata"]["name"])
        return self._write(rtype, old, new, subresource=subresource)

    def _write(self, rtype: ResourceType, old: dict[str, Any], new: dict[str, Any], *,
               subresource: str | None) -> dict[str, Any]:
        old_meta = old["metadata"]
        if subresource == "status":
            new = {**copy.deepcopy(old), "status": new.get("status")}
            if new["status"] is None:
                new.pop("status")
        else:
            new_meta = new.setdefault("metadata", {})
            for immutable in ("uid", "creationTimestamp", "name", "namespace", "generation",
                              "deletionTimestamp", "deletionGracePeriodSeconds"):
                if immutable in old_meta:
                    new_meta[immutable] = old_meta[immutable]
                else:
                    new_meta.pop(immutable, None)
            if rtype.status_subresource:
                new.pop("status", None)
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
            if old_meta.get("deletionTimestamp"):
                # Finalizers may only be removed from an object that is being deleted.
                added = set(new_meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
                if added:
                    raise errors.status_error(422, "Invalid", "no new finalizers can be added if the "
                                              "object is being deleted")
        new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        new = self._admit(rtype, new)
        if subresource is None and _outside_meta_status(new) != _outside_meta_status(old):
            new["metadata"]["generation"] = old_meta.get("generation", 1) + 1
        if new == old:
            return new  # a no-op write changes nothing, not even the resourceVersion
        key = (rtype.key, old_meta.get("namespace"), old_meta["name"])
        if rtype.key == CRD_KEY:
            new = self._install_crd(new)
        self._commit(rtype, key, new, old=old)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._remove(rtype, key, propagation="Background")
        return copy.deepcopy(new)

    def delete(self, rtype: ResourceType, namespace: str | None, name: str, *,
               grace_period: int | None = None, propagation: str = "Background") -> dict[str, Any]:
        obj = self.get(rtype, namespace, name)
        meta = obj["metadata"]
        key = (rtype.key, meta.get("namespace"), name)
        graceful = bool(rtype.key == ("", "v1", "pods") and (obj.get("spec") or {}).get("nodeName"))
        grace = grace_period if grace_period is not None else \
            (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        if meta.get("finalizers") or (graceful and grace > 0):
            if meta.get("deletionTimestamp"):
                return obj  # already terminating: finalizers or the kubelet finish the job
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = self._clock()
            if graceful:
                new["metadata"]["deletionGracePeriodSeconds"] = grace
            self._commit(rtype, key, new, old=obj)
            return copy.deepcopy(new)
        self._remove(rtype, key, propagation=propagation)
        return obj

    # ---- internals ---------------------------------------------------------------------------

    def _admit(self, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        if rtype.schema is None:
            return obj
        pruned = crdschema.default_and_prune(obj, rtype.schema)
        pruned["metadata"], pruned["apiVersion"], pruned["kind"] = obj["metadata"], obj["apiVersion"], obj["kind"]
        causes = crdschema.validation_causes(pruned, rtype.schema)
        if causes:
            raise errors.invalid(f"{rtype.kind}.{rtype.group}", obj["metadata"].get("name", ""), causes)
        return pruned

    def _commit(self, rtype: ResourceType, key: ObjectKey, obj: dict[str, Any], *,
                old: dict[str, Any] | None) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[key] = obj
        self._publish(Change(self.rv, "ADDED" if old is None else "MODIFIED", rtype, copy.deepcopy(obj), old))

    def _remove(self, rtype: ResourceType, key: ObjectKey, *, propagation: str) -> None:
        obj = self.objects.pop(key)
        self.rv += 1
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
        self._publish(Change(self.rv, "DELETED", rtype, copy.deepcopy(obj), obj))
        if rtype.key == CRD_KEY:
            self._uninstall_crd(obj)
        if rtype.key == ("", "v1", "namespaces"):
            for other in [k for k in self.objects if k[1] == key[2]]:
                self._remove(self.types[other[0]], other, propagation="Background")
        self._collect_dependents(obj["metadata"]["uid"], orphan=propagation == "Orphan")

    def _collect_dependents(self, owner_uid: str, *, orphan: bool) -> None:
        live_uids = {o["metadata"]["uid"] for o in self.objects.values()}
        for key, obj in list(self.objects.items()):
            refs = obj["metadata"].get("ownerReferences") or []
            if not any(r.get("uid") == owner_uid for r in refs) or key not in self.objects:
                continue
            rtype = self.types[key[0]]
            if orphan:
                kept = [r for r in refs if r.get("uid") != owner_uid]
                new = copy.deepcopy(obj)
                new["metadata"]["ownerReferences"] = kept
                self._commit(rtype, key, new, old=obj)
            elif not any(r.get("uid") in live_uids for r in refs if r.get("uid") != owner_uid):
                self.delete(rtype, key[1], key[2])

    def _dangling(self, obj: Mapping[str, Any]) -> bool:
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        if not refs:
            return False
        live = {o["metadata"]["uid"] for o in self.objects.values()}
        return not any(ref.get("uid") in live for ref in refs)

    def _publish(self, change: Change) -> None:
        self.history.append(change)
        for listener in list(self.listeners):
            listener(change)

    def _install_crd(self, crd: dict[str, Any]) -> dict[str, Any]:
        for rtype in types_from_crd(crd):
            self.types[rtype.key] = rtype
        crd["status"] = {
            "acceptedNames": (crd.get("spec") or {}).get("names", {}),
            "storedVersions": [v["name"] for v in (crd.get("spec") or {}).get("versions", []) if v.get("storage")],
            "conditions": [{"type": t, "status": "True", "reason": t, "message": "",
                            "lastTransitionTime": self._clock()} for t in ("NamesAccepted", "Established")],
        }
        return crd

    def _uninstall_crd(self, crd: Mapping[str, Any]) -> None:
        for rtype in types_from_crd(crd):
            self.types.pop(rtype.key, None)
            for key in [k for k in self.objects if k[0] == rtype.key]:
                self._remove(rtype, key, propagation="Background")

    def _namespace_exists(self, namespace: str) -> bool:
        return (("", "v1", "namespaces"), None, namespace) in self.objects

    @staticmethod
    def _qualified(rtype: ResourceType) -> str:
        return f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
