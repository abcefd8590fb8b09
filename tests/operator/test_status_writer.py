"""The one status writer: the shared condition merge, and the 409 loop against a fake API server.

The fake keeps one SttServer and honours a merge patch's resourceVersion precondition the way the
API server does (409 when it is stale), so a test can have "the other writer" change the object
between a caller's read and its write.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
from stt_operator.autoscaling.behavior import History
from stt_operator.autoscaling.decision import Decision
from stt_operator.autoscaling.kubeapi import ApiError
from stt_operator.autoscaling.scraper import ScrapeResult
from stt_operator.autoscaling.timer import AutoscalerState, status_patch
from stt_operator.status import Observed, compute_status, condition, merge_conditions
from stt_operator.status_writer import apply_merge_patch, write_status

PATH = "/apis/sttfleet.io/v1alpha1/namespaces/ns/sttservers/stt"


class FakeApi:
    """One stored SttServer; PATCH .../status with a stale resourceVersion answers 409."""

    def __init__(self, status: Mapping[str, Any] | None = None) -> None:
        self.obj: dict[str, Any] | None = {
            "apiVersion": "sttfleet.io/v1alpha1", "kind": "SttServer",
            "metadata": {"name": "stt", "namespace": "ns", "generation": 4, "resourceVersion": "1"},
            "status": dict(status or {})}
        self.patches: list[dict[str, Any]] = []
        self.gets = 0
        self.conflicts = 0
        self.delete_on_conflict = False

    def read(self) -> dict[str, Any]:
        assert self.obj is not None
        return copy.deepcopy(self.obj)

    def other_writer(self, status_patch_: Mapping[str, Any]) -> None:
        """A write by someone else: the stored object moves on, callers' copies go stale."""
        assert self.obj is not None
        self.obj["status"] = apply_merge_patch(self.obj["status"], status_patch_)
        self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)

    async def get_or_none(self, path: str) -> dict[str, Any] | None:
        assert path == PATH
        self.gets += 1
        return None if self.obj is None else self.read()

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        assert path == f"{PATH}/status" and set(patch) == {"metadata", "status"}
        self.patches.append(copy.deepcopy(dict(patch)))
        assert self.obj is not None
        if patch["metadata"]["resourceVersion"] != self.obj["metadata"]["resourceVersion"]:
            self.conflicts += 1
            if self.delete_on_conflict:
                self.obj = None
            raise ApiError(409, "the object has been modified; please apply your changes to the latest version")
        self.other_writer(patch["status"])
        return self.read()


def _ready(status: str = "True", reason: str = "AllReplicasReady") -> dict[str, Any]:
    return {"type": "Ready", "status": status, "reason": reason, "message": "2/2 replicas ready"}


def _observed(**kw: Any) -> Observed:
    deployment = {"metadata": {"generation": 1},
                  "status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2,
                             "updatedReplicas": 2, "availableReplicas": 2}}
    base: dict[str, Any] = {"generation": 4, "desired_replicas": 2, "deployment": deployment, "service": None,
                            "selector": "app.kubernetes.io/instance=stt", "autoscaling_enabled": True}
    return Observed(**{**base, **kw})


def _decision(*, active: bool = True, reason: str = "ValidMetricFound", desired: int = 3) -> Decision:
    return Decision(desired_replicas=desired, current_replicas=2, scale=desired != 2,
                    reason="decode_pending above target", recommendations=(), scaling_active=active,
                    scaling_active_reason=reason, scaling_active_message="scaling on decode_pending",
                    able_to_scale_reason="ReadyForNewScale", limited_reason="DesiredWithinRange", history=History())


def _autoscaler_update(state: AutoscalerState, decision: Decision, now: str = "T9") -> Any:
    return lambda current: status_patch(decision, ScrapeResult(samples=(), unhealthy=()), state=state,
                                        current=current, generation=4, now=now)


# ---- the one condition merge --------------------------------------------------------------------

def test_merge_keeps_transition_time_while_status_holds_and_stamps_a_flip() -> None:
    previous = [{**_ready(), "lastTransitionTime": "T0", "observedGeneration": 3}]
    same = merge_conditions(previous, [_ready(reason="StillReady")], generation=4, now="T1")
    assert same == [{**_ready(reason="StillReady"), "lastTransitionTime": "T0", "observedGeneration": 4}]
    flipped = merge_conditions(previous, [_ready("False", "ReplicasNotReady")], generation=4, now="T1")
    assert flipped[0]["lastTransitionTime"] == "T1" and flipped[0]["status"] == "False"


def test_merge_leaves_the_other_writers_conditions_and_their_order_alone() -> None:
    scaling = {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "m",
               "lastTransitionTime": "T0"}
    degraded = {"type": "Degraded", "status": "False", "reason": "AsExpected", "message": "",
                "lastTransitionTime": "T0", "observedGeneration": 2}
    merged = merge_conditions([scaling, degraded], [_ready()], generation=None, now="T1")
    assert merged == [scaling, degraded, {**_ready(), "lastTransitionTime": "T1"}]  # no generation: none stamped
    assert merge_conditions([], [], generation=1, now="T") == []


