"""The pod worker's rules without processes: admission, grace periods, restart policy, volume setup."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from stt_localfleet.envvars import PodFacts
from stt_localfleet.podsetup import admission_failure, grace_period, hosts_file, restart_wanted, volumes_ready
from stt_localfleet.sources import Token
from stt_localfleet.volumes import TokenItem


def gpu_pod(limit: str = "1") -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": limit, "cpu": "64"}}}]}}


def test_a_pod_bound_by_hand_to_a_node_without_gpus_is_rejected() -> None:
    reason, message = admission_failure(gpu_pod(), {"cpu": "2", "memory": "1Gi"}) or ("", "")
    assert reason == "OutOfnvidia.com/gpu"
    assert message == ("Pod was rejected: Node didn't have enough resource: nvidia.com/gpu, requested: 1, used: 0, "
                       "capacity: 0")
    # cpu and memory are the scheduler's business (requests are not enforced here)
    assert admission_failure({"spec": {"containers": [{"resources": {"requests": {"cpu": "64"}}}]}}, {"cpu": "2"}) is None


def test_grace_periods() -> None:
    pod = {"metadata": {"deletionGracePeriodSeconds": 5}, "spec": {"terminationGracePeriodSeconds": 45}}
    assert grace_period(pod, deleting=True) == 5.0
    assert grace_period(pod) == 45.0
    assert grace_period({"spec": {}}) == 30.0


@pytest.mark.parametrize(("policy", "code", "init", "again"), [
    ("Always", 0, False, True), ("Always", 1, False, True), ("OnFailure", 0, False, False),
    ("OnFailure", 2, False, True), ("Never", 1, False, False),
    ("Always", 0, True, False), ("Always", 1, True, True), ("Never", 1, True, False),
])
def test_restart_policy(policy: str, code: int, init: bool, again: bool) -> None:
    assert restart_wanted(policy, code, init=init) is again


class FakeTokens:
    async def get(self, pod: Mapping[str, Any], item: TokenItem) -> Token:
        return Token(value=f"jwt-for-{pod['metadata']['name']}-{item.audience or 'api'}", refresh_at=0.0)


async def test_volumes_are_written_under_the_pod_and_host_paths_used_in_place(tmp_path: Path) -> None:
    host = tmp_path / "host-models"
    host.mkdir()
    pod = {"metadata": {"name": "web-1", "namespace": "stt"}, "spec": {"volumes": [
        {"name": "kube-api-access", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "models", "hostPath": {"path": str(host)}}]}}
    dirs = await volumes_ready(pod, tmp_path / "volumes",
                               sources=({"kube-root-ca.crt": {"data": {"ca.crt": "PEM"}}}, {}),
                               facts=PodFacts(pod_ip="10.244.0.2", host_ip="10.244.0.1"),
                               tokens=FakeTokens())  # type: ignore[arg-type]
    assert dirs == {"kube-api-access": tmp_path / "volumes" / "kube-api-access", "tmp": tmp_path / "volumes" / "tmp",
                    "models": host}
    assert (dirs["kube-api-access"] / "token").read_text() == "jwt-for-web-1-api"
    assert (dirs["kube-api-access"] / "ca.crt").read_text() == "PEM"
    assert dirs["tmp"].is_dir() and not any(dirs["tmp"].iterdir())


def test_the_managed_hosts_file_names_the_pod_its_aliases_and_the_api_server() -> None:
    pod = {"metadata": {"name": "web-1", "namespace": "stt"},
           "spec": {"hostAliases": [{"ip": "10.1.2.3", "hostnames": ["db", "db.local"]}]}}
    lines = hosts_file(pod, pod_ip="10.244.0.5", api_host="10.244.0.1").splitlines()
    assert lines[0] == "# Kubernetes-managed hosts file." and "127.0.0.1\tlocalhost" in lines
    assert "10.244.0.5\tweb-1" in lines and "10.1.2.3\tdb db.local" in lines
    assert lines[-1] == ("10.244.0.1\tkubernetes kubernetes.default kubernetes.default.svc "
                         "kubernetes.default.svc.cluster.local")
    assert "kubernetes.default" not in hosts_file(pod, pod_ip="10.244.0.5", api_host="api.example")
