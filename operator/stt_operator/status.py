"""The SttServer status, computed from its children's real state (never from what we asked for).

Conditions follow the Kubernetes API conventions: `type`, `status` ("True"/"False"/"Unknown"),
`reason` (CamelCase), `message` (for people), `lastTransitionTime` (changes only when `status`
changes) and `observedGeneration`. `Ready`: every desired replica of the current generation is
ready. `Progressing`: a rollout or scale is under way. `Degraded`: the spec is invalid, a child
could not be written, or the Deployment reports a failed rollout. `ScalingActive`: whether the
queue-depth autoscaler drives replicas; the autoscaler owns it while it is on, the reconciler only
writes its placeholders (off, or on and no verdict yet). `merge_conditions` is the one place both
merge their conditions into the stored list; `status_writer` does the writing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

CONDITION_TYPES: Final = ("Ready", "Progressing", "Degraded", "ScalingActive")
GRPC_PORT_DEFAULT: Final = 50051


@dataclass(frozen=True)
class Observed:
    """Everything status depends on, read fresh from the API by the reconciler."""

    generation: int
    desired_replicas: int
    deployment: Mapping[str, Any] | None
    service: Mapping[str, Any] | None
    selector: str
    model: str | None = None
    autoscaling_enabled: bool = False
    spec_error: str | None = None  # "spec.field: message" when parse_spec failed
    apply_error: str | None = None  # the last API failure while writing children
    monitoring_note: str | None = None  # why ServiceMonitor/PrometheusRule are skipped, if they are


def make_condition(type_: str, status: bool | None, reason: str, message: str) -> dict[str, Any]:
    """A condition without times (merge_conditions adds lastTransitionTime and observedGeneration)."""
    return {"type": type_, "status": "Unknown" if status is None else "True" if status else "False",
            "reason": reason, "message": message}


def _deployment_numbers(deployment: Mapping[str, Any] | None) -> dict[str, int]:
    status = (deployment or {}).get("status") or {}
    return {key: int(status.get(key) or 0)
            for key in ("replicas", "readyReplicas", "updatedReplicas", "availableReplicas")}


def _rollout_current(deployment: Mapping[str, Any]) -> bool:
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    return int((deployment.get("status") or {}).get("observedGeneration") or 0) >= int(generation)


def _failed_rollout(deployment: Mapping[str, Any] | None) -> str | None:
    for cond in ((deployment or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Progressing" and cond.get("status") == "False":
            return cond.get("message") or cond.get("reason") or "rollout stalled"
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return cond.get("message") or cond.get("reason") or "replica failure"
    return None


def endpoints(service: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Where clients connect: the cluster DNS name, plus the node port for NodePort services."""
    if not service:
        return []
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    grpc = next((p for p in spec.get("ports") or () if p.get("name") == "grpc"), None) or {}
    port = int(grpc.get("port") or GRPC_PORT_DEFAULT)
    result: list[dict[str, Any]] = [{"name": "grpc", "type": "ClusterIP", "address": f"{meta.get('name')}.{meta.get('namespace')}.svc:{port}"}]
    if spec.get("type") == "NodePort" and grpc.get("nodePort"):
        result.append({"name": "grpc", "type": "NodePort", "address": f"<node>:{grpc['nodePort']}",
                       "nodePort": int(grpc["nodePort"])})
    return result


