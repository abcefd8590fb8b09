"""What the last clean pass of an SttServer left (`Known`), and what a watch event costs against it.

Pure records and functions, no I/O: the reconciler keeps one `Known` per SttServer and asks
`verdict` about the events waiting for it:

- the SttServer's own event (`ServerEvent`): a full pass when its generation or labels differ from
  the record (or there is none, unless it is the spec that already failed to parse); nothing
  otherwise (our own status writes);
- a child's event (`ChildEvent`): nothing for the version we wrote or read ourselves; for a
  Deployment whose status alone moved (same generation, labels, apply record and owners), a
  status refresh; a full pass for anything else (drift, a deletion, a child we do not know).

`absorb` records the versions of events that needed no full pass, so the resync, which compares
resourceVersions, does not take them for missed changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from stt_operator import status
from stt_operator.reconcile import LAST_APPLIED

ChildKey = tuple[str, str]  # (kind, name)
Identity = tuple[object, tuple[tuple[str, str], ...]]  # (generation, sorted labels)
Verdict = Literal["none", "status", "full"]


def identity(body: Mapping[str, Any]) -> Identity:
    """What a pass depends on besides the children: the spec (by generation) and the labels."""
    meta = body.get("metadata") or {}
    return meta.get("generation"), tuple(sorted((meta.get("labels") or {}).items()))


@dataclass(frozen=True)
class ChildVersion:
    """What a watch event of one child is compared by."""

    resource_version: str | None
    generation: int | None  # None for kinds without one (ConfigMap, Service): every change counts
    labels: tuple[tuple[str, str], ...]
    last_applied: int | None  # hash of our apply record (reconcile.LAST_APPLIED), not the record itself
    owners: tuple[str, ...]

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ChildVersion:
        meta = obj.get("metadata") or {}
        generation = meta.get("generation")
        return cls(resource_version=meta.get("resourceVersion"),
                   generation=None if generation is None else int(generation),
                   labels=tuple(sorted((meta.get("labels") or {}).items())),
                   last_applied=hash_or_none((meta.get("annotations") or {}).get(LAST_APPLIED)),
                   owners=tuple(sorted(str(r.get("uid")) for r in meta.get("ownerReferences") or ())))

    def only_status_moved_since(self, before: ChildVersion) -> bool:
        """Same spec (generation), labels, apply record and owners: a controller wrote its status."""
        return (self.generation is not None and self.generation == before.generation
                and self.labels == before.labels and self.last_applied == before.last_applied
                and self.owners == before.owners)


@dataclass
class Known:
    """What the last clean pass of one SttServer left, kept current by the events it explains."""

    generation: object
    labels: tuple[tuple[str, str], ...]
    apis: frozenset[str]
    children: dict[ChildKey, ChildVersion]
    observed: status.Observed  # the status inputs, so a Deployment's new status needs no full pass

    def same_object(self, body: Mapping[str, Any], apis: frozenset[str]) -> bool:
        return apis == self.apis and identity(body) == (self.generation, self.labels)


@dataclass(frozen=True)
class ChildEvent:
    kind: str
    name: str
    version: ChildVersion
    body: Mapping[str, Any]
    deleted: bool = False


@dataclass(frozen=True)
class ServerEvent:
    """A watch event of the SttServer itself: what its generation and labels were."""

    identity: Identity


Cause = ChildEvent | ServerEvent


def verdict(known: Known | None, events: Iterable[Cause], *, invalid: Identity | None = None) -> Verdict:
    """What `events` need against `known` (None: no clean pass yet); `invalid`: the identity of
    the spec that last failed to parse."""
    result: Verdict = "none"
    for event in events:
        if isinstance(event, ServerEvent):
            if known is None and invalid is not None and invalid == event.identity:
                continue  # the spec that failed to parse: nothing new to try until it changes
            if known is None or event.identity != (known.generation, known.labels):
                return "full"
            continue
        before = None if known is None else known.children.get((event.kind, event.name))
        if event.deleted or before is None:
            return "full"
        if event.version.resource_version == before.resource_version:
            continue  # our own write, or what our pass read
        if not event.version.only_status_moved_since(before):
            return "full"
        if event.kind == "Deployment":
            result = "status"
    return result


def absorb(known: Known, events: Iterable[Cause]) -> None:
    """Record the child versions `events` carry (they needed no full pass) and a Deployment's status."""
    for event in events:
        if isinstance(event, ServerEvent):
            continue
        known.children[event.kind, event.name] = event.version
        if event.kind == "Deployment":
            known.observed = dataclasses.replace(known.observed, deployment=slim_deployment(event.body))


def hash_or_none(value: object) -> int | None:
    return None if value is None else hash(str(value))


def slim_deployment(deployment: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The parts of a Deployment status.py reads: a record per SttServer stays small."""
    if deployment is None:
        return None
    return {"metadata": {"generation": (deployment.get("metadata") or {}).get("generation")},
            "status": deployment.get("status") or {}}


def slim_service(service: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if service is None:
        return None
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    return {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
            "spec": {"type": spec.get("type"), "ports": spec.get("ports") or []}}
