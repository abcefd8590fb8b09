"""Scaling behaviour shaped like the HPA's `spec.behavior`: stabilization windows and rate policies.

This is a transcription of the normalisation half of the Kubernetes HPA controller
(`pkg/controller/podautoscaler/horizontal.go`: `stabilizeRecommendationWithBehaviors`,
`convertDesiredReplicasWithBehaviorRate`, `calculateScaleUpLimitWithScalingRules`,
`calculateScaleDownLimitWithBehaviors`, `storeScaleEvent`), as pure functions over frozen records.
The controller keeps its history in mutable maps; here the history is a value that each call
returns anew, so the caller owns the state and tests can replay any timeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]

# The controller's --horizontal-pod-autoscaler-downscale-stabilization default, used when the
# scale-down rules leave stabilizationWindowSeconds unset (`maybeInitScaleDownStabilizationWindow`).
DEFAULT_DOWNSCALE_STABILIZATION_SECONDS: Final = 300


@dataclass(frozen=True)
class ScalingPolicy:
    """One rate policy: at most `value` pods (or percent) of change per `period_seconds`."""

    type: PolicyType
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    """The rules for one direction (`behavior.scaleUp` or `behavior.scaleDown`)."""

    stabilization_window_seconds: int
    select_policy: SelectPolicy
    policies: tuple[ScalingPolicy, ...]


# HPA API defaults (autoscaling/v2 `SetDefaults_HorizontalPodAutoscalerBehavior`):
# scale up by max(100 %, 4 pods) per 15 s with no stabilization; scale down by 100 % per 15 s
# after a 300 s window.
DEFAULT_SCALE_UP: Final = ScalingRules(
    stabilization_window_seconds=0,
    select_policy="Max",
    policies=(ScalingPolicy("Percent", 100, 15), ScalingPolicy("Pods", 4, 15)),
)
DEFAULT_SCALE_DOWN: Final = ScalingRules(
    stabilization_window_seconds=DEFAULT_DOWNSCALE_STABILIZATION_SECONDS,
    select_policy="Max",
    policies=(ScalingPolicy("Percent", 100, 15),),
)


@dataclass(frozen=True)
class Behavior:
    """`behavior: {scaleUp, scaleDown}`, each direction defaulted like the HPA's (read by `spec.parse_spec`)."""

    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN


@dataclass(frozen=True)
class TimedValue:
    """A recommendation or a replica change, stamped with when it happened (seconds, epoch)."""

    value: int
    at: float


@dataclass(frozen=True)
class History:
    """Per-object memory of the autoscaler: unstabilized recommendations and recent scale events."""

    recommendations: tuple[TimedValue, ...] = ()
    scale_up_events: tuple[TimedValue, ...] = ()
    scale_down_events: tuple[TimedValue, ...] = ()


@dataclass(frozen=True)
class Normalized:
    """The outcome of normalisation, with the HPA's condition reasons for status and events."""

    replicas: int
    stabilized: int
    able_to_scale_reason: str  # ReadyForNewScale | ScaleUpStabilized | ScaleDownStabilized
    limited_reason: str  # DesiredWithinRange | ScaleUpLimit | TooManyReplicas | ScaleDownLimit | TooFewReplicas
    history: History = field(default_factory=History)


def stabilize(
    history: History, *, desired: int, current: int, behavior: Behavior, now: float
) -> tuple[int, str, History]:
    """Clamp `desired` between the lowest recommendation of the scale-up window and the highest of
    the scale-down window, and record `desired` (unstabilized) in the history."""
    up_cutoff = now - behavior.scale_up.stabilization_window_seconds
    down_cutoff = now - behavior.scale_down.stabilization_window_seconds
    up_recommendation = desired
    down_recommendation = desired
    for rec in history.recommendations:
        # "After(cutoff)": a sample exactly on the window's edge is already outside it.
        if rec.at > up_cutoff:
            up_recommendation = min(rec.value, up_recommendation)
        if rec.at > down_cutoff:
            down_recommendation = max(rec.value, down_recommendation)
    # Bring the current size within [lowest of the up window, highest of the down window].
    recommendation = min(max(current, up_recommendation), down_recommendation)
    # Samples older than both windows can never matter again (the controller recycles their slot).
    kept = tuple(r for r in history.recommendations if r.at >= up_cutoff or r.at >= down_cutoff)
    new_history = History(
        recommendations=(*kept, TimedValue(desired, now)),
        scale_up_events=history.scale_up_events,
        scale_down_events=history.scale_down_events,
    )
    if recommendation == desired:
        reason = "ReadyForNewScale"
    elif desired >= current:
        reason = "ScaleUpStabilized"
    else:
        reason = "ScaleDownStabilized"
    return recommendation, reason, new_history