def test_apply_merge_patch_follows_rfc_7386() -> None:
    stored = {"autoscaling": {"lastScaleTime": "T0", "reason": "a"}, "conditions": [1, 2]}
    assert apply_merge_patch(stored, {"autoscaling": {"lastScaleTime": None, "reason": "b"}, "conditions": [3]}) == \
        {"autoscaling": {"reason": "b"}, "conditions": [3]}
    assert stored == {"autoscaling": {"lastScaleTime": "T0", "reason": "a"}, "conditions": [1, 2]}  # not mutated


# ---- the writer -------------------------------------------------------------------------------

async def test_nothing_changed_writes_nothing() -> None:
    api = FakeApi()
    first = await write_status(api, api.read(), lambda current: compute_status(_observed(), previous=current, now="T1"))
    assert first is not None and len(api.patches) == 1
    again = await write_status(api, api.read(), lambda current: compute_status(_observed(), previous=current, now="T2"))
    state = AutoscalerState()
    await write_status(api, api.read(), _autoscaler_update(state, _decision()))
    patches = len(api.patches)
    # Each writer's steady state: its own fields already stored, a null for an absent key included.
    assert again is None
    assert await write_status(api, api.read(), _autoscaler_update(state, _decision(), now="T10")) is None
    assert await write_status(api, api.read(),
                              lambda current: compute_status(_observed(), previous=current, now="T3")) is None
    assert len(api.patches) == patches == 2 and api.conflicts == 0


async def test_reconciler_write_after_an_autoscaler_write_is_recomputed_from_the_fresh_object() -> None:
    api = FakeApi()
    await write_status(api, api.read(), lambda current: compute_status(_observed(), previous=current, now="T1"))
    stale = api.read()  # the reconciler read this ...
    await write_status(api, api.read(), _autoscaler_update(AutoscalerState(), _decision()))  # ... then this landed
    seen: list[Mapping[str, Any]] = []

    def update(current: Mapping[str, Any]) -> Mapping[str, Any]:
        seen.append(current)
        return compute_status(_observed(desired_replicas=3), previous=current, now="T2")

    written = await write_status(api, stale, update)
    assert written is not None and api.conflicts == 1
    assert condition(seen[0], "ScalingActive")["reason"] == "AwaitingMetrics"  # type: ignore[index]
    assert condition(seen[1], "ScalingActive")["reason"] == "ValidMetricFound"  # type: ignore[index]
    assert api.patches[-1]["metadata"]["resourceVersion"] == "3"
    stored = api.read()["status"]
    assert {c["type"]: c["reason"] for c in stored["conditions"]} == {
        "Ready": "ReplicasNotReady", "Progressing": "RollingOut", "Degraded": "AsExpected",
        "ScalingActive": "ValidMetricFound"}
    assert stored["autoscaling"]["desiredReplicas"] == 3 and stored["desiredReplicas"] == 3
    assert written.before == seen[1] and written.after == stored  # what the caller's Events compare


async def test_autoscaler_write_after_a_reconciler_write_keeps_the_reconcilers_conditions() -> None:
    api = FakeApi()
    state = AutoscalerState()
    await write_status(api, api.read(), _autoscaler_update(state, _decision()))
    stale = api.read()
    api.other_writer(compute_status(_observed(spec_error="spec.x: bad"), previous=api.read()["status"], now="T2"))
    written = await write_status(api, stale, _autoscaler_update(state, _decision(active=False, reason="FailedGetMetrics")))
    assert written is not None and api.conflicts == 1
    stored = {c["type"]: (c["status"], c["reason"]) for c in api.read()["status"]["conditions"]}
    assert stored["Degraded"] == ("True", "InvalidSpec") and stored["Ready"] == ("False", "InvalidSpec")
    assert stored["ScalingActive"] == ("False", "FailedGetMetrics")


async def test_a_scale_override_note_reaches_the_condition_and_is_written_once() -> None:
    api = FakeApi()
    state = AutoscalerState(overridden_replicas=5)
    await write_status(api, api.read(), _autoscaler_update(state, _decision()))
    message = condition(api.read()["status"], "ScalingActive")["message"]  # type: ignore[index]
    assert message.startswith("scaling on decode_pending; spec.replicas=5 is ignored")
    assert await write_status(api, api.read(), _autoscaler_update(state, _decision())) is None


async def test_conflicts_every_time_give_up_after_the_bounded_attempts() -> None:
    api = FakeApi()
    stale = api.read()

    def update(current: Mapping[str, Any]) -> Mapping[str, Any]:
        api.other_writer({"replicas": len(api.patches)})  # someone always writes first
        return {"monitoring": f"pass {len(api.patches)}"}

    with pytest.raises(ApiError) as raised:
        await write_status(api, stale, update, attempts=3)
    assert raised.value.status == 409 and api.conflicts == 3 and api.gets == 2


async def test_an_object_deleted_meanwhile_is_not_written() -> None:
    api = FakeApi()
    stale = api.read()
    api.other_writer({"monitoring": "x"})
    api.delete_on_conflict = True
    assert await write_status(api, stale, lambda current: {"monitoring": "enabled"}) is None
    assert api.conflicts == 1 and api.gets == 1 and len(api.patches) == 1


async def test_a_non_conflict_error_is_raised_at_once() -> None:
    class Forbidden(FakeApi):
        async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
            raise ApiError(403, "forbidden")

    api = Forbidden()
    with pytest.raises(ApiError):
        await write_status(api, api.read(), lambda current: {"monitoring": "enabled"})
    assert api.gets == 0
