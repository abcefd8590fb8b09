"""pass_record.verdict: what each watch event costs against the last clean pass, as plain records."""

from __future__ import annotations

from typing import Any

from stt_operator import status
from stt_operator.pass_record import ChildEvent, ChildVersion, Known, ServerEvent, absorb, identity, verdict


def obj(version: str, *, generation: int | None = 1, labels: dict[str, str] | None = None,
        status_: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "a", "resourceVersion": version, "labels": labels or {"app": "a"},
                            "ownerReferences": [{"uid": "u"}]}
    if generation is not None:
        meta["generation"] = generation
    return {"metadata": meta, "status": status_ or {}}


def event(kind: str, body: dict[str, Any], *, deleted: bool = False) -> ChildEvent:
    return ChildEvent(kind=kind, name="a", version=ChildVersion.of(body), body=body, deleted=deleted)


def known() -> Known:
    return Known(generation=3, labels=(("team", "x"),), apis=frozenset(),
                 children={("Deployment", "a"): ChildVersion.of(obj("10")),
                           ("ConfigMap", "a"): ChildVersion.of(obj("11", generation=None))},
                 observed=status.Observed(generation=3, desired_replicas=1, deployment=None, service=None,
                                          selector=""))


def server(generation: int, labels: dict[str, str]) -> ServerEvent:
    return ServerEvent(identity=identity({"metadata": {"generation": generation, "labels": labels}}))


def test_server_events_need_a_pass_only_for_a_new_generation_or_labels() -> None:
    record = known()
    assert verdict(record, [server(3, {"team": "x"})]) == "none"  # our own status write
    assert verdict(record, [server(4, {"team": "x"})]) == "full"
    assert verdict(record, [server(3, {"team": "y"})]) == "full"
    assert verdict(None, [server(3, {"team": "x"})]) == "full"  # no clean pass yet
    bad = identity({"metadata": {"generation": 5, "labels": {}}})
    assert verdict(None, [server(5, {})], invalid=bad) == "none"  # the spec that failed to parse, again
    assert verdict(None, [server(6, {})], invalid=bad) == "full"


def test_child_events_cost_nothing_a_status_refresh_or_a_full_pass() -> None:
    record = known()
    assert verdict(record, [event("Deployment", obj("10"))]) == "none"  # the version we wrote
    assert verdict(record, [event("Deployment", obj("12", status_={"replicas": 1}))]) == "status"
    assert verdict(record, [event("Deployment", obj("12", generation=2))]) == "full"  # spec drift
    assert verdict(record, [event("Deployment", obj("12", labels={"app": "b"}))]) == "full"
    assert verdict(record, [event("ConfigMap", obj("12", generation=None))]) == "full"  # no generation: any change
    assert verdict(record, [event("ConfigMap", obj("11", generation=None), deleted=True)]) == "full"
    assert verdict(record, [event("Service", obj("1", generation=None))]) == "full"  # a child we do not know
    assert verdict(record, [event("Deployment", obj("12")), event("Deployment", obj("13", generation=2))]) == "full"


def test_absorbed_status_moves_are_recorded_so_the_resync_does_not_take_them_for_missed_changes() -> None:
    record = known()
    moved = obj("12", status_={"readyReplicas": 1})
    absorb(record, [event("Deployment", moved), server(3, {"team": "x"})])
    assert record.children["Deployment", "a"].resource_version == "12"
    assert record.observed.deployment == {"metadata": {"generation": 1}, "status": {"readyReplicas": 1}}
    assert verdict(record, [event("Deployment", moved)]) == "none"
