"""Pure parts of the kubelet: addresses, which pod goes first, the status documents."""

from __future__ import annotations

from stt_localfleet.pods import AddressPool, LocalPod, deletion_rank, deployment_status, pod_status


def local_pod(name: str, *, ready: bool = False, ready_since: float = 0.0, created: float = 0.0,
              deleting: bool = False, thash: str = "h1") -> LocalPod:
    return LocalPod(name=name, namespace="stt", deployment="demo", template_hash=thash, address="127.0.0.2",
                    template={"spec": {"containers": [{"name": "server"}]}}, ready=ready,
                    ready_since=ready_since, created=created, deleting=deleting)


def test_addresses_skip_the_node_and_are_reused() -> None:
    pool = AddressPool()
    assert [pool.allocate() for _ in range(3)] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    pool.release("127.0.0.3")
    assert pool.allocate() == "127.0.0.3"


def test_scale_down_order_is_the_replicaset_controllers() -> None:
    # not ready first; then the pod ready for the shortest time; then the newest
    pods = [local_pod("old-ready", ready=True, ready_since=10, created=1),
            local_pod("new-ready", ready=True, ready_since=50, created=2),
            local_pod("starting", created=3)]
    assert [p.name for p in sorted(pods, key=deletion_rank)] == ["starting", "new-ready", "old-ready"]


def test_deployment_status_counts_like_the_controller() -> None:
    pods = [local_pod("a", ready=True), local_pod("b", thash="old", ready=True), local_pod("c", deleting=True)]
    status = deployment_status({"metadata": {"generation": 4}, "spec": {"replicas": 2}}, pods, template_hash="h1")
    assert {k: status[k] for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                                   "availableReplicas", "unavailableReplicas", "terminatingReplicas")} == {
        "observedGeneration": 4, "replicas": 2, "updatedReplicas": 1, "readyReplicas": 2,
        "availableReplicas": 2, "unavailableReplicas": 0, "terminatingReplicas": 1}
    assert status["conditions"][0] == {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
    assert status["conditions"][1]["reason"] == "ReplicaSetUpdated"  # one pod still has the old template


def test_pod_status_of_a_waiting_pod_has_no_ip_and_says_why() -> None:
    pod = local_pod("a")
    pod.waiting = ("CreateContainerConfigError", 'secret "tok" not found')
    status = pod_status(pod, phase="Pending")
    assert status["phase"] == "Pending" and "podIP" not in status
    assert status["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "CreateContainerConfigError", "message": 'secret "tok" not found'}}
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "False"


def test_an_address_whose_port_is_taken_is_skipped() -> None:
    import socket

    with socket.socket() as holder:  # something else (another fleet) holds 127.0.0.2:<port>
        holder.bind(("127.0.0.2", 0))
        port = holder.getsockname()[1]
        assert AddressPool().allocate([port]) == "127.0.0.3"
