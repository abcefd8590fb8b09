"""The test session's one-machine Kubernetes cluster (`stt-localfleet up`) and the operator installed by helm.

`start_cluster` runs `stt-localfleet up --dir DIR --audit` as a subprocess and waits for
`DIR/kubeconfig`, which appears only once node `localfleet` is Ready. `LocalCluster` runs the real
`kubectl` and `helm` against it. Each test gets a namespace of its own (`new_namespace`), so tests
share the control plane without seeing each other's objects.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

REPO: Final = Path(__file__).resolve().parents[1]
CHART: Final = REPO / "charts" / "stt-operator"
OPERATOR_NAMESPACE: Final = "stt-system"
OPERATOR_RELEASE: Final = "stt-operator"
T = TypeVar("T")
_names = itertools.count(1)


class ClusterError(AssertionError):
    """The cluster or a tool run against it failed; the message carries the tool's output or a log."""


@dataclass
class LocalCluster:
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    namespaces: list[str] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def bin_dir(self) -> Path:
        from stt_localfleet import binaries

        return binaries.bin_dir()

    @property
    def audit_log(self) -> Path:
        return self.workdir / "logs" / "audit.log"

    @property
    def netns(self) -> Path:
        """The cluster network (pod IPs answer only in there): see stt_localfleet.podnet."""
        return Path(f"/proc/{(self.workdir / 'podnet.pid').read_text().strip()}/ns/net")

    def inside(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside the cluster network, e.g. an operator process that scrapes pod IPs."""
        from stt_localfleet import podnet

        return podnet.enter_command(self.netns, argv)

    def log(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "HELM_CACHE_HOME": str(self.workdir / "helm"), "HELM_CONFIG_HOME": str(self.workdir / "helm"),
                "HELM_DATA_HOME": str(self.workdir / "helm")}

    def run(self, tool: str, *args: str, check: bool = True, stdin: str | None = None,
            timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(self.bin_dir / tool), *args], env=self.env(), input=stdin, text=True,
                                capture_output=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise ClusterError(f"{tool} {' '.join(args)} failed ({result.returncode}):\n{result.stderr or result.stdout}")
        return result

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None,
                timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, check=check, stdin=stdin, timeout=timeout)

    def helm(self, *args: str, check: bool = True, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, check=check, timeout=timeout)

    def get(self, kind: str, name: str | None = None, *, namespace: str | None = None,
            selector: str | None = None) -> Any:
        """`kubectl get -o json`: the object (None when it is not there), or the list's items."""
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        args += ["-n", namespace] if namespace else []
        args += ["-l", selector] if selector else []
        result = self.kubectl(*args, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise ClusterError(f"kubectl {' '.join(args)}: {result.stderr}")
        doc = json.loads(result.stdout)
        return doc if name else doc.get("items", [])

    def apply(self, manifests: Sequence[Mapping[str, Any]] | Mapping[str, Any], *, namespace: str,
              check: bool = True) -> subprocess.CompletedProcess[str]:
        docs = [manifests] if isinstance(manifests, Mapping) else list(manifests)
        return self.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                                   "items": docs}), check=check)

    def new_namespace(self, prefix: str = "t") -> str:
        name = f"{prefix[:40]}-{os.getpid() % 10000}-{next(_names)}"
        self.kubectl("create", "namespace", name)
        self.namespaces.append(name)
        return name

    def delete_namespace(self, name: str) -> None:
        # Not waited for: the namespace controller and the kubelet finish it in the background.
        self.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ClusterError(f"stt-localfleet up exited with {self.process.returncode}:\n{tail(self.log('up'))}")


# Small requests so several servers fit on the 2-core node next to other tests' terminating pods;
# the quantities are written the way people write them, not the canonical way the server stores them.
SMALL_RESOURCES: Final = {"requests": {"cpu": "0.1", "memory": "256Mi"}, "limits": {"memory": "1024Mi"}}


def small_sttserver(name: str) -> dict[str, Any]:
    """The minimal-cpu sample under another name, with small resources (`SMALL_RESOURCES`)."""
    import copy

    import yaml

    doc = next(d for d in yaml.safe_load_all((REPO / "crds" / "samples" / "minimal-cpu.yaml").read_text())
               if d and d.get("kind") == "SttServer")
    obj = copy.deepcopy(doc)
    obj["metadata"] = {"name": name}
    obj["spec"]["resources"] = SMALL_RESOURCES
    return obj


