"""The resource types the local API server knows: built-ins, plus whatever CRDs install.

A `ResourceType` carries what discovery, routing and the write rules need: group, version, plural,
kind, scope, and which subresources exist. CRD objects are turned into resource types (and their
validation schema) when they are created, exactly when a real API server would start serving them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

ALL_VERBS: Final = frozenset({"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"})


@dataclass(frozen=True)
class ScalePaths:
    """Where the scale subresource reads and writes inside the object (dotted paths)."""

    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str | None = ".status.selector"


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status_subresource: bool = False
    scale: ScalePaths | None = None
    short_names: tuple[str, ...] = ()
    # The openAPIV3Schema of a CRD version; None for built-ins (not validated, see the docs).
    schema: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    @property
    def subresources(self) -> frozenset[str]:
        names = {"status"} if self.status_subresource else set()
        if self.scale is not None:
            names.add("scale")
        return frozenset(names)


_DEPLOYMENT_SCALE: Final = ScalePaths(label_selector=None)  # a Deployment's selector is spec.selector

BUILTINS: Final[tuple[ResourceType, ...]] = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, status_subresource=True),
    ResourceType("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "services", "Service", status_subresource=True, short_names=("svc",)),
    ResourceType("", "v1", "pods", "Pod", status_subresource=True, short_names=("po",)),
    ResourceType("", "v1", "events", "Event", short_names=("ev",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    ResourceType("apps", "v1", "deployments", "Deployment", status_subresource=True,
                 scale=_DEPLOYMENT_SCALE, short_names=("deploy",)),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget",
                 status_subresource=True, short_names=("pdb",)),
    ResourceType("events.k8s.io", "v1", "events", "Event", short_names=("ev",)),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
                 namespaced=False, status_subresource=True, short_names=("crd", "crds")),
)


def types_from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of an apiextensions.k8s.io/v1 CRD object."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    result: list[ResourceType] = []
    for version in spec.get("versions") or ():
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        scale_spec = subresources.get("scale")
        scale = None
        if scale_spec is not None:
            scale = ScalePaths(
                spec_replicas=scale_spec.get("specReplicasPath", ".spec.replicas"),
                status_replicas=scale_spec.get("statusReplicasPath", ".status.replicas"),
                label_selector=scale_spec.get("labelSelectorPath"),
            )
        result.append(ResourceType(
            group=spec["group"],
            version=version["name"],
            plural=names["plural"],
            kind=names["kind"],
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            status_subresource="status" in subresources,
            scale=scale,
            short_names=tuple(names.get("shortNames") or ()),
            schema=(version.get("schema") or {}).get("openAPIV3Schema"),
        ))
    return result


def get_path(obj: Mapping[str, Any], dotted: str) -> Any:
    """Read `.spec.replicas`-style paths (as CRD scale paths are written); None when absent."""
    node: Any = obj
    for part in dotted.strip(".").split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def set_path(obj: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.strip(".").split(".")
    node = obj
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
