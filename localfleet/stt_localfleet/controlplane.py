"""The real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

`ControlPlane` is an async context manager. On enter it makes (or reuses) the certificates, starts
etcd on free loopback ports with a fresh data folder, then kube-apiserver (authorization
`Node,RBAC`, the default admission plugins plus NodeRestriction, service-account signing keys, an
optional audit log), waits for `/readyz`, then starts kube-controller-manager (every default
controller, each under its own service account) and kube-scheduler, and waits until the
controllers have made the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap. On exit it
stops them newest first (SIGTERM, then SIGKILL after a timeout). Logs: `<workdir>/logs/<name>.log`.

With `netns` (the cluster network of `podnet`) every component runs inside that network namespace:
the API server listens on all of its addresses and advertises the node address 10.244.0.1, which
pods reach; the host reaches it through the NodePort proxy's forward of the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import aiohttp

from stt_localfleet import binaries, pki, podnet
from stt_localfleet.spawn import stop_process, tied_to_parent

NODE_NAME: Final = "localfleet"
SERVICE_CIDR: Final = "10.0.0.0/24"
SERVICE_IP: Final = "10.0.0.1"  # the `kubernetes` Service's ClusterIP: first address of the range
NODE_PORT_RANGE: Final = "30000-32767"
STOP_TIMEOUT_SEC: Final = 10.0

# Metadata level (one JSON line per request: user, verb, URI, response code) for every write, and for
# every request of a service account, so that a pod's refused reads (403) show as well as its writes.
AUDIT_POLICY: Final = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


class ControlPlaneError(RuntimeError):
    """A component failed to start or answer; the message names it and quotes its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler, started in that order."""

    def __init__(self, *, workdir: Path, audit: bool = False, node_name: str = NODE_NAME,
                 bin_dir: Path | None = None, extra_apiserver_args: Sequence[str] = (),
                 netns: Path | None = None) -> None:
        self.workdir = workdir
        self.netns = netns
        self.audit = audit
        self.node_name = node_name
        self.bin_dir = bin_dir or binaries.bin_dir()
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.logs = workdir / "logs"
        self.pki = pki.Pki(workdir / "pki")
        self.port = 0
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self._argv: dict[str, list[str]] = {}

    # Files a client needs.
    @property
    def server_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_cert

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "pki" / "admin.kubeconfig"

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self.workdir / "pki" / "kubelet.kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.logs / "audit.log"

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def start(self) -> None:
        missing = binaries.missing(self.bin_dir)
        if missing:
            raise ControlPlaneError(f"{', '.join(b.name for b in missing)} not built in {self.bin_dir}: "
                                    "run `stt-localfleet build`")
        self.logs.mkdir(parents=True, exist_ok=True)
        pki.ensure_pki(self.pki.directory, node_name=self.node_name, service_ips=(SERVICE_IP, podnet.NODE_IP))
        etcd_port, peer_port, self.port = free_port(), free_port(), free_port()
        self._write_kubeconfigs()
        data_dir = self.workdir / "etcd"
        shutil.rmtree(data_dir, ignore_errors=True)  # every start is a fresh cluster
        await self._spawn("etcd", [
            "--name", "localfleet", "--data-dir", str(data_dir),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"localfleet=http://127.0.0.1:{peer_port}",
            # A throwaway cluster: durability is not worth an fsync per write on a small disk.
            "--unsafe-no-fsync", "--log-level", "warn",
        ])
        await self._spawn("kube-apiserver", self._apiserver_args(etcd_port))
        await self._wait_ready()
        common = ["--leader-elect=false", "--secure-port=0", "-v=1"]
        await self._spawn("kube-controller-manager", [
            f"--kubeconfig={self.workdir / 'pki' / 'controller-manager.kubeconfig'}", *common,
            f"--service-account-private-key-file={self.pki.sa_key}", f"--root-ca-file={self.pki.ca_cert}",
            "--use-service-account-credentials=true", "--controllers=*",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
        ])
        await self._spawn("kube-scheduler", [
            f"--kubeconfig={self.workdir / 'pki' / 'scheduler.kubeconfig'}", *common])
        await self._wait_controllers()

    def _write_kubeconfigs(self) -> None:
        server = self.server_url
        pki.write_kubeconfig(self.admin_kubeconfig, pki=self.pki, who=pki.ADMIN, server=server)
        pki.write_kubeconfig(self.workdir / "pki" / "controller-manager.kubeconfig", pki=self.pki,
                             who=pki.CONTROLLER_MANAGER, server=server)
        pki.write_kubeconfig(self.workdir / "pki" / "scheduler.kubeconfig", pki=self.pki, who=pki.SCHEDULER,
                             server=server)
        pki.write_kubeconfig(self.kubelet_kubeconfig, pki=self.pki, who=pki.node_identity(self.node_name),
                             server=server)

    def _apiserver_args(self, etcd_port: int) -> list[str]:
        p = self.pki
        args = [
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            # Inside the cluster network every address is the fleet's own: pods reach the node address.
            f"--bind-address={'0.0.0.0' if self.netns else '127.0.0.1'}",
            f"--advertise-address={podnet.NODE_IP if self.netns else '127.0.0.1'}", f"--secure-port={self.port}",
            f"--tls-cert-file={p.serving_cert}", f"--tls-private-key-file={p.serving_key}",
            f"--client-ca-file={p.ca_cert}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", f"--service-node-port-range={NODE_PORT_RANGE}",
            f"--service-account-issuer={self.server_url}", f"--service-account-key-file={p.sa_pub}",
            f"--service-account-signing-key-file={p.sa_key}",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true", "--profiling=false", "-v=1",
        ]
        if self.audit:
            policy = self.workdir / "audit-policy.yaml"
            policy.write_text(AUDIT_POLICY)
            args += [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}",
                     "--audit-log-format=json", "--audit-log-mode=blocking"]
        return args + self.extra_apiserver_args

    async def _spawn(self, name: str, args: Sequence[str]) -> None:
        argv = [str(self.bin_dir / name), *args]
        if self.netns is not None:
            argv = podnet.enter_command(self.netns, argv)
        self._argv[name] = argv
        with (self.logs / f"{name}.log").open("ab") as log:
            self.processes[name] = await asyncio.create_subprocess_exec(
                *tied_to_parent(argv), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)

    def check_alive(self) -> None:
        """Raise ControlPlaneError naming a component that has exited, with its log's tail."""
        for name, proc in self.processes.items():
            if proc.returncode is not None:
                raise ControlPlaneError(f"{name} exited with code {proc.returncode}; its log ends:\n"
                                        f"{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def admin_ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(self.pki.client_cert(pki.ADMIN), self.pki.client_key(pki.ADMIN))
        return context

    def _admin_http(self) -> aiohttp.ClientSession:
        """An admin client from this (host) process; into the cluster network when there is one."""
        ssl_context = self.admin_ssl()
        connector = (podnet.aiohttp_connector(self.netns, ssl=ssl_context) if self.netns is not None
                     else aiohttp.TCPConnector(ssl=ssl_context))
        return aiohttp.ClientSession(connector=connector)

    async def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        async with self._admin_http() as http:
            while True:
                self.check_alive()
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with http.get(f"{self.server_url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return
                        last = f"{r.status}: {(await r.text())[-400:]}"
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"kube-apiserver not ready within {timeout:g} s ({last}); its log ends:\n"
                                            f"{self.log_tail('kube-apiserver')}")
                await asyncio.sleep(0.2)

    async def _wait_controllers(self, timeout: float = 60.0) -> None:
        # The service-account and root-CA publisher controllers must have run before any pod can be
        # admitted with its token volume.
        wanted = ("/api/v1/namespaces/default/serviceaccounts/default",
                  "/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
        deadline = time.monotonic() + timeout
        async with self._admin_http() as http:
            for path in wanted:
                while True:
                    self.check_alive()
                    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                        async with http.get(self.server_url + path, timeout=aiohttp.ClientTimeout(total=2)) as r:
                            if r.status == 200:
                                break
                    if time.monotonic() > deadline:
                        raise ControlPlaneError(f"kube-controller-manager did not create {path} within {timeout:g} s;"
                                                f" its log ends:\n{self.log_tail('kube-controller-manager')}")
                    await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """Stop every component, newest first; SIGKILL what does not exit in time."""
        for name in reversed(list(self.processes)):
            await stop_process(self.processes[name], timeout=STOP_TIMEOUT_SEC)
        self.processes.clear()
