"""Table tests of stabilization windows and rate policies, each quoting the HPA rule."""

from __future__ import annotations

import pytest
from stt_operator.autoscaling.behavior import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Behavior,
    History,
    ScalingPolicy,
    ScalingRules,
    TimedValue,
    normalize,
    record_scale,
    stabilize,
)
from stt_operator.spec import parse_spec

NOW = 50_000.0


def rules(window: int, select: str, *policies: tuple[str, int, int]) -> ScalingRules:
    return ScalingRules(window, select, tuple(ScalingPolicy(t, v, p) for t, v, p in policies))  # type: ignore[arg-type]


def test_defaults_are_the_hpa_defaults() -> None:
    # "scaleUp: 100% or 4 pods per 15 s, selectPolicy Max, no window; scaleDown: 100% per 15 s, 300 s window"
    assert behavior_of(None) == Behavior(DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)
    assert DEFAULT_SCALE_UP == rules(0, "Max", ("Percent", 100, 15), ("Pods", 4, 15))
    assert DEFAULT_SCALE_DOWN == rules(300, "Max", ("Percent", 100, 15))


def behavior_of(raw: dict[str, object] | None) -> Behavior:
    """`spec.autoscaling.behavior` as the operator reads it: through `parse_spec`."""
    body = {"metadata": {"name": "demo"}, "spec": {"image": "stt:dev", "autoscaling": {"behavior": raw}}}
    return parse_spec(body).autoscaling.behavior


def test_the_spec_overrides_only_what_is_given() -> None:
    b = behavior_of({"scaleDown": {"stabilizationWindowSeconds": 30,
                                             "policies": [{"type": "Pods", "value": 1, "periodSeconds": 10}]}})
    assert b.scale_up == DEFAULT_SCALE_UP
    assert b.scale_down == rules(30, "Max", ("Pods", 1, 10))


STAB_CASES = [
    ("scale-down: use the highest recommendation within the window", History((TimedValue(5, NOW - 60),)),
     Behavior(), 2, 5, 5, "ScaleDownStabilized"),
    ("scale-down: a recommendation older than the window no longer counts", History((TimedValue(5, NOW - 301),)),
     Behavior(), 2, 5, 2, "ReadyForNewScale"),
    ("the window edge is exclusive (After(cutoff))", History((TimedValue(5, NOW - 300),)),
     Behavior(), 2, 5, 2, "ReadyForNewScale"),
    ("scale-up: default window 0 s, scale up at once", History((TimedValue(2, NOW - 1),)),
     Behavior(), 8, 2, 8, "ReadyForNewScale"),
    ("scale-up: use the lowest recommendation within the scale-up window",
     History((TimedValue(3, NOW - 30), TimedValue(6, NOW - 10))),
     Behavior(scale_up=rules(60, "Max", ("Percent", 100, 15))), 8, 2, 3, "ScaleUpStabilized"),
]


@pytest.mark.parametrize(("rule", "history", "behavior", "desired", "current", "expected", "reason"), STAB_CASES,
                         ids=[c[0][:50] for c in STAB_CASES])
def test_stabilization_windows(rule: str, history: History, behavior: Behavior, desired: int, current: int,
                               expected: int, reason: str) -> None:
    got, got_reason, new_history = stabilize(history, desired=desired, current=current, behavior=behavior, now=NOW)
    assert (got, got_reason) == (expected, reason), rule
    # the unstabilized recommendation is what gets remembered
    assert new_history.recommendations[-1] == TimedValue(desired, NOW)


