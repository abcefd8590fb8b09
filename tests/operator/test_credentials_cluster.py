"""The operator's credentials against the real kube-apiserver: a rotated service-account token, and a
kubeconfig whose user is an exec plugin (as on EKS, GKE or with an OIDC helper).

Identity is read back with a SelfSubjectReview, so each test sees *who* the API server thinks we are.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import stat
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from local_cluster import LocalCluster
from stt_operator.autoscaling.credentials import credentials_from_kubeconfig, credentials_in_cluster
from stt_operator.autoscaling.kubeapi import ApiError, KubeApi
from stt_operator.login import connection_info

REVIEW = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


async def whoami(api: KubeApi) -> str:
    review = await api.create("/apis/authentication.k8s.io/v1/selfsubjectreviews", REVIEW)
    return str(review["status"]["userInfo"]["username"])


def cluster_endpoint(cluster: LocalCluster, tmp_path: Path) -> tuple[str, Path]:
    """The API server's URL and its CA (as a file), from the admin kubeconfig."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    entry = config["clusters"][0]["cluster"]
    ca = tmp_path / "ca.crt"
    if entry.get("certificate-authority-data"):
        ca.write_bytes(base64.b64decode(entry["certificate-authority-data"]))
    else:
        ca.write_bytes((cluster.kubeconfig.parent / entry["certificate-authority"]).read_bytes())
    return str(entry["server"]), ca


def token_for(cluster: LocalCluster, namespace: str, sa: str) -> str:
    return cluster.kubectl("create", "token", sa, "-n", namespace, "--duration=10m").stdout.strip()


async def until_rejected(server: str, ca: Path, token: str, *, timeout: float = 60.0) -> None:
    """Wait until the API server answers 401 to `token` (it caches accepted tokens for a few seconds)."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.post(server + "/apis/authentication.k8s.io/v1/selfsubjectreviews", json=REVIEW,
                                    headers={"Authorization": f"Bearer {token}"}, ssl=context) as resp:
                if resp.status == 401:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"the revoked token was still accepted after {timeout:g} s")
            await asyncio.sleep(0.5)


def pod_environment(server: str) -> dict[str, str]:
    host, port = server.removeprefix("https://").rsplit(":", 1)
    return {"KUBERNETES_SERVICE_HOST": host.strip("[]"), "KUBERNETES_SERVICE_PORT": port}


def service_account_dir(tmp_path: Path, ca: Path, *, namespace: str | None = None) -> Path:
    """What the kubelet projects into a pod: ca.crt (and namespace); the token is the test's to write."""
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "ca.crt").write_bytes(ca.read_bytes())
    if namespace is not None:
        (sa_dir / "namespace").write_text(namespace)
    return sa_dir


async def test_a_rotated_token_is_picked_up_after_the_old_one_is_rejected(
        local_cluster: LocalCluster, namespace: str, tmp_path: Path) -> None:
    server, ca = cluster_endpoint(local_cluster, tmp_path)
    sa_dir = service_account_dir(tmp_path, ca, namespace=namespace)
    for sa in ("first", "second"):
        local_cluster.kubectl("create", "serviceaccount", sa, "-n", namespace)
    (sa_dir / "token").write_text(token_for(local_cluster, namespace, "first"))
    credentials = credentials_in_cluster(environ=pod_environment(server), service_account_dir=sa_dir)
    async with KubeApi(credentials) as api:
        assert await whoami(api) == f"system:serviceaccount:{namespace}:first"
        # The kubelet writes a new token into the file; the old one stops being accepted (here: its
        # ServiceAccount is gone, which the API server checks on every request, like an expiry).
        old = (sa_dir / "token").read_text()
        (sa_dir / "token").write_text(token_for(local_cluster, namespace, "second"))
        local_cluster.kubectl("delete", "serviceaccount", "first", "-n", namespace)
        await until_rejected(server, ca, old)
        # One 401, a reload of the credentials, and the retry goes through as the new identity.
        assert await whoami(api) == f"system:serviceaccount:{namespace}:second"
        assert api.credentials is not credentials
        # kopf's login reads the same source: it gets the new token as well.
        info = connection_info(api.credentials)
        assert info.token == (sa_dir / "token").read_text() and info.scheme == "Bearer"
        assert info.default_namespace == namespace and info.ca_path == str(sa_dir / "ca.crt")


