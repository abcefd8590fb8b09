"""Volumes as files: what each volume holds (pure plans), and writing them atomically."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from stt_localfleet.envvars import PodFacts
from stt_localfleet.launcherrors import CONTAINER_CREATING, LaunchError
from stt_localfleet.volumes import FileItem, TokenItem, VolumePlan, check_host_path, plan_volumes, write_files

FACTS = PodFacts(pod_ip="10.244.0.9", host_ip="10.244.0.1")
CONFIGMAPS = {"app": {"data": {"config.yaml": "a: 1\n", "other": "x"}, "binaryData": {"blob": "AAE="}},
              "kube-root-ca.crt": {"data": {"ca.crt": "PEM"}}}
SECRETS = {"keys": {"data": {"keys.txt": base64.b64encode(b"k1\n").decode()}}}
# What the ServiceAccount admission plugin adds to every pod.
KUBE_API_ACCESS = {"name": "kube-api-access-x1", "projected": {"defaultMode": 420, "sources": [
    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                   "fieldPath": "metadata.namespace"}}]}},
]}}


def pod(*volumes: dict) -> dict:
    return {"metadata": {"name": "p", "namespace": "stt", "labels": {"app": "web"}},
            "spec": {"volumes": list(volumes), "containers": [{"name": "c", "resources": {"limits": {"cpu": "2"}}}]}}


def plans(*volumes: dict) -> dict[str, VolumePlan]:
    return plan_volumes(pod(*volumes), configmaps=CONFIGMAPS, secrets=SECRETS, facts=FACTS)


def test_configmap_secret_emptydir_hostpath() -> None:
    got = plans({"name": "cfg", "configMap": {"name": "app", "items": [{"key": "config.yaml", "path": "c/conf.yaml",
                                                                         "mode": 0o600}]}},
                {"name": "all", "configMap": {"name": "app"}},
                {"name": "keys", "secret": {"secretName": "keys", "defaultMode": 0o440}},
                {"name": "scratch", "emptyDir": {"medium": "Memory"}},
                {"name": "models", "hostPath": {"path": "/srv/models", "type": "Directory"}})
    assert got["cfg"].files == (FileItem("c/conf.yaml", b"a: 1\n", 0o600),)
    assert [f.path for f in got["all"].files] == ["blob", "config.yaml", "other"]
    assert got["all"].files[0].content == b"\x00\x01"
    assert got["keys"].files == (FileItem("keys.txt", b"k1\n", 0o440),)
    assert got["scratch"] == VolumePlan(name="scratch", kind="emptyDir", medium="Memory")
    assert got["models"] == VolumePlan(name="models", kind="hostPath", host_path=Path("/srv/models"),
                                       host_path_type="Directory")


def test_the_service_account_volume_asks_for_a_token() -> None:
    got = plans(KUBE_API_ACCESS)["kube-api-access-x1"]
    assert got.kind == "files"
    assert got.files == (FileItem("ca.crt", b"PEM", 420), FileItem("namespace", b"stt", 420))
    assert got.tokens == (TokenItem("token", "", 3607, 420),)


def test_downward_api_volume() -> None:
    got = plans({"name": "info", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu", "divisor": "1m"}}]}})
    assert {f.path: f.content for f in got["info"].files} == {"labels": b'app="web"', "ip": b"10.244.0.9",
                                                              "cpu": b"2000"}


def test_a_missing_source_keeps_the_pod_creating_unless_optional() -> None:
    with pytest.raises(LaunchError) as err:
        plans({"name": "cfg", "configMap": {"name": "absent"}})
    assert err.value.reason == CONTAINER_CREATING
    assert err.value.message == 'MountVolume.SetUp failed for volume "cfg" : configmap "absent" not found'
    assert plans({"name": "cfg", "configMap": {"name": "absent", "optional": True}})["cfg"].files == ()
    with pytest.raises(LaunchError, match="non-existent config key: nokey"):
        plans({"name": "cfg", "configMap": {"name": "app", "items": [{"key": "nokey", "path": "x"}]}})


def test_unsupported_volume_kinds_say_so() -> None:
    with pytest.raises(LaunchError, match="persistentVolumeClaim volumes are not supported by the local kubelet"):
        plans({"name": "data", "persistentVolumeClaim": {"claimName": "c"}})


def test_write_files_replaces_by_rename_and_removes_stale_files(tmp_path: Path) -> None:
    assert write_files(tmp_path, {"a": (b"1", 0o644), "sub/b": (b"2", 0o600)})
    inode = (tmp_path / "a").stat().st_ino
    assert not write_files(tmp_path, {"a": (b"1", 0o644), "sub/b": (b"2", 0o600)})  # nothing changed
    assert write_files(tmp_path, {"a": (b"new", 0o644)})
    assert (tmp_path / "a").read_bytes() == b"new" and (tmp_path / "a").stat().st_ino != inode  # a new file
    assert not (tmp_path / "sub").exists()
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no temporary left behind
    with pytest.raises(LaunchError):
        write_files(tmp_path, {"../escape": (b"x", 0o644)})


def test_host_path_types(tmp_path: Path) -> None:
    check_host_path(tmp_path / "made", "DirectoryOrCreate")
    assert (tmp_path / "made").is_dir()
    check_host_path(tmp_path / "f", "FileOrCreate")
    assert (tmp_path / "f").is_file()
    with pytest.raises(LaunchError, match="is not a Directory"):
        check_host_path(tmp_path / "f", "Directory")
    with pytest.raises(LaunchError, match="does not exist"):
        check_host_path(tmp_path / "absent", "")