def sttserver_ready(cluster: LocalCluster, namespace: str, name: str) -> bool:
    obj = cluster.get("stt", name, namespace=namespace) or {}
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or ())


def rbac_denials(cluster: LocalCluster, user: str) -> tuple[int, list[str]]:
    """(requests by `user`, the ones RBAC refused) from the audit log.

    A 403 for writing into a namespace that is being deleted is the namespace lifecycle's answer,
    not an authorization one (an operator watching the whole cluster meets other tests' leftovers).
    """
    lines = cluster.audit_log.read_text().splitlines() if cluster.audit_log.exists() else []
    events = [e for e in map(json.loads, lines) if (e.get("user") or {}).get("username") == user]
    return len(events), [f"{e['verb']} {e.get('requestURI')}" for e in events
                         if (e.get("responseStatus") or {}).get("code") == 403
                         and "because it is being terminated" not in (e.get("responseStatus") or {}).get("message", "")]


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else f"({path} missing)"


def wait_until(probe: Callable[[], T | None], *, what: str, timeout: float = 60.0, every: float = 0.2) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last value: {last!r}")


async def until_async(cluster: LocalCluster, api: Any, namespace: str, check: Callable[[], Awaitable[T | None]], *,
                      what: str, timeout: float) -> T:
    """Await `check` until it returns something other than None/False; on timeout, fail with `what`, the
    namespace's SttServer status and the kubelet's last lines (and at once if the cluster died)."""
    import asyncio

    from stt_operator.autoscaling.kubeapi import resource_path

    deadline = time.monotonic() + timeout
    while True:
        cluster.check_alive()
        result = await check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            servers = await api.list(resource_path("sttfleet.io/v1alpha1", "sttservers", namespace=namespace))
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n"
                                 f"status: {[s.get('status') for s in servers]}\n"
                                 f"kubelet log:\n{tail(cluster.log('kubelet'), 30)}")
        await asyncio.sleep(0.25)


def start_cluster(workdir: Path, *, timeout: float = 120.0) -> LocalCluster:
    """`stt-localfleet up --dir workdir --audit` in the background; returns once the kubeconfig is there."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    cluster = LocalCluster(workdir)
    with (workdir / "logs" / "up.log").open("ab") as log:
        cluster.process = subprocess.Popen(
            [sys.executable, "-m", "stt_localfleet.cli", "up", "--dir", str(workdir), "--audit",
             "--backoff-scale", "0.1"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        def node_ready() -> bool:
            cluster.check_alive()  # a cluster that died says so now, not at the timeout
            return cluster.kubeconfig.exists()
        wait_until(node_ready, what="node localfleet Ready", timeout=timeout, every=0.1)
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: LocalCluster, *, timeout: float = 120.0) -> None:
    proc = cluster.process
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def install_operator(cluster: LocalCluster, *, release: str = OPERATOR_RELEASE, namespace: str = OPERATOR_NAMESPACE,
                     values: Sequence[str] = ()) -> None:
    """`helm install` the chart, as a platform team would; waits until the operator pod is Ready.

    `--skip-crds`: the session applied the SttServer CRD already (fixture `sttserver_crd`), and
    helm 4 installs CRDs by server-side apply, which would conflict with that field manager.
    `values` are `--set-string` (env values must stay strings: `value=5` would be an integer).
    """
    cluster.helm("install", release, str(CHART), "--namespace", namespace, "--create-namespace", "--skip-crds",
                 "--wait", "--timeout", "180s", *itertools.chain.from_iterable(("--set-string", v) for v in values))


@contextlib.contextmanager
def operator_installed(cluster: LocalCluster, **kwargs: Any) -> Iterator[None]:
    install_operator(cluster, **kwargs)
    try:
        yield
    finally:
        cluster.helm("uninstall", kwargs.get("release", OPERATOR_RELEASE), "--namespace",
                     kwargs.get("namespace", OPERATOR_NAMESPACE), "--wait", check=False)
