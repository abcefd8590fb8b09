"""Pure create-or-patch helpers: drift detection, three-way patches, who owns Deployment replicas."""

from __future__ import annotations

from dataclasses import dataclass, field

from stt_operator.reconcile import (
    LAST_APPLIED,
    desired_replicas,
    is_subset,
    last_applied_of,
    quantity_value,
    three_way_patch,
    with_last_applied,
)
from stt_operator.status_writer import apply_merge_patch as merge_patch


def test_merge_patch_follows_rfc_7386() -> None:
    # The RFC's own example (appendix A, abridged): nested merge, null deletes, arrays replace whole.
    target = {"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"}, "tags": ["a", "b"]}
    patch = {"title": "Hello!", "author": {"familyName": None}, "tags": ["c"], "phone": "+01-123"}
    assert merge_patch(target, patch) == {"title": "Hello!", "author": {"givenName": "John"}, "tags": ["c"],
                                          "phone": "+01-123"}
    assert target["author"] == {"givenName": "John", "familyName": "Doe"}  # the input is not changed


def test_subset_ignores_server_added_fields_but_not_changed_ones() -> None:
    desired = {"spec": {"ports": [{"name": "grpc", "port": 50051}]}}
    live = {"spec": {"ports": [{"name": "grpc", "port": 50051, "protocol": "TCP", "nodePort": 32051}],
                     "clusterIP": "10.0.0.1"}}
    assert is_subset(desired, live)
    live["spec"]["ports"][0]["port"] = 9999
    assert not is_subset(desired, live)
    assert not is_subset({"a": [1, 2]}, {"a": [1]})
    assert not is_subset({"a": True}, {"a": 1})  # bools are not numbers here


def test_quantities_compare_by_amount_as_the_api_server_stores_them() -> None:
    assert quantity_value("0.5") == quantity_value("500m") == quantity_value(0.5)
    assert quantity_value("1024Mi") == quantity_value("1Gi") == 2 ** 30
    assert quantity_value("1e3") == quantity_value("1k") == quantity_value(1000)
    assert quantity_value("1 Gi") is None and quantity_value("fast") is None and quantity_value(True) is None
    desired = {"resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"cpu": 1}}}
    stored = {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1"}}}
    assert is_subset(desired, stored)
    assert three_way_patch(desired, stored, desired) == {}
    stored["resources"]["requests"]["cpu"] = "600m"
    assert three_way_patch(desired, stored, desired) == {"resources": {"requests": {"cpu": "0.5"}}}
    # Outside resources a spelling is a value: "1k" is not "1000" in an environment variable.
    assert not is_subset({"env": {"value": "1k"}}, {"env": {"value": "1000"}})


def test_unchanged_object_needs_no_patch() -> None:
    desired = with_last_applied({"metadata": {"name": "x"}, "data": {"k": "v"}})
    live = {**desired, "metadata": {**desired["metadata"], "uid": "u", "resourceVersion": "7"}}
    assert three_way_patch(desired, live, last_applied_of(live)) == {}


def test_patch_restores_drift_and_removes_what_we_no_longer_want() -> None:
    old = with_last_applied({"metadata": {"name": "x"}, "spec": {"a": 1, "nodeSelector": {"gpu": "yes"}}})
    live = merge_patch(old, {"spec": {"a": 5, "extra": "someone else's"}})
    desired = with_last_applied({"metadata": {"name": "x"}, "spec": {"a": 1}})
    patch = three_way_patch(desired, live, last_applied_of(live))
    assert patch["spec"] == {"a": 1, "nodeSelector": None}
    result = merge_patch(live, patch)
    assert result["spec"] == {"a": 1, "extra": "someone else's"}
    assert last_applied_of(result) == {"metadata": {"name": "x"}, "spec": {"a": 1}}


def test_damaged_last_applied_record_falls_back_to_two_way() -> None:
    live = {"metadata": {"annotations": {LAST_APPLIED: "{not json"}}}
    assert last_applied_of(live) is None


@dataclass
class _Autoscaling:
    enabled: bool = False
    min_replicas: int = 1
    max_replicas: int = 5


@dataclass
class _Spec:
    replicas: int = 2
    autoscaling: _Autoscaling = field(default_factory=_Autoscaling)


def test_desired_replicas_follow_spec_without_autoscaling() -> None:
    assert desired_replicas(_Spec(replicas=3), {"spec": {"replicas": 1}}) == 3


def test_desired_replicas_keep_the_autoscalers_choice_within_bounds() -> None:
    spec = _Spec(replicas=3, autoscaling=_Autoscaling(enabled=True, min_replicas=2, max_replicas=4))
    assert desired_replicas(spec, None) == 2
    assert desired_replicas(spec, {"spec": {"replicas": 3}}) == 3
    assert desired_replicas(spec, {"spec": {"replicas": 9}}) == 4
    assert desired_replicas(spec, {"spec": {"replicas": 0}}) == 2
