"""client-go credential plugins (a kubeconfig user's `exec`), as EKS, GKE or an OIDC helper use.

The command runs with the kubeconfig's `args` and `env` added to the operator's environment, no
terminal, and `KUBERNETES_EXEC_INFO` set; it prints an ExecCredential
(client.authentication.k8s.io/v1 or v1beta1) whose `status` holds a token or a client certificate
and key, and may hold an `expirationTimestamp`. `ExecToken` re-runs the plugin once that has passed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from stt_operator.autoscaling.kubeconfig import CredentialsError, Entry, resolve_path

API_VERSIONS: Final = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
TIMEOUT_SEC: Final = 120.0  # a plugin that hangs (waiting for a browser login, say) must not hang the operator


@dataclass(frozen=True)
class ExecConfig:
    """One user's `exec` block, its command resolved against the kubeconfig's folder."""

    user: str
    api_version: str
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    install_hint: str | None = None
    cluster_info: Mapping[str, Any] | None = None  # given to the plugin when provideClusterInfo is set


@dataclass(frozen=True)
class ExecCredential:
    """What the plugin printed: a token, or a PEM client certificate and key; maybe an expiry."""

    token: str | None = None
    client_certificate_data: str | None = None
    client_key_data: str | None = None
    expiration: datetime | None = None


def exec_config(user: Entry, *, cluster: Entry) -> ExecConfig:
    """Parse `user.exec`; the cluster is what `provideClusterInfo` hands the plugin."""
    body = user.body["exec"] or {}
    api_version = body.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise CredentialsError(f"kubeconfig user {user.name!r}: exec apiVersion {api_version!r} is not one of "
                               f"{', '.join(API_VERSIONS)}")
    if not body.get("command"):
        raise CredentialsError(f"kubeconfig user {user.name!r}: exec has no command")
    if body.get("interactiveMode") == "Always":
        raise CredentialsError(f"kubeconfig user {user.name!r}: the exec plugin needs a terminal "
                               "(interactiveMode: Always), which the operator does not have")
    command = str(body["command"])
    if os.sep in command:
        command = str(resolve_path(command, user.folder))
    cluster_info = None
    if body.get("provideClusterInfo"):
        ca_path = cluster.path("certificate-authority")
        ca_data = cluster.body.get("certificate-authority-data")
        if ca_path and not ca_data:
            with open(ca_path, "rb") as ca_file:
                ca_data = base64.b64encode(ca_file.read()).decode()
        extensions = {e.get("name"): e.get("extension") for e in cluster.body.get("extensions") or []}
        cluster_info = {key: value for key, value in {
            "server": cluster.body.get("server"), "tls-server-name": cluster.body.get("tls-server-name"),
            "insecure-skip-tls-verify": cluster.body.get("insecure-skip-tls-verify"),
            "certificate-authority-data": ca_data, "proxy-url": cluster.body.get("proxy-url"),
            "config": extensions.get("client.authentication.k8s.io/exec")}.items() if value}
    return ExecConfig(user=user.name, api_version=str(api_version), command=command,
                      args=tuple(str(a) for a in body.get("args") or ()),
                      env=tuple((str(e["name"]), str(e.get("value", ""))) for e in body.get("env") or ()),
                      install_hint=body.get("installHint"), cluster_info=cluster_info)


def run_plugin(config: ExecConfig) -> ExecCredential:
    """Run the plugin once and parse what it printed; a clear CredentialsError when it fails."""
    info: dict[str, Any] = {"apiVersion": config.api_version, "kind": "ExecCredential",
                            "spec": {"interactive": False}}
    if config.cluster_info is not None:
        info["spec"]["cluster"] = config.cluster_info
    env = {**os.environ, **dict(config.env), "KUBERNETES_EXEC_INFO": json.dumps(info)}
    who = f"exec plugin {config.command!r} of kubeconfig user {config.user!r}"
    try:
        done = subprocess.run([config.command, *config.args], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=TIMEOUT_SEC, check=False)
    except (FileNotFoundError, PermissionError) as exc:
        hint = f"\n{config.install_hint}" if config.install_hint else ""
        raise CredentialsError(f"{who} cannot be run: {exc}{hint}") from exc
    except subprocess.TimeoutExpired as exc:
        raise CredentialsError(f"{who} did not finish within {TIMEOUT_SEC:g} s") from exc
    if done.returncode != 0:
        raise CredentialsError(f"{who} exited with status {done.returncode}: {done.stderr.strip()[-2000:]}")
    return parse_credential(done.stdout, api_version=config.api_version, who=who)


def parse_credential(text: str, *, api_version: str, who: str) -> ExecCredential:
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CredentialsError(f"{who} printed no JSON ExecCredential: {exc}") from exc
    if not isinstance(body, dict) or body.get("kind") != "ExecCredential" or body.get("apiVersion") != api_version:
        raise CredentialsError(f"{who} printed {str(body)[:200]!r}, not an ExecCredential of {api_version}")
    status = body.get("status") or {}
    try:
        expiry = datetime.fromisoformat(status["expirationTimestamp"]) if status.get("expirationTimestamp") else None
    except (TypeError, ValueError) as exc:
        raise CredentialsError(f"{who} printed a bad expirationTimestamp: {exc}") from exc
    if expiry is not None and expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    credential = ExecCredential(
        token=status.get("token") or None, client_certificate_data=status.get("clientCertificateData") or None,
        client_key_data=status.get("clientKeyData") or None,
        expiration=expiry)
    if not credential.token and not (credential.client_certificate_data and credential.client_key_data):
        raise CredentialsError(f"{who} printed neither status.token nor clientCertificateData and clientKeyData")
    return credential


class ExecToken:
    """The plugin's current `Bearer` value; the plugin runs again once its credential expired.

    An expired client certificate is replaced by loading the credentials afresh (the API server answers
    401 to it, and `KubeApi` reloads once), because the TLS context is fixed per `Credentials`.
    """

    def __init__(self, config: ExecConfig, first: ExecCredential, *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._config = config
        self._credential = first
        self._now = now
        self._lock = threading.Lock()

    def __call__(self) -> str | None:
        with self._lock:
            expiry = self._credential.expiration
            if expiry is not None and self._now() >= expiry:
                self._credential = run_plugin(self._config)
            token = self._credential.token
        return f"Bearer {token}" if token else None
