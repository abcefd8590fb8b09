"""Create-or-patch of the children of an SttServer: pure diffing plus the thin API calls around it.

The patch for a child is a three-way merge, as `kubectl apply` computes it: the fields we want
(desired) are set where the live object differs, and fields we set last time (recorded in the
`sttfleet.io/last-applied` annotation) but no longer want are removed with `null`. Fields nobody
asked us to own (server defaults, a nodePort the API server allocated, replicas an autoscaler
sets) are left alone, so a reconcile of an unchanged spec sends nothing at all. Values the API
server re-spells are compared by meaning: resource quantities are stored canonically ("0.5" CPU
as "500m", 1024Mi as "1Gi"), and a spelling difference alone is not drift.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, resource_path
from stt_operator.crd import GROUP, KIND

LAST_APPLIED: Final = "sttfleet.io/last-applied"
MANAGED_BY: Final = {"app.kubernetes.io/managed-by": "stt-operator"}

# kind -> (apiVersion, plural) of every kind the builders may produce.
CHILD_KINDS: Final[Mapping[str, tuple[str, str]]] = {
    "ConfigMap": ("v1", "configmaps"),
    "Deployment": ("apps/v1", "deployments"),
    "Service": ("v1", "services"),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets"),
    "ServiceMonitor": ("monitoring.coreos.com/v1", "servicemonitors"),
    "PrometheusRule": ("monitoring.coreos.com/v1", "prometheusrules"),
    "AlertmanagerConfig": ("monitoring.coreos.com/v1alpha1", "alertmanagerconfigs"),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies"),
}

Action = Literal["created", "updated", "unchanged"]

# Maps whose values are resource quantities (a container's resources.requests / .limits).
QUANTITY_MAPS: Final = frozenset({"requests", "limits"})
_QUANTITY: Final = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")
_SUFFIX: Final[Mapping[str, Decimal]] = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": Decimal("1e3"),
    "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18"),
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}


def desired_replicas(spec: Any, current_deployment: Mapping[str, Any] | None) -> int:
    """Who owns Deployment replicas: spec.replicas without autoscaling, the autoscaler with it.

    With autoscaling on, the autoscaler writes the Deployment's replicas; the reconciler keeps
    whatever is there, clamped to [minReplicas, maxReplicas] (a fresh Deployment starts at min).
    """
    autoscaling = getattr(spec, "autoscaling", None)
    if autoscaling is None or not getattr(autoscaling, "enabled", False):
        return int(spec.replicas)
    low, high = int(autoscaling.min_replicas), int(autoscaling.max_replicas)
    current = ((current_deployment or {}).get("spec") or {}).get("replicas")
    if current is None:
        return low
    return max(low, min(high, int(current)))


def quantity_value(value: Any) -> Decimal | None:
    """The amount a Kubernetes quantity ("500m", "0.5", "1Gi", "1e3", 2) stands for; None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number) * Decimal(10) ** int(suffix[1:])
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, ValueError):
        return None