async def test_without_a_valid_token_the_401_is_reported_after_one_reload(
        local_cluster: LocalCluster, namespace: str, tmp_path: Path) -> None:
    server, ca = cluster_endpoint(local_cluster, tmp_path)
    sa_dir = service_account_dir(tmp_path, ca)
    local_cluster.kubectl("create", "serviceaccount", "gone", "-n", namespace)
    (sa_dir / "token").write_text(token_for(local_cluster, namespace, "gone"))
    local_cluster.kubectl("delete", "serviceaccount", "gone", "-n", namespace)
    await until_rejected(server, ca, (sa_dir / "token").read_text())
    async with KubeApi(credentials_in_cluster(environ=pod_environment(server), service_account_dir=sa_dir)) as api:
        try:
            await whoami(api)
        except ApiError as exc:
            assert exc.status == 401
        else:
            raise AssertionError("a token of a deleted ServiceAccount was accepted")


def exec_kubeconfig(cluster: LocalCluster, tmp_path: Path, *, namespace: str, sa: str) -> tuple[Path, Path]:
    """A kubeconfig whose user runs a plugin that prints an ExecCredential with a fresh token; the
    plugin appends a line to a log on every run."""
    server, ca = cluster_endpoint(cluster, tmp_path)
    runs = tmp_path / "plugin-runs"
    plugin = tmp_path / "token-plugin"
    plugin.write_text(
        "#!/bin/sh\nset -e\n"
        f'token=$("{cluster.bin_dir / "kubectl"}" --kubeconfig "{cluster.kubeconfig}" '
        f"create token {sa} -n {namespace} --duration=10m)\n"
        f'echo run >> "{runs}"\n'
        "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
        "\"status\":{\"token\":\"%s\"}}' \"$token\"\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    config: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config", "current-context": "plugin",
        "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "u", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin),
            "interactiveMode": "Never"}}}],
        "contexts": [{"name": "plugin", "context": {"cluster": "c", "user": "u", "namespace": namespace}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    return path, runs


async def test_a_kubeconfig_with_an_exec_plugin(local_cluster: LocalCluster, namespace: str, tmp_path: Path) -> None:
    local_cluster.kubectl("create", "serviceaccount", "plugin", "-n", namespace)
    path, runs = exec_kubeconfig(local_cluster, tmp_path, namespace=namespace, sa="plugin")
    credentials = credentials_from_kubeconfig(path)
    assert credentials.default_namespace == namespace
    info = connection_info(credentials)
    assert info.scheme == "Bearer" and info.token and info.server == credentials.server
    async with KubeApi(credentials) as api:
        assert await whoami(api) == f"system:serviceaccount:{namespace}:plugin"
        # Its token is revoked (the ServiceAccount re-made): the next call gets a 401, re-runs the
        # plugin once and goes on.
        old = str(api.credentials.authorization()).split(" ", 1)[1]
        local_cluster.kubectl("delete", "serviceaccount", "plugin", "-n", namespace)
        local_cluster.kubectl("create", "serviceaccount", "plugin", "-n", namespace)
        await until_rejected(credentials.server, tmp_path / "ca.crt", old)
        before = len(runs.read_text().splitlines())
        assert await whoami(api) == f"system:serviceaccount:{namespace}:plugin"
        assert len(runs.read_text().splitlines()) == before + 1


def test_inline_key_material_is_not_copied_again_on_every_load(local_cluster: LocalCluster) -> None:
    """The admin kubeconfig carries its client key inline; it goes to a private file, and a reload
    (after each 401) must not add files: one file per distinct content."""
    first = credentials_from_kubeconfig(local_cluster.kubeconfig)
    assert first.tls.key_path and first.tls.cert_path and first.tls.ca_data
    folder = Path(first.tls.key_path).parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(first.tls.key_path).stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in Path(first.tls.key_path).read_bytes()
    before = sorted(folder.iterdir())
    for _ in range(5):
        assert first.reload is not None
        again = first.reload()
        assert again.tls == first.tls
    assert sorted(folder.iterdir()) == before
