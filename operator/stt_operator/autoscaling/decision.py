"""The autoscaling decision: pod samples + targets + history -> desired replicas, as the HPA decides.

A transcription of the Kubernetes HPA controller's replica calculation for per-pod metrics
(`replica_calculator.go`: `groupPods`, `calcPlainMetricReplicas`) and of its reconcile step
(`horizontal.go`: `computeReplicasForMetrics`, `reconcileAutoscaler`), fed with queue depth
(`decode_pending`) and optionally `active_sessions` scraped from each server pod. Pure: no clock,
no I/O; the caller passes `now` and keeps the returned history.

One deliberate reading: the HPA ignores unready pods' samples only for CPU (a warming-up container
burns CPU unrepresentatively). A server pod that is loading its model or draining is in the same
situation for queue depth, so unready pods are treated here the way the HPA treats them for CPU:
ignored, except that on a scale-up they count as 0 (`scaleUpWithUnready`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

from stt_operator.autoscaling.behavior import Behavior, History, TimedValue, normalize

DEFAULT_TOLERANCE: Final = 0.1  # --horizontal-pod-autoscaler-tolerance
METRIC_DECODE_PENDING: Final = "decode_pending"
METRIC_ACTIVE_SESSIONS: Final = "active_sessions"


@dataclass(frozen=True)
class PodSample:
    """What the scraper saw of one pod matched by the selector."""

    name: str
    ready: bool
    being_deleted: bool = False
    healthy: bool = True
    decode_pending: float | None = None
    active_sessions: float | None = None


@dataclass(frozen=True)
class AutoscalingPolicy:
    """The spec's autoscaling block, in the units the decision needs."""

    min_replicas: int
    max_replicas: int
    target_decode_pending: float
    target_active_sessions: float | None = None
    behavior: Behavior = field(default_factory=Behavior)
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.max_replicas < max(self.min_replicas, 1):
            raise ValueError(f"need 0 <= minReplicas <= maxReplicas and maxReplicas >= 1, got "
                             f"{self.min_replicas}..{self.max_replicas}")
        if self.target_decode_pending <= 0 or (
            self.target_active_sessions is not None and self.target_active_sessions <= 0
        ):
            raise ValueError("autoscaling targets must be greater than 0")

    def targets(self) -> tuple[tuple[str, float], ...]:
        """(metric name, per-replica target) for each metric in use."""
        pairs = [(METRIC_DECODE_PENDING, self.target_decode_pending)]
        if self.target_active_sessions is not None:
            pairs.append((METRIC_ACTIVE_SESSIONS, self.target_active_sessions))
        return tuple(pairs)


@dataclass(frozen=True)
class MetricRecommendation:
    """One metric's proposal (`replicas`), or why it has none (`error`)."""

    metric: str
    target: float
    average: float | None  # over the ready pods that reported it
    replicas: int | None
    error: str | None = None


@dataclass(frozen=True)
class Decision:
    """What to do now, why, and the history to pass to the next call."""

    current_replicas: int
    desired_replicas: int
    scale: bool
    reason: str
    recommendations: tuple[MetricRecommendation, ...]
    scaling_active: bool
    scaling_active_reason: str  # ValidMetricFound | FailedGetPodsMetric | ScalingDisabled
    scaling_active_message: str
    able_to_scale_reason: str
    limited_reason: str
    history: History


def _within(ratio: float, tolerance: float) -> bool:
    return (1.0 - tolerance) <= ratio <= (1.0 + tolerance)


def metric_replicas(
    samples: tuple[PodSample, ...], *, metric: str, target: float, current: int, tolerance: float
) -> MetricRecommendation:
    """Replicas for one per-pod metric: `calcPlainMetricReplicas` with its pod grouping."""
    values: dict[str, float] = {}
    unready: list[str] = []
    missing: list[str] = []
    for pod in samples:
        if pod.being_deleted:
            continue  # pods being deleted are ignored entirely
        if not pod.ready:
            unready.append(pod.name)
            continue
        value = getattr(pod, metric)
        if not pod.healthy or value is None:
            missing.append(pod.name)  # an unhealthy answer is no usable metric
            continue
        values[pod.name] = float(value)
    ready_count = len(values)
    if not values:
        return MetricRecommendation(metric, target, None, None,
                                    error="did not receive metrics for targeted pods (pods might be unready)")
    average = sum(values.values()) / len(values)
    ratio = average / target

    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if _within(ratio, tolerance):
            return MetricRecommendation(metric, target, average, current)
        return MetricRecommendation(metric, target, average, math.ceil(ratio * ready_count))

    if missing:
        if ratio < 1.0:
            # on a scale-down, missing pods are assumed at exactly the target
            values.update({name: target for name in missing})
        elif ratio > 1.0:
            # on a scale-up, missing pods are assumed at 0
            values.update({name: 0.0 for name in missing})
    if scale_up_with_unready:
        values.update({name: 0.0 for name in unready})

    new_ratio = sum(values.values()) / len(values) / target
    if _within(new_ratio, tolerance) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        # too small a change, or the assumptions flipped the direction: keep the current count
        return MetricRecommendation(metric, target, average, current)
    new_replicas = math.ceil(new_ratio * len(values))
    if (new_ratio < 1.0 and new_replicas > current) or (new_ratio > 1.0 and new_replicas < current):
        # the count of pods considered would flip the direction: keep the current count
        return MetricRecommendation(metric, target, average, current)
    return MetricRecommendation(metric, target, average, new_replicas)