def is_subset(desired: Any, actual: Any, *, quantities: bool = False) -> bool:
    """True when every field in `desired` has the same value in `actual` (lists element-wise).

    Inside `requests` / `limits` maps values are quantities: equal amounts are equal however spelled.
    """
    if isinstance(desired, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and is_subset(v, actual[k], quantities=quantities or k in QUANTITY_MAPS)
            for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(actual, list) and len(desired) == len(actual) and all(
            is_subset(d, a) for d, a in zip(desired, actual, strict=True))
    if isinstance(desired, bool) or isinstance(actual, bool):
        return type(desired) is type(actual) and desired == actual  # True is not 1 in a manifest
    if quantities and desired != actual:
        want, have = quantity_value(desired), quantity_value(actual)
        return want is not None and want == have
    if isinstance(desired, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(desired, actual)
    return bool(desired == actual)


def three_way_patch(desired: Mapping[str, Any], current: Mapping[str, Any],
                    last_applied: Mapping[str, Any] | None, *, quantities: bool = False) -> dict[str, Any]:
    """A JSON merge patch turning `current` into something `desired` is a subset of.

    Keys present in `last_applied` but absent from `desired` become null (deleted). Lists are
    replaced whole when they differ (merge-patch semantics).
    """
    patch: dict[str, Any] = {}
    for key, want in desired.items():
        have = current.get(key)
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            previous = (last_applied or {}).get(key)
            sub = three_way_patch(want, have, previous if isinstance(previous, Mapping) else None,
                                  quantities=quantities or key in QUANTITY_MAPS)
            if sub:
                patch[key] = sub
        elif not is_subset(want, have, quantities=quantities) or key not in current:
            patch[key] = want
    for key in (last_applied or {}):
        if key not in desired and key in current:
            patch[key] = None
    return patch


def with_last_applied(desired: Mapping[str, Any]) -> dict[str, Any]:
    """The desired object carrying the record of what we applied (for the next three-way merge)."""
    record = json.dumps(desired, sort_keys=True, separators=(",", ":"))
    result = dict(desired)
    metadata = dict(result.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), LAST_APPLIED: record}
    result["metadata"] = metadata
    return result


def last_applied_of(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        loaded = json.loads(raw) if raw else None
    except ValueError:
        return None  # someone damaged the record: fall back to a two-way merge
    return loaded if isinstance(loaded, dict) else None


def child_path(obj: Mapping[str, Any], *, name: str | None = None) -> str:
    api_version, plural = CHILD_KINDS[obj["kind"]]
    meta = obj.get("metadata") or {}
    return resource_path(api_version, plural, namespace=meta.get("namespace"), name=name)


@dataclass(frozen=True)
class Applied:
    kind: str
    name: str
    action: Action
    obj: dict[str, Any]


async def apply_child(api: KubeApi, desired: Mapping[str, Any], *, create_first: bool = False) -> Applied:
    """Create the child, or patch the fields that drifted; nothing is sent when nothing differs.

    `create_first`: the caller expects the child to be missing (a new SttServer), so it POSTs at
    once instead of reading first; a 409 falls back to read-and-patch.
    """
    name = desired["metadata"]["name"]
    target = with_last_applied(desired)
    current = None if create_first else await api.get_or_none(child_path(desired, name=name))
    if current is None:
        try:
            created = await api.create(child_path(desired), target)
            return Applied(desired["kind"], name, "created", created)
        except ApiError as exc:
            if exc.status != 409:
                raise
            # Someone (a previous attempt of ours, usually) created it in between: patch it instead.
            # If it is not there after all, the 409 was a transient conflict: let the caller retry.
            current = await api.get_or_none(child_path(desired, name=name))
            if current is None:
                raise
    patch = three_way_patch(target, current, last_applied_of(current))
    if not patch or _only_the_record_differs(patch):
        return Applied(desired["kind"], name, "unchanged", current)
    patched = await api.merge_patch(child_path(desired, name=name), patch)
    return Applied(desired["kind"], name, "updated", patched)


def _only_the_record_differs(patch: Mapping[str, Any]) -> bool:
    """True when the live object already has every field we want and only our record is behind.

    That happens when someone else changed a value we carry over from the live object (the
    autoscaler's replicas): rewriting the record alone would be a no-op write and a noisy Event.
    The record is refreshed by the next real patch; its keys, which decide deletions, still match.
    """
    if set(patch) != {"metadata"} or set(patch["metadata"]) != {"annotations"}:
        return False
    return set(patch["metadata"]["annotations"]) == {LAST_APPLIED}


def sttserver_owner(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference of the SttServer `obj` belongs to (by reference, not just by label), or None."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/"):
            return ref  # type: ignore[no-any-return]
    return None


async def owned_children(api: KubeApi, *, owner_uid: str, namespace: str, instance: str,
                         kinds: Mapping[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """Live children of one SttServer: our labels and an ownerReference to its uid (one LIST per kind, at once)."""
    labels = {**MANAGED_BY, "app.kubernetes.io/instance": instance}
    listed = await asyncio.gather(*(api.list(resource_path(api_version, plural, namespace=namespace), labels=labels)
                                    for api_version, plural in kinds.values()))
    found: list[dict[str, Any]] = []
    for kind, objects in zip(kinds, listed, strict=True):
        for obj in objects:
            refs = (obj.get("metadata") or {}).get("ownerReferences") or []
            if any(ref.get("uid") == owner_uid for ref in refs):
                found.append({**obj, "kind": kind})
    return found
