"""`stt-localfleet up --dir DIR`: the kubeconfig appears once node `localfleet` is Ready, the real kubectl
and helm (from `stt-localfleet bin-dir`) work against it, and SIGTERM stops every process it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from local_cluster import wait_until
from stt_localfleet import binaries

pytestmark = pytest.mark.slow


def test_bin_dir_names_the_folder_with_kubectl_and_helm() -> None:
    out = subprocess.run([sys.executable, "-m", "stt_localfleet.cli", "bin-dir"], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert Path(out) == binaries.bin_dir()
    assert Path(out).name == "bin" and Path(out).parent.name == f"k8s-{binaries.kubernetes_version()}"


def test_build_failure_names_the_binary_and_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A module folder whose go.mod pins nothing buildable: go's own error comes back, with the binary named.
    broken = tmp_path / "mod"
    broken.mkdir()
    (broken / "go.mod").write_text("module example.com/broken\n\ngo 1.26.0\n")
    monkeypatch.setenv("STT_LOCALFLEET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(binaries, "BINARIES", (binaries.Binary("etcd", "example.com/broken/nothing", broken),))
    monkeypatch.setattr(binaries, "kubernetes_version", lambda module_dir=None: "v0.0.0-test")
    with pytest.raises(binaries.BuildError, match=r"go build of etcd \(example.com/broken/nothing"):
        binaries.ensure_binaries(say=lambda line: None)
    assert not list((tmp_path / "cache").rglob("etcd*")), "a failed build left a binary behind"


def test_up_serves_kubectl_and_helm_then_stops_every_process_on_sigterm(tmp_path: Path) -> None:
    if binaries.missing():
        pytest.skip("control-plane binaries not built: run `stt-localfleet build`")
    workdir = tmp_path / "fleet"
    log = (tmp_path / "up.log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "stt_localfleet.cli", "up", "--dir", str(workdir)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: proc.poll() is not None or (workdir / "kubeconfig").exists(), what="DIR/kubeconfig",
                   timeout=120, every=0.1)
        assert proc.poll() is None, (tmp_path / "up.log").read_text()
        ready_after = time.monotonic() - started
        env = {**os.environ, "KUBECONFIG": str(workdir / "kubeconfig"), "HELM_CONFIG_HOME": str(tmp_path / "helm"),
               "HELM_CACHE_HOME": str(tmp_path / "helm"), "HELM_DATA_HOME": str(tmp_path / "helm")}
        kubectl, helm = binaries.tool("kubectl"), binaries.tool("helm")
        nodes = json.loads(subprocess.run([str(kubectl), "get", "nodes", "-o", "json"], env=env, capture_output=True,
                                          text=True, check=True).stdout)["items"]
        assert [n["metadata"]["name"] for n in nodes] == ["localfleet"]
        ready = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}
        assert ready["Ready"] == "True", f"kubeconfig written before the node was Ready ({ready_after:.1f} s)"
        version = subprocess.run([str(kubectl), "version", "-o", "json"], env=env, capture_output=True, text=True,
                                 check=True).stdout
        assert json.loads(version)["serverVersion"]["gitVersion"].startswith(binaries.kubernetes_version())
        listed = subprocess.run([str(helm), "list", "-A"], env=env, capture_output=True, text=True, check=False)
        assert listed.returncode == 0, listed.stderr
        children = psutil.Process(proc.pid).children(recursive=True)
        names = {c.name() for c in children}
        assert {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} <= names, names
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(90)
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()
    left = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"still running after SIGTERM: {[c.name() for c in left]}"
    assert not (workdir / "kubeconfig").exists(), "a stale kubeconfig would point at a cluster that is gone"