def decide(
    samples: tuple[PodSample, ...],
    *,
    current_replicas: int,
    policy: AutoscalingPolicy,
    history: History,
    now: float,
) -> Decision:
    """One autoscaler pass over an object (`reconcileAutoscaler`), without the API calls."""
    if not history.recommendations:
        # recordInitialRecommendation: the current size seeds the stabilization windows
        history = History((TimedValue(current_replicas, now),), history.scale_up_events, history.scale_down_events)

    def fixed(desired: int, reason: str, *, active: tuple[bool, str, str],
              recs: tuple[MetricRecommendation, ...] = ()) -> Decision:
        return Decision(current_replicas, desired, desired != current_replicas, reason, recs, *active,
                        able_to_scale_reason="ReadyForNewScale", limited_reason="DesiredWithinRange",
                        history=history)

    if current_replicas == 0:
        return fixed(0, "scaling is disabled since the replica count of the target is zero",
                     active=(False, "ScalingDisabled",
                             "scaling is disabled since the replica count of the target is zero"))
    if current_replicas > policy.max_replicas:
        return fixed(policy.max_replicas, "Current number of replicas above Spec.MaxReplicas",
                     active=(True, "ValidMetricFound", "the replica count is above maxReplicas"))
    if current_replicas < policy.min_replicas:
        return fixed(policy.min_replicas, "Current number of replicas below Spec.MinReplicas",
                     active=(True, "ValidMetricFound", "the replica count is below minReplicas"))

    recs = tuple(
        metric_replicas(samples, metric=name, target=target, current=current_replicas,
                        tolerance=policy.tolerance)
        for name, target in policy.targets()
    )
    valid = [r for r in recs if r.replicas is not None]
    invalid = [r for r in recs if r.replicas is None]
    best: MetricRecommendation | None = None
    for rec in valid:  # the largest proposal wins; the first metric wins a tie
        if best is None or (rec.replicas or 0) > (best.replicas or 0):
            best = rec
    if best is None or best.replicas is None or (invalid and best.replicas < current_replicas):
        # all metrics invalid, or some invalid and the rest would scale down: do nothing
        first = invalid[0]
        message = f"the autoscaler was unable to compute the replica count: {first.metric}: {first.error}"
        return fixed(current_replicas, message, active=(False, "FailedGetPodsMetric", message), recs=recs)

    metric_desired = best.replicas
    reason = "metrics within tolerance of their targets"
    if metric_desired > current_replicas:
        reason = f"{best.metric} above target"
    elif metric_desired < current_replicas:
        reason = "All metrics below target"
    normalized = normalize(
        history,
        desired=metric_desired,
        current=current_replicas,
        min_replicas=policy.min_replicas,
        max_replicas=policy.max_replicas,
        behavior=policy.behavior,
        now=now,
    )
    if normalized.replicas == current_replicas != metric_desired:
        # say what held the change back: a stabilization window or a rate/bound limit
        stabilized_away = normalized.stabilized == current_replicas
        held = normalized.able_to_scale_reason if stabilized_away else normalized.limited_reason
        reason = f"{reason}; held by {held}"
    return Decision(
        current_replicas=current_replicas,
        desired_replicas=normalized.replicas,
        scale=normalized.replicas != current_replicas,
        reason=reason,
        recommendations=recs,
        scaling_active=True,
        scaling_active_reason="ValidMetricFound",
        scaling_active_message=f"the autoscaler was able to successfully calculate a replica count from {best.metric}",
        able_to_scale_reason=normalized.able_to_scale_reason,
        limited_reason=normalized.limited_reason,
        history=normalized.history,
    )
