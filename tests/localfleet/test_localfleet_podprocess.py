"""Planning a container's process (pure): image -> program, command/args, env, mounts; and stopping one."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import psutil
import pytest
from stt_localfleet import images
from stt_localfleet.envvars import PodFacts, service_env
from stt_localfleet.images import LocalImage, image_name, image_paths, outermost, resolve_image
from stt_localfleet.launcher import LaunchSpec, Mount
from stt_localfleet.launcherrors import CONFIG_ERROR, IMAGE_NOT_LOCAL, LaunchError
from stt_localfleet.podprocess import ContainerProcess, container_argv, container_mounts, plan_container

SERVER = LocalImage(image="ghcr.io/x/stt-server:1", program="stt-server", entrypoint=("/venv/bin/stt-server",),
                    env={"PATH": "/venv/bin:/usr/bin"}, image_id="localfleet:///venv/bin/stt-server")
OPERATOR = LocalImage(image="stt-operator:dev", program="stt-operator", entrypoint=("/venv/bin/stt-operator",),
                      env={"PATH": "/venv/bin:/usr/bin"}, image_id="localfleet:///venv/bin/stt-operator")
POD = {"metadata": {"name": "web-1", "namespace": "stt"}, "spec": {}}
FACTS = PodFacts(pod_ip="10.244.0.5", host_ip="10.244.0.1")


@pytest.mark.parametrize(("image", "program"), [
    ("ghcr.io/acme/stt-server:1.2", "stt-server"), ("stt-server", "stt-server"),
    ("registry:5000/stt-operator@sha256:abc", "stt-operator"), ("stt-operator:dev", "stt-operator"),
])
def test_project_images_map_to_local_programs(image: str, program: str) -> None:
    resolved = resolve_image(image, executables={program: f"/opt/{program}"})
    assert resolved.program == program and resolved.entrypoint == (f"/opt/{program}",)
    assert resolved.env["PATH"].startswith(str(Path(sys.executable).parent) + ":")


def test_any_other_image_is_refused_with_a_reason() -> None:
    with pytest.raises(LaunchError) as err:
        resolve_image("nginx:1.27")
    assert err.value.reason == IMAGE_NOT_LOCAL
    assert err.value.message == ("image nginx:1.27 is not one the local fleet can run: only *stt-server* and "
                                 "*stt-operator* images map to local programs")
    assert image_name("registry:5000/team/stt-server:1@sha256:ff") == "stt-server"


def test_image_paths_cover_the_venv_and_an_editable_checkout() -> None:
    paths = image_paths()
    prefix = Path(os.path.realpath(sys.prefix))
    assert any(prefix.is_relative_to(p) for p in paths)
    package = Path(os.path.realpath(images.__file__)).parent
    assert any(package.is_relative_to(p) for p in paths)
    assert outermost({Path("/a"), Path("/a/b"), Path("/c")}) == (Path("/a"), Path("/c"))


def test_stt_server_binds_the_pod_address_and_named_ports() -> None:
    container = {"command": ["stt-server", "--config", "/etc/stt/config.yaml"],
                 "ports": [{"name": "grpc", "containerPort": 50052}, {"name": "http", "containerPort": 8001}]}
    assert container_argv(container, SERVER, {}, address="10.244.0.5") == [
        "/venv/bin/stt-server", "--config", "/etc/stt/config.yaml", "--grpc-host", "10.244.0.5",
        "--http-host", "10.244.0.5", "--rest-host", "10.244.0.5", "--grpc-port", "50052", "--http-port", "8001"]
    with_rest = {**container, "ports": [*container["ports"], {"name": "rest", "containerPort": 8081}]}
    assert container_argv(with_rest, SERVER, {}, address="10.244.0.5")[-2:] == ["--rest-port", "8081"]
    # No command: the image's entrypoint; a command that is not the server gets no flags.
    assert container_argv({}, SERVER, {}, address="10.244.0.5")[:2] == ["/venv/bin/stt-server", "--grpc-host"]
    assert container_argv({"command": ["python3", "-c", "pass"]}, SERVER, {}, address="a") == ["python3", "-c", "pass"]


def test_command_and_args_are_expanded_from_the_env() -> None:
    argv = container_argv({"command": ["sh", "-c"], "args": ["echo $(POD_IP) $$(POD_IP) $(NOPE)"]}, OPERATOR,
                          {"POD_IP": "10.244.0.5"}, address="10.244.0.5")
    assert argv == ["sh", "-c", "echo 10.244.0.5 $(POD_IP) $(NOPE)"]
    assert container_argv({"args": ["run"]}, OPERATOR, {}, address="x") == ["/venv/bin/stt-operator", "run"]


def test_mounts_with_subpath_and_read_only() -> None:
    dirs = {"config": Path("/pods/u/volumes/config"), "data": Path("/pods/u/volumes/data")}
    container = {"volumeMounts": [
        {"name": "config", "mountPath": "/etc/stt", "readOnly": True},
        {"name": "config", "mountPath": "/etc/one.yaml", "subPath": "config.yaml"},
        {"name": "data", "mountPath": "/data", "subPathExpr": "$(POD_NAME)"}]}
    assert container_mounts(container, dirs, {"POD_NAME": "web-1"}) == (
        Mount(Path("/pods/u/volumes/config"), "/etc/stt", read_only=True),
        Mount(Path("/pods/u/volumes/config/config.yaml"), "/etc/one.yaml"),
        Mount(Path("/pods/u/volumes/data/web-1"), "/data"))
    with pytest.raises(LaunchError) as err:
        container_mounts({"volumeMounts": [{"name": "absent", "mountPath": "/x"}]}, dirs, {})
    assert err.value.reason == CONFIG_ERROR
    with pytest.raises(LaunchError, match="relative path inside"):
        container_mounts({"volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "../up"}]}, dirs, {})


def test_plan_sets_the_service_env_and_re_exposes_what_a_mount_hides() -> None:
    container = {"name": "server", "workingDir": "/work",
                 "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                 "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}
    plan = plan_container(POD, container, image=OPERATOR, facts=FACTS, service_env=service_env("https://10.244.0.1:6443"),
                          configmaps={}, secrets={}, volume_dirs={"tmp": Path("/pods/u/volumes/tmp")},
                          image_paths=(Path("/tmp/ci/checkout"), Path("/opt/venv")))
    env = plan.launch.env
    assert env["KUBERNETES_SERVICE_HOST"] == "10.244.0.1" and env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert env["POD_IP"] == "10.244.0.5" and env["HOSTNAME"] == "web-1" and env["PATH"] == "/venv/bin:/usr/bin"
    assert plan.launch.cwd == "/work"
    # An emptyDir at /tmp would hide a checkout under /tmp (CI clones there): it is bound back.
    assert plan.launch.reexpose == (Path("/tmp/ci/checkout"),)
    assert plan.launch.argv == ("/venv/bin/stt-operator",)
    with_hosts = plan_container(POD, container, image=OPERATOR, facts=FACTS, service_env={}, configmaps={},
                                secrets={}, volume_dirs={"tmp": Path("/v/tmp")}, image_paths=(),
                                etc_hosts=Path("/pods/u/etc-hosts"))
    assert with_hosts.launch.mounts[0] == Mount(Path("/pods/u/etc-hosts"), "/etc/hosts", read_only=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="a container's mount namespace needs root")
async def test_stop_sends_sigterm_then_sigkill_after_the_grace(tmp_path: Path) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    log = tmp_path / "log"
    with log.open("ab") as out:
        proc = await ContainerProcess.start(LaunchSpec(argv=(sys.executable, "-c", script), env={}), log=out)
    deadline = time.monotonic() + 10
    while b"up" not in log.read_bytes() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the child says when its handler is set
    began = time.monotonic()
    assert await proc.stop(0.5) == -9
    assert 0.4 < time.monotonic() - began < 5


@pytest.mark.skipif(os.geteuid() != 0, reason="a container's mount namespace needs root")
async def test_a_cooperative_process_exits_on_sigterm_and_its_children_go_too(tmp_path: Path) -> None:
    # The shell's child sleeps on after the shell dies of SIGTERM; the group kill takes it.
    with (tmp_path / "log").open("ab") as out:
        proc = await ContainerProcess.start(LaunchSpec(argv=("sh", "-c", "sleep 60 & echo $! > child; wait"),
                                                       env={"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path)), log=out)
    deadline = time.monotonic() + 10
    while not (tmp_path / "child").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    child = int((tmp_path / "child").read_text())
    assert await proc.stop(10) == -15
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not _alive(child), "the container's child outlived it"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE  # a zombie waits for init to reap it
    except psutil.NoSuchProcess:
        return False
