"""Pure parts of the kubelet: pod addresses, the pod's phase and conditions, container statuses, back-off."""

from __future__ import annotations

import socket

import pytest
from stt_localfleet.backoff import CrashBackoff
from stt_localfleet.pods import (
    AddressPool,
    ContainerRecord,
    Terminated,
    pod_conditions,
    pod_phase,
    pod_status,
    terminated,
)

T0 = "2026-01-01T00:00:00Z"


def ended(code: int) -> Terminated:
    return Terminated(exit_code=code, reason="Completed" if code == 0 else "Error", started_at=T0, finished_at=T0)


def running(name: str = "c", *, ready: bool = False) -> ContainerRecord:
    return ContainerRecord(name=name, image="stt-server", running_since=T0, pid=42, started=True, ready=ready)


def stopped(code: int, name: str = "c") -> ContainerRecord:
    return ContainerRecord(name=name, image="stt-server", terminated=ended(code))


def crash_looping(name: str = "c") -> ContainerRecord:
    return ContainerRecord(name=name, image="stt-server", waiting=("CrashLoopBackOff", "back-off 10s"),
                           last_terminated=ended(1), restart_count=2)


def test_addresses_skip_the_node_and_are_reused() -> None:
    pool = AddressPool("127.0.0.0/24", node_ip="127.0.0.1")
    assert [pool.allocate() for _ in range(3)] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    pool.release("127.0.0.3")
    assert pool.allocate() == "127.0.0.3"
    assert pool.allocate(prefer="127.0.0.9") == "127.0.0.9"  # the pod's IP before a kubelet restart
    assert pool.allocate(prefer="10.0.0.1") == "127.0.0.5"  # outside the CIDR: ignored


def test_an_address_whose_port_is_taken_is_skipped() -> None:
    with socket.socket() as holder:  # something else holds 127.0.0.2:<port>
        holder.bind(("127.0.0.2", 0))
        port = holder.getsockname()[1]
        assert AddressPool("127.0.0.0/24", node_ip="127.0.0.1").allocate([port]) == "127.0.0.3"


@pytest.mark.parametrize(("policy", "containers", "init", "terminal", "phase"), [
    ("Always", [ContainerRecord(name="c", image="i")], [], False, "Pending"),
    ("Always", [running()], [], False, "Running"),
    ("Always", [crash_looping()], [], False, "Running"),  # restarting: it has run
    ("Always", [stopped(0)], [], False, "Running"),
    ("OnFailure", [stopped(0)], [], False, "Succeeded"),
    ("OnFailure", [stopped(1)], [], False, "Running"),
    ("Never", [stopped(1), stopped(0, "d")], [], False, "Failed"),
    ("Never", [running(), stopped(1, "d")], [], False, "Running"),
    ("Always", [ContainerRecord(name="c", image="i")], [running("init")], False, "Pending"),
    ("Never", [ContainerRecord(name="c", image="i")], [stopped(1, "init")], False, "Failed"),
    ("Always", [stopped(143)], [], True, "Failed"),  # deleted: killed by SIGTERM
    ("Always", [stopped(0)], [], True, "Succeeded"),
    ("Always", [ContainerRecord(name="c", image="i")], [], True, "Failed"),  # deleted before it ever ran
])
def test_phase_is_the_kubelets(policy: str, containers: list[ContainerRecord], init: list[ContainerRecord],
                               terminal: bool, phase: str) -> None:
    assert pod_phase(policy, containers, init=init, terminal=terminal) == phase


def test_container_status_documents() -> None:
    record = crash_looping()
    assert record.status() == {
        "name": "c", "image": "stt-server", "imageID": "", "ready": False, "started": False, "restartCount": 2,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": T0, "finishedAt": T0}}}
    live = running(ready=True).status()
    assert live["state"] == {"running": {"startedAt": T0}} and live["containerID"] == "localfleet://42"
    assert live["ready"] and live["started"] and live["lastState"] == {}
    killed = terminated(-15, started_at=T0)
    assert (killed.exit_code, killed.reason, killed.signal) == (143, "Error", 15)
    assert terminated(0, started_at=T0).reason == "Completed"


def test_conditions_keep_the_schedulers_and_their_transition_times() -> None:
    pod = {"metadata": {"generation": 3}, "spec": {}, "status": {"conditions": [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": T0},
        {"type": "Ready", "status": "False", "lastTransitionTime": T0}]}}
    conditions = {c["type"]: c for c in pod_conditions(pod, sandbox_ready=True, init=[], containers=[running()])}
    assert conditions["PodScheduled"] == {"type": "PodScheduled", "status": "True", "lastTransitionTime": T0}
    assert conditions["Ready"]["lastTransitionTime"] == T0  # still False: the transition time stays
    assert conditions["Ready"]["message"] == "containers with unready status: [c]"
    assert conditions["ContainersReady"]["reason"] == "ContainersNotReady"
    assert conditions["Initialized"]["status"] == "True" and conditions["Initialized"]["observedGeneration"] == 3
    ready = {c["type"]: c for c in pod_conditions(pod, sandbox_ready=True, init=[], containers=[running(ready=True)])}
    assert ready["Ready"]["status"] == "True" and ready["Ready"]["lastTransitionTime"] != T0


def test_transition_times_follow_the_kubelets_own_last_write() -> None:
    # The watch has not delivered the kubelet's own write yet: its last status is the truth.
    stale = {"spec": {}, "status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": T0}]}}
    written = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"}]
    conditions = {c["type"]: c for c in pod_conditions(stale, sandbox_ready=True, init=[],
                                                       containers=[running(ready=True)], last_written=written)}
    assert conditions["Ready"]["lastTransitionTime"] == "2026-01-01T00:00:05Z"


def test_readiness_gates_hold_ready_back() -> None:
    pod = {"spec": {"readinessGates": [{"conditionType": "example.com/lb"}]}, "status": {"conditions": []}}
    conditions = {c["type"]: c for c in pod_conditions(pod, sandbox_ready=True, init=[],
                                                       containers=[running(ready=True)])}
    assert conditions["ContainersReady"]["status"] == "True"
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "ReadinessGatesNotReady")


def test_pod_status_before_the_sandbox_has_no_ip() -> None:
    status = pod_status({"spec": {}}, host_ip="10.244.0.1", pod_ip=None, start_time=None, phase="Pending",
                        init=[], containers=[ContainerRecord(name="c", image="i")], sandbox_ready=False)
    assert status["podIP"] is None and status["podIPs"] is None and status["hostIP"] == "10.244.0.1"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert {c["type"]: c["status"] for c in status["conditions"]}["PodReadyToStartContainers"] == "False"


def test_crash_backoff_doubles_from_the_second_restart_to_the_cap() -> None:
    now = [1000.0]
    backoff = CrashBackoff(scale=0.1, clock=lambda: now[0])
    assert backoff.remaining("c", finished_at=now[0]) == 0  # the first restart is immediate
    delays = []
    for _ in range(7):
        backoff.next("c")
        delays.append(backoff.remaining("c", finished_at=now[0]))
        now[0] += delays[-1]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    now[0] += 61.0  # up for more than twice the cap: back to the base
    assert backoff.remaining("c", finished_at=now[0]) == 0
    backoff.next("c")
    assert backoff.current("c") == 1.0