RATE_CASES = [
    # rule, behavior, history, current, desired, min, max, expected, reason
    ("default scale-up: max(100%, 4 pods) per 15 s -> from 1 at most 5", Behavior(), History(),
     1, 10, 1, 20, 5, "ScaleUpLimit"),
    ("default scale-up: max(100%, 4 pods) per 15 s -> from 10 at most 20", Behavior(), History(),
     10, 50, 1, 100, 20, "ScaleUpLimit"),
    ("selectPolicy Min picks the policy allowing the smallest change -> from 1 at most 2",
     Behavior(scale_up=rules(0, "Min", ("Percent", 100, 15), ("Pods", 4, 15))), History(),
     1, 10, 1, 20, 2, "ScaleUpLimit"),
    ("selectPolicy Disabled turns off scaling in that direction",
     Behavior(scale_up=rules(0, "Disabled", ("Pods", 4, 15))), History(), 2, 6, 1, 20, 2, "ScaleUpLimit"),
    ("replicas added within the period count against the policy (period start = current - added)",
     Behavior(scale_up=rules(0, "Max", ("Pods", 4, 15))), History(scale_up_events=(TimedValue(4, NOW - 10),)),
     5, 9, 1, 20, 5, "ScaleUpLimit"),
    ("changes older than periodSeconds no longer count",
     Behavior(scale_up=rules(0, "Max", ("Pods", 4, 15))), History(scale_up_events=(TimedValue(4, NOW - 16),)),
     5, 9, 1, 20, 9, "DesiredWithinRange"),
    ("the max bound beats a looser rate limit (TooManyReplicas)", Behavior(), History(),
     2, 9, 1, 3, 3, "TooManyReplicas"),
    ("Percent scale-down truncates: 50% per 60 s from 10 -> at least 5",
     Behavior(scale_down=rules(0, "Max", ("Percent", 50, 60))), History(), 10, 1, 1, 20, 5, "ScaleDownLimit"),
    ("scale-down events in the period raise the period start: 5 removed 30 s ago -> no more now",
     Behavior(scale_down=rules(0, "Max", ("Percent", 50, 60))),
     History(scale_down_events=(TimedValue(5, NOW - 30),)), 5, 1, 1, 20, 5, "ScaleDownLimit"),
    ("Pods scale-down policy: 1 pod per 15 s", Behavior(scale_down=rules(0, "Max", ("Pods", 1, 15))), History(),
     4, 1, 1, 20, 3, "ScaleDownLimit"),
    ("the min bound beats a looser rate limit (TooFewReplicas)",
     Behavior(scale_down=rules(0, "Max", ("Percent", 100, 15))), History(),
     4, 0, 2, 20, 2, "TooFewReplicas"),
    ("scale-down selectPolicy Min keeps the most pods: min change of (Pods 1, Percent 50) from 4 -> 3",
     Behavior(scale_down=rules(0, "Min", ("Pods", 1, 15), ("Percent", 50, 15))), History(),
     4, 1, 1, 20, 3, "ScaleDownLimit"),
]


@pytest.mark.parametrize(("rule", "behavior", "history", "current", "desired", "lo", "hi", "expected", "reason"),
                         RATE_CASES, ids=[c[0][:50] for c in RATE_CASES])
def test_rate_policies_and_bounds(rule: str, behavior: Behavior, history: History, current: int, desired: int,
                                  lo: int, hi: int, expected: int, reason: str) -> None:
    out = normalize(history, desired=desired, current=current, min_replicas=lo, max_replicas=hi,
                    behavior=behavior, now=NOW)
    assert (out.replicas, out.limited_reason) == (expected, reason), rule


def test_record_scale_keeps_recent_events_and_drops_old_ones() -> None:
    h = History(scale_up_events=(TimedValue(2, NOW - 100), TimedValue(1, NOW - 5)))
    h = record_scale(h, previous=3, new=5, behavior=Behavior(), now=NOW)
    assert h.scale_up_events == (TimedValue(1, NOW - 5), TimedValue(2, NOW))
    h = record_scale(h, previous=5, new=1, behavior=Behavior(), now=NOW + 1)
    assert h.scale_down_events == (TimedValue(4, NOW + 1),)
    assert record_scale(h, previous=2, new=2, behavior=Behavior(), now=NOW) is h
