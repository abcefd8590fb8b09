"""Turn an API request (method, path, query, body) into a store operation and a JSON answer.

Paths follow kube-apiserver: `/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]]` for the core group and
`/apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME[/SUB]]` for the others. Subresources: `status`
(for types that have it) and `scale` (SttServer via the CRD, Deployment). Watches are answered by
`apiserver.py`; everything else here, synchronously, so each write is atomic on the event loop.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from stt_localfleet import errors, patching
from stt_localfleet.resources import ResourceType, get_path, set_path
from stt_localfleet.selectors import SelectorError, field_predicate, label_predicate
from stt_localfleet.store import Store

VERBS: Final = frozenset({"create", "delete", "get", "list", "patch", "update", "watch"})
_PATH_RE = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))/(?P<rest>.+)$")


@dataclass(frozen=True)
class Target:
    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_target(store: Store, path: str) -> Target | None:
    """None when the path is not a resource path (discovery and others go elsewhere)."""
    match = _PATH_RE.match(path.rstrip("/"))
    if match is None:
        return None
    group = "" if match["core"] else match["group"]
    version = match["core"] or match["version"]
    segments = match["rest"].split("/")
    namespace = None
    if segments[0] == "namespaces" and len(segments) >= 3 and (group, version, segments[2]) in store.types:
        namespace, segments = segments[1], segments[2:]
    rtype = store.types.get((group, version, segments[0]))
    if rtype is None or len(segments) > 3:
        raise errors.status_error(404, "NotFound", "the server could not find the requested resource")
    name = segments[1] if len(segments) > 1 else None
    subresource = segments[2] if len(segments) > 2 else None
    if subresource is not None and subresource not in rtype.subresources:
        raise errors.status_error(404, "NotFound", "the server could not find the requested resource")
    return Target(rtype, namespace, name, subresource)


def list_objects(store: Store, target: Target, params: Mapping[str, str]) -> dict[str, Any]:
    try:
        labels = label_predicate(params.get("labelSelector"))
        fields = field_predicate(params.get("fieldSelector"))
    except SelectorError as exc:
        raise errors.bad_request(str(exc)) from None
    items = [o for o in store.list(target.rtype, target.namespace) if labels(o) and fields(o)]
    return {"apiVersion": target.rtype.api_version, "kind": f"{target.rtype.kind}List",
            "metadata": {"resourceVersion": str(store.rv)}, "items": items}


def handle(store: Store, target: Target, *, method: str, params: Mapping[str, str], body: Any,
           content_type: str) -> dict[str, Any]:
    """Everything but watch: GET/POST/PUT/PATCH/DELETE on collections, objects and subresources."""
    rtype, ns, name = target.rtype, target.namespace, target.name
    if name is None:
        if method == "GET":
            return list_objects(store, target, params)
        if method == "POST":
            _require_object(body)
            _check_body_namespace(target, body)
            return store.create(rtype, ns, body)
        raise errors.status_error(405, "MethodNotAllowed", f"{method} is not supported on a collection here")
    if target.subresource == "scale":
        return _handle_scale(store, target, method=method, body=body, content_type=content_type)
    if method == "GET":
        obj = store.get(rtype, ns, name)
        return obj
    if method == "PUT":
        _require_object(body)
        return store.replace(rtype, ns, name, body, subresource=target.subresource)
    if method == "PATCH":
        old = store.get(rtype, ns, name)
        if rtype.schema is not None and content_type.startswith("application/strategic-merge-patch"):
            raise errors.status_error(415, "UnsupportedMediaType",
                                      "strategic merge patch is not supported for custom resources")
        new = _patched(old, body, content_type=content_type)
        return store.write_patched(rtype, old, new, subresource=target.subresource)
    if method == "DELETE":
        options = body if isinstance(body, Mapping) else {}
        grace = options.get("gracePeriodSeconds", params.get("gracePeriodSeconds"))
        propagation = options.get("propagationPolicy") or params.get("propagationPolicy") or "Background"
        return store.delete(rtype, ns, name, grace_period=None if grace is None else int(grace),
                            propagation=propagation)
    raise errors.status_error(405, "MethodNotAllowed", f"{method} is not supported here")


def _patched(old: dict[str, Any], body: Any, *, content_type: str) -> dict[str, Any]:
    try:
        new = patching.apply_patch(old, body, content_type=content_type)
    except patching.UnsupportedPatchType as exc:
        raise errors.status_error(415, "UnsupportedMediaType", f"the body of the request was in an "
                                  f"unknown format - accepted media types include merge, json and "
                                  f"strategic merge patches; got {exc}") from None
    except patching.PatchError as exc:
        raise errors.status_error(422, "Invalid", f"the server rejected our request due to an error in "
                                  f"our request: {exc}") from None
    if not isinstance(new, dict):
        raise errors.status_error(422, "Invalid", "the patch did not produce an object")
    return new


def _require_object(body: Any) -> None:
    if not isinstance(body, Mapping):
        raise errors.bad_request("the request body must be a JSON object")


def _check_body_namespace(target: Target, body: Mapping[str, Any]) -> None:
    body_ns = (body.get("metadata") or {}).get("namespace")
    if target.rtype.namespaced and body_ns and target.namespace and body_ns != target.namespace:
        raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                 "sent on the request")


def scale_of(rtype: ResourceType, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale view of an object with a scale subresource."""
    paths = rtype.scale
    assert paths is not None  # guarded by parse_target: "scale" is only routed where it exists
    if paths.label_selector is not None:
        selector = get_path(obj, paths.label_selector)
    else:  # Deployment: serialise spec.selector.matchLabels as a label selector string
        match_labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
    meta = obj["metadata"]
    status: dict[str, Any] = {"replicas": get_path(obj, paths.status_replicas) or 0}
    if selector:
        status["selector"] = selector
    return {"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                              "creationTimestamp") if k in meta},
            "spec": {"replicas": get_path(obj, paths.spec_replicas) or 0}, "status": status}


def _handle_scale(store: Store, target: Target, *, method: str, body: Any, content_type: str
                  ) -> dict[str, Any]:
    assert target.name is not None and target.rtype.scale is not None
    obj = store.get(target.rtype, target.namespace, target.name)
    scale = scale_of(target.rtype, obj)
    if method == "GET":
        return scale
    if method == "PUT":
        _require_object(body)
        new_scale = body
    elif method == "PATCH":
        new_scale = _patched(scale, body, content_type=content_type)
    else:
        raise errors.status_error(405, "MethodNotAllowed", f"{method} is not supported on scale")
    replicas = (new_scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise errors.invalid("Scale", target.name, [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                                                      "message": f"Invalid value: {replicas!r}: must be >= 0"}])
    new = copy.deepcopy(obj)
    set_path(new, target.rtype.scale.spec_replicas, replicas)
    new["metadata"]["resourceVersion"] = (new_scale.get("metadata") or {}).get("resourceVersion") \
        or obj["metadata"]["resourceVersion"]
    stored = store.write_patched(target.rtype, obj, new, subresource=None)
    return scale_of(target.rtype, stored)