def _changes_in_period(events: tuple[TimedValue, ...], period_seconds: int, now: float) -> int:
    cutoff = now - period_seconds
    return sum(e.value for e in events if e.at > cutoff)


def _replicas_at_period_start(current: int, history: History, period_seconds: int, now: float) -> int:
    """The replica count when the policy's period began: undo the scale events inside it."""
    added = _changes_in_period(history.scale_up_events, period_seconds, now)
    deleted = _changes_in_period(history.scale_down_events, period_seconds, now)
    return current - added + deleted


def scale_up_limit(current: int, history: History, rules: ScalingRules, *, now: float) -> int:
    """The most replicas the scale-up policies allow now, counted from each period's start."""
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        period_start = _replicas_at_period_start(current, history, policy.period_seconds, now)
        if policy.type == "Pods":
            proposals.append(period_start + policy.value)
        else:
            # Rounded up, or a small target could never grow by a percentage.
            proposals.append(math.ceil(period_start * (1 + policy.value / 100)))
    if not proposals:
        return current
    # For scale-up, "Min" is the smallest change, i.e. the smallest proposal.
    return min(proposals) if rules.select_policy == "Min" else max(proposals)


def scale_down_limit(current: int, history: History, rules: ScalingRules, *, now: float) -> int:
    """The fewest replicas the scale-down policies allow now, counted from each period's start."""
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        period_start = _replicas_at_period_start(current, history, policy.period_seconds, now)
        if policy.type == "Pods":
            proposals.append(period_start - policy.value)
        else:
            # Go's int32(float64) truncates: 100 % of 3 pods may go, 50 % of 3 pods lets 2 stay.
            proposals.append(int(period_start * (1 - policy.value / 100)))
    if not proposals:
        return current
    # For scale-down, "Min" is the smallest change, i.e. the largest remaining count.
    return max(proposals) if rules.select_policy == "Min" else min(proposals)


def limit_rate(
    history: History,
    *,
    desired: int,
    current: int,
    min_replicas: int,
    max_replicas: int,
    behavior: Behavior,
    now: float,
) -> tuple[int, str]:
    """Apply the rate policies and the min/max bounds to a stabilized recommendation."""
    if desired > current:
        limit = max(scale_up_limit(current, history, behavior.scale_up, now=now), current)
        if max_replicas > limit:
            maximum, reason = limit, "ScaleUpLimit"
        else:
            maximum, reason = max_replicas, "TooManyReplicas"
        if desired > maximum:
            return maximum, reason
    elif desired < current:
        limit = min(scale_down_limit(current, history, behavior.scale_down, now=now), current)
        if min_replicas < limit:
            minimum, reason = limit, "ScaleDownLimit"
        else:
            minimum, reason = min_replicas, "TooFewReplicas"
        if desired < minimum:
            return minimum, reason
    return desired, "DesiredWithinRange"


def normalize(
    history: History,
    *,
    desired: int,
    current: int,
    min_replicas: int,
    max_replicas: int,
    behavior: Behavior,
    now: float,
) -> Normalized:
    """Stabilize, then rate-limit and bound: `normalizeDesiredReplicasWithBehaviors`."""
    stabilized, able_reason, new_history = stabilize(
        history, desired=desired, current=current, behavior=behavior, now=now
    )
    replicas, limited_reason = limit_rate(
        new_history,
        desired=stabilized,
        current=current,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        behavior=behavior,
        now=now,
    )
    return Normalized(replicas, stabilized, able_reason, limited_reason, new_history)


def record_scale(history: History, *, previous: int, new: int, behavior: Behavior, now: float) -> History:
    """Remember a scale that really happened (call it only after the patch succeeded).

    Events older than the longest policy period of either direction can no longer count against
    any policy, so they are dropped (the controller marks them outdated and reuses the slot).
    """
    if new == previous:
        return history
    longest = max(
        (p.period_seconds for p in (*behavior.scale_up.policies, *behavior.scale_down.policies)),
        default=0,
    )
    cutoff = now - longest
    ups = tuple(e for e in history.scale_up_events if e.at > cutoff)
    downs = tuple(e for e in history.scale_down_events if e.at > cutoff)
    if new > previous:
        ups = (*ups, TimedValue(new - previous, now))
    else:
        downs = (*downs, TimedValue(previous - new, now))
    return History(recommendations=history.recommendations, scale_up_events=ups, scale_down_events=downs)
