"""Table tests of the replica calculation: each case quotes the HPA rule it checks.

Rules are quoted from the Kubernetes HPA controller (`replica_calculator.go`, `horizontal.go`) and
the HPA documentation ("Algorithm details"). Where the naive formula would give another answer, the
case says so, so that a case can only pass if the rule itself is implemented.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from stt_operator.autoscaling.behavior import DEFAULT_SCALE_DOWN, Behavior, History, TimedValue
from stt_operator.autoscaling.decision import (
    AutoscalingPolicy,
    PodSample,
    decide,
    metric_replicas,
)


def pods(*values: float | None, unready: int = 0, deleting: int = 0, unhealthy: int = 0) -> tuple[PodSample, ...]:
    """Ready pods with the given decode_pending (None = no metric), then the odd ones."""
    out = [PodSample(f"p{i}", ready=True, decode_pending=v) for i, v in enumerate(values)]
    out += [PodSample(f"u{i}", ready=False) for i in range(unready)]
    out += [PodSample(f"d{i}", ready=True, being_deleted=True, decode_pending=0.0) for i in range(deleting)]
    out += [PodSample(f"h{i}", ready=True, healthy=False, decode_pending=0.0) for i in range(unhealthy)]
    return tuple(out)


CASES = [
    # (rule quote, samples, current, target, expected)
    ("desiredReplicas = ceil[currentReplicas * ( currentMetricValue / desiredMetricValue )]",
     pods(8, 8), 2, 4.0, 4),
    ("scale down by the same formula: ceil(0.25 * 4) = 1",
     pods(1, 1, 1, 1), 4, 4.0, 1),
    (("if the ratio is sufficiently close to 1.0 (within a globally-configurable tolerance, 0.1 by default), "
     "the control plane skips any scaling action"),
     pods(4.4, 4.4), 2, 4.0, 2),
    ("just outside the 10% tolerance, the formula applies: ceil(1.125 * 2) = 3",
     pods(4.5, 4.5), 2, 4.0, 3),
    (("Pods with a deletion timestamp set (objects in the process of being shut down) are ignored "
     "(counting the deleting idle pod would give 3)"),
     pods(8, 8, deleting=1), 3, 4.0, 4),
    (("if any pod has yet to become ready ... set aside; on a scale-down unready pods are ignored "
     "(assuming them at target would give 2)"),
     pods(1, 1, unready=1), 3, 4.0, 1),
    (("if the ratio says scale up, unready pods are assumed to consume 0; if that reverses the scale "
     "direction, do not scale (ignoring them would give 3)"),
     pods(5, 5, unready=2), 4, 4.0, 4),
    (("if the ratio says scale down, missing-metric pods are assumed to consume 100% of the target "
     "(ignoring them would give 0)"),
     pods(0, 0, None), 3, 4.0, 1),
    ("missing pods at 100% on a scale-down: ceil(0.75 * 2) = 2, no change (ignoring them would give 1)",
     pods(2, None), 2, 4.0, 2),
    (("if the ratio says scale up, missing-metric pods are assumed to consume 0; if that reverses the "
     "direction, do not scale (ignoring them would give 3)"),
     pods(5, 5, None, None), 4, 4.0, 4),
    (("after assuming missing pods at 0, if the new ratio lands within the tolerance, do not scale "
     "(ignoring them would give 5)"),
     pods(8.6, 8.6, None, None), 4, 4.0, 4),
    ("Pods answering /health unhealthy count as missing metrics: assumed 0 on a scale-up",
     pods(8.6, 8.6, unhealthy=2), 4, 4.0, 4),
    (("if the count of pods considered would reverse the direction of the change, keep the current count "
     "(ceil(2 * 3) = 6 < 10 while the ratio says scale up)"),
     pods(12, 12, None), 10, 4.0, 10),
    ("with missing pods and a genuine scale-up: ceil(newRatio * len(metrics)) = ceil(1.667 * 3) = 5",
     pods(10, 10, None), 3, 4.0, 5),
]


@pytest.mark.parametrize(("rule", "samples", "current", "target", "expected"), CASES,
                         ids=[c[0][:60] for c in CASES])
def test_metric_replicas_follows_hpa_rule(rule: str, samples: tuple[PodSample, ...], current: int,
                                          target: float, expected: int) -> None:
    rec = metric_replicas(samples, metric="decode_pending", target=target, current=current, tolerance=0.1)
    assert rec.error is None, rule
    assert rec.replicas == expected, rule


def test_no_metrics_from_any_ready_pod_is_an_error_not_a_guess() -> None:
    # "did not receive metrics for targeted pods (pods might be unready)"
    rec = metric_replicas(pods(None, unready=2), metric="decode_pending", target=4.0, current=3, tolerance=0.1)
    assert rec.replicas is None
    assert rec.error is not None and "did not receive metrics" in rec.error


POLICY = AutoscalingPolicy(min_replicas=1, max_replicas=10, target_decode_pending=4.0)


def run(samples: tuple[PodSample, ...], current: int, policy: AutoscalingPolicy = POLICY,
        history: History | None = None, now: float = 10_000.0):  # type: ignore[no-untyped-def]
    return decide(samples, current_replicas=current, policy=policy, history=history or History(), now=now)


def test_the_largest_recommendation_over_the_metrics_wins() -> None:
    # "the controller ... chooses the scale with the largest recommendation" (multiple metrics)
    policy = AutoscalingPolicy(1, 10, target_decode_pending=4.0, target_active_sessions=2.0)
    samples = tuple(PodSample(f"p{i}", True, decode_pending=4.0, active_sessions=5.0) for i in range(2))
    d = run(samples, 2, policy)
    by_metric = {r.metric: r.replicas for r in d.recommendations}
    assert by_metric == {"decode_pending": 2, "active_sessions": 5}
    assert d.desired_replicas == 5 and d.scale
    assert d.reason == "active_sessions above target"
    assert d.scaling_active and d.scaling_active_reason == "ValidMetricFound"


def test_some_metrics_invalid_never_scale_down() -> None:
    # "If all metrics are invalid or some are invalid and we would scale down, return an error"
    policy = AutoscalingPolicy(1, 10, target_decode_pending=4.0, target_active_sessions=2.0)
    idle = tuple(PodSample(f"p{i}", True, decode_pending=0.0, active_sessions=None) for i in range(3))
    d = run(idle, 3, policy)
    assert not d.scale and d.desired_replicas == 3
    assert not d.scaling_active and d.scaling_active_reason == "FailedGetPodsMetric"


def test_some_metrics_invalid_still_scale_up_on_the_valid_ones() -> None:
    # "... Otherwise set the condition as scaling active as we're going to scale"
    policy = AutoscalingPolicy(1, 10, target_decode_pending=4.0, target_active_sessions=2.0)
    busy = tuple(PodSample(f"p{i}", True, decode_pending=8.0, active_sessions=None) for i in range(2))
    d = run(busy, 2, policy)
    assert d.scale and d.desired_replicas == 4 and d.scaling_active


def test_all_metrics_invalid_reports_scaling_inactive() -> None:
    d = run(pods(None, None), 2)
    assert not d.scale and not d.scaling_active
    assert "did not receive metrics" in d.scaling_active_message


@pytest.mark.parametrize(("rule", "current", "samples", "expected", "reason_part"), [
    ("Current number of replicas above Spec.MaxReplicas", 12, pods(0, 0), 10, "above Spec.MaxReplicas"),
    ("Current number of replicas below Spec.MinReplicas", 0 + 1, pods(50), 2, "below Spec.MinReplicas"),
    ("the desired replica count is more than the maximum replica count (TooManyReplicas)", 8,
     pods(*[40.0] * 8), 10, "above target"),
    ("the desired replica count is less than the minimum replica count (TooFewReplicas)", 3,
     pods(0, 0, 0), 2, "below target"),
])
def test_min_and_max_bounds(rule: str, current: int, samples: tuple[PodSample, ...], expected: int,
                            reason_part: str) -> None:
    policy = AutoscalingPolicy(min_replicas=2, max_replicas=10, target_decode_pending=4.0,
                               behavior=Behavior(scale_down=replace(DEFAULT_SCALE_DOWN, stabilization_window_seconds=0)))
    d = run(samples, current, policy)
    assert d.desired_replicas == expected, rule
    assert reason_part in d.reason, rule


def test_zero_replicas_disables_scaling() -> None:
    # "scaling is disabled since the replica count of the target is zero"
    d = run((), 0)
    assert not d.scale and d.desired_replicas == 0
    assert d.scaling_active_reason == "ScalingDisabled"


def test_scale_down_waits_for_the_stabilization_window_then_goes() -> None:
    # "the highest recommendation within the window": a busy minute ago holds the fleet at 4
    history = History(recommendations=(TimedValue(4, 10_000.0 - 100),))
    held = run(pods(0, 0, 0, 0), 4, history=history)
    assert not held.scale and held.desired_replicas == 4
    assert "held by ScaleDownStabilized" in held.reason
    # once that recommendation is older than the 300 s default window, the scale-down proceeds
    later = run(pods(0, 0, 0, 0), 4, history=held.history, now=10_000.0 + 201)
    assert later.scale and later.desired_replicas == 1


def test_first_pass_seeds_history_with_the_current_size() -> None:
    # recordInitialRecommendation: a fresh autoscaler does not scale down a fleet at once
    d = run(pods(0, 0, 0), 3)
    assert d.desired_replicas == 3 and not d.scale
    assert TimedValue(3, 10_000.0) in d.history.recommendations
