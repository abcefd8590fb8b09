"""plan_launch: a pod template becomes a local stt-server launch (pure), and PodProcess stops gracefully."""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from pathlib import Path

import pytest
from stt_localfleet.podprocess import LaunchError, LaunchPlan, PodProcess, plan_launch

POD = {
    "metadata": {"name": "demo-abc", "namespace": "stt"},
    "spec": {
        "terminationGracePeriodSeconds": 45,
        "volumes": [{"name": "config", "configMap": {"name": "demo"}}, {"name": "tmp", "emptyDir": {}},
                    {"name": "models", "persistentVolumeClaim": {"claimName": "cache"}}],
        "containers": [{
            "name": "server", "image": "ghcr.io/x/stt-server:1", "command": ["stt-server"],
            "args": ["--config", "/etc/stt/config.yaml"],
            "ports": [{"name": "grpc", "containerPort": 50051}, {"name": "http", "containerPort": 8000}],
            "env": [
                {"name": "STT_CONTROL_TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "STT_STORAGE__DIRECTORY", "value": "/tmp/captures"},
            ],
            "volumeMounts": [{"name": "config", "mountPath": "/etc/stt", "readOnly": True},
                             {"name": "tmp", "mountPath": "/tmp"}],
        }],
    },
}
CONFIGMAPS = {"demo": {"data": {"config.yaml": "server: {grpc_port: 50051}\n"}}}
SECRETS = {"tok": {"data": {"token": base64.b64encode(b"t0k").decode()}}}


def test_plan_resolves_config_env_ports_and_address(tmp_path: Path) -> None:
    plan = plan_launch(POD, address="127.0.0.7", workdir=tmp_path, configmaps=CONFIGMAPS, secrets=SECRETS,
                       executable="/venv/bin/stt-server")
    config = tmp_path / "volumes" / "config" / "config.yaml"
    assert plan.files == {config: b"server: {grpc_port: 50051}\n"}
    assert plan.argv == ("/venv/bin/stt-server", "--config", str(config), "--grpc-host", "127.0.0.7",
                         "--http-host", "127.0.0.7", "--grpc-port", "50051", "--http-port", "8000")
    assert plan.env["STT_CONTROL_TOKEN"] == "t0k"
    assert plan.env["POD_IP"] == "127.0.0.7"
    assert plan.env["STT_STORAGE__DIRECTORY"] == str(tmp_path / "volumes" / "tmp" / "captures")
    assert plan.grace_sec == 45.0
    assert any("models" in item for item in plan.ignored)


def test_a_host_server_under_a_mounted_path_is_not_remapped(tmp_path: Path) -> None:
    # A checkout under /tmp (CI clones there) must not have its venv "moved" into the /tmp emptyDir.
    plan = plan_launch(POD, address="127.0.0.7", workdir=tmp_path, configmaps=CONFIGMAPS, secrets=SECRETS,
                       executable="/tmp/checkout/.venv/bin/stt-server")
    assert plan.argv[0] == "/tmp/checkout/.venv/bin/stt-server"


def test_missing_secret_is_a_container_config_error(tmp_path: Path) -> None:
    with pytest.raises(LaunchError) as err:
        plan_launch(POD, address="127.0.0.2", workdir=tmp_path, configmaps=CONFIGMAPS, secrets={})
    assert err.value.reason == "CreateContainerConfigError"
    assert '"tok" not found' in err.value.message


async def test_terminate_sends_sigterm_then_sigkill_after_grace(tmp_path: Path) -> None:
    # A process that ignores SIGTERM must be killed once the grace period is over.
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); " \
             "time.sleep(60)"
    plan = LaunchPlan(argv=(sys.executable, "-c", script), env={}, files={}, dirs=(), cwd=tmp_path,
                      grpc_port=0, http_port=0, grace_sec=0.5)
    proc = PodProcess(plan, log_path=tmp_path / "log")
    await proc.start()
    deadline = time.monotonic() + 10
    while b"up" not in (tmp_path / "log").read_bytes() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # poll: the child says when its handler is set
    t0 = time.monotonic()
    code = await proc.terminate()
    assert code == -9
    assert 0.4 < time.monotonic() - t0 < 5


async def test_terminate_lets_a_cooperative_process_exit_cleanly(tmp_path: Path) -> None:
    plan = LaunchPlan(argv=(sys.executable, "-c", "import time; time.sleep(60)"), env={}, files={}, dirs=(),
                      cwd=tmp_path, grpc_port=0, http_port=0, grace_sec=10)
    proc = PodProcess(plan, log_path=tmp_path / "log")
    await proc.start()
    t0 = time.monotonic()
    assert await proc.terminate() == -15  # default SIGTERM action: exits at once, well inside the grace
    assert time.monotonic() - t0 < 5