def desired_conditions(observed: Observed) -> list[dict[str, Any]]:
    """The four conditions for this observation, without times (merge_conditions adds them)."""
    n = _deployment_numbers(observed.deployment)
    desired = observed.desired_replicas
    summary = f"{n['readyReplicas']}/{desired} replicas ready"
    if observed.spec_error is not None:
        ready = make_condition("Ready", False, "InvalidSpec", f"the spec is invalid: {observed.spec_error}")
        progressing = make_condition("Progressing", False, "InvalidSpec", "nothing is rolled out until the spec is fixed")
    elif observed.deployment is None:
        ready = make_condition("Ready", False, "DeploymentMissing", "the Deployment does not exist (yet)")
        progressing = make_condition("Progressing", True, "Creating", "creating the children")
    else:
        current = _rollout_current(observed.deployment)
        rolling = (not current or n["updatedReplicas"] < desired or n["replicas"] > n["updatedReplicas"]
                   or n["replicas"] != desired or n["availableReplicas"] < n["updatedReplicas"])
        if desired == 0:
            ready = make_condition("Ready", False, "ScaledToZero", "0 replicas are desired")
        elif current and n["updatedReplicas"] >= desired and n["readyReplicas"] >= desired:
            ready = make_condition("Ready", True, "AllReplicasReady", summary)
        else:
            ready = make_condition("Ready", False, "ReplicasNotReady", summary)
        progressing = (make_condition("Progressing", True, "RollingOut",
                                      f"{n['updatedReplicas']}/{desired} replicas updated, {summary}")
                       if rolling else make_condition("Progressing", False, "RolloutComplete", summary))
    failed = _failed_rollout(observed.deployment)
    problems = [p for p in (
        observed.spec_error and f"invalid spec: {observed.spec_error}",
        observed.apply_error and f"could not write children: {observed.apply_error}",
        failed and f"rollout failed: {failed}",
    ) if p]
    reason = ("InvalidSpec" if observed.spec_error else "ApplyFailed" if observed.apply_error
              else "RolloutFailed")
    degraded = (make_condition("Degraded", True, reason, "; ".join(problems)) if problems
                else make_condition("Degraded", False, "AsExpected", "no problems found"))
    if observed.autoscaling_enabled:
        scaling = make_condition("ScalingActive", None, "AwaitingMetrics",
                                 "the autoscaler has not reported a decision yet")
    else:
        scaling = make_condition("ScalingActive", False, "AutoscalingDisabled",
                                 "spec.replicas (or the scale subresource) sets the replica count")
    return [ready, progressing, degraded, scaling]


def merge_conditions(previous: Sequence[Mapping[str, Any]], wanted: Sequence[Mapping[str, Any]], *,
                     generation: int | None, now: str) -> list[dict[str, Any]]:
    """`previous` with each `wanted` condition put in (the one merge both status writers use).

    A wanted condition replaces the stored one of its type in place (new types go at the end);
    lastTransitionTime stays unless `status` changes, observedGeneration is `generation` (when
    given). Conditions of types not wanted here belong to the other writer and stay as they are.
    """
    by_type = {c["type"]: c for c in wanted}
    merged: list[dict[str, Any]] = []
    for before in previous:
        cond = by_type.pop(before.get("type"), None)
        merged.append(dict(before) if cond is None else _stamped(cond, before, generation=generation, now=now))
    merged.extend(_stamped(cond, None, generation=generation, now=now) for cond in by_type.values())
    return merged


def _stamped(cond: Mapping[str, Any], before: Mapping[str, Any] | None, *, generation: int | None,
             now: str) -> dict[str, Any]:
    kept = before.get("lastTransitionTime") if before and before.get("status") == cond["status"] else None
    stamped = {**cond, "lastTransitionTime": kept or now}
    if generation is not None:
        stamped["observedGeneration"] = generation
    return stamped


def autoscaler_has_verdict(observed: Observed, previous: Mapping[str, Any] | None) -> bool:
    """Whether ScalingActive is the autoscaler's (or our pending placeholder) and not ours to reset."""
    before = condition(previous, "ScalingActive")
    return observed.autoscaling_enabled and before is not None and before.get("reason") != "AutoscalingDisabled"


def compute_status(observed: Observed, *, previous: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
    """The reconciler's status fields (a merge patch of `.status`; the autoscaler's fields survive)."""
    n = _deployment_numbers(observed.deployment)
    wanted = [c for c in desired_conditions(observed)
              if c["type"] != "ScalingActive" or not autoscaler_has_verdict(observed, previous)]
    conditions = merge_conditions((previous or {}).get("conditions") or (), wanted,
                                  generation=observed.generation, now=now)
    status: dict[str, Any] = {
        "observedGeneration": observed.generation,
        "replicas": n["replicas"],
        "readyReplicas": n["readyReplicas"],
        "updatedReplicas": n["updatedReplicas"],
        "desiredReplicas": observed.desired_replicas,
        "replicaSummary": f"{n['readyReplicas']}/{observed.desired_replicas}",
        "selector": observed.selector,
        "endpoints": endpoints(observed.service),
        "conditions": conditions,
        "monitoring": observed.monitoring_note or "enabled",
    }
    if observed.model:
        status["model"] = observed.model
    return status


def condition(status: Mapping[str, Any] | None, type_: str) -> Mapping[str, Any] | None:
    return next((c for c in (status or {}).get("conditions") or () if c.get("type") == type_), None)
