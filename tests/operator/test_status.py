"""Status from the children's real state: conditions, transitions, replica summary, endpoints."""

from __future__ import annotations

from typing import Any

from stt_operator.events import transition_events
from stt_operator.status import Observed, compute_status, condition, endpoints
from stt_operator.status_writer import apply_merge_patch


def _deployment(*, generation: int = 1, observed: int = 1, replicas: int = 2, ready: int = 2,
                updated: int = 2, available: int | None = None) -> dict[str, Any]:
    return {"metadata": {"generation": generation},
            "status": {"observedGeneration": observed, "replicas": replicas, "readyReplicas": ready,
                       "updatedReplicas": updated,
                       "availableReplicas": ready if available is None else available}}


def _service(kind: str = "ClusterIP", node_port: int | None = None) -> dict[str, Any]:
    port: dict[str, Any] = {"name": "grpc", "port": 50051}
    if node_port:
        port["nodePort"] = node_port
    return {"metadata": {"name": "stt", "namespace": "ns"}, "spec": {"type": kind, "ports": [port]}}


def _observe(**kw: Any) -> Observed:
    base: dict[str, Any] = {"generation": 3, "desired_replicas": 2, "deployment": _deployment(),
                            "service": _service(), "selector": "app.kubernetes.io/instance=stt"}
    return Observed(**{**base, **kw})


def _conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_all_ready_deployment_is_ready_and_not_progressing() -> None:
    status = compute_status(_observe(), previous=None, now="T1")
    assert _conds(status) == {"Ready": ("True", "AllReplicasReady"), "Progressing": ("False", "RolloutComplete"),
                              "Degraded": ("False", "AsExpected"),
                              "ScalingActive": ("False", "AutoscalingDisabled")}
    assert status["replicaSummary"] == "2/2" and status["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 and c["lastTransitionTime"] == "T1" for c in status["conditions"])


def test_unobserved_generation_is_progressing_not_ready() -> None:
    status = compute_status(_observe(deployment=_deployment(generation=2, observed=1)), previous=None, now="T")
    assert _conds(status)["Ready"] == ("False", "ReplicasNotReady")
    assert _conds(status)["Progressing"] == ("True", "RollingOut")


def test_missing_deployment_and_partial_readiness() -> None:
    assert _conds(compute_status(_observe(deployment=None), previous=None, now="T"))["Ready"][1] == "DeploymentMissing"
    status = compute_status(_observe(deployment=_deployment(ready=1)), previous=None, now="T")
    assert status["replicaSummary"] == "1/2" and _conds(status)["Ready"][0] == "False"


def test_invalid_spec_is_degraded_with_readable_message() -> None:
    status = compute_status(_observe(spec_error="spec.service.nodePort: only with type NodePort"),
                            previous=None, now="T")
    degraded = condition(status, "Degraded")
    assert degraded is not None and degraded["status"] == "True" and degraded["reason"] == "InvalidSpec"
    assert "spec.service.nodePort: only with type NodePort" in degraded["message"]


def test_failed_rollout_is_degraded() -> None:
    deployment = _deployment(ready=0)
    deployment["status"]["conditions"] = [{"type": "Progressing", "status": "False",
                                           "reason": "ProgressDeadlineExceeded", "message": "timed out"}]
    status = compute_status(_observe(deployment=deployment), previous=None, now="T")
    assert _conds(status)["Degraded"] == ("True", "RolloutFailed")


def test_transition_time_changes_only_when_status_flips() -> None:
    first = compute_status(_observe(deployment=_deployment(ready=1)), previous=None, now="T1")
    again = compute_status(_observe(deployment=_deployment(ready=1)), previous=first, now="T2")
    assert apply_merge_patch(first, again) == first  # nothing to write
    ready = compute_status(_observe(), previous=first, now="T3")
    times = {c["type"]: c["lastTransitionTime"] for c in ready["conditions"]}
    assert times["Ready"] == "T3" and times["Degraded"] == "T1"
    assert [e[1] for e in transition_events(first, ready)] == ["Ready"]


def test_autoscaler_condition_is_not_clobbered() -> None:
    previous = {"conditions": [{"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound",
                                "message": "scaling on decode_pending", "lastTransitionTime": "T0"}]}
    status = compute_status(_observe(autoscaling_enabled=True), previous=previous, now="T1")
    assert condition(status, "ScalingActive") == previous["conditions"][0]
    fresh = compute_status(_observe(autoscaling_enabled=True), previous=None, now="T1")
    assert _conds(fresh)["ScalingActive"] == ("Unknown", "AwaitingMetrics")


def test_degraded_and_recovered_events() -> None:
    bad = compute_status(_observe(spec_error="spec.x: bad"), previous=None, now="T")
    good = compute_status(_observe(), previous=bad, now="T")
    assert [(t, r) for t, r, _ in transition_events(None, bad)] == [("Warning", "Degraded")]
    assert ("Normal", "Recovered") in [(t, r) for t, r, _ in transition_events(bad, good)]


def test_a_scale_up_is_a_normal_event_a_lost_pod_a_warning() -> None:
    ready = compute_status(_observe(), previous=None, now="T")
    scaling = compute_status(_observe(desired_replicas=3, deployment=_deployment(replicas=3)), previous=ready, now="T")
    lost = compute_status(_observe(deployment=_deployment(ready=1)), previous=ready, now="T")
    assert condition(scaling, "Ready")["status"] == condition(lost, "Ready")["status"] == "False"  # type: ignore[index]
    assert [(t, r) for t, r, _ in transition_events(ready, scaling)] == [("Normal", "ScalingUp")]
    assert [(t, r) for t, r, _ in transition_events(ready, lost)] == [("Warning", "NotReady")]


def test_endpoints_for_cluster_ip_and_node_port() -> None:
    assert endpoints(_service()) == [{"name": "grpc", "type": "ClusterIP", "address": "stt.ns.svc:50051"}]
    node = endpoints(_service("NodePort", 32051))
    assert node[1]["nodePort"] == 32051 and node[0]["address"] == "stt.ns.svc:50051"
    assert endpoints(None) == []
